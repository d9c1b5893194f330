// Turns what xDS delivered (Envoy Listener, RouteConfiguration, Cluster and ClusterLoadAssignment objects as
// decodeAny gives them, plus the policy snapshot) into the proxy's running configuration. Every problem is collected
// with its resource and field; a config with any error is refused whole, and the caller NACKs with the errors.
import type { RouteConfig, TcpRoute, EndpointSet } from '../routing/model.ts';
import { FAULT_FILTER, ROUTER_FILTER } from '../xds/envoy-resources.ts';
import {
  EXTENSION_FILTER, EXTENSION_FILTER_TYPE, HCM_FILTER, HTTP_INSPECTOR, LOCAL_RATE_LIMIT_FILTER, POLICY_FILTER, POLICY_FILTER_TYPE, TCP_PROXY_FILTER, TLS_INSPECTOR,
} from '../xds/sidecar-listeners.ts';
import { fromStruct, readTrellisMetadata, TYPED_STRUCT } from '../xds/xds-struct.ts';
import { DEFAULT_LISTENER_LIMITS, type HttpFilterConfig, type InboundMtls, type ListenerConfig, type ListenerLimits, type PolicySnapshot, type ProxyCluster, type ProxyConfig } from './proxy-config.ts';
import { translateCluster, translateLoadAssignment } from './xds-translate-clusters.ts';
import { anyType, At, durationMs, isObj, Issues, list, num, obj, show, str, text, wrapped, type Obj } from './xds-translate-fields.ts';
import { translateRouteConfiguration } from './xds-translate-routes.ts';

export { translateCluster, translateLoadAssignment, translateRouteConfiguration, Issues, At };

export interface TranslateInput {
  listeners: object[];
  routes: object[];
  clusters: object[];
  endpoints: object[];
  policy?: PolicySnapshot;
}

export type TranslateResult = { ok: true; config: ProxyConfig } | { ok: false; errors: string[] };

const LISTENER_FILTERS: ReadonlySet<string> = new Set([TLS_INSPECTOR, HTTP_INSPECTOR, 'envoy.filters.listener.original_dst']);

function httpFilter(v: unknown, at: At, last: boolean): HttpFilterConfig | 'router' | undefined {
  const f = obj(v, at);
  const name = str(f?.name, at.field('name'));
  if (!f || name === undefined) return at.error('HTTP filter without a name');
  const cfg = f.typed_config;
  const t = anyType(cfg);
  if (name === ROUTER_FILTER || t === 'envoy.extensions.filters.http.router.v3.Router') return last ? 'router' : at.error('the router must be the last HTTP filter');
  if (last) at.error(`the last HTTP filter must be the router, not ${name}`);
  const typedStruct = t === TYPED_STRUCT.slice(TYPED_STRUCT.lastIndexOf('/') + 1) && isObj(cfg) ? cfg : undefined;
  if (name === POLICY_FILTER) {
    if (typedStruct && typedStruct.type_url !== POLICY_FILTER_TYPE) return at.field('typed_config').error(`expected ${POLICY_FILTER_TYPE}`);
    return { name: POLICY_FILTER };
  }
  if (name === FAULT_FILTER) return t === 'envoy.extensions.filters.http.fault.v3.HTTPFault' || t === undefined ? { name: FAULT_FILTER } : at.field('typed_config').error(`expected an HTTPFault, got ${t}`);
  if (name === LOCAL_RATE_LIMIT_FILTER || t === 'envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit') {
    const tb = isObj(cfg) && isObj(cfg.token_bucket) ? cfg.token_bucket : undefined;
    if (!tb) return at.field('typed_config').error('a local rate limit needs a token_bucket');
    const ta = at.field('typed_config').field('token_bucket');
    const maxTokens = num(tb.max_tokens ?? 0, ta.field('max_tokens')) ?? 0;
    const tokensPerFill = tb.tokens_per_fill === undefined ? 1 : (wrapped(tb.tokens_per_fill, ta.field('tokens_per_fill')) ?? 1);
    const fillIntervalMs = durationMs(tb.fill_interval, ta.field('fill_interval'));
    if (maxTokens < 1 || fillIntervalMs === undefined || fillIntervalMs <= 0) return ta.error('max_tokens and fill_interval must be positive');
    const out: HttpFilterConfig = { name: LOCAL_RATE_LIMIT_FILTER, maxTokens, tokensPerFill, fillIntervalMs, perRoute: false };
    const headers: Record<string, string> = {};
    list(isObj(cfg) ? cfg.response_headers_to_add : undefined, at.field('typed_config').field('response_headers_to_add')).forEach((h) => {
      const hv = isObj(h) && isObj(h.header) ? h.header : undefined;
      if (hv && typeof hv.key === 'string') headers[hv.key.toLowerCase()] = text(hv.value);
    });
    if (Object.keys(headers).length > 0) out.responseHeaders = headers;
    return out;
  }
  if (typedStruct && typedStruct.type_url === EXTENSION_FILTER_TYPE) {
    let value: Obj;
    try {
      value = fromStruct(typedStruct.value);
    } catch (e) {
      return at.field('typed_config').error((e as Error).message);
    }
    if (typeof value.module !== 'string' || value.module === '') return at.field('typed_config').error('an extension filter needs `module`');
    return { name: EXTENSION_FILTER, module: value.module, config: isObj(value.config) ? value.config : {} };
  }
  return at.error(`unknown HTTP filter ${name}`);
}

