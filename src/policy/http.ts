// L7 HTTP rules: Cilium's method/path/host regular expressions (matched in full, as Envoy does) and header checks.
import type { CiliumHttpRule } from '../resources/kinds.ts';

export interface HttpRequest {
  method?: string;
  path?: string;
  host?: string;
  /** Header names are case-insensitive; give them in any case. */
  headers?: Record<string, string>;
}

export interface HttpMatcher {
  /** Index of the rule in its `rules.http` list. */
  index: number;
  method?: RegExp;
  path?: RegExp;
  host?: RegExp;
  /** Lower-cased name, and the exact value required (undefined: presence only). */
  headers: { name: string; value?: string }[];
  /** The rule as written, for explanations. */
  text: string;
}

/** Compiles a rule once. Regular expressions are anchored at both ends: Envoy matches the whole value. */
export function compileHttpRule(r: CiliumHttpRule, index: number): HttpMatcher {
  const m: HttpMatcher = { index, headers: [], text: describeHttpRule(r) };
  if (r.method !== undefined && r.method !== '') m.method = new RegExp(`^(?:${r.method})$`, 'u');
  if (r.path !== undefined && r.path !== '') m.path = new RegExp(`^(?:${r.path})$`, 'u');
  if (r.host !== undefined && r.host !== '') m.host = new RegExp(`^(?:${r.host})$`, 'iu');
  for (const h of r.headers) {
    // Cilium splits on the first space: `X-Key: value` requires the value; `X-Key` only its presence.
    const sp = h.indexOf(' ');
    if (sp < 0) m.headers.push({ name: h.replace(/:$/, '').toLowerCase() });
    else m.headers.push({ name: h.slice(0, sp).replace(/:$/, '').toLowerCase(), value: h.slice(sp + 1).trim() });
  }
  for (const hm of r.headerMatches) {
    // A mismatch action (LOG, ADD, DELETE, REPLACE) makes Envoy act on the header instead of failing the rule.
    if (hm.mismatch !== undefined) continue;
    const entry: { name: string; value?: string } = { name: hm.name.toLowerCase() };
    if (hm.value !== undefined) entry.value = hm.value;
    m.headers.push(entry);
  }
  return m;
}

export function httpMatches(m: HttpMatcher, req: HttpRequest, lowerHeaders: Record<string, string>): boolean {
  if (m.method && !m.method.test(req.method ?? '')) return false;
  if (m.path && !m.path.test(req.path ?? '')) return false;
  if (m.host && !m.host.test(req.host ?? '')) return false;
  for (const h of m.headers) {
    const v = lowerHeaders[h.name];
    if (v === undefined) return false;
    if (h.value !== undefined && v !== h.value) return false;
  }
  return true;
}

export function lowerCaseHeaders(h: Record<string, string> | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (h) for (const [k, v] of Object.entries(h)) out[k.toLowerCase()] = v;
  return out;
}

function describeHttpRule(r: CiliumHttpRule): string {
  const parts: string[] = [];
  if (r.method) parts.push(`method=${r.method}`);
  if (r.path) parts.push(`path=${r.path}`);
  if (r.host) parts.push(`host=${r.host}`);
  for (const h of r.headers) parts.push(`header ${h}`);
  for (const h of r.headerMatches) parts.push(`header ${h.name}${h.value !== undefined ? `: ${h.value}` : ''}`);
  return parts.length ? parts.join(' ') : 'any request';
}
