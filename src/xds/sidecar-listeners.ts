// The Envoy objects of a Trellis proxy's listener set: inbound listeners (mesh peers reach a local pod) with their
// STATIC clusters to the app, and outbound listeners (a local pod reaches the mesh). Plain objects with the .proto
// field names; Trellis-only facts ride in TypedStructs and in listener/cluster metadata under `trellis`.
import type { ProxyLimitAnnotations } from '../resources/proxy-annotations.ts';
import type { ChainFilter } from '../routing/envoy-filters.ts';
import type { AppProtocol, ClusterSpec, EndpointSet, HeaderOps, Route, RouteConfig, TcpRoute } from '../routing/model.ts';
import { cluster, clusterLoadAssignment, duration, FAULT_FILTER, routeConfiguration, ROUTER_FILTER } from './envoy-resources.ts';
import { downstreamMtls, type TlsOptions } from './server-resources.ts';
import { toStruct, trellisMetadata, TRELLIS_METADATA, typedStruct } from './xds-struct.ts';

type Obj = Record<string, unknown>;

export type ListenerProtocol = 'http' | 'tcp' | 'auto';
export type InboundMtls = 'STRICT' | 'PERMISSIVE' | 'DISABLE';

export const HCM_FILTER = 'envoy.filters.network.http_connection_manager';
export const TCP_PROXY_FILTER = 'envoy.filters.network.tcp_proxy';
export const POLICY_FILTER = 'trellis.policy';
export const EXTENSION_FILTER = 'trellis.extension';
export const LOCAL_RATE_LIMIT_FILTER = 'envoy.filters.http.local_ratelimit';
/** TypedStruct type_url of the `trellis.policy` filter's config (`{ direction }`). */
export const POLICY_FILTER_TYPE = 'type.googleapis.com/trellis.filters.http.policy.v1.Policy';
/** TypedStruct type_url of a user extension filter's config (`{ module, config }`). */
export const EXTENSION_FILTER_TYPE = 'type.googleapis.com/trellis.filters.http.extension.v1.Extension';
export const TLS_INSPECTOR = 'envoy.filters.listener.tls_inspector';
export const HTTP_INSPECTOR = 'envoy.filters.listener.http_inspector';
/** ALPN values (from TLS, or from the HTTP inspector on plaintext) that send a connection to the HTTP chain. */
export const HTTP_ALPN = ['http/1.0', 'http/1.1', 'h2c', 'h2', 'istio-http/1.0', 'istio-http/1.1', 'istio-h2'];

export const T = {
  hcm: 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
  tcpProxy: 'type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy',
  router: 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router',
  fault: 'type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault',
  localRateLimit: 'type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit',
  tlsInspector: 'type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector',
  httpInspector: 'type.googleapis.com/envoy.extensions.filters.listener.http_inspector.v3.HttpInspector',
} as const;

const ADS = { ads: {}, resource_api_version: 'V3' };

export const inboundListenerName = (podIp: string, port: number): string => `inbound|${podIp}|${port}`;
export const inboundClusterName = (port: number, podKey: string): string => `inbound|${port}|${podKey}`;
export const outboundListenerName = (ip: string, port: number): string => `outbound|${ip}|${port}`;

/** What a set of Service protocols on one port means for a listener: one kind, or detection when they differ. */
export function listenerProtocol(ps: readonly AppProtocol[]): ListenerProtocol {
  const kinds = new Set(ps.map((p): ListenerProtocol => (p === 'http' || p === 'http2' || p === 'grpc' ? 'http' : p === 'unknown' ? 'auto' : 'tcp')));
  return kinds.size === 1 ? [...kinds][0]! : 'auto';
}

function socketAddress(host: string, port: number): Obj {
  return { socket_address: { address: host, port_value: port } };
}

/** Trellis' own chain when no EnvoyFilter changes it (routing/envoy-filters.ts httpFiltersFor gives the full one). */
export const DEFAULT_CHAIN: readonly ChainFilter[] = [{ name: 'trellis.policy' }, { name: 'envoy.filters.http.fault' }];

const ALL = { default_value: { numerator: 100, denominator: 'HUNDRED' }, runtime_key: 'local_rate_limit_enabled' };

/**
 * One HTTP filter as Envoy's HttpFilter: the policy filter and user extensions as TypedStructs, faults and local rate
 * limits as Envoy's own configs. A rate limit whose bucket applies to each route separately (`perRoute`) is listed by
 * name in the listener's metadata (`perRouteRateLimits`), its bucket the same for every route of the listener.
 */
