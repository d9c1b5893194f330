// The L7 flow of one finished request, as Hubble shows it: a RESPONSE flow for a request that got an answer
// (is_reply, so source and destination are swapped as Hubble swaps them: the server is the source), with the
// latency, code, route, upstream, gRPC status and response flags; a DROPPED REQUEST flow (client to server) for a
// policy denial. One literal per request; endpoints are the shared Hubble endpoint objects (flow-build.ts).
import { flowEndpointOf, flowTime, flowUuid } from '../../observe/flow-build.ts';
import type { Flow, FlowService, FlowVerdict } from '../../observe/flow.ts';
import { flowPolicyOf } from '../policy-verdict.ts';
import type { RequestRecord } from './engine-context.ts';

/** Where flows place endpoints: the cluster name and this proxy's node (for host vs remote-node). */
export interface FlowSite {
  nodeName: string;
  clusterName?: string;
}

const serviceCache = new Map<string, FlowService | null>();

/** The destination Service from an Istio cluster name (`outbound|80|v1|api.ns.svc.cluster.local`). */
function serviceOfCluster(cluster: string | undefined): FlowService | undefined {
  if (!cluster) return undefined;
  let s = serviceCache.get(cluster);
  if (s === undefined) {
    const host = cluster.split('|')[3] ?? '';
    const parts = host.split('.');
    s = parts.length >= 3 && parts[2] === 'svc' ? { name: parts[0]!, namespace: parts[1]! } : null;
    if (serviceCache.size > 10_000) serviceCache.clear();
    serviceCache.set(cluster, s);
  }
  return s ?? undefined;
}

/**
 * The string, flattened. Concatenation (template literals, and randomUUID, which joins 20 pieces) leaves a tree of
 * V8 cons strings, 32 bytes a node, that a flow kept in the ring holds for thousands of requests: about 1 KB a flow.
 * Reading the string as a number makes V8 copy it into one flat string in place (the tree becomes garbage at once).
 */
function flat(s: string): string {
  void Number(s);
  return s;
}

const ERROR_FLAGS = /\b(UH|UF|UO|UT|UR|NC|DPE)\b/;

export function requestFlow(rec: RequestRecord, site: FlowSite, now: bigint = process.hrtime.bigint()): Flow {
  const info = rec.conn.info;
  const v = rec.verdict;
  const denied = v !== undefined && !v.allowed;
  let verdict: FlowVerdict;
  if (denied) verdict = 'DROPPED';
  else if (rec.status === 0 || (rec.status >= 500 && ERROR_FLAGS.test(rec.flags))) verdict = 'ERROR';
  else verdict = v?.audit ? 'AUDIT' : 'FORWARDED';
  const ipv6 = info.source.ip.includes(':');
  const opts = { clusterName: site.clusterName, localNode: site.nodeName };
  const client = flowEndpointOf(info.source, opts);
  const upstream = rec.destination ?? info.destination;
  const server = flowEndpointOf(upstream, opts);
  const ingress = info.listener.direction !== 'outbound';
  const scheme = rec.conn.tls ? 'https' : 'http';
  const latencyNs = Number(now - rec.startNs);
  const url = flat(`${scheme}://${rec.authority}${rec.path}`);
  const flow: Flow = {
    time: flat(flowTime(now)),
    uuid: flat(flowUuid()),
    verdict,
    auth_type: info.transport === 'mtls' ? 'SPIRE' : 'DISABLED',
    IP: denied
      ? { source: info.source.ip, destination: upstream.ip, ipVersion: ipv6 ? 'IPv6' : 'IPv4' }
      : { source: upstream.ip, destination: info.source.ip, ipVersion: ipv6 ? 'IPv6' : 'IPv4' },
    l4: { TCP: denied ? { source_port: info.remote.port, destination_port: info.local.port } : { source_port: info.local.port, destination_port: info.remote.port } },
    source: denied ? client : server,
    destination: denied ? server : client,
    Type: 'L7',
    node_name: site.nodeName,
    traffic_direction: ingress ? 'INGRESS' : 'EGRESS',
    is_reply: !denied,
    l7: {
      type: denied ? 'REQUEST' : 'RESPONSE',
      latency_ns: latencyNs,
      http: { code: rec.status, method: rec.method, url, protocol: rec.protocol, headers: [] },
    },
    trellis: {
      rule: v?.rule ?? rec.denial?.rule,
      grpc_status: rec.grpcStatus,
      transport: info.transport,
      route: rec.routeName,
      upstream: rec.upstream,
      bytes_sent: rec.bytesOut,
      bytes_received: rec.bytesIn,
      response_flags: rec.flags,
    },
    Summary: flat(`${rec.protocol} ${rec.status} ${Math.round(latencyNs / 1e6)}ms (${rec.method} ${url})${rec.grpcStatus !== undefined ? ` grpc-status ${rec.grpcStatus}` : ''}`),
  };
  if (denied) flow.drop_reason_desc = 'POLICY_DENIED';
  const dest = serviceOfCluster(rec.clusterName);
  if (dest) {
    if (denied) flow.destination_service = dest;
    else flow.source_service = dest;
  }
  const p = v ? flowPolicyOf(v) : rec.denial?.policy ? { ...rec.denial.policy, labels: [], revision: 0 } : undefined;
  if (p) {
    const fp = [p];
    const dir = v?.direction ?? (ingress ? 'ingress' : 'egress');
    if (denied) {
      if (dir === 'ingress') flow.ingress_denied_by = fp;
      else flow.egress_denied_by = fp;
    } else if (dir === 'ingress') flow.ingress_allowed_by = fp;
    else flow.egress_allowed_by = fp;
  }
  return flow;
}
