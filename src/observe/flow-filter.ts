// Hubble's FlowFilter semantics over Trellis Flow records, pure: a request's whitelist and blacklist are compiled
// once into one predicate. Within a filter every field that is set must match (AND); within a field any value may
// match (OR); a flow passes when some whitelist filter matches (or there is none) and no blacklist filter does.
// Pods and services are `[namespace/]name-prefix` (`ns/` alone: the whole namespace); labels are Kubernetes label
// selectors (a key without a source matches any source: `app=db` matches `k8s:app=db`); IPs are addresses or CIDRs;
// HTTP status is `404` or a class prefix like `5+`; HTTP path and URL are regular expressions; node names allow `*`.
import { BlockList, isIP } from 'node:net';
import type { Flow, FlowEndpoint, FlowService } from './flow.ts';
import { ObserveError } from './observe-error.ts';

/** A FlowFilter as it arrives over the Observer API (proto field names; enums by name). */
export interface FlowFilterSpec {
  uuid?: string[];
  source_ip?: string[];
  source_pod?: string[];
  source_label?: string[];
  source_service?: string[];
  source_workload?: { name?: string; kind?: string }[];
  destination_ip?: string[];
  destination_pod?: string[];
  destination_label?: string[];
  destination_service?: string[];
  destination_workload?: { name?: string; kind?: string }[];
  traffic_direction?: string[];
  verdict?: string[];
  drop_reason_desc?: string[];
  http_status_code?: string[];
  protocol?: string[];
  source_port?: string[];
  destination_port?: string[];
  reply?: boolean[];
  source_identity?: number[];
  destination_identity?: number[];
  http_method?: string[];
  http_path?: string[];
  http_url?: string[];
  node_name?: string[];
  ip_version?: string[];
}

export type FlowPredicate = (flow: Flow) => boolean;

const MAX_VALUES = 256;
const MAX_VALUE_LENGTH = 1024;

function bad(message: string): never {
  throw new ObserveError('bad-filter', message);
}

function values<T>(field: string, v: T[] | undefined): T[] | undefined {
  if (v === undefined || v.length === 0) return undefined;
  if (v.length > MAX_VALUES) bad(`${field}: at most ${MAX_VALUES} values`);
  for (const x of v) if (typeof x === 'string' && x.length > MAX_VALUE_LENGTH) bad(`${field}: a value longer than ${MAX_VALUE_LENGTH} characters`);
  return v;
}

/** `ns/prefix` or `prefix` (any namespace) against an endpoint or a service. */
function nameMatcher(field: string, specs: string[]): (ns: string, name: string) => boolean {
  const parsed = specs.map((s) => {
    const i = s.indexOf('/');
    if (i < 0) return { ns: undefined as string | undefined, prefix: s };
    const ns = s.slice(0, i);
    if (ns === '') bad(`${field} ${JSON.stringify(s)}: empty namespace before "/"`);
    return { ns, prefix: s.slice(i + 1) };
  });
  return (ns, name) => parsed.some((p) => (p.ns === undefined ? name !== '' : ns === p.ns) && name.startsWith(p.prefix));
}

function ipMatcher(field: string, specs: string[]): (ip: string) => boolean {
  const list = new BlockList();
  for (const s of specs) {
    const slash = s.indexOf('/');
    const addr = slash < 0 ? s : s.slice(0, slash);
    const family = isIP(addr);
    if (family === 0) bad(`${field} ${JSON.stringify(s)}: not an IP address or CIDR`);
    const type = family === 4 ? 'ipv4' : 'ipv6';
    if (slash < 0) list.addAddress(addr, type);
    else {
      const bits = Number(s.slice(slash + 1));
      if (!/^\d{1,3}$/.test(s.slice(slash + 1)) || bits > (family === 4 ? 32 : 128)) bad(`${field} ${JSON.stringify(s)}: bad prefix length`);
      list.addSubnet(addr, bits, type);
    }
  }
  return (ip) => {
    const f = isIP(ip);
    return f !== 0 && list.check(ip, f === 4 ? 'ipv4' : 'ipv6');
  };
}

type Requirement = { key: string; op: 'exists' | 'notexists' | 'in' | 'notin'; vals: string[] };

/** Splits on commas outside parentheses. */
function splitTop(s: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let cur = '';
  for (const c of s) {
    if (c === '(') depth++;
    else if (c === ')') depth--;
    if (c === ',' && depth === 0) {
      out.push(cur);
      cur = '';
    } else cur += c;
  }
  out.push(cur);
  return out;
}

const KEY = /^[A-Za-z0-9_.:/-]+$/;
const VALUE = /^[A-Za-z0-9_.:/-]*$/;