function httpFilterObject(f: ChainFilter, direction: string): Obj {
  switch (f.name) {
    case 'trellis.policy':
      return { name: POLICY_FILTER, typed_config: typedStruct(POLICY_FILTER_TYPE, { direction }) };
    case 'envoy.filters.http.fault':
      return { name: FAULT_FILTER, typed_config: { '@type': T.fault } };
    case 'trellis.extension':
      return { name: EXTENSION_FILTER, typed_config: typedStruct(EXTENSION_FILTER_TYPE, { module: f.module, config: f.config }) };
    case 'envoy.filters.http.local_ratelimit': {
      const seconds = Math.floor(f.fillIntervalMs / 1000);
      return {
        name: LOCAL_RATE_LIMIT_FILTER,
        typed_config: {
          '@type': T.localRateLimit,
          stat_prefix: 'http_local_rate_limiter',
          token_bucket: { max_tokens: f.maxTokens, tokens_per_fill: { value: f.tokensPerFill }, fill_interval: { seconds, nanos: Math.round((f.fillIntervalMs - seconds * 1000) * 1e6) } },
          filter_enabled: ALL,
          filter_enforced: ALL,
          response_headers_to_add: Object.entries(f.responseHeaders ?? {}).map(([key, value]) => ({ header: { key, value }, append_action: 'OVERWRITE_IF_EXISTS_OR_ADD' })),
        },
      };
    }
  }
}

function hcm(statPrefix: string, route: Obj, direction: 'inbound' | 'outbound', chain: readonly ChainFilter[], limits: ProxyLimitAnnotations = {}): Obj {
  const httpFilters = [...chain.map((f) => httpFilterObject(f, direction)), { name: ROUTER_FILTER, typed_config: { '@type': T.router } }];
  return { name: HCM_FILTER, typed_config: { '@type': T.hcm, stat_prefix: statPrefix, codec_type: 'AUTO', ...route, ...hcmLimits(limits), http_filters: httpFilters } };
}

/** The pod's HCM limits (its trellis.dev/* annotations) as HttpConnectionManager fields; absent ones keep Envoy's defaults. */
function hcmLimits(l: ProxyLimitAnnotations): Obj {
  const out: Obj = {};
  if (l.requestHeadersTimeoutMs !== undefined) out.request_headers_timeout = duration(l.requestHeadersTimeoutMs);
  if (l.maxRequestHeadersKb !== undefined) out.max_request_headers_kb = { value: l.maxRequestHeadersKb };
  const common: Obj = {};
  if (l.idleTimeoutMs !== undefined) common.idle_timeout = duration(l.idleTimeoutMs);
  if (l.maxRequestHeaders !== undefined) common.max_headers_count = { value: l.maxRequestHeaders };
  if (Object.keys(common).length > 0) out.common_http_protocol_options = common;
  if (l.maxConcurrentStreams !== undefined) out.http2_protocol_options = { max_concurrent_streams: { value: l.maxConcurrentStreams } };
  return out;
}

function perRouteLimits(chain: readonly ChainFilter[]): { perRouteRateLimits?: string[] } {
  const names = chain.filter((f) => f.name === 'envoy.filters.http.local_ratelimit' && f.perRoute).map((f) => f.name);
  return names.length > 0 ? { perRouteRateLimits: names } : {};
}

function tcpProxy(statPrefix: string, clusters: readonly { cluster: string; weight: number }[]): Obj {
  const cfg: Obj = { '@type': T.tcpProxy, stat_prefix: statPrefix };
  if (clusters.length === 1) cfg.cluster = clusters[0]?.cluster;
  else cfg.weighted_clusters = { clusters: clusters.map((c) => ({ name: c.cluster, weight: c.weight })) };
  return { name: TCP_PROXY_FILTER, typed_config: cfg };
}

function listenerFilters(tls: boolean, detect: boolean): Obj[] {
  const out: Obj[] = [];
  if (tls) out.push({ name: TLS_INSPECTOR, typed_config: { '@type': T.tlsInspector } });
  if (detect) out.push({ name: HTTP_INSPECTOR, typed_config: { '@type': T.httpInspector } });
  return out;
}

export interface InboundPort {
  port: number;
  protocol: ListenerProtocol;
  /** The app speaks HTTP/2 (gRPC or http2 Services). */
  http2: boolean;
  /** The local app's Service protocol, for the inbound cluster. */
  appProtocol: AppProtocol;
}

/**
 * `inbound|<podIP>|<port>`: filter chains by the port's PeerAuthentication mode (STRICT: TLS with client
 * certificates only; PERMISSIVE: TLS and plaintext; DISABLE: plaintext only). HTTP ports run HCM with an inline
 * route to the app's cluster; TCP ports tcp_proxy; `auto` ports both, HTTP chosen by ALPN or the HTTP inspector.
 */
