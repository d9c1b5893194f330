// Gateway API routes: HTTPRoute and GRPCRoute on Gateway API Gateways (edge listeners) and on Services (GAMMA mesh routes).
import type { Origin } from '../resources/kinds.ts';
import type { BackendRef, GatewayApiGateway, GatewayHeaderMatch, GRPCRoute, HTTPRoute, HttpRouteFilter, ParentReference } from '../resources/kinds-traffic.ts';
import { clusterName, compare, hostMatches, isHttpLike, labelsMatch, report, type Ctx } from './context.ts';
import type { AppProtocol, EdgeListener, HeaderMatch, HeaderOps, Route, RouteAction, RouteMatch, StringMatch, VirtualHost } from './model.ts';
import { elementPrefix, escapeRegex } from './paths.ts';
import { defaultRetry } from './virtual-services.ts';

type AnyRoute = HTTPRoute | GRPCRoute;

/** A route with the keys Gateway API orders by (most specific first), then the route's name and rule order. */
export interface RankedRoute {
  route: Route;
  rank: (number | string)[];
}

export function sortRanked(rs: RankedRoute[]): Route[] {
  return [...rs]
    .sort((a, b) => {
      for (let i = 0; i < Math.max(a.rank.length, b.rank.length); i++) {
        const x = a.rank[i] ?? 0;
        const y = b.rank[i] ?? 0;
        if (x === y) continue;
        return typeof x === 'number' && typeof y === 'number' ? x - y : compare(String(x), String(y));
      }
      return 0;
    })
    .map((r) => r.route);
}

function headerMatch(h: GatewayHeaderMatch): HeaderMatch {
  return { name: h.name, match: h.type === 'Exact' ? { exact: h.value } : { regex: h.value } };
}

function modifier(m: { set: { name: string; value: string }[]; add: { name: string; value: string }[]; remove: string[] }): HeaderOps {
  return { set: Object.fromEntries(m.set.map((x) => [x.name, x.value])), add: Object.fromEntries(m.add.map((x) => [x.name, x.value])), remove: [...m.remove] };
}

function referencePermitted(ctx: Ctx, fromKind: string, fromNs: string, toNs: string, service: string): boolean {
  return ctx.referenceGrants.some(
    (g) =>
      (g.metadata.namespace ?? 'default') === toNs &&
      g.spec.from.some((f) => f.group === 'gateway.networking.k8s.io' && f.kind === fromKind && f.namespace === fromNs) &&
      g.spec.to.some((t) => t.group === '' && t.kind === 'Service' && (t.name === undefined || t.name === service)),
  );
}

function backendCluster(ctx: Ctx, owner: AnyRoute, ref: BackendRef): string | undefined {
  const ns = ref.namespace ?? owner.metadata.namespace ?? 'default';
  if (!((ref.group === '' || ref.group === 'core') && ref.kind === 'Service')) {
    report(ctx, 'warning', 'unsupported', owner, [...ref.path, 'kind'], `backendRef kind ${ref.group ? `${ref.group}/` : ''}${ref.kind} is not supported; only Services are`);
    return undefined;
  }
  const ownerNs = owner.metadata.namespace ?? 'default';
  if (ns !== ownerNs && !referencePermitted(ctx, owner.kind, ownerNs, ns, ref.name)) {
    // Gateway API: a backendRef into another namespace needs a ReferenceGrant there (RefNotPermitted otherwise).
    report(ctx, 'warning', 'ref-not-permitted', owner, [...ref.path, 'namespace'], `backendRef to Service ${ns}/${ref.name} is not permitted: no ReferenceGrant in ${ns} allows ${owner.kind}s from ${ownerNs}`);
    return undefined;
  }
  const host = `${ref.name}.${ns}.svc.${ctx.domain}`;
  const entry = ctx.hosts.get(host);
  if (!entry) {
    report(ctx, 'warning', 'unknown-backend', owner, [...ref.path, 'name'], `backendRef names Service ${ns}/${ref.name}, which does not exist`);
    return undefined;
  }
  if (ref.port === undefined || !entry.ports.some((p) => p.port === ref.port)) {
    report(ctx, 'warning', 'unknown-backend', owner, [...ref.path, 'port'], `Service ${ns}/${ref.name} has no port ${ref.port ?? '(none given)'}`);
    return undefined;
  }
  return clusterName(ref.port, undefined, host);
}