function limits(hcm: Obj, at: At): ListenerLimits {
  const out: ListenerLimits = { ...DEFAULT_LISTENER_LIMITS };
  const kb = wrapped(hcm.max_request_headers_kb, at.field('max_request_headers_kb'));
  if (kb !== undefined) out.maxHeaderBytes = kb * 1024;
  const common = isObj(hcm.common_http_protocol_options) ? hcm.common_http_protocol_options : {};
  const count = wrapped(common.max_headers_count, at.field('common_http_protocol_options').field('max_headers_count'));
  if (count !== undefined) out.maxHeaders = count;
  const idle = durationMs(common.idle_timeout, at.field('common_http_protocol_options').field('idle_timeout'));
  if (idle !== undefined) out.idleTimeoutMs = idle;
  const h2 = isObj(hcm.http2_protocol_options) ? hcm.http2_protocol_options : {};
  const streams = wrapped(h2.max_concurrent_streams, at.field('http2_protocol_options').field('max_concurrent_streams'));
  if (streams !== undefined) out.maxConcurrentStreams = streams;
  const headers = durationMs(hcm.request_headers_timeout, at.field('request_headers_timeout'));
  if (headers !== undefined) out.headerTimeoutMs = headers;
  return out;
}

interface Chain {
  transport: 'tls' | 'raw_buffer' | 'any';
  hcm?: { routeConfig: string; inline?: RouteConfig; filters: HttpFilterConfig[]; limits: ListenerLimits };
  tcp?: TcpRoute;
}

function chain(v: unknown, at: At): Chain | undefined {
  const c = obj(v, at);
  if (!c) return undefined;
  const m = isObj(c.filter_chain_match) ? c.filter_chain_match : {};
  const tp = m.transport_protocol;
  const transport = tp === 'tls' ? 'tls' : tp === 'raw_buffer' ? 'raw_buffer' : tp === undefined || tp === '' ? 'any' : at.field('filter_chain_match').field('transport_protocol').error(`unknown ${show(tp)}`);
  if (transport === undefined) return undefined;
  if (isObj(c.transport_socket)) {
    const t = anyType(c.transport_socket.typed_config);
    if (t !== 'envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext') at.field('transport_socket').error(`unsupported transport socket ${t ?? show(c.transport_socket.name)}`);
  } else if (transport === 'tls') at.field('transport_socket').error('a tls chain must terminate TLS (TLS passthrough is not supported)');
  const filters = list(c.filters, at.field('filters'));
  if (filters.length !== 1) return at.field('filters').error(`expected exactly one network filter, got ${filters.length}`);
  const fa = at.field('filters').field(0);
  const f = obj(filters[0], fa) ?? {};
  const cfg = isObj(f.typed_config) ? f.typed_config : {};
  const out: Chain = { transport };
  if (f.name === HCM_FILTER || anyType(cfg) === 'envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager') {
    const ca = fa.field('typed_config');
    let routeConfig: string | undefined;
    let inline: RouteConfig | undefined;
    if (isObj(cfg.route_config)) {
      inline = translateRouteConfiguration(cfg.route_config, ca.field('route_config'));
      routeConfig = inline?.name;
    } else if (isObj(cfg.rds)) routeConfig = str(cfg.rds.route_config_name, ca.field('rds').field('route_config_name'));
    else ca.error('needs rds or an inline route_config');
    const httpFilters: HttpFilterConfig[] = [];
    const hf = list(cfg.http_filters, ca.field('http_filters'));
    if (hf.length === 0) ca.field('http_filters').error('no router');
    hf.forEach((x, i) => {
      const t = httpFilter(x, ca.field('http_filters').field(i), i === hf.length - 1);
      if (t && t !== 'router') httpFilters.push(t);
    });
    if (routeConfig === undefined) return undefined;
    out.hcm = { routeConfig, filters: httpFilters, limits: limits(cfg, ca) };
    if (inline) out.hcm.inline = inline;
    return out;
  }
  if (f.name === TCP_PROXY_FILTER || anyType(cfg) === 'envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy') {
    const ca = fa.field('typed_config');
    const clusters: TcpRoute['clusters'] = [];
    if (typeof cfg.cluster === 'string') clusters.push({ cluster: cfg.cluster, weight: 100 });
    else if (isObj(cfg.weighted_clusters)) {
      list(cfg.weighted_clusters.clusters, ca.field('weighted_clusters').field('clusters')).forEach((x, i) => {
        if (isObj(x) && typeof x.name === 'string') clusters.push({ cluster: x.name, weight: num(x.weight ?? 0, ca.field('weighted_clusters').field('clusters').field(i).field('weight')) ?? 0 });
      });
    }
    if (clusters.length === 0) return ca.error('tcp_proxy needs a cluster');
    const name = typeof c.name === 'string' && c.name.startsWith('outbound-tcp|') ? c.name.slice('outbound-tcp|'.length) : text(c.name, '');
    const route: TcpRoute = { name, clusters };
    const sni = list(m.server_names, at.field('filter_chain_match').field('server_names')).map(String);
    if (sni.length > 0) route.sniHosts = sni;
    const ranges = list(m.prefix_ranges, at.field('filter_chain_match').field('prefix_ranges')).flatMap((r) => (isObj(r) ? [`${text(r.address_prefix)}/${wrapped(r.prefix_len, at) ?? 0}`] : []));
    if (ranges.length > 0) route.destinationSubnets = ranges;
    out.tcp = route;
    return out;
  }
  return fa.error(`unknown filter ${show(f.name)}`);
}

