// Validation rules shared by the traffic kinds: durations, RE2 regexes, Istio StringMatch, percentages, hosts, header operations.
import { describe, type Checker, type Json } from './checker.ts';
import type { FieldPath } from './kinds.ts';
import type { HeaderOperations, IstioDestination, IstioHeaders, IstioStringMatch } from './kinds-traffic.ts';

const UNIT_MS: Record<string, number> = { h: 3600000, m: 60000, s: 1000, ms: 1, us: 0.001, µs: 0.001, ns: 0.000001 };
const DURATION = /^(?:[0-9]+(?:\.[0-9]+)?(?:h|m|s|ms|us|µs|ns))+$/;

/** Parses a duration such as `1.5s`, `300ms` or `1m30s` into milliseconds; undefined when malformed. */
export function parseDurationMs(s: string): number | undefined {
  if (!DURATION.test(s)) return undefined;
  let total = 0;
  for (const m of s.matchAll(/([0-9]+(?:\.[0-9]+)?)(ms|us|µs|ns|h|m|s)/g)) total += Number(m[1]) * (UNIT_MS[m[2] ?? 's'] ?? 0);
  return total;
}

/** A duration field: a string such as `1.5s` or `300ms`; at least 1ms unless zero is allowed. */
export function duration(c: Checker, v: unknown, path: FieldPath, opts: { allowZero?: boolean } = {}): number | undefined {
  const s = c.string(v, path);
  if (s === undefined) return undefined;
  const ms = parseDurationMs(s);
  if (ms === undefined) {
    c.error(path, `"${s}" is not a duration: write a number and a unit (h, m, s, ms), such as 1.5s or 300ms`, 'invalid-duration');
    return undefined;
  }
  if (ms === 0 && opts.allowZero) return 0;
  if (ms < 1) {
    c.error(path, `must be at least 1ms (got ${s})`, 'invalid-duration');
    return undefined;
  }
  return ms;
}

