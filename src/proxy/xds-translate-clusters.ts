// Cluster and ClusterLoadAssignment → ProxyCluster and EndpointSet: the inverse of cluster() and clusterLoadAssignment()
// (src/xds/envoy-resources.ts) plus what Trellis proxies get in metadata (sidecar-listeners.ts). Unsupported settings are errors.
import type { AppProtocol, ClusterSpec, Endpoint, EndpointSet, LbPolicy, OutlierDetection, TlsMode } from '../routing/model.ts';
import { readTrellisMetadata } from '../xds/xds-struct.ts';
import type { HealthCheckConfig, ProxyCluster } from './proxy-config.ts';
import { anyType, At, durationMs, isObj, list, num, obj, show, str, text, wrapped, type Obj } from './xds-translate-fields.ts';

const PROTOCOLS: ReadonlySet<string> = new Set(['http', 'http2', 'grpc', 'tcp', 'tls', 'https', 'unknown']);
const TLS_MODES: ReadonlySet<string> = new Set(['DISABLE', 'SIMPLE', 'MUTUAL', 'ISTIO_MUTUAL']);
const HEALTHY: ReadonlySet<string> = new Set(['HEALTHY', 'UNKNOWN', 'DEGRADED']);

const LB_TYPES: Record<string, LbPolicy> = {
  'envoy.extensions.load_balancing_policies.round_robin.v3.RoundRobin': 'ROUND_ROBIN',
  'envoy.extensions.load_balancing_policies.least_request.v3.LeastRequest': 'LEAST_REQUEST',
  'envoy.extensions.load_balancing_policies.random.v3.Random': 'RANDOM',
  'envoy.extensions.load_balancing_policies.ring_hash.v3.RingHash': 'RING_HASH',
};

/** The first policy of a load_balancing_policy this proxy supports (wrr_locality unwrapped), with its config. */
function lbFromPolicy(v: Obj, at: At): { policy: LbPolicy; config: Obj } | undefined {
  const policies = list(v.policies, at.field('policies'));
  for (let i = 0; i < policies.length; i++) {
    const p = policies[i];
    const cfg = isObj(p) && isObj(p.typed_extension_config) ? p.typed_extension_config.typed_config : undefined;
    const t = anyType(cfg);
    if (t === 'envoy.extensions.load_balancing_policies.wrr_locality.v3.WrrLocality' && isObj(cfg) && isObj(cfg.endpoint_picking_policy)) {
      const inner = lbFromPolicy(cfg.endpoint_picking_policy, at.field('policies').field(i).field('endpoint_picking_policy'));
      if (inner) return inner;
    } else if (t !== undefined && LB_TYPES[t] !== undefined && isObj(cfg)) return { policy: LB_TYPES[t], config: cfg };
  }
  return at.error('no supported load-balancing policy (round robin, least request, random, ring hash)');
}

function outlier(v: Obj, at: At): OutlierDetection {
  const ms = (k: string, dflt: number): number => durationMs(v[k], at.field(k)) ?? dflt;
  const out: OutlierDetection = { intervalMs: ms('interval', 10_000), baseEjectionTimeMs: ms('base_ejection_time', 30_000), maxEjectionPercent: wrapped(v.max_ejection_percent, at.field('max_ejection_percent')) ?? 10 };
  // Envoy enforces consecutive 5xx at 100% unless told otherwise, and consecutive gateway failures not at all.
  if (v.consecutive_5xx !== undefined || v.enforcing_consecutive_5xx !== undefined) {
    const enforcing = wrapped(v.enforcing_consecutive_5xx, at.field('enforcing_consecutive_5xx')) ?? 100;
    out.consecutive5xx = enforcing > 0 ? (wrapped(v.consecutive_5xx, at.field('consecutive_5xx')) ?? 5) : 0;
  }
  if (v.consecutive_gateway_failure !== undefined) {
    const enforcing = wrapped(v.enforcing_consecutive_gateway_failure, at.field('enforcing_consecutive_gateway_failure')) ?? 0;
    out.consecutiveGatewayErrors = enforcing > 0 ? (wrapped(v.consecutive_gateway_failure, at.field('consecutive_gateway_failure')) ?? 5) : 0;
  }
  return out;
}

