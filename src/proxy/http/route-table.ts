// A RouteConfig compiled once for the hot path: virtual hosts found by authority (exact, `*.suffix`, `prefix.*`,
// then `*`, as Envoy orders them) and each route's matchers with their RegExps built ahead of time.
import type { HeaderMatch, Route, RouteConfig, StringMatch, VirtualHost } from '../../routing/model.ts';
import { ProxyError } from '../proxy-error.ts';

/** A string matcher ready to run: exact/prefix compare (lower-cased when ignoreCase) or an anchored RegExp. */
interface StringMatcher {
  kind: 0 | 1 | 2; // exact, prefix, regex
  value: string;
  ignoreCase: boolean;
  re: RegExp | undefined;
}

interface CompiledHeaderMatch {
  name: string;
  matcher: StringMatcher | undefined;
  present: boolean | undefined;
  invert: boolean;
}

export interface CompiledRoute {
  readonly route: Route;
  readonly path: StringMatcher | undefined;
  readonly headers: CompiledHeaderMatch[];
  readonly query: { name: string; matcher: StringMatcher | undefined }[];
  /** Weighted clusters as cumulative weights, for one random draw per request. */
  readonly clusterNames: string[];
  readonly cumulative: number[];
  readonly totalWeight: number;
}

export interface CompiledVirtualHost {
  readonly name: string;
  readonly routes: CompiledRoute[];
}

function compileString(m: StringMatch, where: string): StringMatcher {
  if ('regex' in m) {
    let re: RegExp;
    try {
      re = new RegExp(`^(?:${m.regex})$`);
    } catch (e) {
      throw new ProxyError('bad-config', `${where}: invalid regex ${JSON.stringify(m.regex)}: ${(e as Error).message}`);
    }
    return { kind: 2, value: m.regex, ignoreCase: false, re };
  }
  const ignoreCase = m.ignoreCase === true;
  if ('exact' in m) return { kind: 0, value: ignoreCase ? m.exact.toLowerCase() : m.exact, ignoreCase, re: undefined };
  return { kind: 1, value: ignoreCase ? m.prefix.toLowerCase() : m.prefix, ignoreCase, re: undefined };
}

function runString(m: StringMatcher, text: string): boolean {
  if (m.kind === 2) return m.re!.test(text);
  const t = m.ignoreCase ? text.toLowerCase() : text;
  return m.kind === 0 ? t === m.value : t.startsWith(m.value);
}

function compileHeader(h: HeaderMatch, where: string): CompiledHeaderMatch {
  return { name: h.name, matcher: h.match ? compileString(h.match, where) : undefined, present: h.present, invert: h.invert === true };
}

function compileRoute(r: Route, where: string): CompiledRoute {
  const clusterNames: string[] = [];
  const cumulative: number[] = [];
  let total = 0;
  if (r.action.type === 'route') {
    for (const wc of r.action.clusters) {
      if (wc.weight <= 0 && r.action.clusters.length > 1) continue;
      total += Math.max(wc.weight, 0);
      clusterNames.push(wc.cluster);
      cumulative.push(total);
    }
  }
  return {
    route: r,
    path: r.match.path ? compileString(r.match.path, `${where} path`) : undefined,
    headers: r.match.headers.map((h, i) => compileHeader(h, `${where} headers[${i}]`)),
    query: (r.match.queryParams ?? []).map((q, i) => ({ name: q.name, matcher: q.match ? compileString(q.match, `${where} queryParams[${i}]`) : undefined })),
    clusterNames,
    cumulative,
    totalWeight: total,
  };
}

/** The facts a route matches on; `headers` are lower case without pseudo-headers. */
export interface MatchInput {
  method: string;
  /** Path with query string. */
  path: string;
  authority: string;
  headers: Readonly<Record<string, string | string[] | undefined>>;
}

function headerValue(input: MatchInput, name: string): string | undefined {
  if (name.charCodeAt(0) === 58 /* : */) {
    if (name === ':method') return input.method;
    if (name === ':path') return input.path;
    if (name === ':authority') return input.authority;
    return undefined;
  }
  const v = input.headers[name];
  return Array.isArray(v) ? v.join(',') : v;
}

/** Query parameter values of a path (first occurrence wins, as Envoy's query matcher reads them). */
export function queryParam(path: string, name: string): string | undefined {
  const q = path.indexOf('?');
  if (q < 0) return undefined;
  for (const part of path.slice(q + 1).split('&')) {
    const eq = part.indexOf('=');
    const key = eq < 0 ? part : part.slice(0, eq);
    if (safeDecode(key) === name) return eq < 0 ? '' : safeDecode(part.slice(eq + 1));
  }
  return undefined;
}

function safeDecode(s: string): string {
  if (s.indexOf('%') < 0 && s.indexOf('+') < 0) return s;
  try {
    return decodeURIComponent(s.replace(/\+/g, ' '));
  } catch {
    return s;
  }
}

function routeMatches(r: CompiledRoute, input: MatchInput, pathOnly: string): boolean {
  if (r.path && !runString(r.path, pathOnly)) return false;
  for (let i = 0; i < r.headers.length; i++) {
    const h = r.headers[i]!;
    const v = headerValue(input, h.name);
    let ok: boolean;
    if (h.matcher) ok = v !== undefined && runString(h.matcher, v);
    else if (h.present === false) ok = v === undefined;
    else ok = v !== undefined;
    if (ok === h.invert) return false;
  }
  for (let i = 0; i < r.query.length; i++) {
    const q = r.query[i]!;
    const v = queryParam(input.path, q.name);
    if (v === undefined || (q.matcher && !runString(q.matcher, v))) return false;
  }
  return true;
}

