// DestinationRules applied to clusters: the default and subset clusters of every host port, with LB, pools, outlier detection and TLS.
import type { DestinationRule, IstioTrafficPolicy } from '../resources/kinds-traffic.ts';
import { clusterName, compare, labelsMatch, report, resolveHost, type Ctx, type HostEntry, type HostPort } from './context.ts';
import type { ClusterSpec, HashPolicy } from './model.ts';

type Policy = Omit<IstioTrafficPolicy, 'portLevelSettings'>;

/**
 * Picks the DestinationRule for each host. Short hosts resolve in the rule's namespace. When several rules name
 * one host, the first by namespace/name applies and the others are reported (Istio merges only distinct subsets).
 */
export function indexDestinationRules(ctx: Ctx, rules: readonly DestinationRule[]): void {
  const sorted = [...rules].sort((a, b) => compare(`${a.metadata.namespace ?? ''}/${a.metadata.name}`, `${b.metadata.namespace ?? ''}/${b.metadata.name}`));
  for (const dr of sorted) {
    const host = resolveHost(ctx, dr.spec.host, dr.metadata.namespace ?? 'default');
    const hosts = host.startsWith('*') ? [...ctx.hosts.keys()].filter((h) => (host === '*' ? true : h.endsWith(host.slice(1)))) : ctx.hosts.has(host) ? [host] : [];
    if (hosts.length === 0) {
      report(ctx, 'warning', 'unknown-host', dr, ['spec', 'host'], `host ${host} matches no Service or ServiceEntry; the rule has no effect`);
      continue;
    }
    for (const h of hosts) {
      const prev = ctx.destinationRules.get(h);
      // An exact host beats a wildcard one.
      if (prev && !(prev.spec.host.startsWith('*') && !host.startsWith('*'))) {
        if (!host.startsWith('*')) report(ctx, 'warning', 'conflict', dr, ['spec', 'host'], `DestinationRule ${prev.metadata.namespace ?? ''}/${prev.metadata.name} already configures ${h}; this rule is ignored for it`);
        continue;
      }
      ctx.destinationRules.set(h, dr);
    }
  }
}

/** Top-level policy, then its portLevelSettings for the port; a subset's policy (and its port settings) override field by field. */
function effectivePolicy(dr: DestinationRule | undefined, port: number, subset: string | undefined): Policy {
  const merge = (base: Policy, tp: IstioTrafficPolicy | undefined): Policy => {
    if (!tp) return base;
    const { portLevelSettings, ...top } = tp;
    const out: Policy = { ...base, ...defined(top) };
    const pl = portLevelSettings.find((p) => p.port === port);
    if (pl) {
      const { port: _p, ...rest } = pl;
      Object.assign(out, defined(rest));
    }
    return out;
  };
  let p = merge({}, dr?.spec.trafficPolicy);
  if (subset !== undefined) p = merge(p, dr?.spec.subsets.find((s) => s.name === subset)?.trafficPolicy);
  return p;
}

function defined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

