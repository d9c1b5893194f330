// The routing model: what Services, VirtualServices, DestinationRules, ServiceEntries, Gateways, Ingresses
// and Gateway API routes mean for traffic, as plain data. The xDS layer turns it into Envoy resources.
import type { Origin } from '../resources/kinds.ts';

export type AppProtocol = 'http' | 'http2' | 'grpc' | 'tcp' | 'tls' | 'https' | 'unknown';

/** One address a client can dial: a Service port (or ServiceEntry host port) and the names that reach it. */
export interface ServiceListener {
  /** Canonical name, Istio's convention: `<svc>.<ns>.svc.cluster.local:<port>`. */
  name: string;
  /** Other names clients may dial from any namespace: `<svc>.<ns>:<port>`, `<svc>.<ns>.svc:<port>`. */
  aliases: string[];
  /**
   * Names that resolve only for clients in the same namespace: `<svc>:<port>`, and `<svc>` alone when
   * the Service has one port (or for its first port).
   */
  namespaceLocalAliases: string[];
  namespace: string;
  service: string;
  /** The FQDN, e.g. `zone-api.dns.svc.cluster.local`. */
  host: string;
  port: number;
  protocol: AppProtocol;
  /** The RouteConfiguration (for HTTP-like protocols) or the single cluster (for TCP) this listener uses. */
  routeConfig: string;
  tcpCluster?: string;
  /** TCP/TLS ports routed by a VirtualService's tcp or tls routes, in order (tcpCluster is then the first catch-all's heaviest cluster). */
  tcpRoutes?: TcpRoute[];
}

export type StringMatch =
  | { exact: string; ignoreCase?: boolean }
  | { prefix: string; ignoreCase?: boolean }
  | { regex: string };

export interface HeaderMatch {
  /** Lower-case header name; `:method`, `:authority` and `:path` are pseudo-headers. */
  name: string;
  match?: StringMatch;
  /** Match only when the header is present (match absent) or absent (with invert). */
  present?: boolean;
  invert?: boolean;
}

export interface RouteMatch {
  path?: StringMatch;
  headers: HeaderMatch[];
  queryParams?: { name: string; match?: StringMatch }[];
  /** Source labels (Istio sourceLabels): applied when building per-client snapshots. */
  sourceLabels?: Record<string, string>;
  sourceNamespace?: string;
}

export interface WeightedCluster {
  cluster: string;
  weight: number;
}

export interface RetryPolicy {
  attempts: number;
  perTryTimeoutMs?: number;
  /** Envoy retry_on values, e.g. `5xx`, `connect-failure`, `unavailable`, `cancelled`, `retriable-status-codes`. */
  retryOn: string[];
  retriableStatusCodes?: number[];
}

export interface HashPolicy {
  header?: string;
  sourceIp?: boolean;
  cookie?: { name: string; ttlMs?: number; path?: string };
  queryParameter?: string;
}

export interface FaultPolicy {
  delay?: { fixedDelayMs: number; percent: number };
  abort?: { httpStatus?: number; grpcStatus?: number; percent: number };
}

export type RouteAction =
  | {
      type: 'route';
      clusters: WeightedCluster[];
      /** Absent: no route timeout (Istio disables Envoy's 15s default). */
      timeoutMs?: number;
      /** Absent: no retries. */
      retry?: RetryPolicy;
      hashPolicy?: HashPolicy[];
      rewrite?: { prefix?: string; authority?: string; fullPath?: string };
      mirror?: { cluster: string; percent: number };
      headersToAdd?: Record<string, string>;
    }
  | { type: 'redirect'; scheme?: string; host?: string; port?: number; path?: string; prefixRewrite?: string; status: number }
  | { type: 'direct-response'; status: number; body?: string };

/** Header operations: `set` replaces, `add` appends, `remove` deletes (names lower case). */
export interface HeaderOps {
  set: Record<string, string>;
  add: Record<string, string>;
  remove: string[];
}

/** One L4 route of a TCP or TLS listener (Istio `tcp`/`tls` routes): first match wins. */
export interface TcpRoute {
  name: string;
  /** TLS routes: the SNI names (possibly `*.`) the route matches. */
  sniHosts?: string[];
  destinationSubnets?: string[];
  sourceLabels?: Record<string, string>;
  sourceNamespace?: string;
  clusters: WeightedCluster[];
}

