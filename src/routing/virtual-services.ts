// VirtualServices as routes: Istio http, tcp and tls rules translated in order, with Istio's defaults (retries, no timeout).
import type { IstioDestination, IstioHeaders, IstioHttpMatch, IstioHttpRoute, IstioL4Route, IstioStringMatch, VirtualService } from '../resources/kinds-traffic.ts';
import { clusterName, compare, hostMatches, report, resolveHost, type Ctx, type HostEntry } from './context.ts';
import type { HeaderMatch, HeaderOps, RetryPolicy, Route, RouteAction, RouteMatch, StringMatch, TcpRoute, WeightedCluster } from './model.ts';

/** Istio's mesh-wide default retry policy, used on every HTTP route without `retries`. */
export function defaultRetry(): RetryPolicy {
  return { attempts: 2, retryOn: ['connect-failure', 'refused-stream', 'unavailable', 'cancelled', 'retriable-status-codes'], retriableStatusCodes: [503] };
}

/** The gateway names a VirtualService (or one match) binds to, in `namespace/name` form; `mesh` for sidecars. */
export function boundGateways(vs: VirtualService, gateways: string[] | undefined): string[] {
  const ns = vs.metadata.namespace ?? 'default';
  return (gateways ?? ['mesh']).map((g) => (g === 'mesh' || g.includes('/') ? g : `${ns}/${g}`));
}

/**
 * The VirtualService that applies to each host for sidecars: a VirtualService naming the host exactly wins over
 * wildcards, the most specific wildcard over broader ones; ties go to the first by namespace/name (Istio takes the
 * oldest, which manifests do not record) and the others are reported.
 */
export function meshVirtualServices(ctx: Ctx, all: readonly VirtualService[]): Map<string, VirtualService> {
  const sorted = [...all].filter((vs) => boundGateways(vs, vs.spec.gateways).includes('mesh')).sort((a, b) => compare(key(a), key(b)));
  const out = new Map<string, { vs: VirtualService; pattern: string }>();
  for (const vs of sorted) {
    const ns = vs.metadata.namespace ?? 'default';
    vs.spec.hosts.forEach((h, i) => {
      const pattern = resolveHost(ctx, h, ns);
      const hits = [...ctx.hosts.keys()].filter((host) => hostMatches(pattern, host));
      if (hits.length === 0 && !pattern.startsWith('*')) report(ctx, 'warning', 'unknown-host', vs, ['spec', 'hosts', i], `host ${pattern} matches no Service or ServiceEntry`);
      for (const host of hits) {
        const prev = out.get(host);
        if (!prev || specificity(pattern) > specificity(prev.pattern)) out.set(host, { vs, pattern });
        else if (prev.vs !== vs && specificity(pattern) === specificity(prev.pattern) && !pattern.startsWith('*')) {
          report(ctx, 'warning', 'conflict', vs, ['spec', 'hosts', i], `VirtualService ${key(prev.vs)} already routes ${host}; this one is ignored for it`);
        }
      }
    });
  }
  return new Map([...out].map(([h, v]) => [h, v.vs]));
}

function key(vs: VirtualService): string {
  return `${vs.metadata.namespace ?? 'default'}/${vs.metadata.name}`;
}

function specificity(pattern: string): number {
  return pattern === '*' ? 0 : pattern.startsWith('*') ? pattern.length : 100000;
}

function stringMatch(m: IstioStringMatch, ignoreCase = false): StringMatch {
  if ('exact' in m) return ignoreCase ? { exact: m.exact, ignoreCase: true } : { exact: m.exact };
  if ('prefix' in m) return ignoreCase ? { prefix: m.prefix, ignoreCase: true } : { prefix: m.prefix };
  return { regex: m.regex };
}