function makeCluster(ctx: Ctx, entry: HostEntry, hp: HostPort, subset: string | undefined, policy: Policy): ClusterSpec {
  const name = clusterName(hp.port, subset, entry.host);
  const c: ClusterSpec = {
    name,
    host: entry.host,
    port: hp.port,
    discovery: entry.discovery,
    lbPolicy: ctx.defaultLb,
    http2: hp.protocol === 'grpc' || hp.protocol === 'http2',
    protocol: hp.protocol,
  };
  if (subset !== undefined) c.subset = subset;
  if (entry.dns) c.dns = { host: entry.dns.host, port: entry.dns.port ?? (typeof hp.targetPort === 'number' ? hp.targetPort : hp.port) };
  const lb = policy.loadBalancer;
  if (lb?.consistentHash) {
    c.lbPolicy = 'RING_HASH';
    if (lb.consistentHash.minimumRingSize !== undefined) c.ringHash = { minimumRingSize: lb.consistentHash.minimumRingSize };
    const ch = lb.consistentHash;
    const h: HashPolicy = {};
    if (ch.httpHeaderName) h.header = ch.httpHeaderName;
    if (ch.useSourceIp) h.sourceIp = true;
    if (ch.httpQueryParameterName) h.queryParameter = ch.httpQueryParameterName;
    if (ch.httpCookie) {
      h.cookie = { name: ch.httpCookie.name };
      if (ch.httpCookie.ttlMs !== undefined) h.cookie.ttlMs = ch.httpCookie.ttlMs;
      if (ch.httpCookie.path) h.cookie.path = ch.httpCookie.path;
    }
    ctx.hashPolicies.set(name, [h]);
  } else if (lb?.simple === 'ROUND_ROBIN' || lb?.simple === 'LEAST_REQUEST' || lb?.simple === 'RANDOM') c.lbPolicy = lb.simple;
  else if (lb?.simple === 'LEAST_CONN') c.lbPolicy = 'LEAST_REQUEST';
  const pool = policy.connectionPool;
  if (pool) {
    const cb: NonNullable<ClusterSpec['circuitBreakers']> = {};
    if (pool.tcp?.maxConnections !== undefined) cb.maxConnections = pool.tcp.maxConnections;
    if (pool.http?.http1MaxPendingRequests !== undefined) cb.maxPendingRequests = pool.http.http1MaxPendingRequests;
    if (pool.http?.http2MaxRequests !== undefined) cb.maxRequests = pool.http.http2MaxRequests;
    if (pool.http?.maxRetries !== undefined) cb.maxRetries = pool.http.maxRetries;
    if (Object.keys(cb).length > 0) c.circuitBreakers = cb;
    if (pool.tcp?.connectTimeoutMs !== undefined) c.connectTimeoutMs = pool.tcp.connectTimeoutMs;
    // Istio: 0 means unlimited.
    if (pool.http?.maxRequestsPerConnection) c.maxRequestsPerConnection = pool.http.maxRequestsPerConnection;
    if (pool.http?.h2UpgradePolicy === 'UPGRADE' && (hp.protocol === 'http' || hp.protocol === 'unknown')) c.http2 = true;
  }
  const od = policy.outlierDetection;
  if (od) {
    // Istio's defaults: 5 consecutive 5xx, a 10s interval, 30s base ejection, at most 10% of hosts ejected.
    c.outlierDetection = {
      consecutive5xx: od.consecutive5xxErrors ?? 5,
      intervalMs: od.intervalMs ?? 10000,
      baseEjectionTimeMs: od.baseEjectionTimeMs ?? 30000,
      maxEjectionPercent: od.maxEjectionPercent ?? 10,
    };
    if (od.consecutiveGatewayErrors !== undefined) c.outlierDetection.consecutiveGatewayErrors = od.consecutiveGatewayErrors;
  }
  if (policy.tls) {
    c.tls = { mode: policy.tls.mode };
    if (policy.tls.sni) c.tls.sni = policy.tls.sni;
    if (policy.tls.subjectAltNames) c.tls.subjectAltNames = [...policy.tls.subjectAltNames];
  }
  return c;
}

/** The default cluster of every host port, and one cluster per DestinationRule subset (Istio builds them all, used or not). */
export function addClusters(ctx: Ctx): void {
  for (const entry of ctx.hosts.values()) {
    const dr = ctx.destinationRules.get(entry.host);
    for (const hp of entry.ports) {
      const base = makeCluster(ctx, entry, hp, undefined, effectivePolicy(dr, hp.port, undefined));
      ctx.clusters.set(base.name, base);
      const all = entry.endpoints.get(hp.port) ?? [];
      if (base.discovery === 'EDS') ctx.endpoints.set(base.name, all);
      for (const s of dr?.spec.subsets ?? []) {
        const sc = makeCluster(ctx, entry, hp, s.name, effectivePolicy(dr, hp.port, s.name));
        ctx.clusters.set(sc.name, sc);
        if (sc.discovery === 'EDS') ctx.endpoints.set(sc.name, all.filter((e) => labelsMatch(s.labels, e.labels)));
      }
    }
    if (dr) {
      dr.spec.trafficPolicy?.portLevelSettings.forEach((pl, i) => {
        if (!entry.ports.some((p) => p.port === pl.port)) report(ctx, 'warning', 'unknown-port', dr, ['spec', 'trafficPolicy', 'portLevelSettings', i, 'port', 'number'], `${entry.host} has no port ${pl.port}`);
      });
      if (dr.spec.trafficPolicy?.loadBalancer?.simple === 'PASSTHROUGH') {
        report(ctx, 'warning', 'unsupported', dr, ['spec', 'trafficPolicy', 'loadBalancer', 'simple'], `PASSTHROUGH (original destination) is not supported; ${ctx.defaultLb} is used`);
      }
    }
  }
}