function healthCheck(v: unknown, at: At): HealthCheckConfig | undefined {
  const h = obj(v, at);
  if (!h) return undefined;
  const out: HealthCheckConfig = {
    intervalMs: durationMs(h.interval, at.field('interval')) ?? at.field('interval').error('missing') ?? 0,
    timeoutMs: durationMs(h.timeout, at.field('timeout')) ?? at.field('timeout').error('missing') ?? 0,
    unhealthyThreshold: wrapped(h.unhealthy_threshold, at.field('unhealthy_threshold')) ?? 1,
    healthyThreshold: wrapped(h.healthy_threshold, at.field('healthy_threshold')) ?? 1,
  };
  if (isObj(h.http_health_check)) out.httpPath = text(h.http_health_check.path, '/');
  else if (isObj(h.grpc_health_check)) out.grpcService = text(h.grpc_health_check.service_name, '');
  else if (!isObj(h.tcp_health_check)) return at.error('only http, grpc and tcp health checks are supported');
  return out;
}

/** The peer SANs an UpstreamTlsContext accepts (exact values only), or an error for other transport sockets. */
function upstreamTls(v: Obj, at: At): { subjectAltNames: string[] } | undefined {
  const cfg = v.typed_config;
  if (v.name === 'envoy.transport_sockets.raw_buffer' || anyType(cfg) === 'envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer') return undefined;
  if (anyType(cfg) !== 'envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext' || !isObj(cfg)) return at.error(`unsupported transport socket ${show(v.name)}`);
  const vc = isObj(cfg.common_tls_context) && isObj(cfg.common_tls_context.validation_context) ? cfg.common_tls_context.validation_context : {};
  const sans: string[] = [];
  const sa = at.field('typed_config').field('common_tls_context').field('validation_context').field('match_subject_alt_names');
  list(vc.match_subject_alt_names, sa).forEach((m, i) => {
    if (isObj(m) && typeof m.exact === 'string') sans.push(m.exact);
    else sa.field(i).error('only exact SAN matches are supported');
  });
  const typed = at.field('typed_config').field('common_tls_context').field('validation_context').field('match_typed_subject_alt_names');
  list(vc.match_typed_subject_alt_names, typed).forEach((m, i) => {
    if (isObj(m) && isObj(m.matcher) && typeof m.matcher.exact === 'string') sans.push(m.matcher.exact);
    else typed.field(i).error('only exact SAN matches are supported');
  });
  return { subjectAltNames: sans };
}