export function inboundListener(podIp: string, podKey: string, p: InboundPort, mtls: InboundMtls, tls?: TlsOptions, chain: readonly ChainFilter[] = DEFAULT_CHAIN, limits?: ProxyLimitAnnotations): Obj {
  const name = inboundListenerName(podIp, p.port);
  const target = inboundClusterName(p.port, podKey);
  const routeConfig = routeConfiguration({
    name: target,
    virtualHosts: [{ name: 'inbound', domains: ['*'], routes: [{ name: 'default', match: { path: { prefix: '/' }, headers: [] }, action: { type: 'route', clusters: [{ cluster: target, weight: 100 }] } }] }],
  });
  const transports = mtls === 'STRICT' ? ['tls'] : mtls === 'PERMISSIVE' ? ['tls', 'raw_buffer'] : ['raw_buffer'];
  const chains: Obj[] = [];
  for (const t of transports) {
    const socket = t === 'tls' ? { transport_socket: downstreamMtls(tls) } : {};
    const label = t === 'tls' ? 'mtls' : 'plaintext';
    if (p.protocol !== 'tcp') {
      const match: Obj = { transport_protocol: t };
      if (p.protocol === 'auto') match.application_protocols = HTTP_ALPN;
      chains.push({ name: `inbound-${label}-http`, filter_chain_match: match, filters: [hcm(name, { route_config: routeConfig }, 'inbound', chain, limits)], ...socket });
    }
    if (p.protocol !== 'http') {
      chains.push({ name: `inbound-${label}-tcp`, filter_chain_match: { transport_protocol: t }, filters: [tcpProxy(name, [{ cluster: target, weight: 100 }])], ...socket });
    }
  }
  return {
    name,
    address: socketAddress(podIp, p.port),
    listener_filters: listenerFilters(true, p.protocol === 'auto'),
    filter_chains: chains,
    metadata: trellisMetadata({ direction: 'inbound', pod: podKey, protocol: p.protocol, mtls, ...perRouteLimits(chain) }),
  };
}

/** The ClusterSpec of an inbound cluster: the local app on APP_IP:port, plaintext. */
export function inboundClusterSpec(podKey: string, p: InboundPort): ClusterSpec {
  return { name: inboundClusterName(p.port, podKey), host: podKey, port: p.port, discovery: 'EDS', lbPolicy: 'ROUND_ROBIN', http2: p.http2, protocol: p.appProtocol };
}

/** `inbound|<port>|<pod>`: STATIC, its one endpoint the app at APP_IP:port. */
export function inboundCluster(podKey: string, appIp: string, p: InboundPort): Obj {
  const spec = inboundClusterSpec(podKey, p);
  const out = cluster(spec);
  delete out.eds_cluster_config;
  out.type = 'STATIC';
  out.load_assignment = proxyLoadAssignment({ cluster: spec.name, endpoints: [{ address: appIp, port: p.port, healthy: true, weight: 1, locality: { region: '', zone: '', subZone: '' }, pod: podKey, labels: {} }] });
  out.metadata = trellisMetadata({ local: true, host: spec.host, port: spec.port, protocol: spec.protocol });
  return out;
}

/** A mesh cluster for a Trellis proxy: cluster() plus what Envoy's Cluster cannot say (host, port, subset, protocol, tls). */
export function meshCluster(c: ClusterSpec, transportSocket: Obj | undefined): Obj {
  const out = cluster(c, transportSocket);
  const meta: Obj = { host: c.host, port: c.port, protocol: c.protocol, mesh: transportSocket !== undefined };
  if (c.subset !== undefined) meta.subset = c.subset;
  if (c.tls) meta.tls = c.tls;
  if (c.dns) meta.dns = c.dns;
  out.metadata = trellisMetadata(meta);
  return out;
}

export interface OutboundPort {
  port: number;
  protocol: ListenerProtocol;
  /** HTTP and auto: the RouteConfiguration (RDS). */
  routeConfig?: string;
  /** TCP and auto: the default cluster, and the TCP routes (already filtered for this client) when there are any. */
  tcpCluster?: string;
  tcpRoutes?: TcpRoute[];
  /** TCP Services on this port other than the one served (a plain TCP port cannot tell them apart). */
  shadowed?: string[];
}

function cidrRange(c: string): Obj {
  const [address, len] = c.split('/');
  return { address_prefix: address, prefix_len: { value: len === undefined ? (address?.includes(':') ? 128 : 32) : Number(len) } };
}

/**
 * `outbound|<OUTBOUND_IP>|<port>` for the local pod `podKey` (its IP binds upstream connections). HTTP: HCM over
 * RDS; TCP: tcp_proxy, one chain per TCP route in order (first match wins), else one to the default cluster.
 */
