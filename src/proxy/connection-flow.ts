// Connection-level (L3_L4) flow records for the listener manager: one when a connection is admitted or refused, and
// one when a proxied TCP connection closes, with its bytes. Built from ConnectionInfo with the shared Hubble endpoint
// objects (flow-build.ts), so a flow costs a few small allocations and no lookups.
import { flowEndpointOf, flowTime, flowUuid } from '../observe/flow-build.ts';
import type { DropReason, Flow, FlowVerdict } from '../observe/flow.ts';
import type { ConnectionInfo, PolicyVerdict } from './contracts.ts';
import { flowPolicyOf } from './policy-verdict.ts';

export interface ConnectionFlowInput {
  info: ConnectionInfo;
  verdict: FlowVerdict;
  /** The decision the flow reports (admission or denial); default info.admission. */
  decision?: PolicyVerdict;
  dropReason?: DropReason;
  /** Why, in a few words (Hubble's Summary): `allowed by …`, `TLS handshake failed: …`. */
  summary: string;
  /** Outbound TCP: the upstream host's port (default: the port the connection was accepted on). */
  destinationPort?: number;
  /** Closing flows of TCP-proxied connections. */
  upstream?: string;
  bytesSent?: number;
  bytesReceived?: number;
  nodeName?: string;
  clusterName?: string;
}

/** The verdict's policy under the right Hubble field (ingress/egress, allowed/denied). */
function policyFields(flow: Flow, v: PolicyVerdict, fallback: 'ingress' | 'egress'): void {
  const p = flowPolicyOf(v);
  if (p === undefined) return;
  const ingress = (v.direction ?? fallback) === 'ingress';
  if (v.allowed) {
    if (ingress) flow.ingress_allowed_by = [p];
    else flow.egress_allowed_by = [p];
  } else if (ingress) flow.ingress_denied_by = [p];
  else flow.egress_denied_by = [p];
}

export function connectionFlow(x: ConnectionFlowInput): Flow {
  const info = x.info;
  const inbound = info.listener.direction !== 'outbound';
  const opts = x.clusterName !== undefined || x.nodeName !== undefined ? { clusterName: x.clusterName ?? 'default', localNode: x.nodeName ?? '' } : {};
  const flow: Flow = {
    time: flowTime(info.acceptedAt),
    uuid: flowUuid(),
    verdict: x.verdict,
    IP: { source: info.source.ip, destination: info.destination.ip, ipVersion: info.source.ip.includes(':') ? 'IPv6' : 'IPv4' },
    l4: { TCP: { source_port: info.remote.port, destination_port: x.destinationPort ?? info.local.port } },
    source: flowEndpointOf(info.source, opts),
    destination: flowEndpointOf(info.destination, opts),
    Type: 'L3_L4',
    node_name: x.nodeName ?? '',
    traffic_direction: inbound ? 'INGRESS' : 'EGRESS',
    is_reply: false,
    auth_type: info.transport === 'mtls' ? 'SPIRE' : 'DISABLED',
    trellis: { transport: info.transport },
    Summary: x.summary,
  };
  if (x.dropReason !== undefined) flow.drop_reason_desc = x.dropReason;
  const decision = x.decision ?? info.admission;
  policyFields(flow, decision, inbound ? 'ingress' : 'egress');
  const t = flow.trellis!;
  if (decision.rule !== undefined) t.rule = decision.rule;
  if (x.upstream !== undefined) t.upstream = x.upstream;
  if (x.bytesSent !== undefined) t.bytes_sent = x.bytesSent;
  if (x.bytesReceived !== undefined) t.bytes_received = x.bytesReceived;
  return flow;
}

/** Hubble's drop reason for a denial: no configuration when the proxy has no policy, else a policy denial. */
export function dropReasonOf(v: PolicyVerdict): DropReason {
  return v.policyName === NO_POLICY || v.policyName === UNKNOWN_POD ? 'NO_CONFIGURATION_AVAILABLE_TO_PERFORM_POLICY_DECISION' : 'POLICY_DENIED';
}

/** policyName of the verdict unconfiguredVerdict() builds (no policy snapshot yet). */
export const NO_POLICY = 'no policy configuration';
export const UNKNOWN_POD = 'unknown pod';