/** The action and header operations of one rule: filters first (redirect, rewrite, mirror, headers), then weighted backends. */
function ruleAction(ctx: Ctx, owner: AnyRoute, filters: HttpRouteFilter[], backends: BackendRef[], timeouts?: { requestMs?: number; backendRequestMs?: number }): { action: RouteAction; headers?: Route['headers'] } {
  const headers: NonNullable<Route['headers']> = {};
  for (const f of filters) {
    if (f.type === 'RequestHeaderModifier') headers.request = modifier(f.modifier);
    if (f.type === 'ResponseHeaderModifier') headers.response = modifier(f.modifier);
  }
  const h = headers.request || headers.response ? { headers } : {};
  const redirect = filters.find((f) => f.type === 'RequestRedirect');
  if (redirect) {
    const a: RouteAction = { type: 'redirect', status: redirect.statusCode };
    if (redirect.scheme) a.scheme = redirect.scheme;
    if (redirect.hostname) a.host = redirect.hostname;
    if (redirect.port !== undefined) a.port = redirect.port;
    if (redirect.path?.type === 'ReplaceFullPath') a.path = redirect.path.value;
    if (redirect.path?.type === 'ReplacePrefixMatch') a.prefixRewrite = redirect.path.value;
    return { action: a, ...h };
  }
  const clusters = backends.flatMap((b) => {
    const c = backendCluster(ctx, owner, b);
    return c ? [{ cluster: c, weight: b.weight }] : [];
  });
  // Gateway API: a rule with no valid backend (or only zero weights) answers 500.
  if (clusters.length === 0 || clusters.every((c) => c.weight === 0)) return { action: { type: 'direct-response', status: 500 }, ...h };
  const a: Extract<RouteAction, { type: 'route' }> = { type: 'route', clusters: clusters.filter((c) => c.weight > 0) };
  const retry = defaultRetry();
  if (timeouts?.backendRequestMs) retry.perTryTimeoutMs = timeouts.backendRequestMs;
  a.retry = retry;
  if (timeouts?.requestMs) a.timeoutMs = timeouts.requestMs;
  const hash = a.clusters[0] ? ctx.hashPolicies.get(a.clusters[0].cluster) : undefined;
  if (hash) a.hashPolicy = hash.map((x) => ({ ...x }));
  const rewrite = filters.find((f) => f.type === 'URLRewrite');
  if (rewrite) {
    a.rewrite = {};
    if (rewrite.hostname) a.rewrite.authority = rewrite.hostname;
    if (rewrite.path?.type === 'ReplaceFullPath') a.rewrite.fullPath = rewrite.path.value;
    if (rewrite.path?.type === 'ReplacePrefixMatch') a.rewrite.prefix = rewrite.path.value;
  }
  const mirror = filters.find((f) => f.type === 'RequestMirror');
  if (mirror) {
    const c = backendCluster(ctx, owner, mirror.backendRef);
    if (c) a.mirror = { cluster: c, percent: mirror.percent };
  }
  if (headers.request && (Object.keys(headers.request.set).length > 0 || Object.keys(headers.request.add).length > 0)) a.headersToAdd = { ...headers.request.add, ...headers.request.set };
  return { action: a, ...h };
}

function httpPath(p: HTTPRoute['spec']['rules'][number]['matches'][number]['path']): StringMatch {
  if (p.type === 'Exact') return { exact: p.value };
  if (p.type === 'RegularExpression') return { regex: p.value };
  return elementPrefix(p.value);
}