export interface Route {
  /** e.g. `<vs-namespace>/<vs-name>/http[2]` or `default` for the implicit route to the Service. */
  name: string;
  match: RouteMatch;
  action: RouteAction;
  fault?: FaultPolicy;
  /** Request and response header operations (all of them; `headersToAdd` repeats request set/add for simple consumers). */
  headers?: { request?: HeaderOps; response?: HeaderOps };
  /** The manifest field that produced the route, for explanations and config dumps. */
  source?: { origin: Origin; path: readonly (string | number)[] };
}

export interface VirtualHost {
  name: string;
  /** Host names (with and without port) this virtual host answers to. `*` for any. */
  domains: string[];
  routes: Route[];
}

export interface RouteConfig {
  name: string;
  virtualHosts: VirtualHost[];
}

export type LbPolicy = 'ROUND_ROBIN' | 'LEAST_REQUEST' | 'RANDOM' | 'RING_HASH';

export interface OutlierDetection {
  consecutive5xx?: number;
  consecutiveGatewayErrors?: number;
  intervalMs: number;
  baseEjectionTimeMs: number;
  maxEjectionPercent: number;
}

export interface CircuitBreakers {
  maxConnections?: number;
  maxPendingRequests?: number;
  maxRequests?: number;
  maxRetries?: number;
}

export type TlsMode = 'DISABLE' | 'SIMPLE' | 'MUTUAL' | 'ISTIO_MUTUAL';

export interface ClusterSpec {
  /** Istio's convention: `outbound|<port>|<subset>|<host>` (subset empty when none). */
  name: string;
  host: string;
  port: number;
  subset?: string;
  /** EDS for Services and ServiceEntries with endpoints; LOGICAL_DNS for ExternalName and DNS-resolved entries. */
  discovery: 'EDS' | 'LOGICAL_DNS';
  /** For LOGICAL_DNS: the DNS name and port to resolve. */
  dns?: { host: string; port: number };
  lbPolicy: LbPolicy;
  ringHash?: { minimumRingSize?: number; maximumRingSize?: number };
  outlierDetection?: OutlierDetection;
  circuitBreakers?: CircuitBreakers;
  connectTimeoutMs?: number;
  /** Requests (HTTP/1.1) or streams (HTTP/2) one upstream connection carries before it is closed (Envoy max_requests_per_connection); absent: unlimited. */
  maxRequestsPerConnection?: number;
  tls?: { mode: TlsMode; sni?: string; subjectAltNames?: string[] };
  http2: boolean;
  protocol: AppProtocol;
}

export interface Locality {
  region: string;
  zone: string;
  subZone: string;
}

export interface Endpoint {
  address: string;
  port: number;
  /** Ready pods are HEALTHY; pods that are not ready stay listed as UNHEALTHY or are dropped (see builder). */
  healthy: boolean;
  weight: number;
  locality: Locality;
  /** `namespace/pod` when the endpoint is a pod. */
  pod?: string;
  labels: Record<string, string>;
}

export interface EndpointSet {
  cluster: string;
  endpoints: Endpoint[];
}

/** Edge listeners: NodePort/LoadBalancer Services, Istio Gateways and Kubernetes Ingresses. */
export interface EdgeListener {
  name: string;
  kind: 'NodePort' | 'LoadBalancer' | 'Gateway' | 'Ingress' | 'HTTPRoute';
  port: number;
  protocol: AppProtocol;
  routeConfig?: string;
  tcpCluster?: string;
  /** TCP/TLS servers routed by VirtualService tcp/tls routes, in order. */
  tcpRoutes?: TcpRoute[];
  tls?: { mode: 'SIMPLE' | 'MUTUAL' | 'PASSTHROUGH' | 'ISTIO_MUTUAL'; credentialName?: string; hosts: string[] };
}

export interface RoutingModel {
  listeners: ServiceListener[];
  routeConfigs: RouteConfig[];
  clusters: ClusterSpec[];
  endpoints: EndpointSet[];
  edges: EdgeListener[];
}