/** A Kubernetes label selector: `k=v`, `k==v`, `k!=v`, `k`, `!k`, `k in (a,b)`, `k notin (a,b)`, comma-joined. */
export function parseLabelSelector(field: string, sel: string): Requirement[] {
  const reqs: Requirement[] = [];
  for (const raw of splitTop(sel)) {
    const part = raw.trim();
    if (part === '') bad(`${field} ${JSON.stringify(sel)}: empty requirement`);
    let m: RegExpExecArray | null;
    if ((m = /^(\S+)\s+(in|notin)\s*\(([^()]*)\)$/.exec(part))) {
      const vals = (m[3] ?? '').split(',').map((v) => v.trim());
      reqs.push({ key: m[1] ?? '', op: m[2] === 'in' ? 'in' : 'notin', vals });
    } else if ((m = /^([^=!\s]+)\s*(==|=|!=)\s*(\S*)$/.exec(part))) {
      reqs.push({ key: m[1] ?? '', op: m[2] === '!=' ? 'notin' : 'in', vals: [m[3] ?? ''] });
    } else if ((m = /^!\s*(\S+)$/.exec(part))) reqs.push({ key: m[1] ?? '', op: 'notexists', vals: [] });
    else reqs.push({ key: part, op: 'exists', vals: [] });
  }
  for (const r of reqs) {
    if (!KEY.test(r.key)) bad(`${field} ${JSON.stringify(sel)}: bad label key ${JSON.stringify(r.key)}`);
    for (const v of r.vals) if (!VALUE.test(v)) bad(`${field} ${JSON.stringify(sel)}: bad label value ${JSON.stringify(v)}`);
  }
  return reqs;
}

/** Label values by key, each label under `source:key` and under the bare `key`. */
function labelMap(labels: readonly string[]): Map<string, string[]> {
  const m = new Map<string, string[]>();
  const add = (k: string, v: string): void => {
    const cur = m.get(k);
    if (cur) cur.push(v);
    else m.set(k, [v]);
  };
  for (const l of labels) {
    const eq = l.indexOf('=');
    const key = eq < 0 ? l : l.slice(0, eq);
    const value = eq < 0 ? '' : l.slice(eq + 1);
    add(key, value);
    const colon = key.indexOf(':');
    if (colon > 0) add(key.slice(colon + 1), value);
  }
  return m;
}

function labelMatcher(field: string, specs: string[]): (labels: readonly string[]) => boolean {
  const selectors = specs.map((s) => parseLabelSelector(field, s));
  return (labels) => {
    const m = labelMap(labels);
    return selectors.some((reqs) =>
      reqs.every((r) => {
        const have = m.get(r.key);
        switch (r.op) {
          case 'exists':
            return have !== undefined;
          case 'notexists':
            return have === undefined;
          case 'in':
            return have !== undefined && have.some((v) => r.vals.includes(v));
          case 'notin':
            return have === undefined || !have.some((v) => r.vals.includes(v));
        }
      }),
    );
  };
}

function portsOf(specs: string[], field: string): Set<number> {
  return new Set(
    specs.map((s) => {
      const n = Number(s);
      if (!/^\d{1,5}$/.test(s) || n > 65535) bad(`${field} ${JSON.stringify(s)}: not a port number`);
      return n;
    }),
  );
}

function statusMatcher(specs: string[]): (code: number) => boolean {
  const ranges = specs.map((s) => {
    const m = /^([1-5]\d{0,2})(\+?)$/.exec(s);
    if (!m || (m[2] === '' && s.length !== 3)) bad(`http_status_code ${JSON.stringify(s)}: expected a code like 404 or a prefix like 5+ or 40+`);
    const digits = m[1] ?? '';
    const scale = 10 ** (3 - digits.length);
    const lo = Number(digits) * scale;
    return [lo, lo + scale] as const;
  });
  return (code) => ranges.some(([lo, hi]) => code >= lo && code < hi);
}

function regexes(field: string, specs: string[]): RegExp[] {
  return specs.map((s) => {
    try {
      return new RegExp(s);
    } catch (e) {
      return bad(`${field} ${JSON.stringify(s)}: ${(e as Error).message}`);
    }
  });
}

function globs(specs: string[]): RegExp[] {
  return specs.map((s) => new RegExp(`^${s.split('*').map((p) => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`));
}

function l4Protocol(f: Flow): string {
  return f.l4.TCP ? 'tcp' : f.l4.UDP ? 'udp' : '';
}

function ports(f: Flow): { source_port: number; destination_port: number } | undefined {
  return f.l4.TCP ?? f.l4.UDP;
}

function workloadMatcher(specs: { name?: string; kind?: string }[]): (ep: FlowEndpoint) => boolean {
  return (ep) => specs.some((w) => ep.workloads.some((x) => (!w.name || x.name === w.name) && (!w.kind || x.kind === w.kind)));
}

const svc = (s: FlowService | undefined): FlowService => s ?? { name: '', namespace: '' };

