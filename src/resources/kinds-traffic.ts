// Typed objects for the traffic kinds: Istio networking (VirtualService, DestinationRule, ServiceEntry, Gateway),
// Kubernetes Ingress and Gateway API (Gateway, HTTPRoute, GRPCRoute), and Istio EnvoyFilter, as validation hands them to routing.
import type { FieldPath, LabelSelector, ObjectMeta, Origin } from './kinds.ts';

interface Base<K extends string> {
  kind: K;
  apiVersion: string;
  metadata: ObjectMeta;
  origin: Origin;
}

/** Istio's StringMatch. `{}` (no field) is allowed in header matches and means "present". */
export type IstioStringMatch = { exact: string } | { prefix: string } | { regex: string };

export interface HeaderOperations {
  set: Record<string, string>;
  add: Record<string, string>;
  remove: string[];
}

export interface IstioHeaders {
  request?: HeaderOperations;
  response?: HeaderOperations;
}

export interface IstioDestination {
  host: string;
  subset?: string;
  port?: number;
  path: FieldPath;
}

export interface IstioRouteDestination {
  destination: IstioDestination;
  /** As written; absent when the field is. */
  weight?: number;
  headers?: IstioHeaders;
  path: FieldPath;
}

export interface IstioHttpMatch {
  name?: string;
  uri?: IstioStringMatch;
  scheme?: IstioStringMatch;
  method?: IstioStringMatch;
  authority?: IstioStringMatch;
  /** Header name (lower case) to match; `undefined` means the header must be present. */
  headers: { name: string; match?: IstioStringMatch }[];
  withoutHeaders: { name: string; match?: IstioStringMatch }[];
  queryParams: { name: string; match?: IstioStringMatch }[];
  port?: number;
  sourceLabels?: Record<string, string>;
  sourceNamespace?: string;
  gateways?: string[];
  ignoreUriCase: boolean;
  path: FieldPath;
}

export interface IstioRetries {
  attempts: number;
  perTryTimeoutMs?: number;
  retryOn?: string;
}

export interface IstioFault {
  delay?: { fixedDelayMs: number; percent: number };
  abort?: { httpStatus?: number; grpcStatus?: number; percent: number };
}

export interface IstioHttpRoute {
  name?: string;
  match: IstioHttpMatch[];
  route: IstioRouteDestination[];
  redirect?: { uri?: string; authority?: string; port?: number; scheme?: string; redirectCode: number };
  directResponse?: { status: number; body?: string };
  rewrite?: { uri?: string; authority?: string };
  timeoutMs?: number;
  retries?: IstioRetries;
  fault?: IstioFault;
  mirror?: IstioDestination;
  /** 0-100; Istio mirrors all traffic when absent. */
  mirrorPercent?: number;
  corsPolicy?: Record<string, unknown>;
  headers?: IstioHeaders;
  path: FieldPath;
}

export interface IstioL4Match {
  port?: number;
  sniHosts?: string[];
  destinationSubnets?: string[];
  sourceLabels?: Record<string, string>;
  sourceNamespace?: string;
  gateways?: string[];
}

export interface IstioL4Route {
  match: IstioL4Match[];
  route: IstioRouteDestination[];
  path: FieldPath;
}

export interface VirtualService extends Base<'VirtualService'> {
  spec: {
    hosts: string[];
    /** Absent means `mesh` only. */
    gateways?: string[];
    http: IstioHttpRoute[];
    tcp: IstioL4Route[];
    tls: IstioL4Route[];
    exportTo?: string[];
  };
}

export type SimpleLb = 'ROUND_ROBIN' | 'LEAST_REQUEST' | 'RANDOM' | 'PASSTHROUGH' | 'UNSPECIFIED' | 'LEAST_CONN';

export interface ConsistentHashLb {
  httpHeaderName?: string;
  httpCookie?: { name: string; path?: string; ttlMs?: number };
  useSourceIp?: boolean;
  httpQueryParameterName?: string;
  minimumRingSize?: number;
}

export interface IstioTrafficPolicy {
  loadBalancer?: { simple?: SimpleLb; consistentHash?: ConsistentHashLb };
  connectionPool?: {
    tcp?: { maxConnections?: number; connectTimeoutMs?: number };
    http?: { http1MaxPendingRequests?: number; http2MaxRequests?: number; maxRequestsPerConnection?: number; maxRetries?: number; h2UpgradePolicy?: string };
  };
  outlierDetection?: {
    consecutive5xxErrors?: number;
    consecutiveGatewayErrors?: number;
    intervalMs?: number;
    baseEjectionTimeMs?: number;
    maxEjectionPercent?: number;
  };
  tls?: { mode: 'DISABLE' | 'SIMPLE' | 'MUTUAL' | 'ISTIO_MUTUAL'; sni?: string; subjectAltNames?: string[]; credentialName?: string };
  portLevelSettings: (Omit<IstioTrafficPolicy, 'portLevelSettings'> & { port: number })[];
}

