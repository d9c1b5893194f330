// The seams between the proxy's parts: the listener manager (L4, TLS, detection), the HTTP engine, the policy
// enforcer and the upstream cluster manager. Each part is built and tested on its own against these interfaces.
import type { Duplex } from 'node:stream';
import type { ConnectionOptions } from 'node:tls';
import type { Endpoint } from '../policy/endpoint.ts';
import type { Flow } from '../observe/flow.ts';
import type { Route } from '../routing/model.ts';
import type { ListenerConfig, ProxyCluster, ProxyConfig } from './proxy-config.ts';

/** What the listener manager learned about one accepted connection, handed to the HTTP engine or TCP proxy. */
export interface ConnectionInfo {
  id: number;
  listener: ListenerConfig;
  remote: { ip: string; port: number };
  local: { ip: string; port: number };
  transport: 'mtls' | 'plaintext';
  /** The peer's SPIFFE ID (`spiffe://td/ns/x/sa/y`) when it presented a certificate that chains to our roots. */
  peerSpiffeId?: string;
  /** TLS SNI the peer sent, if any. */
  sni?: string;
  /** The source and destination as the policy engine sees them (pod, node or world). */
  source: Endpoint;
  destination: Endpoint;
  /** The verdict of the L3/L4 decision that admitted the connection (for flows). */
  admission: ConnectionDecision;
  /** process.hrtime.bigint() at accept. */
  acceptedAt: bigint;
}

/** A denial or allowance with what decided it, in the forms flows and error bodies need. */
export interface PolicyVerdict {
  allowed: boolean;
  /** Also write this request to the audit log (an AUDIT rule matched, or it was denied). */
  audit: boolean;
  /** `CiliumNetworkPolicy ns/name`, `AuthorizationPolicy ns/name`, or a reason such as `default deny` when no rule did. */
  policyName?: string;
  /** The policy as Hubble's flow.Policy wants it. */
  policy?: { kind: string; namespace: string; name: string };
  /** The exact rule, `file:line:col spec.ingress[0]`, when one decided. */
  rule?: string;
  /** Short human text (used in 403 bodies and gRPC status messages): `denied by CiliumNetworkPolicy default/api`. */
  message: string;
  /** HTTP status for a denied request: 403, or 401 for an invalid JWT. */
  httpStatus?: number;
  /** Which direction decided (the source's egress or the destination's ingress). */
  direction?: 'ingress' | 'egress';
  /** Connection verdicts: allowed at L3/L4, but the port carries L7 rules, so every request must pass decideRequest. */
  l7Required?: boolean;
  /** `iss/sub` of the request's JWT, once RequestAuthentication accepted it. */
  requestPrincipal?: string;
}

export type ConnectionDecision = PolicyVerdict;

/** The L7 facts of one request, for the policy enforcer. */
export interface RequestFacts {
  method: string;
  /** Path with query string, as received (`/dns.v1.ZoneService/GetZone`). */
  path: string;
  authority: string;
  /** Lower-case names. */
  headers: Readonly<Record<string, string | string[] | undefined>>;
}

/** Implemented by the policy runtime (policy-runtime.ts) over src/policy's compiled engine and authz model. */
export interface PolicyEnforcer {
  /** Resolves an address to the endpoint it is (pod, node, or world). */
  endpointForIp(ip: string): Endpoint;
  /** The endpoint of a local pod, `namespace/name`; undefined when the pod is unknown (fail closed). */
  endpointForPod(pod: string): Endpoint | undefined;
  /**
   * L3/L4 at connection time. `direction`: `ingress` enforces the destination's ingress (inbound listeners),
   * `egress` the source's egress (outbound listeners). `peerSpiffeId` is checked against the source pod's service
   * account: a mismatch is denied (an address cannot borrow another workload's identity).
   */
  decideConnection(q: { source: Endpoint; destination: Endpoint; port: number; protocol: 'TCP' | 'UDP'; direction: 'ingress' | 'egress'; peerSpiffeId?: string; transport: 'mtls' | 'plaintext' }): ConnectionDecision;
  /**
   * L7 per request: Cilium HTTP rules, then RequestAuthentication and AuthorizationPolicy (inbound only). `target`:
   * where the request goes when that is not `conn.destination` and `conn.local.port` (outbound: the upstream pod
   * and port chosen by routing and balancing, which the source's egress rules are about).
   */
  decideRequest(conn: ConnectionInfo, req: RequestFacts, target?: RequestTarget): PolicyVerdict;
  /** Opaque TCP on an inbound connection (no HTTP detected): AuthorizationPolicy as Istio applies it to TCP. */
  decideTcp?(conn: ConnectionInfo): PolicyVerdict;
}