/** RE2 (what Envoy uses) has no lookaround and no backreferences; anything else JavaScript rejects is a syntax error too. */
export function regexProblem(re: string): string | undefined {
  if (/\(\?<?[=!]/.test(re)) return `"${re}" uses lookaround, which RE2 does not support`;
  if (/(^|[^\\])\\[1-9]/.test(re)) return `"${re}" uses a backreference, which RE2 does not support`;
  try {
    new RegExp(re, 'u');
  } catch (e) {
    return `"${re}" is not a valid regular expression: ${(e as Error).message.replace(/^Invalid regular expression: \/.*\/[a-z]*: /, '')}`;
  }
  return undefined;
}

export function regex(c: Checker, v: unknown, path: FieldPath, required = false): string | undefined {
  const s = c.string(v, path, required);
  if (s === undefined) return undefined;
  const p = regexProblem(s);
  if (p) {
    c.error(path, p, 'invalid-regex');
    return undefined;
  }
  return s;
}

/** Istio's StringMatch: exactly one of exact, prefix, regex. With allowEmpty, `{}` means "present" and gives undefined. */
export function stringMatch(c: Checker, v: unknown, path: FieldPath, opts: { allowEmpty?: boolean; noPrefix?: boolean } = {}): IstioStringMatch | undefined {
  const o = c.object(v, path);
  if (!o) return undefined;
  c.knownFields(o, path, opts.noPrefix ? ['exact', 'regex'] : ['exact', 'prefix', 'regex']);
  const set = (['exact', 'prefix', 'regex'] as const).filter((k) => o[k] !== undefined && o[k] !== null);
  if (set.length > 1) {
    c.error([...path, set[1] ?? ''], `may not be combined with ${set[0]} (set only one of exact, prefix, regex)`, 'exclusive-fields', 'key');
    return undefined;
  }
  const k = set[0];
  if (k === undefined) {
    if (!opts.allowEmpty) c.error(path, 'must set one of exact, prefix, regex', 'required');
    return undefined;
  }
  if (k === 'regex') {
    const r = regex(c, o.regex, [...path, 'regex']);
    return r === undefined ? undefined : { regex: r };
  }
  if (k === 'prefix' && opts.noPrefix) return undefined;
  const s = c.string(o[k], [...path, k]);
  if (s === undefined) return undefined;
  return k === 'exact' ? { exact: s } : { prefix: s };
}

/** `{value: 0-100}` (Istio's Percent). */
export function percentage(c: Checker, v: unknown, path: FieldPath): number | undefined {
  const o = c.object(v, path);
  if (!o) return undefined;
  c.knownFields(o, path, ['value']);
  const x = o.value;
  if (x === undefined || x === null) return 0;
  if (typeof x !== 'number' || !Number.isFinite(x) || x < 0 || x > 100) {
    c.error([...path, 'value'], `must be a number 0-100, not ${describe(x)}`);
    return undefined;
  }
  return x;
}

const HOST_LABEL = /^(?:\*|[A-Za-z0-9]([-A-Za-z0-9_]*[A-Za-z0-9])?)$/;

/** A host as Istio writes it: a DNS name, a short name, `*` or a `*.` wildcard prefix. */
export function hostProblem(h: string, opts: { wildcard?: boolean } = { wildcard: true }): string | undefined {
  if (h === '') return 'host may not be empty';
  if (h === '*') return opts.wildcard ? undefined : 'host may not be a wildcard';
  if (h.length > 253) return `host "${h}" is longer than 253 characters`;
  const labels = h.split('.');
  for (let i = 0; i < labels.length; i++) {
    const l = labels[i] ?? '';
    if (l === '*' && i === 0) {
      if (!opts.wildcard) return `host "${h}" may not be a wildcard`;
      continue;
    }
    if (l.includes('*')) return `host "${h}" may have a wildcard only as its whole first label, as in *.example.com`;
    if (!HOST_LABEL.test(l) || l.length > 63) return `host "${h}" is not a valid DNS name`;
  }
  return undefined;
}

export function stringList(c: Checker, v: unknown, path: FieldPath, required = false): string[] {
  const out: string[] = [];
  (c.array(v, path, required) ?? []).forEach((x, i) => {
    const s = c.string(x, [...path, i], true);
    if (s !== undefined) out.push(s);
  });
  return out;
}

export function hostList(c: Checker, v: unknown, path: FieldPath, required = false): string[] {
  const hosts = stringList(c, v, path, required);
  if (required && Array.isArray(v) && v.length === 0) c.error(path, 'must name at least one host', 'required');
  hosts.forEach((h, i) => {
    const p = hostProblem(h);
    if (p) c.error([...path, i], p, 'invalid-host');
  });
  return hosts;
}

/** A port number 1-65535 inside `{number: …}` (Istio's PortSelector). */
export function portSelector(c: Checker, v: unknown, path: FieldPath, required = false): number | undefined {
  const o = c.object(v, path, required);
  if (!o) return undefined;
  c.knownFields(o, path, ['number']);
  return c.integer(o.number, [...path, 'number'], 1, 65535, true);
}

export function istioDestination(c: Checker, v: unknown, path: FieldPath): IstioDestination | undefined {
  const o = c.object(v, path, true);
  if (!o) return undefined;
  c.knownFields(o, path, ['host', 'subset', 'port']);
  const host = c.string(o.host, [...path, 'host'], true);
  if (host !== undefined) {
    const p = hostProblem(host, { wildcard: false });
    if (p) c.error([...path, 'host'], p, 'invalid-host');
  }
  const out: IstioDestination = { host: host ?? '', path };
  const subset = c.string(o.subset, [...path, 'subset']);
  if (subset) out.subset = subset;
  const port = portSelector(c, o.port, [...path, 'port']);
  if (port !== undefined) out.port = port;
  return host === undefined ? undefined : out;
}

function headerOps(c: Checker, v: unknown, path: FieldPath): HeaderOperations | undefined {
  const o = c.object(v, path);
  if (!o) return undefined;
  c.knownFields(o, path, ['set', 'add', 'remove']);
  return { set: c.stringMap(o.set, [...path, 'set']), add: c.stringMap(o.add, [...path, 'add']), remove: stringList(c, o.remove, [...path, 'remove']) };
}

/** Istio's Headers: request and response header operations. */
export function istioHeaders(c: Checker, v: unknown, path: FieldPath): IstioHeaders | undefined {
  const o = c.object(v, path);
  if (!o) return undefined;
  c.knownFields(o, path, ['request', 'response']);
  const out: IstioHeaders = {};
  const req = headerOps(c, o.request, [...path, 'request']);
  if (req) out.request = req;
  const res = headerOps(c, o.response, [...path, 'response']);
  if (res) out.response = res;
  return out;
}

/** One of the given values; the message names them and hints at a case mistake. */
export function oneOf<T extends string>(c: Checker, v: unknown, path: FieldPath, values: readonly T[], required = false): T | undefined {
  const s = c.string(v, path, required);
  if (s === undefined) return undefined;
  if ((values as readonly string[]).includes(s)) return s as T;
  const fix = values.find((x) => x.toLowerCase() === s.toLowerCase());
  c.error(path, `"${s}" must be one of ${values.join(', ')}${fix ? ` (values are case-sensitive: ${fix})` : ''}`);
  return undefined;
}

export function json(v: unknown): Json | undefined {
  return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Json) : undefined;
}

/**
 * Istio fields Trellis accepts but does not implement: each one present gets a located `not-implemented` warning that
 * says what happens instead, so no setting is dropped silently. `notes` maps a field to that consequence.
 */
export function notImplemented(c: Checker, o: Json, path: FieldPath, notes: Readonly<Record<string, string>>): void {
  for (const [f, note] of Object.entries(notes)) {
    if (o[f] === undefined || o[f] === null) continue;
    c.warn([...path, f], `${f} is not implemented by Trellis and is ignored: ${note}`, 'not-implemented');
  }
}