/** One Listener. Inline route configurations it holds are added to `routes`. */
export function translateListener(v: Obj, issues: Issues, routes: Map<string, RouteConfig>, rdsNames: ReadonlySet<string> = new Set()): ListenerConfig | undefined {
  const name = typeof v.name === 'string' ? v.name : '';
  const at = new At(issues, `Listener ${name || '(unnamed)'}`);
  if (name === '') return at.field('name').error('missing');
  const sa = isObj(v.address) ? v.address.socket_address : undefined;
  const port = isObj(sa) ? num(sa.port_value ?? 0, at.field('address').field('socket_address').field('port_value')) : undefined;
  if (!isObj(sa) || typeof sa.address !== 'string' || port === undefined || port < 1 || port > 65535) return at.field('address').error('needs a socket address with a port');
  list(v.listener_filters, at.field('listener_filters')).forEach((f, i) => {
    const n = isObj(f) ? f.name : undefined;
    if (typeof n !== 'string' || !LISTENER_FILTERS.has(n)) at.field('listener_filters').field(i).error(`unknown listener filter ${show(n)}`);
  });
  if (v.api_listener !== undefined) return at.field('api_listener').error('api listeners are for proxyless clients');
  const chains: Chain[] = [];
  list(v.filter_chains, at.field('filter_chains')).forEach((c, i) => {
    const t = chain(c, at.field('filter_chains').field(i));
    if (t) chains.push(t);
  });
  if (chains.length === 0) return at.field('filter_chains').error('no usable filter chain');
  const meta = readTrellisMetadata(v.metadata);
  const direction = meta.direction ?? (name.startsWith('inbound|') ? 'inbound' : name.startsWith('outbound|') ? 'outbound' : 'gateway');
  if (direction !== 'inbound' && direction !== 'outbound' && direction !== 'gateway') return at.field('metadata').error(`unknown direction ${show(direction)}`);
  const http = chains.filter((c) => c.hcm);
  const tcp = chains.filter((c) => c.tcp);
  const protocol = http.length > 0 && tcp.length > 0 ? 'auto' : http.length > 0 ? 'http' : 'tcp';
  if (meta.protocol !== undefined && meta.protocol !== protocol) at.field('metadata').error(`protocol ${show(meta.protocol)} does not match the filter chains (${protocol})`);
  const out: ListenerConfig = { name, direction, address: { host: sa.address, port }, protocol, httpFilters: [], limits: { ...DEFAULT_LISTENER_LIMITS } };
  if (typeof meta.pod === 'string') out.pod = meta.pod;
  if (typeof meta.sourceAddress === 'string') out.sourceAddress = meta.sourceAddress;
  if (direction === 'inbound') {
    const tls = chains.some((c) => c.transport === 'tls');
    const plain = chains.some((c) => c.transport !== 'tls');
    const mtls: InboundMtls = tls && plain ? 'PERMISSIVE' : tls ? 'STRICT' : 'DISABLE';
    if (meta.mtls !== undefined && meta.mtls !== mtls) at.field('metadata').error(`mtls ${show(meta.mtls)} does not match the filter chains (${mtls})`);
    out.mtls = mtls;
  }
  const first = http[0]?.hcm;
  if (first) {
    out.routeConfig = first.routeConfig;
    // Rate limits whose bucket is per route are named in the listener's metadata (see sidecar-listeners.ts).
    const perRoute = new Set(Array.isArray(meta.perRouteRateLimits) ? meta.perRouteRateLimits.map((x) => text(x)) : []);
    out.httpFilters = first.filters.map((f) => (f.name === LOCAL_RATE_LIMIT_FILTER && perRoute.has(f.name) ? { ...f, perRoute: true } : f));
    out.limits = first.limits;
    for (const c of http) {
      if (c.hcm?.routeConfig !== first.routeConfig) at.field('filter_chains').error('HTTP chains route to different route configurations');
      const inline = c.hcm?.inline;
      if (inline && rdsNames.has(inline.name)) at.field('filter_chains').error(`inline route_config ${inline.name} clashes with an RDS route configuration`);
      else if (inline && !routes.has(inline.name)) routes.set(inline.name, inline);
    }
  }
  if (tcp.length > 0) {
    // Chains repeated per transport (inbound PERMISSIVE) carry the same routes: keep one transport's.
    const t0 = tcp[0]?.transport;
    const routesTcp = tcp.filter((c) => c.transport === t0).map((c) => c.tcp as TcpRoute);
    const plain = routesTcp.length === 1 && routesTcp[0]?.clusters.length === 1 && !routesTcp[0].sniHosts && !routesTcp[0].destinationSubnets;
    const catchAll = routesTcp.find((r) => !r.sniHosts && !r.destinationSubnets);
    const heaviest = catchAll ? [...catchAll.clusters].sort((a, b) => b.weight - a.weight)[0]?.cluster : undefined;
    const tcpCluster = typeof meta.tcpCluster === 'string' ? meta.tcpCluster : heaviest;
    if (tcpCluster !== undefined) out.tcpCluster = tcpCluster;
    if (!plain) out.tcpRoutes = routesTcp;
  }
  return out;
}

