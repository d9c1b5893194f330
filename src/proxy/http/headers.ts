// Header handling between downstream and upstream: hop-by-hop headers stripped (and those the Connection header
// names), pseudo-headers kept apart, Envoy's x-forwarded-* and x-request-id, and route header operations.
import { randomUUID } from 'node:crypto';
import type { HeaderOps } from '../../routing/model.ts';

export type HeaderRecord = Record<string, string | string[] | undefined>;

/** Headers that describe one hop and never cross the proxy (RFC 9110 §7.6.1, plus HTTP/2's forbidden ones). */
const HOP_BY_HOP: ReadonlySet<string> = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'upgrade',
  'http2-settings',
  'proxy-authenticate',
  'proxy-authorization',
]);

function connectionTokens(value: string | string[] | undefined): string[] | undefined {
  if (value === undefined) return undefined;
  const text = Array.isArray(value) ? value.join(',') : value;
  let out: string[] | undefined;
  for (const raw of text.split(',')) {
    const t = raw.trim().toLowerCase();
    if (t && t !== 'close' && t !== 'keep-alive' && t !== 'upgrade') (out ??= []).push(t);
  }
  return out;
}

/**
 * A fresh record of the request headers a filter and the upstream may see: lower-case names, no pseudo-headers,
 * no `host` (the authority travels apart), no hop-by-hop headers; `te` only as `trailers` (gRPC needs it).
 */
export function requestHeadersFrom(src: Readonly<Record<string, string | string[] | undefined>>): HeaderRecord {
  const out: HeaderRecord = {};
  const named = connectionTokens(src.connection);
  for (const name in src) {
    if (name.charCodeAt(0) === 58 /* : */ || name === 'host' || HOP_BY_HOP.has(name)) continue;
    if (name === 'te') {
      const v = src.te;
      if (typeof v === 'string' && v.toLowerCase().includes('trailers')) out.te = 'trailers';
      continue;
    }
    out[name] = src[name];
  }
  if (named) for (const n of named) delete out[n];
  return out;
}

/** A fresh record of response headers for downstream: no pseudo-headers and no hop-by-hop headers. */
export function responseHeadersFrom(src: Readonly<Record<string, string | string[] | number | undefined>>): HeaderRecord {
  const out: HeaderRecord = {};
  const named = connectionTokens(src.connection as string | string[] | undefined);
  for (const name in src) {
    if (name.charCodeAt(0) === 58 || HOP_BY_HOP.has(name) || name === 'te') continue;
    const v = src[name];
    out[name] = typeof v === 'number' ? String(v) : v;
  }
  if (named) for (const n of named) delete out[n];
  return out;
}

/** Envoy's request decoration: x-forwarded-for appended, x-forwarded-proto and x-request-id set when absent. */
export function addForwardingHeaders(headers: HeaderRecord, remoteIp: string, tls: boolean): void {
  const xff = headers['x-forwarded-for'];
  headers['x-forwarded-for'] = xff === undefined ? remoteIp : `${Array.isArray(xff) ? xff.join(', ') : xff}, ${remoteIp}`;
  if (headers['x-forwarded-proto'] === undefined) headers['x-forwarded-proto'] = tls ? 'https' : 'http';
  if (headers['x-request-id'] === undefined) headers['x-request-id'] = randomUUID();
}

/** Applies a route's header operations: remove, then set (replace), then add (append). */
export function applyHeaderOps(headers: HeaderRecord, ops: HeaderOps | undefined): void {
  if (!ops) return;
  for (const name of ops.remove) delete headers[name];
  for (const name in ops.set) headers[name] = ops.set[name];
  for (const name in ops.add) {
    const prev = headers[name];
    const v = ops.add[name]!;
    headers[name] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [prev, v];
  }
}

/** One header's value as a single string (repeated values joined with `,`). */
export function headerText(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v.join(',') : v;
}