/** One Cluster. STATIC and DNS clusters also give their endpoints (from load_assignment). */
export function translateCluster(v: Obj, at: At): { cluster: ProxyCluster; endpoints?: EndpointSet } | undefined {
  const name = str(v.name, at.field('name'));
  if (name === undefined) return at.field('name').error('missing');
  const meta = readTrellisMetadata(v.metadata);
  // STATIC is the enum's zero value: a decoder leaves it out.
  const type = text(v.type, v.cluster_type !== undefined ? 'CUSTOM' : 'STATIC');
  const parts = name.split('|');
  const c: ProxyCluster = {
    name,
    host: typeof meta.host === 'string' ? meta.host : (parts[3] ?? parts[2] ?? name),
    port: typeof meta.port === 'number' ? meta.port : Number(parts[1] ?? 0) || 0,
    discovery: type === 'EDS' ? 'EDS' : type === 'LOGICAL_DNS' || type === 'STRICT_DNS' ? 'LOGICAL_DNS' : 'EDS',
    lbPolicy: 'ROUND_ROBIN',
    http2: false,
    protocol: 'unknown',
  };
  if (typeof meta.subset === 'string') c.subset = meta.subset;
  else if (parts[0] === 'outbound' && parts.length === 4 && parts[2] !== '') c.subset = parts[2];
  if (!['EDS', 'STATIC', 'LOGICAL_DNS', 'STRICT_DNS'].includes(type)) at.field('type').error(`unsupported discovery type ${type}`);
  if (type === 'EDS') {
    const svc = isObj(v.eds_cluster_config) ? v.eds_cluster_config.service_name : undefined;
    if (svc !== undefined && svc !== '' && svc !== name) at.field('eds_cluster_config').field('service_name').error(`must be the cluster name (${name})`);
  }
  if (v.load_balancing_policy !== undefined) {
    const lb = lbFromPolicy(obj(v.load_balancing_policy, at.field('load_balancing_policy')) ?? {}, at.field('load_balancing_policy'));
    if (lb) {
      c.lbPolicy = lb.policy;
      if (lb.policy === 'RING_HASH') {
        const min = wrapped(lb.config.minimum_ring_size, at.field('load_balancing_policy'));
        const max = wrapped(lb.config.maximum_ring_size, at.field('load_balancing_policy'));
        if (min !== undefined || max !== undefined) c.ringHash = { ...(min ? { minimumRingSize: min } : {}), ...(max ? { maximumRingSize: max } : {}) };
      }
    }
  } else if (v.lb_policy !== undefined) {
    const p = text(v.lb_policy);
    if (p === 'ROUND_ROBIN' || p === 'LEAST_REQUEST' || p === 'RANDOM' || p === 'RING_HASH') c.lbPolicy = p;
    else at.field('lb_policy').error(`unsupported ${p}`);
  }
  const connect = durationMs(v.connect_timeout, at.field('connect_timeout'));
  if (connect !== undefined) c.connectTimeoutMs = connect;
  if (isObj(v.outlier_detection)) c.outlierDetection = outlier(v.outlier_detection, at.field('outlier_detection'));
  const thresholds = isObj(v.circuit_breakers) ? list(v.circuit_breakers.thresholds, at.field('circuit_breakers').field('thresholds')) : [];
  const t = thresholds.find((x) => isObj(x) && (x.priority ?? 'DEFAULT') === 'DEFAULT');
  if (isObj(t)) {
    const ta = at.field('circuit_breakers').field('thresholds').field(thresholds.indexOf(t));
    const cb: NonNullable<ClusterSpec['circuitBreakers']> = {};
    const set = (k: keyof typeof cb, f: string): void => {
      const n = wrapped(t[f], ta.field(f));
      if (n !== undefined) cb[k] = n;
    };
    set('maxConnections', 'max_connections');
    set('maxPendingRequests', 'max_pending_requests');
    set('maxRequests', 'max_requests');
    set('maxRetries', 'max_retries');
    c.circuitBreakers = cb;
  }
  const opts = isObj(v.typed_extension_protocol_options) ? v.typed_extension_protocol_options['envoy.extensions.upstreams.http.v3.HttpProtocolOptions'] : undefined;
  if ((isObj(opts) && isObj(opts.explicit_http_config) && opts.explicit_http_config.http2_protocol_options !== undefined) || v.http2_protocol_options !== undefined) c.http2 = true;
  // max_requests_per_connection: in the common HTTP options, or the cluster's deprecated field.
  const common = isObj(opts) && isObj(opts.common_http_protocol_options) ? opts.common_http_protocol_options : undefined;
  const mrpc = common?.max_requests_per_connection !== undefined
    ? wrapped(common.max_requests_per_connection, at.field('typed_extension_protocol_options').field('common_http_protocol_options').field('max_requests_per_connection'))
    : wrapped(v.max_requests_per_connection, at.field('max_requests_per_connection'));
  if (mrpc !== undefined && mrpc > 0) c.maxRequestsPerConnection = mrpc;
  const protocol = typeof meta.protocol === 'string' && PROTOCOLS.has(meta.protocol) ? (meta.protocol as AppProtocol) : c.http2 ? 'http2' : 'unknown';
  c.protocol = protocol;
  if (isObj(meta.tls) && typeof meta.tls.mode === 'string' && TLS_MODES.has(meta.tls.mode)) {
    const tls: NonNullable<ClusterSpec['tls']> = { mode: meta.tls.mode as TlsMode };
    if (typeof meta.tls.sni === 'string') tls.sni = meta.tls.sni;
    if (Array.isArray(meta.tls.subjectAltNames)) tls.subjectAltNames = meta.tls.subjectAltNames.map(String);
    c.tls = tls;
  }
  const hcs = list(v.health_checks, at.field('health_checks'));
  if (hcs.length > 1) at.field('health_checks').error('only one health check per cluster is supported');
  if (hcs.length > 0) {
    const hc = healthCheck(hcs[0], at.field('health_checks').field(0));
    if (hc) c.healthCheck = hc;
  }
  if (isObj(v.transport_socket)) {
    const m = upstreamTls(v.transport_socket, at.field('transport_socket'));
    if (m) c.mtls = m;
  }
  if (meta.local === true) c.local = true;
  if (type === 'EDS') return { cluster: c };
  const endpoints = translateLoadAssignment(obj(v.load_assignment, at.field('load_assignment')) ?? {}, at.field('load_assignment'), name);
  if (c.discovery === 'LOGICAL_DNS') {
    const first = endpoints?.endpoints[0];
    if (!first) return at.field('load_assignment').error('a DNS cluster needs its host and port');
    c.dns = { host: first.address, port: first.port };
    return { cluster: c };
  }
  return endpoints ? { cluster: c, endpoints } : { cluster: c };
}

