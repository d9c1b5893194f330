// Turns the routing model into Envoy's own resource types, as plain objects with the .proto field names.
// What proxyless gRPC clients cannot do is expressed in forms they accept (see the notes at each choice).
import type { ClusterSpec, EndpointSet, FaultPolicy, HeaderMatch, Route, RouteConfig, ServiceListener, StringMatch } from '../routing/model.ts';
import { TYPE } from './type-urls.ts';

type Obj = Record<string, unknown>;

const T = {
  hcm: 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
  router: 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router',
  fault: 'type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault',
  roundRobin: 'type.googleapis.com/envoy.extensions.load_balancing_policies.round_robin.v3.RoundRobin',
  leastRequest: 'type.googleapis.com/envoy.extensions.load_balancing_policies.least_request.v3.LeastRequest',
  random: 'type.googleapis.com/envoy.extensions.load_balancing_policies.random.v3.Random',
  ringHash: 'type.googleapis.com/envoy.extensions.load_balancing_policies.ring_hash.v3.RingHash',
  wrrLocality: 'type.googleapis.com/envoy.extensions.load_balancing_policies.wrr_locality.v3.WrrLocality',
} as const;

export const FAULT_FILTER = 'envoy.filters.http.fault';
export const ROUTER_FILTER = 'envoy.filters.http.router';

const ADS = { ads: {}, resource_api_version: 'V3' };

export function duration(ms: number): Obj {
  const seconds = Math.floor(ms / 1000);
  return { seconds, nanos: Math.round((ms - seconds * 1000) * 1e6) };
}

function percent(p: number): Obj {
  // Millionths keep fractional percentages such as 0.1% exact.
  return { numerator: Math.round(p * 10_000), denominator: 'MILLION' };
}

/** A client-side (api_listener) Listener: what `xds:///<name>` resolves through. */
export function clientListener(name: string, l: ServiceListener): Obj {
  return {
    name,
    api_listener: {
      api_listener: {
        '@type': T.hcm,
        stat_prefix: l.name,
        rds: { route_config_name: l.routeConfig, config_source: ADS },
        http_filters: [
          { name: FAULT_FILTER, typed_config: { '@type': T.fault } },
          { name: ROUTER_FILTER, typed_config: { '@type': T.router } },
        ],
      },
    },
  };
}

function stringMatcher(m: StringMatch): Obj {
  if ('exact' in m) return { exact: m.exact, ignore_case: m.ignoreCase ?? false };
  if ('prefix' in m) return { prefix: m.prefix, ignore_case: m.ignoreCase ?? false };
  return { safe_regex: { regex: m.regex } };
}

function headerMatcher(h: HeaderMatch): Obj {
  const out: Obj = { name: h.name, invert_match: h.invert ?? false };
  if (h.match) out.string_match = stringMatcher(h.match);
  else out.present_match = h.present ?? true;
  return out;
}

function routeMatch(r: Route): Obj {
  const m: Obj = {};
  const p = r.match.path;
  if (!p) m.prefix = '';
  else if ('exact' in p) {
    m.path = p.exact;
    if (p.ignoreCase) m.case_sensitive = { value: false };
  } else if ('prefix' in p) {
    m.prefix = p.prefix;
    if (p.ignoreCase) m.case_sensitive = { value: false };
  } else m.safe_regex = { regex: p.regex };
  if (r.match.headers.length > 0) m.headers = r.match.headers.map(headerMatcher);
  if (r.match.queryParams && r.match.queryParams.length > 0) {
    m.query_parameters = r.match.queryParams.map((q) => (q.match ? { name: q.name, string_match: stringMatcher(q.match) } : { name: q.name, present_match: true }));
  }
  return m;
}

function faultConfig(f: FaultPolicy): Obj {
  const out: Obj = { '@type': T.fault };
  if (f.delay) out.delay = { fixed_delay: duration(f.delay.fixedDelayMs), percentage: percent(f.delay.percent) };
  if (f.abort) {
    const abort: Obj = { percentage: percent(f.abort.percent) };
    if (f.abort.grpcStatus !== undefined) abort.grpc_status = f.abort.grpcStatus;
    else abort.http_status = f.abort.httpStatus ?? 503;
    out.abort = abort;
  }
  return out;
}