function routeMatch(m: IstioHttpMatch | undefined): RouteMatch {
  const out: RouteMatch = { path: m?.uri ? stringMatch(m.uri, m.ignoreUriCase) : { prefix: '/' }, headers: [] };
  if (!m) return out;
  const pseudo: [string, IstioStringMatch | undefined][] = [[':method', m.method], [':authority', m.authority], [':scheme', m.scheme]];
  for (const [name, sm] of pseudo) if (sm) out.headers.push({ name, match: stringMatch(sm) });
  for (const h of m.headers) out.headers.push(h.match ? { name: h.name, match: stringMatch(h.match) } : { name: h.name, present: true });
  for (const h of m.withoutHeaders) {
    const hm: HeaderMatch = h.match ? { name: h.name, match: stringMatch(h.match), invert: true } : { name: h.name, present: true, invert: true };
    out.headers.push(hm);
  }
  if (m.queryParams.length > 0) out.queryParams = m.queryParams.map((q) => (q.match ? { name: q.name, match: stringMatch(q.match) } : { name: q.name }));
  if (m.sourceLabels) out.sourceLabels = { ...m.sourceLabels };
  if (m.sourceNamespace) out.sourceNamespace = m.sourceNamespace;
  return out;
}

/** Whether a route matches every request (Istio stops translating rules after one). */
export function isCatchAll(m: RouteMatch): boolean {
  const p = m.path;
  const pathAll = !p || ('prefix' in p && p.prefix === '/') || ('regex' in p && (p.regex === '.*' || p.regex === '/.*'));
  return pathAll && m.headers.length === 0 && !m.queryParams?.length && !m.sourceLabels && !m.sourceNamespace;
}

export interface DestinationContext {
  ctx: Ctx;
  vs: VirtualService;
  /** The port of the listener being built; a destination without a port on a multi-port host takes it. */
  listenerPort: number;
}

/** The cluster for a destination, reporting unknown hosts, ports and subsets at the destination's field. */
export function destinationCluster(d: DestinationContext, dest: IstioDestination): string {
  const { ctx, vs } = d;
  const host = resolveHost(ctx, dest.host, vs.metadata.namespace ?? 'default');
  const entry: HostEntry | undefined = ctx.hosts.get(host);
  let port = dest.port;
  if (!entry) {
    report(ctx, 'warning', 'unknown-host', vs, [...dest.path, 'host'], `destination host ${host} matches no Service or ServiceEntry; requests routed here fail`);
    return clusterName(port ?? d.listenerPort, dest.subset, host);
  }
  if (port === undefined) port = entry.ports.length === 1 ? entry.ports[0]?.port : entry.ports.some((p) => p.port === d.listenerPort) ? d.listenerPort : undefined;
  if (port === undefined) {
    report(ctx, 'warning', 'unknown-port', vs, dest.path, `${host} has several ports; destination.port is required`);
    port = entry.ports[0]?.port ?? d.listenerPort;
  } else if (!entry.ports.some((p) => p.port === port)) {
    report(ctx, 'warning', 'unknown-port', vs, [...dest.path, 'port', 'number'], `${host} has no port ${port}`);
  }
  if (dest.subset !== undefined) {
    const dr = ctx.destinationRules.get(host);
    if (!dr || !dr.spec.subsets.some((s) => s.name === dest.subset)) {
      report(ctx, 'warning', 'unknown-subset', vs, [...dest.path, 'subset'], `subset "${dest.subset}" is not defined by ${dr ? `DestinationRule ${dr.metadata.namespace ?? ''}/${dr.metadata.name}` : `any DestinationRule for ${host}`}`);
    }
  }
  return clusterName(port, dest.subset, host);
}

function weighted(d: DestinationContext, route: IstioHttpRoute['route'], path: readonly (string | number)[]): WeightedCluster[] {
  const out = route.map((r) => ({ cluster: destinationCluster(d, r.destination), weight: route.length === 1 ? 100 : (r.weight ?? 0) }));
  if (out.length > 1 && out.every((w) => w.weight === 0)) report(d.ctx, 'warning', 'weights', d.vs, path, 'every destination has weight 0; the route sends no traffic');
  return out;
}

