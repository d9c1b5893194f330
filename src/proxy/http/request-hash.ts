// The ring-hash key of a request from the route's hash policies (header, source IP, cookie, query parameter),
// combined as Envoy combines several policies; FNV-1a over the chosen values.
import type { HashPolicy } from '../../routing/model.ts';
import { queryParam } from './route-table.ts';

function fnv1a(text: string, seed = 0x811c9dc5): number {
  let h = seed;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

function cookieValue(header: string | string[] | undefined, name: string): string | undefined {
  if (header === undefined) return undefined;
  const all = Array.isArray(header) ? header.join('; ') : header;
  for (const part of all.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

/** The 32-bit hash for RING_HASH, or undefined when no policy found a value (the balancer then picks at random). */
export function requestHash(
  policies: readonly HashPolicy[] | undefined,
  headers: Readonly<Record<string, string | string[] | undefined>>,
  path: string,
  sourceIp: string,
): number | undefined {
  if (!policies || policies.length === 0) return undefined;
  let hash: number | undefined;
  for (const p of policies) {
    let key: string | undefined;
    if (p.header !== undefined) {
      const v = headers[p.header.toLowerCase()];
      key = Array.isArray(v) ? v.join(',') : v;
    } else if (p.sourceIp) key = sourceIp;
    else if (p.cookie) key = cookieValue(headers.cookie, p.cookie.name);
    else if (p.queryParameter !== undefined) key = queryParam(path, p.queryParameter);
    if (key === undefined) continue;
    const h = fnv1a(key);
    hash = hash === undefined ? h : (((hash << 1) | (hash >>> 31)) ^ h) >>> 0;
  }
  return hash;
}
