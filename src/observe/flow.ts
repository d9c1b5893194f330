// The Flow record: one per connection and per L7 request, modelled field by field on Hubble's `flow.Flow`
// (Cilium's api/v1/flow), with the proto field names Hubble prints in JSON, so tools built for Hubble map directly.
// The Observer API (issue 6) encodes these with our own flow.proto; the proxy fills them on its hot path, so
// building one must stay cheap: plain objects, no JSON.

export type FlowVerdict = 'VERDICT_UNKNOWN' | 'FORWARDED' | 'DROPPED' | 'ERROR' | 'AUDIT';
export type FlowType = 'UNKNOWN_TYPE' | 'L3_L4' | 'L7';
export type TrafficDirection = 'TRAFFIC_DIRECTION_UNKNOWN' | 'INGRESS' | 'EGRESS';
export type L7FlowType = 'UNKNOWN_L7_TYPE' | 'REQUEST' | 'RESPONSE' | 'SAMPLE';
/** Hubble's AuthType: how the peer was authenticated. Trellis adds nothing new: mTLS is reported as SPIRE-like `MTLS`. */
export type AuthType = 'DISABLED' | 'SPIRE' | 'TEST_ALWAYS_FAIL';

/** Hubble's DropReason names that a proxy can produce. */
export type DropReason =
  | 'DROP_REASON_UNKNOWN'
  | 'POLICY_DENIED'
  | 'POLICY_DENY'
  | 'AUTH_REQUIRED'
  | 'NO_CONFIGURATION_AVAILABLE_TO_PERFORM_POLICY_DECISION'
  | 'UNSUPPORTED_L3_PROTOCOL'
  | 'INVALID_PACKET_DROPPED'
  | 'PROXY_REDIRECTION_NOT_SUPPORTED_FOR_PROTOCOL';

export interface FlowEndpoint {
  /** Cilium endpoint id; Trellis uses the numeric identity (0 when unknown). */
  ID: number;
  identity: number;
  cluster_name: string;
  namespace: string;
  /** `key=value`, with Cilium's source prefix (`k8s:app=db`). */
  labels: string[];
  pod_name: string;
  workloads: { name: string; kind: string }[];
}

export interface FlowService {
  name: string;
  namespace: string;
}

/** Hubble's flow.Policy: the policy that allowed or denied a flow. */
export interface FlowPolicy {
  name: string;
  namespace: string;
  labels: string[];
  revision: number;
  /** `NetworkPolicy`, `CiliumNetworkPolicy`, `CiliumClusterwideNetworkPolicy`, `AuthorizationPolicy`, … */
  kind: string;
}

export interface FlowL4 {
  TCP?: { source_port: number; destination_port: number };
  UDP?: { source_port: number; destination_port: number };
}

export interface FlowHttp {
  code: number;
  method: string;
  url: string;
  /** `HTTP/1.1`, `HTTP/2`. */
  protocol: string;
  headers: { key: string; value: string }[];
}

export interface FlowL7 {
  type: L7FlowType;
  /** Request to response, nanoseconds. */
  latency_ns: number;
  http?: FlowHttp;
}

export interface Flow {
  /** RFC 3339 with nanoseconds, as Hubble prints `time`. */
  time: string;
  uuid: string;
  verdict: FlowVerdict;
  drop_reason_desc?: DropReason;
  auth_type?: AuthType;
  IP: { source: string; destination: string; ipVersion: 'IPv4' | 'IPv6' };
  l4: FlowL4;
  source: FlowEndpoint;
  destination: FlowEndpoint;
  Type: FlowType;
  node_name: string;
  source_service?: FlowService;
  destination_service?: FlowService;
  traffic_direction: TrafficDirection;
  is_reply: boolean;
  l7?: FlowL7;
  /** Hubble names allowing and denying policies per direction. */
  egress_allowed_by?: FlowPolicy[];
  ingress_allowed_by?: FlowPolicy[];
  egress_denied_by?: FlowPolicy[];
  ingress_denied_by?: FlowPolicy[];
  /** Trellis extensions, in the same spirit: the exact rule (`file:line:col spec.ingress[0]`), the gRPC status, the transport. */
  trellis?: {
    rule?: string;
    grpc_status?: number;
    /** `mtls` or `plaintext`, as PeerAuthentication PERMISSIVE needs to show. */
    transport?: 'mtls' | 'plaintext';
    /** The route that carried an L7 request. */
    route?: string;
    /** The upstream endpoint (`ip:port`) the request or connection went to. */
    upstream?: string;
    bytes_sent?: number;
    bytes_received?: number;
    /** Envoy's response flags for an L7 request (`-`, or e.g. `UH`, `UF,URX`, `UT`, `DC`, `RL`, `UAEX`). */
    response_flags?: string;
  };
  Summary: string;
}

/** Where flows go (the ring buffer, the audit log, metrics). Must not throw or block. */
export interface FlowSink {
  push(flow: Flow): void;
}