const VHOST_CACHE_LIMIT = 4096;

export class RouteTable {
  readonly config: RouteConfig;
  private readonly exact = new Map<string, CompiledVirtualHost>();
  /** `*.example.com` and `*-b.example.com` keyed by what follows the star. */
  private readonly suffix = new Map<string, CompiledVirtualHost>();
  private readonly prefix = new Map<string, CompiledVirtualHost>();
  private readonly prefixLengths: number[] = [];
  private any: CompiledVirtualHost | undefined;
  private readonly cache = new Map<string, CompiledVirtualHost | null>();

  constructor(config: RouteConfig) {
    this.config = config;
    for (const vh of config.virtualHosts) {
      const compiled = compileVirtualHost(vh, `RouteConfiguration ${config.name} virtualHost ${vh.name}`);
      for (const raw of vh.domains) {
        const d = raw.toLowerCase();
        if (d === '*') this.any ??= compiled;
        else if (d.startsWith('*')) setOnce(this.suffix, d.slice(1), compiled);
        else if (d.endsWith('*')) {
          setOnce(this.prefix, d.slice(0, -1), compiled);
          if (!this.prefixLengths.includes(d.length - 1)) this.prefixLengths.push(d.length - 1);
        } else setOnce(this.exact, d, compiled);
      }
    }
    this.prefixLengths.sort((a, b) => b - a);
  }

  /** The virtual host for an authority, by Envoy's precedence; the port-less form is tried when the full one misses. */
  virtualHost(authority: string): CompiledVirtualHost | undefined {
    const hit = this.cache.get(authority);
    if (hit !== undefined) return hit ?? undefined;
    const lower = authority.toLowerCase();
    let found = this.lookup(lower);
    if (!found) {
      const colon = lower.lastIndexOf(':');
      if (colon > 0 && lower.indexOf(']', colon) < 0) found = this.lookup(lower.slice(0, colon));
    }
    found ??= this.any;
    if (this.cache.size >= VHOST_CACHE_LIMIT) this.cache.clear();
    this.cache.set(authority, found ?? null);
    return found;
  }

  private lookup(host: string): CompiledVirtualHost | undefined {
    const exact = this.exact.get(host);
    if (exact) return exact;
    if (this.suffix.size > 0) {
      // Longest suffix first: the star stands for at least one character.
      for (let i = 1; i < host.length; i++) {
        const vh = this.suffix.get(host.slice(i));
        if (vh) return vh;
      }
    }
    for (const len of this.prefixLengths) {
      if (len >= host.length) continue;
      const vh = this.prefix.get(host.slice(0, len));
      if (vh) return vh;
    }
    return undefined;
  }

  /** The first route of the virtual host that matches, or undefined (404, no route). */
  match(input: MatchInput): CompiledRoute | undefined {
    const vh = this.virtualHost(input.authority);
    if (!vh) return undefined;
    const q = input.path.indexOf('?');
    const pathOnly = q < 0 ? input.path : input.path.slice(0, q);
    const routes = vh.routes;
    for (let i = 0; i < routes.length; i++) if (routeMatches(routes[i]!, input, pathOnly)) return routes[i];
    return undefined;
  }
}

function setOnce<V>(map: Map<string, V>, key: string, value: V): void {
  if (!map.has(key)) map.set(key, value);
}

function compileVirtualHost(vh: VirtualHost, where: string): CompiledVirtualHost {
  return { name: vh.name, routes: vh.routes.map((r, i) => compileRoute(r, `${where} route ${r.name || i}`)) };
}

const tables = new WeakMap<RouteConfig, RouteTable>();

/** The compiled table of a RouteConfig, built once per object (configs are immutable once applied). */
export function routeTableFor(config: RouteConfig): RouteTable {
  let t = tables.get(config);
  if (!t) {
    t = new RouteTable(config);
    tables.set(config, t);
  }
  return t;
}

/** One weighted draw among the route's clusters; undefined when the route has none. */
export function pickCluster(r: CompiledRoute, random: number = Math.random()): string | undefined {
  const n = r.clusterNames.length;
  if (n <= 1) return r.clusterNames[0];
  if (r.totalWeight <= 0) return r.clusterNames[0];
  const x = random * r.totalWeight;
  for (let i = 0; i < n; i++) if (x < r.cumulative[i]!) return r.clusterNames[i];
  return r.clusterNames[n - 1];
}

/** The upstream path after the route's rewrite (prefix rewrite replaces what the prefix matched; full path keeps the query). */
export function rewritePath(r: CompiledRoute, path: string): string {
  const action = r.route.action;
  if (action.type !== 'route' || !action.rewrite) return path;
  const q = path.indexOf('?');
  const query = q < 0 ? '' : path.slice(q);
  if (action.rewrite.fullPath !== undefined) return action.rewrite.fullPath + query;
  if (action.rewrite.prefix !== undefined) {
    const m = r.path;
    const pathOnly = q < 0 ? path : path.slice(0, q);
    const cut = m && m.kind === 1 ? m.value.length : m ? pathOnly.length : 0;
    let rest = pathOnly.slice(cut);
    let pre = action.rewrite.prefix;
    // `/api/` → `/` rewritten on `/api/x` gives `/x`, not `//x`.
    if (pre.endsWith('/') && rest.startsWith('/')) rest = rest.slice(1);
    if (pre === '' && !rest.startsWith('/')) pre = '/';
    return pre + rest + query;
  }
  return path;
}
