// The proxy's configuration as it runs: what xDS delivered, translated once into the routing model's own types.
// Everything the data plane reads per connection or request is here, already validated; nothing here is parsed
// on a hot path. The translator (xds-translate.ts) builds it; the listener manager and HTTP engine read it.
import type { Resource } from '../resources/kinds.ts';
import type { ChainFilter } from '../routing/envoy-filters.ts';
import type { ClusterSpec, EndpointSet, RouteConfig, TcpRoute } from '../routing/model.ts';

/** How a mesh-facing (inbound) listener accepts peers (Istio PeerAuthentication modes). */
export type InboundMtls = 'STRICT' | 'PERMISSIVE' | 'DISABLE';

/**
 * What a listener carries. `http`: HTTP/1.1, HTTP/2 and gRPC, detected per connection. `tcp`: opaque bytes to one
 * cluster (or tcpRoutes). `auto`: detect per connection; HTTP when it looks like HTTP, TCP otherwise.
 */
export type ListenerProtocol = 'http' | 'tcp' | 'auto';

export interface ListenerLimits {
  /** Max size of one request's header block, bytes (default 60 KiB, as Envoy). */
  maxHeaderBytes: number;
  /** Max number of request headers (default 100, as Envoy). */
  maxHeaders: number;
  /** HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS per downstream connection (default 100). */
  maxConcurrentStreams: number;
  /** Max request or response body held in memory when buffering is needed (retries), bytes (default 1 MiB). */
  maxBufferBytes: number;
  /** Max gRPC message size, bytes (default 4 MiB; larger frames are refused with RESOURCE_EXHAUSTED). */
  maxGrpcMessageBytes: number;
  /** Time to receive a full request header block (slowloris), ms (default 10 s). */
  headerTimeoutMs: number;
  /** Idle connection timeout, ms (default 1 h, as Envoy's HCM idle timeout). */
  idleTimeoutMs: number;
  /** Max downstream connections on this listener (default 16384). */
  maxConnections: number;
}

export const DEFAULT_LISTENER_LIMITS: Readonly<ListenerLimits> = {
  maxHeaderBytes: 60 * 1024,
  maxHeaders: 100,
  maxConcurrentStreams: 100,
  maxBufferBytes: 1024 * 1024,
  maxGrpcMessageBytes: 4 * 1024 * 1024,
  headerTimeoutMs: 10_000,
  idleTimeoutMs: 3_600_000,
  maxConnections: 16_384,
};

/**
 * One HTTP filter before the router, in chain order: the routing layer's ChainFilter (routing builds the chain from
 * EnvoyFilters; the proxy runs it). `trellis.policy` enforces the pod's policy per request; the fault filter applies
 * Route.fault; `envoy.filters.http.local_ratelimit` is a token bucket per route or per listener whose
 * `responseHeaders` go on 429 replies; `trellis.extension` is a user's module exporting an HttpFilterFactory.
 */
export type HttpFilterConfig = ChainFilter;

export interface ListenerConfig {
  /** Unique name, e.g. `inbound|127.0.2.5|8080` or `outbound|127.0.3.5|8080`. */
  name: string;
  /** inbound: mesh peers reach a local pod. outbound: a local pod reaches the mesh. gateway: outside reaches the mesh. */
  direction: 'inbound' | 'outbound' | 'gateway';
  address: { host: string; port: number };
  /** `namespace/name` of the pod this listener serves (inbound: the destination; outbound: the source). */
  pod?: string;
  /**
   * Outbound: the local address upstream connections bind to (the source pod's IP), so that the server-side proxy
   * sees which pod a connection comes from. Absent: the kernel chooses.
   */
  sourceAddress?: string;
  /** Inbound only: which transports peers may use. Absent on outbound and gateway listeners. */
  mtls?: InboundMtls;
  protocol: ListenerProtocol;
  /** For HTTP: the RouteConfiguration (RDS name). */
  routeConfig?: string;
  /** For TCP: the cluster, or the TCP routes when several apply (first match wins). */
  tcpCluster?: string;
  tcpRoutes?: TcpRoute[];
  httpFilters: HttpFilterConfig[];
  limits: ListenerLimits;
}

/** Active health checking of a cluster's endpoints (Envoy HealthCheck, the HTTP and TCP kinds). */
export interface HealthCheckConfig {
  intervalMs: number;
  timeoutMs: number;
  unhealthyThreshold: number;
  healthyThreshold: number;
  /** HTTP GET path; absent means a TCP connect check. gRPC health (grpc.health.v1) when `grpcService` is set. */
  httpPath?: string;
  grpcService?: string;
}

/** A cluster as the proxy runs it: the routing model's spec plus what only a proxy needs. */
export interface ProxyCluster extends ClusterSpec {
  healthCheck?: HealthCheckConfig;
  /** Upstream mTLS with the proxy's own certificate: the SPIFFE IDs the peer may present (empty: any in the trust domain). */
  mtls?: { subjectAltNames: string[] };
  /** Inbound clusters reach the local app in plaintext. */
  local?: boolean;
}

/** The policy inputs (pods, nodes, namespaces and every policy kind), as the control plane validated them. */
export interface PolicySnapshot {
  /** Content version, to skip recompiling an unchanged snapshot. */
  version: string;
  trustDomain: string;
  /** Istio's root namespace (mesh-wide security policies); default `istio-system`. */
  rootNamespace?: string;
  resources: Resource[];
}

export interface ProxyConfig {
  listeners: ListenerConfig[];
  routes: ReadonlyMap<string, RouteConfig>;
  clusters: ReadonlyMap<string, ProxyCluster>;
  endpoints: ReadonlyMap<string, EndpointSet>;
  policy?: PolicySnapshot;
}
