// Which EnvoyFilters apply to one listener of one pod, and the HTTP filter chain they make with Trellis' own filters.
//
// Selection, as Istio: an EnvoyFilter in the pod's namespace, or in the root namespace (mesh-wide), whose
// workloadSelector labels (if any) the pod carries; then, per patch, its context (ANY; SIDECAR_INBOUND = inbound,
// SIDECAR_OUTBOUND = outbound, GATEWAY = gateway listeners) and its port.
// Order, as Istio: priority (lowest first); at equal priority, root-namespace filters first; then creation order:
// metadata.creationTimestamp where a manifest has one, and filters without one (created when loaded) after those,
// in input order. Within a filter, patches run in their order. HTTP_FILTER patches edit the chain; HTTP_ROUTE
// patches then give per-route limits to the local rate limit filters they name (Envoy's typed_per_filter_config).
//
// Positions, relative to Trellis' own chain [trellis.policy, envoy.filters.http.fault, router]:
// - trellis.policy always runs first, on every listener (fail closed: no user filter sees a request that policy
//   would deny, or changes what policy judges). INSERT_FIRST, and INSERT_BEFORE without a subFilter (Istio: the
//   front of the list) or before trellis.policy, put the filter right after it; so INSERT_FIRST runs before fault.
// - INSERT_BEFORE/INSERT_AFTER X: next to the first filter named X; nothing happens when there is none (as Istio).
//   INSERT_BEFORE envoy.filters.http.router: after fault and every filter before it. INSERT_AFTER without a
//   subFilter, and ADD, put the filter last before the router (nothing runs after the router).
// - ADD with filterClass AUTHN or AUTHZ: right after trellis.policy, which is Trellis' authentication and
//   authorization filter (AUTHN-class filters before AUTHZ-class ones); STATS: last before the router.
// - REMOVE and REPLACE act on every filter of that name; the validator refuses them on trellis.policy and the router.
// - A local rate limit with no token bucket (listener-level or per route), or turned off, makes no entry.
import type { EnvoyFilter, EnvoyFilterContext, EnvoyFilterHttpFilter, EnvoyFilterPatch, LocalRateLimitSettings } from '../resources/kinds-traffic.ts';

/** One filter of the chain before the router; the proxy runs these (its HttpFilterConfig is this type). */
export type ChainFilter =
  | { name: 'trellis.policy' }
  | { name: 'envoy.filters.http.fault' }
  | { name: 'envoy.filters.http.local_ratelimit'; maxTokens: number; tokensPerFill: number; fillIntervalMs: number; perRoute: boolean; responseHeaders?: Record<string, string> }
  | { name: 'trellis.extension'; module: string; config: Record<string, unknown> };

export interface FilterPod {
  namespace: string;
  labels: Readonly<Record<string, string>>;
}

export interface FilterListener {
  direction: 'inbound' | 'outbound' | 'gateway';
  /** The port Istio's portNumber matches: inbound, the port the workload serves; outbound, the service port; gateway, the server port. */
  port: number;
}

export const POLICY_FILTER = 'trellis.policy';
export const FAULT_FILTER = 'envoy.filters.http.fault';
export const ROUTER_FILTER = 'envoy.filters.http.router';

/** The EnvoyFilters that apply to a pod, in the order their patches apply. */
export function envoyFiltersFor(filters: readonly EnvoyFilter[], pod: FilterPod, rootNamespace = 'istio-system'): EnvoyFilter[] {
  const picked: { f: EnvoyFilter; i: number }[] = [];
  filters.forEach((f, i) => {
    const ns = f.metadata.namespace ?? 'default';
    if (ns !== rootNamespace && ns !== pod.namespace) return;
    const sel = f.spec.workloadSelector;
    if (sel && !Object.entries(sel).every(([k, v]) => pod.labels[k] === v)) return;
    picked.push({ f, i });
  });
  const root = (f: EnvoyFilter): number => ((f.metadata.namespace ?? 'default') === rootNamespace ? 0 : 1);
  const created = (f: EnvoyFilter): number => f.creationTimestampMs ?? Number.POSITIVE_INFINITY;
  picked.sort((a, b) => a.f.spec.priority - b.f.spec.priority || root(a.f) - root(b.f) || compareNumbers(created(a.f), created(b.f)) || a.i - b.i);
  return picked.map((p) => p.f);
}

function compareNumbers(a: number, b: number): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** One entry of the chain being built; `cls` is the filterClass rank of an ADD (1 AUTHN, 2 AUTHZ). */
interface Entry {
  name: string;
  own?: 'policy' | 'fault' | 'router';
  cls?: number;
  filter?: EnvoyFilterHttpFilter;
  /** Per-route settings an HTTP_ROUTE patch gave this (local rate limit) filter. */
  perRoute?: LocalRateLimitSettings;
}