function ops(h: IstioHeaders | undefined): { request?: HeaderOps; response?: HeaderOps } | undefined {
  if (!h?.request && !h?.response) return undefined;
  const out: { request?: HeaderOps; response?: HeaderOps } = {};
  if (h.request) out.request = { set: { ...h.request.set }, add: { ...h.request.add }, remove: [...h.request.remove] };
  if (h.response) out.response = { set: { ...h.response.set }, add: { ...h.response.add }, remove: [...h.response.remove] };
  return out;
}

function retryPolicy(r: IstioHttpRoute): RetryPolicy | undefined {
  if (!r.retries) return defaultRetry();
  if (r.retries.attempts === 0) return undefined;
  const base = defaultRetry();
  const out: RetryPolicy = { attempts: r.retries.attempts, retryOn: base.retryOn, retriableStatusCodes: base.retriableStatusCodes ?? [] };
  if (r.retries.retryOn !== undefined) {
    const parts = r.retries.retryOn.split(',').map((s) => s.trim()).filter((s) => s !== '');
    const codes = parts.filter((s) => /^[0-9]{3}$/.test(s)).map(Number);
    out.retryOn = parts.filter((s) => !/^[0-9]{3}$/.test(s));
    if (codes.length > 0) {
      out.retriableStatusCodes = codes;
      if (!out.retryOn.includes('retriable-status-codes')) out.retryOn.push('retriable-status-codes');
    } else delete out.retriableStatusCodes;
  }
  if (r.retries.perTryTimeoutMs !== undefined) out.perTryTimeoutMs = r.retries.perTryTimeoutMs;
  return out;
}

function action(d: DestinationContext, r: IstioHttpRoute, m: IstioHttpMatch | undefined): RouteAction {
  if (r.redirect) {
    const a: RouteAction = { type: 'redirect', status: r.redirect.redirectCode };
    if (r.redirect.scheme) a.scheme = r.redirect.scheme;
    if (r.redirect.authority) a.host = r.redirect.authority;
    if (r.redirect.port !== undefined) a.port = r.redirect.port;
    // Istio replaces the whole path, whatever the match was.
    if (r.redirect.uri !== undefined) a.path = r.redirect.uri;
    return a;
  }
  if (r.directResponse) {
    const a: RouteAction = { type: 'direct-response', status: r.directResponse.status };
    if (r.directResponse.body !== undefined) a.body = r.directResponse.body;
    return a;
  }
  const a: Extract<RouteAction, { type: 'route' }> = { type: 'route', clusters: weighted(d, r.route, [...r.path, 'route']) };
  if (r.timeoutMs !== undefined && r.timeoutMs > 0) a.timeoutMs = r.timeoutMs;
  const retry = retryPolicy(r);
  if (retry) a.retry = retry;
  const hash = a.clusters[0] ? d.ctx.hashPolicies.get(a.clusters[0].cluster) : undefined;
  if (hash) a.hashPolicy = hash.map((h) => ({ ...h }));
  if (r.rewrite) {
    const rw: NonNullable<typeof a.rewrite> = {};
    if (r.rewrite.uri !== undefined) {
      // Istio replaces the matched prefix; a path matched exactly (or by regex) is replaced as a whole.
      if (!m?.uri || 'prefix' in m.uri) rw.prefix = r.rewrite.uri;
      else rw.fullPath = r.rewrite.uri;
    }
    if (r.rewrite.authority !== undefined) rw.authority = r.rewrite.authority;
    a.rewrite = rw;
  }
  if (r.mirror) a.mirror = { cluster: destinationCluster(d, r.mirror), percent: r.mirrorPercent ?? 100 };
  const req = r.headers?.request;
  if (req && (Object.keys(req.set).length > 0 || Object.keys(req.add).length > 0)) a.headersToAdd = { ...req.add, ...req.set };
  return a;
}