export function outboundListener(ip: string, podKey: string, podIp: string, p: OutboundPort, chain: readonly ChainFilter[] = DEFAULT_CHAIN, limits?: ProxyLimitAnnotations): Obj {
  const name = outboundListenerName(ip, p.port);
  const chains: Obj[] = [];
  if (p.protocol !== 'tcp' && p.routeConfig !== undefined) {
    const match = p.protocol === 'auto' ? { filter_chain_match: { application_protocols: HTTP_ALPN } } : {};
    chains.push({ name: 'outbound-http', ...match, filters: [hcm(name, { rds: { route_config_name: p.routeConfig, config_source: ADS } }, 'outbound', chain, limits)] });
  }
  if (p.protocol !== 'http') {
    for (const r of p.tcpRoutes ?? []) {
      const match: Obj = {};
      if (r.sniHosts && r.sniHosts.length > 0) match.server_names = r.sniHosts;
      if (r.destinationSubnets && r.destinationSubnets.length > 0) match.prefix_ranges = r.destinationSubnets.map(cidrRange);
      chains.push({ name: `outbound-tcp|${r.name}`, filter_chain_match: match, filters: [tcpProxy(name, r.clusters)] });
    }
    if ((p.tcpRoutes ?? []).length === 0 && p.tcpCluster !== undefined) chains.push({ name: 'outbound-tcp', filters: [tcpProxy(name, [{ cluster: p.tcpCluster, weight: 100 }])] });
  }
  const meta: Obj = { direction: 'outbound', pod: podKey, sourceAddress: podIp, protocol: p.protocol, ...perRouteLimits(chain) };
  if (p.tcpCluster !== undefined) meta.tcpCluster = p.tcpCluster;
  if (p.shadowed && p.shadowed.length > 0) meta.shadowed = p.shadowed;
  return { name, address: socketAddress(ip, p.port), listener_filters: listenerFilters((p.tcpRoutes ?? []).some((r) => (r.sniHosts ?? []).length > 0), p.protocol === 'auto'), filter_chains: chains, metadata: trellisMetadata(meta) };
}

function headerValues(ops: HeaderOps): Obj[] {
  return [
    ...Object.entries(ops.set).map(([key, value]) => ({ header: { key, value }, append_action: 'OVERWRITE_IF_EXISTS_OR_ADD' })),
    ...Object.entries(ops.add).map(([key, value]) => ({ header: { key, value }, append_action: 'APPEND_IF_EXISTS_OR_ADD' })),
  ];
}

/** What routeConfiguration() leaves out of a route: all header operations, and the manifest field it came from. */
function decorateRoute(out: Obj, r: Route): void {
  const meta: Obj = {};
  if (r.headers) {
    meta.headerOps = Object.keys(r.headers).filter((k) => r.headers?.[k as 'request' | 'response'] !== undefined);
    const { request, response } = r.headers;
    if (request) {
      out.request_headers_to_add = headerValues(request);
      if (request.remove.length > 0) out.request_headers_to_remove = request.remove;
    }
    if (response) {
      out.response_headers_to_add = headerValues(response);
      if (response.remove.length > 0) out.response_headers_to_remove = response.remove;
    }
  }
  if (r.source) {
    const at = r.source.origin.locate(r.source.path, 'key');
    meta.source = { file: at.file, path: [...r.source.path], line: at.line, column: at.column };
  }
  if (Object.keys(meta).length > 0) out.metadata = trellisMetadata(meta);
}

/** routeConfiguration() for Trellis proxies: the same content, plus header operations and route sources. */
export function proxyRouteConfiguration(rc: RouteConfig, accepts?: (r: Route) => boolean): Obj {
  const out = routeConfiguration(rc, accepts);
  (out.virtual_hosts as Obj[]).forEach((vh, i) => {
    const routes = (rc.virtualHosts[i]?.routes ?? []).filter((r) => !accepts || accepts(r));
    (vh.routes as Obj[]).forEach((r, j) => {
      const src = routes[j];
      if (src) decorateRoute(r, src);
    });
  });
  return out;
}

/** clusterLoadAssignment() for Trellis proxies: each endpoint also names its pod and labels (for flows). */
export function proxyLoadAssignment(e: EndpointSet): Obj {
  const out = clusterLoadAssignment(e);
  // clusterLoadAssignment groups by locality in first-seen order, keeping the order within a group: the same walk finds each endpoint.
  const groups = new Map<string, EndpointSet['endpoints']>();
  for (const ep of e.endpoints) {
    const key = `${ep.locality.region}/${ep.locality.zone}/${ep.locality.subZone}`;
    groups.set(key, [...(groups.get(key) ?? []), ep]);
  }
  const eps = [...groups.values()];
  (out.endpoints as Obj[]).forEach((g, i) => {
    (g.lb_endpoints as Obj[]).forEach((lb, j) => {
      const ep = eps[i]?.[j];
      if (ep && (ep.pod !== undefined || Object.keys(ep.labels).length > 0)) lb.metadata = { filter_metadata: { [TRELLIS_METADATA]: toStruct({ pod: ep.pod, labels: ep.labels }) } };
    });
  });
  return out;
}