function envoyRoute(r: Route): Obj {
  const out: Obj = { name: r.name, match: routeMatch(r) };
  const a = r.action;
  if (a.type === 'route') {
    const action: Obj = {};
    if (a.clusters.length === 1) action.cluster = a.clusters[0]?.cluster;
    else action.weighted_clusters = { clusters: a.clusters.map((c) => ({ name: c.cluster, weight: { value: c.weight } })) };
    if (a.timeoutMs !== undefined) {
      action.timeout = duration(a.timeoutMs);
      // gRPC clients read the deadline from max_stream_duration, not from timeout.
      action.max_stream_duration = { max_stream_duration: duration(a.timeoutMs) };
    }
    if (a.retry) {
      const rp: Obj = { retry_on: a.retry.retryOn.join(','), num_retries: { value: a.retry.attempts }, retry_back_off: { base_interval: duration(25), max_interval: duration(250) } };
      if (a.retry.perTryTimeoutMs !== undefined) rp.per_try_timeout = duration(a.retry.perTryTimeoutMs);
      if (a.retry.retriableStatusCodes) rp.retriable_status_codes = a.retry.retriableStatusCodes;
      action.retry_policy = rp;
    }
    if (a.hashPolicy) {
      action.hash_policy = a.hashPolicy.flatMap((h): Obj[] => {
        if (h.header) return [{ header: { header_name: h.header } }];
        if (h.cookie) return [{ cookie: { name: h.cookie.name, ...(h.cookie.ttlMs !== undefined ? { ttl: duration(h.cookie.ttlMs) } : {}), ...(h.cookie.path ? { path: h.cookie.path } : {}) } }];
        if (h.queryParameter) return [{ query_parameter: { name: h.queryParameter } }];
        // gRPC clients cannot hash on their own address; the channel id (gRFC A42) pins each client the same way.
        return [{ connection_properties: { source_ip: true } }, { filter_state: { key: 'io.grpc.channel_id' } }];
      });
    }
    if (a.rewrite?.prefix !== undefined) action.prefix_rewrite = a.rewrite.prefix;
    if (a.rewrite?.fullPath !== undefined) action.regex_rewrite = { pattern: { regex: '.*' }, substitution: a.rewrite.fullPath };
    if (a.rewrite?.authority !== undefined) action.host_rewrite_literal = a.rewrite.authority;
    if (a.mirror) action.request_mirror_policies = [{ cluster: a.mirror.cluster, runtime_fraction: { default_value: percent(a.mirror.percent) } }];
    out.route = action;
    if (a.headersToAdd) out.request_headers_to_add = Object.entries(a.headersToAdd).map(([key, value]) => ({ header: { key, value }, append_action: 'OVERWRITE_IF_EXISTS_OR_ADD' }));
  } else if (a.type === 'redirect') {
    const rd: Obj = {};
    if (a.scheme) rd.scheme_redirect = a.scheme;
    if (a.host) rd.host_redirect = a.host;
    if (a.port) rd.port_redirect = a.port;
    if (a.path) rd.path_redirect = a.path;
    if (a.prefixRewrite !== undefined) rd.prefix_rewrite = a.prefixRewrite;
    rd.response_code = ({ 301: 'MOVED_PERMANENTLY', 302: 'FOUND', 303: 'SEE_OTHER', 307: 'TEMPORARY_REDIRECT', 308: 'PERMANENT_REDIRECT' } as Record<number, string>)[a.status] ?? 'MOVED_PERMANENTLY';
    out.redirect = rd;
  } else {
    out.direct_response = { status: a.status, ...(a.body !== undefined ? { body: { inline_string: a.body } } : {}) };
  }
  if (r.fault && (r.fault.delay || r.fault.abort)) out.typed_per_filter_config = { [FAULT_FILTER]: faultConfig(r.fault) };
  return out;
}

export function routeConfiguration(rc: RouteConfig, routesFilter?: (r: Route) => boolean): Obj {
  return {
    name: rc.name,
    virtual_hosts: rc.virtualHosts.map((vh) => ({ name: vh.name, domains: vh.domains, routes: (routesFilter ? vh.routes.filter(routesFilter) : vh.routes).map(envoyRoute) })),
  };
}

function policy(name: string, typeUrl: string, config: Obj = {}): Obj {
  return { typed_extension_config: { name, typed_config: { '@type': typeUrl, ...config } } };
}

/**
 * The load-balancing policy as a preference list: a client takes the first entry it supports. gRPC has no
 * least-request or random picker, so those fall back to round robin there; Envoy honours the first choice.
 * Round-robin-style pickers sit under wrr_locality, so locality weights apply.
 */
function loadBalancingPolicy(c: ClusterSpec): Obj {
  if (c.lbPolicy === 'RING_HASH') {
    const cfg: Obj = { hash_function: 'XX_HASH' };
    if (c.ringHash?.minimumRingSize) cfg.minimum_ring_size = { value: c.ringHash.minimumRingSize };
    if (c.ringHash?.maximumRingSize) cfg.maximum_ring_size = { value: c.ringHash.maximumRingSize };
    return { policies: [policy('envoy.load_balancing_policies.ring_hash', T.ringHash, cfg)] };
  }
  const pickers = c.lbPolicy === 'LEAST_REQUEST'
    ? [policy('envoy.load_balancing_policies.least_request', T.leastRequest), policy('envoy.load_balancing_policies.round_robin', T.roundRobin)]
    : c.lbPolicy === 'RANDOM'
      ? [policy('envoy.load_balancing_policies.random', T.random), policy('envoy.load_balancing_policies.round_robin', T.roundRobin)]
      : [policy('envoy.load_balancing_policies.round_robin', T.roundRobin)];
  return { policies: [policy('envoy.load_balancing_policies.wrr_locality', T.wrrLocality, { endpoint_picking_policy: { policies: pickers } })] };
}