export interface DestinationRule extends Base<'DestinationRule'> {
  spec: {
    host: string;
    trafficPolicy?: IstioTrafficPolicy;
    subsets: { name: string; labels: Record<string, string>; trafficPolicy?: IstioTrafficPolicy; path: FieldPath }[];
    exportTo?: string[];
  };
}

export type IstioPortProtocol = 'HTTP' | 'HTTPS' | 'GRPC' | 'GRPC-WEB' | 'HTTP2' | 'MONGO' | 'TCP' | 'TLS' | 'UDP';

export interface IstioPort {
  number: number;
  protocol: IstioPortProtocol;
  name: string;
  targetPort?: number;
}

export interface ServiceEntry extends Base<'ServiceEntry'> {
  spec: {
    hosts: string[];
    addresses: string[];
    ports: IstioPort[];
    location: 'MESH_EXTERNAL' | 'MESH_INTERNAL';
    resolution: 'NONE' | 'STATIC' | 'DNS' | 'DNS_ROUND_ROBIN';
    endpoints: { address: string; ports: Record<string, number>; labels: Record<string, string>; weight?: number; locality?: string; path: FieldPath }[];
    workloadSelector?: Record<string, string>;
    exportTo?: string[];
  };
}

export interface IstioGateway extends Base<'Gateway'> {
  group: 'networking.istio.io';
  spec: {
    selector: Record<string, string>;
    servers: {
      name?: string;
      port: { number: number; name: string; protocol: IstioPortProtocol };
      /** As written, possibly `ns/host`. */
      hosts: string[];
      tls?: { mode: 'SIMPLE' | 'MUTUAL' | 'PASSTHROUGH' | 'ISTIO_MUTUAL'; credentialName?: string; httpsRedirect?: boolean };
      path: FieldPath;
    }[];
  };
}

export interface IngressBackend {
  service?: { name: string; port: { number: number } | { name: string } };
  path: FieldPath;
}

export interface Ingress extends Base<'Ingress'> {
  spec: {
    ingressClassName?: string;
    defaultBackend?: IngressBackend;
    rules: { host?: string; paths: { path: string; pathType: 'Exact' | 'Prefix' | 'ImplementationSpecific'; backend: IngressBackend; fieldPath: FieldPath }[]; fieldPath: FieldPath }[];
    tls: { hosts: string[]; secretName?: string }[];
  };
}

export interface ParentReference {
  group: string;
  kind: string;
  namespace?: string;
  name: string;
  sectionName?: string;
  port?: number;
  path: FieldPath;
}

export interface BackendRef {
  group: string;
  kind: string;
  name: string;
  namespace?: string;
  port?: number;
  weight: number;
  path: FieldPath;
}

export interface GatewayHeaderMatch {
  type: 'Exact' | 'RegularExpression';
  name: string;
  value: string;
}

export interface GatewayHeaderModifier {
  set: { name: string; value: string }[];
  add: { name: string; value: string }[];
  remove: string[];
}

export type HttpRouteFilter =
  | { type: 'RequestHeaderModifier' | 'ResponseHeaderModifier'; modifier: GatewayHeaderModifier }
  | {
      type: 'RequestRedirect';
      scheme?: string;
      hostname?: string;
      path?: { type: 'ReplaceFullPath' | 'ReplacePrefixMatch'; value: string };
      port?: number;
      statusCode: number;
    }
  | { type: 'URLRewrite'; hostname?: string; path?: { type: 'ReplaceFullPath' | 'ReplacePrefixMatch'; value: string } }
  | { type: 'RequestMirror'; backendRef: BackendRef; percent: number }
  | { type: 'ExtensionRef' };

export interface HttpRouteMatch {
  path: { type: 'Exact' | 'PathPrefix' | 'RegularExpression'; value: string };
  headers: GatewayHeaderMatch[];
  queryParams: GatewayHeaderMatch[];
  method?: string;
}

export interface HTTPRoute extends Base<'HTTPRoute'> {
  spec: {
    parentRefs: ParentReference[];
    hostnames: string[];
    rules: {
      name?: string;
      /** Never empty: no matches means one match of PathPrefix `/`. */
      matches: HttpRouteMatch[];
      filters: HttpRouteFilter[];
      backendRefs: BackendRef[];
      timeouts?: { requestMs?: number; backendRequestMs?: number };
      path: FieldPath;
    }[];
  };
}