/** Compiles one FlowFilter; ObserveError `bad-filter` names the field and value that cannot be understood. */
export function compileFlowFilter(spec: FlowFilterSpec): FlowPredicate {
  const checks: FlowPredicate[] = [];
  let v;
  if ((v = values('uuid', spec.uuid))) {
    const set = new Set(v);
    checks.push((f) => set.has(f.uuid));
  }
  for (const side of ['source', 'destination'] as const) {
    if ((v = values(`${side}_ip`, spec[`${side}_ip`]))) {
      const m = ipMatcher(`${side}_ip`, v);
      checks.push((f) => m(f.IP[side]));
    }
    if ((v = values(`${side}_pod`, spec[`${side}_pod`]))) {
      const m = nameMatcher(`${side}_pod`, v);
      checks.push((f) => m(f[side].namespace, f[side].pod_name));
    }
    if ((v = values(`${side}_label`, spec[`${side}_label`]))) {
      const m = labelMatcher(`${side}_label`, v);
      checks.push((f) => m(f[side].labels));
    }
    if ((v = values(`${side}_service`, spec[`${side}_service`]))) {
      const m = nameMatcher(`${side}_service`, v);
      checks.push((f) => {
        const s = svc(f[`${side}_service`]);
        return m(s.namespace, s.name);
      });
    }
    const wl = values(`${side}_workload`, spec[`${side}_workload`]);
    if (wl) {
      const m = workloadMatcher(wl);
      checks.push((f) => m(f[side]));
    }
    const ids = values(`${side}_identity`, spec[`${side}_identity`]);
    if (ids) {
      const set = new Set(ids.map(Number));
      checks.push((f) => set.has(f[side].identity));
    }
    if ((v = values(`${side}_port`, spec[`${side}_port`]))) {
      const set = portsOf(v, `${side}_port`);
      const key = side === 'source' ? 'source_port' : 'destination_port';
      checks.push((f) => {
        const p = ports(f);
        return p !== undefined && set.has(p[key]);
      });
    }
  }
  if ((v = values('traffic_direction', spec.traffic_direction))) {
    const set = new Set(v);
    checks.push((f) => set.has(f.traffic_direction));
  }
  if ((v = values('verdict', spec.verdict))) {
    const set = new Set(v);
    checks.push((f) => set.has(f.verdict));
  }
  if ((v = values('drop_reason_desc', spec.drop_reason_desc))) {
    const set = new Set(v);
    checks.push((f) => f.drop_reason_desc !== undefined && set.has(f.drop_reason_desc));
  }
  if ((v = values('http_status_code', spec.http_status_code))) {
    const m = statusMatcher(v);
    checks.push((f) => f.l7?.http !== undefined && f.l7.http.code !== 0 && m(f.l7.http.code));
  }
  if ((v = values('protocol', spec.protocol))) {
    const set = new Set(v.map((p) => p.toLowerCase()));
    checks.push((f) => set.has(l4Protocol(f)) || (f.l7?.http !== undefined && set.has('http')));
  }
  const reply = values('reply', spec.reply);
  if (reply) checks.push((f) => reply.includes(f.is_reply));
  if ((v = values('http_method', spec.http_method))) {
    const set = new Set(v.map((m) => m.toUpperCase()));
    checks.push((f) => f.l7?.http !== undefined && set.has(f.l7.http.method.toUpperCase()));
  }
  if ((v = values('http_path', spec.http_path))) {
    const res = regexes('http_path', v);
    checks.push((f) => {
      const url = f.l7?.http?.url;
      if (url === undefined) return false;
      const path = pathOf(url);
      return res.some((r) => r.test(path));
    });
  }
  if ((v = values('http_url', spec.http_url))) {
    const res = regexes('http_url', v);
    checks.push((f) => f.l7?.http !== undefined && res.some((r) => r.test(f.l7?.http?.url ?? '')));
  }
  if ((v = values('node_name', spec.node_name))) {
    const res = globs(v);
    checks.push((f) => res.some((r) => r.test(f.node_name)));
  }
  if ((v = values('ip_version', spec.ip_version))) {
    const set = new Set(v);
    checks.push((f) => set.has(f.IP.ipVersion));
  }
  return (f) => checks.every((c) => c(f));
}

/** The path of a URL as flows carry it (`http://host/p?q` or `/p?q`), without query or fragment. */
function pathOf(url: string): string {
  let p = url;
  const scheme = p.indexOf('://');
  if (scheme >= 0) {
    const slash = p.indexOf('/', scheme + 3);
    p = slash < 0 ? '/' : p.slice(slash);
  }
  const q = p.search(/[?#]/);
  return q < 0 ? p : p.slice(0, q);
}

/** The request's whole selection: some whitelist filter (or none given) and no blacklist filter. */
export function compileFlowFilters(whitelist: readonly FlowFilterSpec[] = [], blacklist: readonly FlowFilterSpec[] = []): FlowPredicate {
  const w = whitelist.map(compileFlowFilter);
  const b = blacklist.map(compileFlowFilter);
  return (f) => (w.length === 0 || w.some((p) => p(f))) && !b.some((p) => p(f));
}