function each<T>(items: object[], label: string, issues: Issues, f: (v: Obj, at: At) => T | undefined): T[] {
  const out: T[] = [];
  items.forEach((x, i) => {
    const v = isObj(x) ? x : undefined;
    const name = v && typeof (v.name ?? v.cluster_name) === 'string' ? String(v.name ?? v.cluster_name) : `#${i}`;
    if (!v) return issues.add(`${label} ${name}`, '', 'not a message');
    const t = f(v, new At(issues, `${label} ${name}`));
    if (t !== undefined) out.push(t);
  });
  return out;
}

/** Every resource into one ProxyConfig, or every error found. Names must be unique per type. */
export function translateResources(input: TranslateInput): TranslateResult {
  const issues = new Issues();
  const routes = new Map<string, RouteConfig>();
  for (const rc of each(input.routes, 'RouteConfiguration', issues, translateRouteConfiguration)) {
    if (routes.has(rc.name)) issues.add(`RouteConfiguration ${rc.name}`, 'name', 'duplicate');
    routes.set(rc.name, rc);
  }
  const rdsNames = new Set(routes.keys());
  const listeners: ListenerConfig[] = [];
  const seen = new Set<string>();
  for (const x of input.listeners) {
    const l = isObj(x) ? translateListener(x, issues, routes, rdsNames) : issues.add('Listener', '', 'not a message');
    if (!l) continue;
    if (seen.has(l.name)) issues.add(`Listener ${l.name}`, 'name', 'duplicate');
    seen.add(l.name);
    listeners.push(l);
  }
  const clusters = new Map<string, ProxyCluster>();
  const endpoints = new Map<string, EndpointSet>();
  for (const t of each(input.clusters, 'Cluster', issues, translateCluster)) {
    if (clusters.has(t.cluster.name)) issues.add(`Cluster ${t.cluster.name}`, 'name', 'duplicate');
    clusters.set(t.cluster.name, t.cluster);
    if (t.endpoints) endpoints.set(t.endpoints.cluster, t.endpoints);
  }
  for (const e of each(input.endpoints, 'ClusterLoadAssignment', issues, (v, at) => translateLoadAssignment(v, at))) {
    if (endpoints.has(e.cluster)) issues.add(`ClusterLoadAssignment ${e.cluster}`, 'cluster_name', 'duplicate (or the cluster already has static endpoints)');
    endpoints.set(e.cluster, e);
  }
  const errors = issues.list();
  if (errors.length > 0) return { ok: false, errors };
  const config: ProxyConfig = { listeners, routes, clusters, endpoints };
  if (input.policy) config.policy = input.policy;
  return { ok: true, config };
}