const CONTEXT_OF: Record<FilterListener['direction'], EnvoyFilterContext> = { inbound: 'SIDECAR_INBOUND', outbound: 'SIDECAR_OUTBOUND', gateway: 'GATEWAY' };

/**
 * The HTTP filter chain of one listener, before the router: Trellis' policy and fault filters with every filter
 * the EnvoyFilters that apply add, in order. Pure: the same input gives the same chain.
 */
export function httpFiltersFor(filters: readonly EnvoyFilter[], pod: FilterPod, listener: FilterListener, rootNamespace = 'istio-system'): ChainFilter[] {
  const chain: Entry[] = [
    { name: POLICY_FILTER, own: 'policy' },
    { name: FAULT_FILTER, own: 'fault' },
    { name: ROUTER_FILTER, own: 'router' },
  ];
  const routePatches: Extract<EnvoyFilterPatch, { applyTo: 'HTTP_ROUTE' }>[] = [];
  const context = CONTEXT_OF[listener.direction];
  for (const f of envoyFiltersFor(filters, pod, rootNamespace)) {
    for (const p of f.spec.configPatches) {
      if (p.context !== 'ANY' && p.context !== context) continue;
      if (p.portNumber !== undefined && p.portNumber !== listener.port) continue;
      if (p.applyTo === 'HTTP_ROUTE') routePatches.push(p);
      else applyFilterPatch(chain, p);
    }
  }
  // Route patches apply to the routes of the chain the listener patches made; a later MERGE of a name replaces an earlier one.
  for (const p of routePatches) {
    for (const { name, settings } of p.perFilter) {
      for (const e of chain) if (e.name === name && e.filter?.type === 'local_ratelimit') e.perRoute = settings;
    }
  }
  const out: ChainFilter[] = [];
  for (const e of chain) {
    const c = toChainFilter(e);
    if (c) out.push(c);
  }
  return out;
}

function applyFilterPatch(chain: Entry[], p: Extract<EnvoyFilterPatch, { applyTo: 'HTTP_FILTER' }>): void {
  const router = (): number => chain.length - 1;
  const at = (name: string): number => chain.findIndex((e) => e.name === name);
  const entry = (): Entry | undefined => (p.filter ? { name: p.filter.name, filter: p.filter } : undefined);
  const insert = (i: number, e: Entry | undefined): void => {
    // Never before the policy filter, never after the router.
    if (e) chain.splice(Math.min(Math.max(i, 1), router()), 0, e);
  };
  const sub = p.subFilter;
  switch (p.operation) {
    case 'INSERT_BEFORE':
      if (sub === undefined) insert(1, entry());
      else if (at(sub) >= 0) insert(at(sub), entry());
      return;
    case 'INSERT_AFTER':
      if (sub === undefined) insert(router(), entry());
      else if (at(sub) >= 0) insert(at(sub) + 1, entry());
      return;
    case 'INSERT_FIRST':
      if (sub === undefined || at(sub) >= 0) insert(1, entry());
      return;
    case 'ADD': {
      const rank = p.filterClass === 'AUTHN' ? 1 : p.filterClass === 'AUTHZ' ? 2 : 0;
      const e = entry();
      if (!e || rank === 0) return insert(router(), e);
      e.cls = rank;
      let last = 0;
      chain.forEach((x, i) => {
        if (x.cls !== undefined && x.cls <= rank) last = i;
      });
      return insert(last + 1, e);
    }
    case 'REMOVE':
    case 'REPLACE': {
      if (sub === undefined) return;
      for (let i = chain.length - 1; i >= 0; i--) {
        const x = chain[i];
        if (!x || x.name !== sub || x.own === 'policy' || x.own === 'router') continue;
        const e = p.operation === 'REPLACE' ? entry() : undefined;
        if (e) chain.splice(i, 1, e);
        else chain.splice(i, 1);
      }
    }
  }
}

function toChainFilter(e: Entry): ChainFilter | undefined {
  if (e.own === 'policy') return { name: 'trellis.policy' };
  if (e.own === 'fault') return { name: 'envoy.filters.http.fault' };
  const f = e.filter;
  if (!f) return undefined;
  if (f.type === 'extension') return { name: 'trellis.extension', module: f.module, config: { ...f.config } };
  // Envoy: per-route settings replace the listener's for that route, with a bucket of the route's own.
  const s = e.perRoute ?? f.settings;
  if (!s.tokenBucket || !s.enabled || !s.enforced) return undefined;
  const out: ChainFilter = { name: 'envoy.filters.http.local_ratelimit', ...s.tokenBucket, perRoute: e.perRoute !== undefined };
  if (Object.keys(s.responseHeaders).length > 0) out.responseHeaders = { ...s.responseHeaders };
  return out;
}