/** One ClusterLoadAssignment (EDS), or a STATIC cluster's load_assignment. */
export function translateLoadAssignment(v: Obj, at: At, clusterName?: string): EndpointSet | undefined {
  const cluster = clusterName ?? str(v.cluster_name, at.field('cluster_name'));
  if (cluster === undefined) return at.field('cluster_name').error('missing');
  const endpoints: Endpoint[] = [];
  list(v.endpoints, at.field('endpoints')).forEach((g, i) => {
    const ga = at.field('endpoints').field(i);
    const lg = obj(g, ga) ?? {};
    const loc = isObj(lg.locality) ? lg.locality : {};
    const locality = { region: text(loc.region, ''), zone: text(loc.zone, ''), subZone: text(loc.sub_zone, '') };
    list(lg.lb_endpoints, ga.field('lb_endpoints')).forEach((e, j) => {
      const ea = ga.field('lb_endpoints').field(j);
      const lb = obj(e, ea) ?? {};
      const sa = isObj(lb.endpoint) && isObj(lb.endpoint.address) ? lb.endpoint.address.socket_address : undefined;
      if (!isObj(sa) || typeof sa.address !== 'string') return ea.field('endpoint').error('only socket addresses are supported');
      const port = num(sa.port_value ?? 0, ea.field('endpoint').field('address').field('socket_address').field('port_value'));
      if (port === undefined || port < 1 || port > 65535) return ea.field('endpoint').error(`bad port ${show(sa.port_value)}`);
      const meta = readTrellisMetadata(lb.metadata);
      const ep: Endpoint = {
        address: sa.address,
        port,
        healthy: HEALTHY.has(text(lb.health_status, 'UNKNOWN')),
        weight: wrapped(lb.load_balancing_weight, ea.field('load_balancing_weight')) ?? 1,
        locality,
        labels: isObj(meta.labels) ? Object.fromEntries(Object.entries(meta.labels).map(([k, x]) => [k, String(x)])) : {},
      };
      if (typeof meta.pod === 'string') ep.pod = meta.pod;
      endpoints.push(ep);
    });
  });
  return { cluster, endpoints };
}