export interface GrpcRouteMatch {
  method?: { type: 'Exact' | 'RegularExpression'; service?: string; method?: string };
  headers: GatewayHeaderMatch[];
}

export interface GRPCRoute extends Base<'GRPCRoute'> {
  spec: {
    parentRefs: ParentReference[];
    hostnames: string[];
    rules: { name?: string; matches: GrpcRouteMatch[]; filters: HttpRouteFilter[]; backendRefs: BackendRef[]; path: FieldPath }[];
  };
}

export interface GatewayApiGateway extends Base<'Gateway'> {
  group: 'gateway.networking.k8s.io';
  spec: {
    gatewayClassName: string;
    listeners: {
      name: string;
      hostname?: string;
      port: number;
      protocol: 'HTTP' | 'HTTPS' | 'TLS' | 'TCP' | 'UDP';
      tls?: { mode: 'Terminate' | 'Passthrough'; certificateRefs: string[] };
      allowedRoutes: { namespaces: { from: 'Same' | 'All' | 'Selector'; selector?: LabelSelector } };
      path: FieldPath;
    }[];
  };
}

/** Gateway API ReferenceGrant: lets routes in other namespaces refer to objects of this one. */
export interface ReferenceGrant extends Base<'ReferenceGrant'> {
  spec: {
    from: { group: string; kind: string; namespace: string }[];
    to: { group: string; kind: string; name?: string }[];
  };
}

/** Istio EnvoyFilter's match.context: which listeners a patch applies to. */
export type EnvoyFilterContext = 'ANY' | 'SIDECAR_INBOUND' | 'SIDECAR_OUTBOUND' | 'GATEWAY';

/** Envoy's LocalRateLimit (envoy.extensions.filters.http.local_ratelimit.v3), the part Trellis runs. */
export interface LocalRateLimitSettings {
  statPrefix: string;
  /** Absent on a listener-level filter whose limits come per route (typed_per_filter_config). */
  tokenBucket?: { maxTokens: number; tokensPerFill: number; fillIntervalMs: number };
  /** filter_enabled is 100% (it is 0%, Envoy's default, when false). */
  enabled: boolean;
  /** filter_enforced is 100% (0%, shadow mode, when false). */
  enforced: boolean;
  /** response_headers_to_add, lower-case names: headers on the 429 replies. */
  responseHeaders: Record<string, string>;
}

/** An HTTP filter as an EnvoyFilter's patch.value gives it (`name` is the value's name, for relative operations). */
export type EnvoyFilterHttpFilter =
  | { type: 'local_ratelimit'; name: string; settings: LocalRateLimitSettings }
  /** A Trellis extension: `module` is resolved against the manifest's folder (absolute when the manifest's name is). */
  | { type: 'extension'; name: string; module: string; config: Record<string, unknown> };

export type EnvoyFilterOperation = 'INSERT_BEFORE' | 'INSERT_AFTER' | 'INSERT_FIRST' | 'ADD' | 'REMOVE' | 'REPLACE';

export type EnvoyFilterPatch =
  | {
      applyTo: 'HTTP_FILTER';
      context: EnvoyFilterContext;
      /** match.listener.portNumber; absent means every port. */
      portNumber?: number;
      /** match.listener.filterChain.filter.subFilter.name, with Istio's names for Trellis' own filters made Trellis' names. */
      subFilter?: string;
      operation: EnvoyFilterOperation;
      /** ADD only. */
      filterClass?: 'AUTHN' | 'AUTHZ' | 'STATS';
      /** Absent for REMOVE. */
      filter?: EnvoyFilterHttpFilter;
      path: FieldPath;
    }
  | {
      /** A MERGE of typed_per_filter_config into every route of the matched listeners. */
      applyTo: 'HTTP_ROUTE';
      context: EnvoyFilterContext;
      portNumber?: number;
      /** Per filter name: the local rate limit for each route (a bucket per route, as Envoy). */
      perFilter: { name: string; settings: LocalRateLimitSettings }[];
      path: FieldPath;
    };

export interface EnvoyFilter extends Base<'EnvoyFilter'> {
  /** metadata.creationTimestamp (ms since the epoch), when the manifest has one, as `kubectl get -o yaml` prints. */
  creationTimestampMs?: number;
  spec: {
    /** Absent: every workload of the namespace (of the mesh, in the root namespace). */
    workloadSelector?: Record<string, string>;
    priority: number;
    configPatches: EnvoyFilterPatch[];
  };
}

export type TrafficResource = VirtualService | DestinationRule | ServiceEntry | IstioGateway | Ingress | HTTPRoute | GRPCRoute | GatewayApiGateway | ReferenceGrant | EnvoyFilter;