/** Every route an HTTPRoute or GRPCRoute yields, ranked by Gateway API's precedence rules. */
export function gatewayApiRoutes(ctx: Ctx, r: AnyRoute): RankedRoute[] {
  const out: RankedRoute[] = [];
  const base = `${r.metadata.namespace ?? 'default'}/${r.metadata.name}`;
  const src = (path: readonly (string | number)[]): { origin: Origin; path: readonly (string | number)[] } => ({ origin: r.origin, path });
  if (r.kind === 'HTTPRoute') {
    r.spec.rules.forEach((rule, i) => {
      const { action, headers } = ruleAction(ctx, r, rule.filters, rule.backendRefs, rule.timeouts);
      rule.matches.forEach((m, j) => {
        const match: RouteMatch = { path: httpPath(m.path), headers: m.headers.map(headerMatch) };
        if (m.method) match.headers.unshift({ name: ':method', match: { exact: m.method } });
        if (m.queryParams.length > 0) match.queryParams = m.queryParams.map((q) => ({ name: q.name, match: q.type === 'Exact' ? { exact: q.value } : { regex: q.value } }));
        const route: Route = { name: `${base}/rules[${i}].matches[${j}]`, match, action: structuredClone(action), source: src([...rule.path, 'matches', j]) };
        if (headers) route.headers = structuredClone(headers);
        // Exact before prefix (longest first) before regex; then method, header count, query count; then name and order.
        const kind = m.path.type === 'Exact' ? 0 : m.path.type === 'PathPrefix' ? 1 : 2;
        out.push({ route, rank: [kind, -m.path.value.length, m.method ? 0 : 1, -m.headers.length, -m.queryParams.length, base, i, j] });
      });
    });
  } else {
    r.spec.rules.forEach((rule, i) => {
      const { action, headers } = ruleAction(ctx, r, rule.filters, rule.backendRefs);
      const matches = rule.matches.length > 0 ? rule.matches : [{ headers: [] }];
      matches.forEach((m, j) => {
        const match: RouteMatch = { path: grpcPath(m.method), headers: m.headers.map(headerMatch) };
        const route: Route = { name: `${base}/rules[${i}].matches[${j}]`, match, action: structuredClone(action), source: src(rule.matches.length > 0 ? [...rule.path, 'matches', j] : rule.path) };
        if (headers) route.headers = structuredClone(headers);
        const exact = m.method?.type === 'Exact' ? 0 : m.method ? 1 : 2;
        out.push({ route, rank: [exact, -((m.method?.service?.length ?? 0) + (m.method?.method?.length ?? 0)), -m.headers.length, base, i, j] });
      });
    });
  }
  return out;
}

/** gRPC calls are `POST /<service>/<method>`: a method match is a path match. */
export function grpcPath(m: GRPCRoute['spec']['rules'][number]['matches'][number]['method']): StringMatch {
  if (!m) return { prefix: '/' };
  if (m.type === 'Exact') {
    if (m.service !== undefined && m.method !== undefined) return { exact: `/${m.service}/${m.method}` };
    if (m.service !== undefined) return { prefix: `/${m.service}/` };
    return { regex: `/[^/]+/${escapeRegex(m.method ?? '')}` };
  }
  // Each part is grouped, so an alternation in one (`A|B`) stays inside its path segment.
  return { regex: `/(?:${m.service ?? '[^/]+'})/(?:${m.method ?? '[^/]+'})` };
}

function isServiceRef(p: ParentReference): boolean {
  return (p.group === '' || p.group === 'core') && p.kind === 'Service';
}

/** Hostnames shared by a route and a listener (either side may be a wildcard); undefined when they do not intersect. */
function intersect(routeHosts: string[], listenerHost: string | undefined): string[] | undefined {
  if (routeHosts.length === 0) return [listenerHost ?? '*'];
  if (!listenerHost) return routeHosts;
  const out = routeHosts.flatMap((h) => (hostMatches(listenerHost, h) ? [h] : hostMatches(h, listenerHost) ? [listenerHost] : []));
  return out.length > 0 ? [...new Set(out)] : undefined;
}

/**
 * Attaches routes to their parents. Gateway parents become edge listeners (one per Gateway port) with a virtual host
 * per hostname; Service parents (GAMMA) give the Service's own listeners their routes, returned by `host:port`.
 */