/**
 * The routes one VirtualService gives a listener: http rules in order, one route per match; matches for another
 * port or another gateway are left out, and nothing after a catch-all is kept (Istio never reaches it).
 * Requests matching none of the routes get 404: Istio adds no default route after a VirtualService's rules.
 */
export function virtualServiceRoutes(ctx: Ctx, vs: VirtualService, listenerPort: number, gateway: string): Route[] {
  const d: DestinationContext = { ctx, vs, listenerPort };
  const out: Route[] = [];
  const vsGateways = boundGateways(vs, vs.spec.gateways);
  const base = `${vs.metadata.namespace ?? 'default'}/${vs.metadata.name}`;
  for (let i = 0; i < vs.spec.http.length; i++) {
    const r = vs.spec.http[i];
    if (!r) continue;
    const matches: (IstioHttpMatch | undefined)[] = r.match.length > 0 ? r.match : [undefined];
    let caught = false;
    for (let j = 0; j < matches.length; j++) {
      const m = matches[j];
      if (m?.port !== undefined && m.port !== listenerPort) continue;
      if (!(m?.gateways ? boundGateways(vs, m.gateways) : vsGateways).includes(gateway)) continue;
      const route: Route = {
        name: matches.length > 1 ? `${base}/http[${i}].match[${j}]` : `${base}/http[${i}]`,
        match: routeMatch(m),
        action: action(d, r, m),
        source: { origin: vs.origin, path: m ? m.path : r.path },
      };
      if (r.fault) route.fault = { ...r.fault };
      const h = ops(r.headers);
      if (h) route.headers = h;
      out.push(route);
      if (isCatchAll(route.match)) {
        caught = true;
        break;
      }
    }
    if (caught) break;
  }
  return out;
}

/** The tcp (or tls) routes of a VirtualService for a listener port, in order. */
export function virtualServiceTcpRoutes(ctx: Ctx, vs: VirtualService, listenerPort: number, gateway: string, kind: 'tcp' | 'tls'): TcpRoute[] {
  const d: DestinationContext = { ctx, vs, listenerPort };
  const out: TcpRoute[] = [];
  const vsGateways = boundGateways(vs, vs.spec.gateways);
  const base = `${vs.metadata.namespace ?? 'default'}/${vs.metadata.name}`;
  vs.spec[kind].forEach((r: IstioL4Route, i) => {
    const matches = r.match.length > 0 ? r.match : [undefined];
    matches.forEach((m, j) => {
      if (m?.port !== undefined && m.port !== listenerPort) return;
      if (!(m?.gateways ? boundGateways(vs, m.gateways) : vsGateways).includes(gateway)) return;
      const t: TcpRoute = {
        name: matches.length > 1 ? `${base}/${kind}[${i}].match[${j}]` : `${base}/${kind}[${i}]`,
        clusters: r.route.map((rd) => ({ cluster: destinationCluster(d, rd.destination), weight: r.route.length === 1 ? 100 : (rd.weight ?? 0) })),
      };
      if (m?.sniHosts) t.sniHosts = [...m.sniHosts];
      if (m?.destinationSubnets) t.destinationSubnets = [...m.destinationSubnets];
      if (m?.sourceLabels) t.sourceLabels = { ...m.sourceLabels };
      if (m?.sourceNamespace) t.sourceNamespace = m.sourceNamespace;
      out.push(t);
    });
  });
  return out;
}

/** The cluster a plain TCP listener uses: the heaviest cluster of the first route that matches everything. */
export function primaryTcpCluster(routes: readonly TcpRoute[]): string | undefined {
  const r = routes.find((t) => !t.sniHosts && !t.destinationSubnets && !t.sourceLabels && !t.sourceNamespace) ?? routes[0];
  if (!r) return undefined;
  return [...r.clusters].sort((a, b) => b.weight - a.weight)[0]?.cluster;
}