/** `transportSocket`: the client's TLS to the cluster (see server-resources.ts), plaintext when absent. */
export function cluster(c: ClusterSpec, transportSocket?: Obj): Obj {
  const out: Obj = {
    name: c.name,
    connect_timeout: duration(c.connectTimeoutMs ?? 10_000),
    load_balancing_policy: loadBalancingPolicy(c),
  };
  if (transportSocket) out.transport_socket = transportSocket;
  if (c.discovery === 'EDS') {
    out.type = 'EDS';
    out.eds_cluster_config = { eds_config: ADS, service_name: c.name };
  } else {
    out.type = 'LOGICAL_DNS';
    const dns = c.dns ?? { host: c.host, port: c.port };
    out.load_assignment = {
      cluster_name: c.name,
      endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: dns.host, port_value: dns.port } } } }] }],
    };
  }
  if (c.circuitBreakers) {
    const t: Obj = {};
    if (c.circuitBreakers.maxConnections !== undefined) t.max_connections = { value: c.circuitBreakers.maxConnections };
    if (c.circuitBreakers.maxPendingRequests !== undefined) t.max_pending_requests = { value: c.circuitBreakers.maxPendingRequests };
    if (c.circuitBreakers.maxRequests !== undefined) t.max_requests = { value: c.circuitBreakers.maxRequests };
    if (c.circuitBreakers.maxRetries !== undefined) t.max_retries = { value: c.circuitBreakers.maxRetries };
    out.circuit_breakers = { thresholds: [t] };
  }
  if (c.outlierDetection) {
    const o = c.outlierDetection;
    const od: Obj = {
      interval: duration(o.intervalMs),
      base_ejection_time: duration(o.baseEjectionTimeMs),
      max_ejection_percent: { value: o.maxEjectionPercent },
      // Success-rate ejection stays off, as Istio leaves it.
      enforcing_success_rate: { value: 0 },
    };
    // As Istio does: a count of 0 turns that detection off (enforcement 0), rather than ejecting on any error.
    if (o.consecutive5xx !== undefined) {
      od.consecutive_5xx = { value: o.consecutive5xx };
      od.enforcing_consecutive_5xx = { value: o.consecutive5xx > 0 ? 100 : 0 };
    }
    if (o.consecutiveGatewayErrors !== undefined) {
      od.consecutive_gateway_failure = { value: o.consecutiveGatewayErrors };
      od.enforcing_consecutive_gateway_failure = { value: o.consecutiveGatewayErrors > 0 ? 100 : 0 };
    }
    // gRPC implements only success-rate and failure-percentage ejection (gRFC A50), and cannot tell gateway
    // errors from others. A host whose calls in one interval number at least the smallest enabled
    // consecutive-error count, and mostly fail, is ejected there.
    const counts = [o.consecutive5xx, o.consecutiveGatewayErrors].filter((n): n is number => n !== undefined && n > 0);
    const volume = counts.length > 0 ? Math.min(...counts) : undefined;
    if (volume !== undefined) {
      od.failure_percentage_threshold = { value: 50 };
      od.enforcing_failure_percentage = { value: 100 };
      od.failure_percentage_minimum_hosts = { value: 1 };
      od.failure_percentage_request_volume = { value: volume };
    }
    out.outlier_detection = od;
  }
  if (c.http2 || c.maxRequestsPerConnection !== undefined) {
    const opts: Obj = {
      '@type': 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
      explicit_http_config: c.http2 ? { http2_protocol_options: {} } : { http_protocol_options: {} },
    };
    if (c.maxRequestsPerConnection !== undefined) opts.common_http_protocol_options = { max_requests_per_connection: { value: c.maxRequestsPerConnection } };
    out.typed_extension_protocol_options = { 'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': opts };
  }
  return out;
}

export function clusterLoadAssignment(e: EndpointSet, includeUnhealthy = true): Obj {
  const byLocality = new Map<string, EndpointSet['endpoints']>();
  for (const ep of e.endpoints) {
    if (!ep.healthy && !includeUnhealthy) continue;
    const key = `${ep.locality.region}/${ep.locality.zone}/${ep.locality.subZone}`;
    const l = byLocality.get(key);
    if (l) l.push(ep);
    else byLocality.set(key, [ep]);
  }
  return {
    cluster_name: e.cluster,
    endpoints: [...byLocality.values()].map((eps) => ({
      locality: { region: eps[0]?.locality.region ?? '', zone: eps[0]?.locality.zone ?? '', sub_zone: eps[0]?.locality.subZone ?? '' },
      // gRPC ignores a locality without a weight.
      load_balancing_weight: { value: eps.reduce((s, x) => s + (x.healthy ? x.weight : 0), 0) || 1 },
      lb_endpoints: eps.map((ep) => ({
        endpoint: { address: { socket_address: { address: ep.address, port_value: ep.port } } },
        health_status: ep.healthy ? 'HEALTHY' : 'UNHEALTHY',
        load_balancing_weight: { value: ep.weight },
      })),
    })),
  };
}

export { TYPE };