export function attachGatewayApiRoutes(ctx: Ctx, gateways: readonly GatewayApiGateway[], routes: readonly AnyRoute[]): Map<string, RankedRoute[]> {
  const gamma = new Map<string, RankedRoute[]>();
  const vhosts = new Map<string, Map<string, RankedRoute[]>>();
  const gwByName = new Map(gateways.map((g) => [`${g.metadata.namespace ?? 'default'}/${g.metadata.name}`, g]));
  for (const g of gateways) {
    const ns = g.metadata.namespace ?? 'default';
    for (const l of g.spec.listeners) {
      const name = `gateway/${ns}/${g.metadata.name}:${l.port}`;
      if (ctx.edges.has(name)) continue;
      const protocol: AppProtocol = l.protocol === 'HTTP' ? 'http' : l.protocol === 'HTTPS' ? 'https' : l.protocol === 'TLS' ? 'tls' : 'tcp';
      const edge: EdgeListener = { name, kind: 'Gateway', port: l.port, protocol, routeConfig: name };
      if (l.tls) {
        const hosts = g.spec.listeners.filter((x) => x.port === l.port && x.hostname).map((x) => x.hostname ?? '');
        edge.tls = { mode: l.tls.mode === 'Passthrough' ? 'PASSTHROUGH' : 'SIMPLE', hosts };
        if (l.tls.certificateRefs[0]) edge.tls.credentialName = l.tls.certificateRefs[0];
      }
      ctx.edges.set(name, edge);
      vhosts.set(name, new Map());
    }
  }
  const sorted = [...routes].sort((a, b) => compare(`${a.metadata.namespace ?? ''}/${a.metadata.name}`, `${b.metadata.namespace ?? ''}/${b.metadata.name}`));
  for (const r of sorted) {
    const rns = r.metadata.namespace ?? 'default';
    const ranked = gatewayApiRoutes(ctx, r);
    for (const p of r.spec.parentRefs) {
      const pns = p.namespace ?? rns;
      if (isServiceRef(p)) {
        const host = `${p.name}.${pns}.svc.${ctx.domain}`;
        const entry = ctx.hosts.get(host);
        if (!entry) {
          report(ctx, 'warning', 'unknown-parent', r, [...p.path, 'name'], `parentRef names Service ${pns}/${p.name}, which does not exist`);
          continue;
        }
        const ports = entry.ports.filter((hp) => (p.port === undefined ? isHttpLike(hp.protocol) : hp.port === p.port));
        if (ports.length === 0) report(ctx, 'warning', 'unknown-parent', r, [...p.path, 'port'], `Service ${pns}/${p.name} has no ${p.port === undefined ? 'HTTP' : ''} port ${p.port ?? ''}`.replace(/ +$/, ''));
        // GAMMA: a route in the Service's own namespace is a producer route and applies to every client; a route
        // in another namespace is a consumer route and applies only to clients in the route's namespace.
        const scoped = rns === pns ? ranked : ranked.map((x) => ({ ...x, route: { ...x.route, match: { ...x.route.match, sourceNamespace: rns } } }));
        for (const hp of ports) {
          const k = `${host}:${hp.port}`;
          gamma.set(k, [...(gamma.get(k) ?? []), ...scoped]);
        }
        continue;
      }
      if (p.group !== 'gateway.networking.k8s.io' || p.kind !== 'Gateway') {
        report(ctx, 'warning', 'unsupported', r, [...p.path, 'kind'], `parentRef kind ${p.group}/${p.kind} is not supported`);
        continue;
      }
      const g = gwByName.get(`${pns}/${p.name}`);
      if (!g) {
        report(ctx, 'warning', 'unknown-parent', r, [...p.path, 'name'], `parentRef names Gateway ${pns}/${p.name}, which does not exist`);
        continue;
      }
      let attached = false;
      for (const l of g.spec.listeners) {
        if (p.sectionName !== undefined && p.sectionName !== l.name) continue;
        if (p.port !== undefined && p.port !== l.port) continue;
        if (l.protocol !== 'HTTP' && l.protocol !== 'HTTPS') continue;
        if (!allowed(ctx, l.allowedRoutes.namespaces, pns, rns)) continue;
        const hosts = intersect(r.spec.hostnames, l.hostname);
        if (!hosts) continue;
        attached = true;
        const vh = vhosts.get(`gateway/${pns}/${g.metadata.name}:${l.port}`);
        for (const h of hosts) vh?.set(h, [...(vh.get(h) ?? []), ...ranked]);
      }
      if (!attached) report(ctx, 'warning', 'not-attached', r, p.path, `no listener of Gateway ${pns}/${p.name} accepts this route (check sectionName, port, hostnames, protocol and allowedRoutes)`);
    }
  }
  for (const [name, vh] of vhosts) {
    const virtualHosts: VirtualHost[] = [...vh.keys()].sort(compare).map((h) => ({ name: h, domains: h === '*' ? ['*'] : [h, `${h}:*`], routes: sortRanked(vh.get(h) ?? []) }));
    ctx.routeConfigs.set(name, { name, virtualHosts });
  }
  return gamma;
}

function allowed(ctx: Ctx, rule: GatewayApiGateway['spec']['listeners'][number]['allowedRoutes']['namespaces'], gatewayNs: string, routeNs: string): boolean {
  if (rule.from === 'All') return true;
  if (rule.from === 'Same') return gatewayNs === routeNs;
  const labels = ctx.cluster.namespaces.get(routeNs)?.labels ?? { 'kubernetes.io/metadata.name': routeNs };
  const sel = rule.selector;
  if (!sel) return false;
  if (!labelsMatch(sel.matchLabels, labels)) return false;
  return sel.matchExpressions.every((e) => {
    const v = labels[e.key];
    switch (e.operator) {
      case 'In':
        return v !== undefined && e.values.includes(v);
      case 'NotIn':
        return v === undefined || !e.values.includes(v);
      case 'Exists':
        return v !== undefined;
      case 'DoesNotExist':
        return v === undefined;
    }
    return false;
  });
}