/** The destination of one request, when it differs from the connection's. */
export interface RequestTarget {
  destination?: Endpoint;
  port?: number;
}

/** One upstream endpoint as the cluster manager tracks it. */
export interface UpstreamHost {
  readonly address: string;
  readonly port: number;
  /** `namespace/pod` when the endpoint is a pod. */
  readonly pod?: string;
  /** Requests in flight (least-request balancing reads it; the HTTP engine keeps it current via begin/end). */
  readonly activeRequests: number;
  /** Ejected by outlier detection or failing active health checks. */
  readonly available: boolean;
}

export type RequestOutcome =
  | 'success'
  /** 5xx from the upstream (Envoy consecutive_5xx counts these, gateway errors included). */
  | '5xx'
  /** 502/503/504 from the upstream, or a connect failure / reset (Envoy's gateway errors). */
  | 'gateway-error'
  | 'connect-failure';

/** The clusters of the current config, with balancing, health, outlier detection and circuit breakers. */
export interface UpstreamCluster {
  readonly spec: ProxyCluster;
  /**
   * Picks an available host by the cluster's LB policy; `hash` for RING_HASH; `exclude` holds hosts already tried
   * by earlier attempts of the same request. Undefined: no host available (503 / UNAVAILABLE, no healthy upstream).
   */
  pick(ctx: { hash?: number; exclude?: ReadonlySet<UpstreamHost> }): UpstreamHost | undefined;
  /** Circuit breakers: false means the limit is reached (503 with `x-envoy-overloaded`, as Envoy). */
  tryBeginRequest(host: UpstreamHost): boolean;
  endRequest(host: UpstreamHost, outcome: RequestOutcome): void;
  tryBeginRetry(): boolean;
  endRetry(): void;
  tryBeginConnection(host: UpstreamHost): boolean;
  endConnection(host: UpstreamHost): void;
  /** Pending-request limit (requests waiting for a connection). */
  tryBeginPending(): boolean;
  endPending(): void;
}

export interface ClusterManager {
  /** Applies a new config: clusters added, changed (hosts keep their state when their address stays) or removed. */
  update(config: ProxyConfig): void;
  get(name: string): UpstreamCluster | undefined;
  /**
   * TLS options to reach `host` of `cluster` (mesh mTLS with our certificate), or undefined for plaintext. `local` is
   * the source address the connection binds to: a node proxy presents the certificate of the pod that owns it.
   */
  tlsOptions(cluster: UpstreamCluster, host: UpstreamHost, alpn: string[], local?: string): ConnectionOptions | undefined;
  close(): void;
}

/** The HTTP engine takes over a connection once the listener manager has detected HTTP on it. */
export interface HttpEngine {
  handleConnection(socket: Duplex, info: ConnectionInfo, protocol: 'http1' | 'http2'): void;
  /** Stops taking new requests: HTTP/2 GOAWAY, HTTP/1.1 `connection: close`; resolves when requests are done or at the deadline. */
  drain(deadlineMs: number): Promise<void>;
}

/** Where the data plane reports flows, with the route that carried a request when there was one. */
export interface FlowReporter {
  report(flow: Flow, route?: Route): void;
}
