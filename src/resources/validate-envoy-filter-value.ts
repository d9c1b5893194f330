// Reading an EnvoyFilter's typed_config values: Envoy's LocalRateLimit (directly or in a TypedStruct) and Trellis
// extensions (a TypedStruct with type_url trellis.dev/extension naming a module and its config).
import { dirname, isAbsolute, join, normalize } from 'node:path';
import type { Checker, Json } from './checker.ts';
import type { FieldPath } from './kinds.ts';
import type { LocalRateLimitSettings } from './kinds-traffic.ts';
import { protoDuration, protoMessage, typeName } from './validate-envoy-proto.ts';
import { oneOf } from './validate-traffic-common.ts';

/** The URL of a Trellis extension inside a TypedStruct. */
export const EXTENSION_TYPE_URL = 'trellis.dev/extension';
const LOCAL_RATE_LIMIT = 'envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit';
const TYPED_STRUCT = ['udpa.type.v1.TypedStruct', 'xds.type.v3.TypedStruct'];
const MODULE_EXT = /\.(ts|mts|js|mjs)$/;
const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const UINT32 = 4294967295;

/** A filter's settings, without its name. */
export type FilterBody = { type: 'local_ratelimit'; settings: LocalRateLimitSettings } | { type: 'extension'; module: string; config: Record<string, unknown> };

const UNSUPPORTED_TYPE = `Trellis runs Envoy's local rate limit (type.googleapis.com/${LOCAL_RATE_LIMIT}) and Trellis extensions (a TypedStruct with type_url ${EXTENSION_TYPE_URL})`;

/**
 * A typed_config: Envoy's LocalRateLimit directly or in a TypedStruct, or a Trellis extension in a TypedStruct.
 * `perRoute`: a route's typed_per_filter_config entry (local rate limits only, with a token bucket). `file`: the
 * manifest's name, which a relative module path is resolved against.
 */
export function typedConfig(c: Checker, v: unknown, path: FieldPath, file: string, perRoute: boolean): FilterBody | undefined {
  const o = c.object(v, path, true);
  if (!o) return undefined;
  const t = c.string(o['@type'], [...path, '@type'], true);
  if (t === undefined) return undefined;
  if (typeName(t) === LOCAL_RATE_LIMIT) {
    const settings = localRateLimit(c, o, path, perRoute, ['@type']);
    return settings && { type: 'local_ratelimit', settings };
  }
  if (!TYPED_STRUCT.includes(typeName(t))) {
    c.error([...path, '@type'], `"${t}" is not supported: ${UNSUPPORTED_TYPE}`, 'unsupported');
    return undefined;
  }
  const ts = protoMessage(c, o, path, ['type_url', 'value'], {}, ['@type']);
  const url = c.string(ts.get('type_url'), ts.at('type_url'), true);
  const value = c.object(ts.get('value'), ts.at('value')) ?? {};
  if (url === undefined) return undefined;
  if (typeName(url) === LOCAL_RATE_LIMIT) {
    const settings = localRateLimit(c, value, ts.at('value'), perRoute);
    return settings && { type: 'local_ratelimit', settings };
  }
  if (url !== EXTENSION_TYPE_URL) {
    c.error(ts.at('type_url'), `"${url}" is not supported: ${UNSUPPORTED_TYPE}`, 'unsupported');
    return undefined;
  }
  if (perRoute) {
    c.error(ts.at('type_url'), 'Trellis extensions take no per-route settings; only local rate limits do', 'unsupported');
    return undefined;
  }
  return extension(c, value, ts.at('value'), file);
}

function extension(c: Checker, o: Json, path: FieldPath, file: string): FilterBody | undefined {
  c.knownFields(o, path, ['module', 'config']);
  const mod = c.string(o.module, [...path, 'module'], true);
  const config = c.object(o.config, [...path, 'config']) ?? {};
  if (mod === undefined) return undefined;
  let problem: string | undefined;
  if (mod === '' || mod.includes('\0')) problem = 'must be a file path';
  else if (/^[a-z][a-z0-9+.-]*:/i.test(mod)) problem = `"${mod}" is a URL; give a file path (relative to this manifest's folder, or absolute)`;
  else if (!MODULE_EXT.test(mod)) problem = `"${mod}" must name a TypeScript or JavaScript file (.ts, .mts, .js or .mjs)`;
  else if (!isAbsolute(mod) && file === '<stdin>') problem = `"${mod}" is relative, but this manifest came from standard input: give an absolute path`;
  if (problem) {
    c.error([...path, 'module'], problem);
    return undefined;
  }
  // Relative to the manifest's folder: absolute when the manifest's name is, else relative to where it was read from.
  return { type: 'extension', module: isAbsolute(mod) ? normalize(mod) : join(dirname(file), mod), config };
}

const LRL_UNSUPPORTED: Readonly<Record<string, string>> = {
  status: 'Trellis replies 429 (gRPC: UNAVAILABLE), as Envoy does by default',
  request_headers_to_add_when_not_enforced: 'Trellis has no shadow mode',
  descriptors: 'Trellis has one token bucket per listener or route',
  stage: 'Trellis has one token bucket per listener or route',
  local_cluster_rate_limit: 'Trellis limits per proxy',
  enable_x_ratelimit_headers: 'add headers with response_headers_to_add',
  vh_rate_limits: 'Trellis has one token bucket per listener or route',
  always_consume_default_token_bucket: 'Trellis has one token bucket per listener or route',
  rate_limited_as_resource_exhausted: 'Trellis answers rate-limited gRPC calls with UNAVAILABLE, as Envoy does by default',
  rate_limits: 'Trellis has one token bucket per listener or route',
};

function localRateLimit(c: Checker, o: Json, path: FieldPath, perRoute: boolean, extra: readonly string[] = []): LocalRateLimitSettings | undefined {
  const fields = ['stat_prefix', 'token_bucket', 'filter_enabled', 'filter_enforced', 'response_headers_to_add', 'local_rate_limit_per_downstream_connection'];
  const m = protoMessage(c, o, path, fields, LRL_UNSUPPORTED, extra);
  const statPrefix = c.string(m.get('stat_prefix'), m.at('stat_prefix'), true);
  if (statPrefix === '') c.error(m.at('stat_prefix'), 'may not be empty');
  if (c.boolean(m.get('local_rate_limit_per_downstream_connection'), m.at('local_rate_limit_per_downstream_connection'))) {
    c.error(m.at('local_rate_limit_per_downstream_connection'), 'is not supported: Trellis shares a token bucket between connections, as Envoy does by default', 'unsupported');
  }
  const out: LocalRateLimitSettings = { statPrefix: statPrefix ?? '', enabled: false, enforced: false, responseHeaders: {} };
  const bucket = tokenBucket(c, m.get('token_bucket'), m.at('token_bucket'), perRoute);
  if (bucket) out.tokenBucket = bucket;
  out.enabled = fraction(c, m.get('filter_enabled'), m.at('filter_enabled')) ?? false;
  out.enforced = fraction(c, m.get('filter_enforced'), m.at('filter_enforced')) ?? false;
  out.responseHeaders = responseHeaders(c, m.get('response_headers_to_add'), m.at('response_headers_to_add'));
  // Without a bucket a listener-level filter only carries per-route limits, so its own percentages do not matter.
  if (bucket && !out.enabled) {
    c.warn(m.at('filter_enabled'), 'the rate limit is off: filter_enabled is absent or 0% (Envoy enables it for 0% of requests unless told); give default_value numerator 100');
  } else if (bucket && !out.enforced) {
    c.warn(m.at('filter_enforced'), 'the rate limit is not enforced: filter_enforced is absent or 0% (shadow mode, which Trellis does not run); give default_value numerator 100');
  }
  return out;
}

function tokenBucket(c: Checker, v: unknown, path: FieldPath, perRoute: boolean): LocalRateLimitSettings['tokenBucket'] {
  if ((v === undefined || v === null) && perRoute) {
    c.error(path, 'is required in per-route settings (Envoy refuses a per-route local rate limit without one)', 'required');
    return undefined;
  }
  const o = c.object(v, path);
  if (!o) return undefined;
  const m = protoMessage(c, o, path, ['max_tokens', 'tokens_per_fill', 'fill_interval']);
  const maxTokens = c.integer(m.get('max_tokens'), m.at('max_tokens'), 1, UINT32, true);
  const tokensPerFill = c.integer(m.get('tokens_per_fill'), m.at('tokens_per_fill'), 1, UINT32) ?? 1;
  const fillIntervalMs = protoDuration(c, m.get('fill_interval'), m.at('fill_interval'), true);
  if (fillIntervalMs !== undefined && fillIntervalMs < 50) {
    c.error(m.at('fill_interval'), `must be at least 50ms, as Envoy requires (got ${String(m.get('fill_interval'))})`);
    return undefined;
  }
  return maxTokens === undefined || fillIntervalMs === undefined ? undefined : { maxTokens, tokensPerFill, fillIntervalMs };
}

const DENOMINATORS = { HUNDRED: 100, TEN_THOUSAND: 10_000, MILLION: 1_000_000 } as const;

/** A RuntimeFractionalPercent as Trellis runs it: all requests (true) or none (false). */
function fraction(c: Checker, v: unknown, path: FieldPath): boolean | undefined {
  const o = c.object(v, path);
  if (!o) return undefined;
  // Trellis has no runtime layer: default_value always applies, as in Envoy when the runtime key is unset.
  const m = protoMessage(c, o, path, ['default_value', 'runtime_key']);
  c.string(m.get('runtime_key'), m.at('runtime_key'));
  const dv = c.object(m.get('default_value'), m.at('default_value'), true);
  if (!dv) return undefined;
  const d = protoMessage(c, dv, m.at('default_value'), ['numerator', 'denominator']);
  const num = c.integer(d.get('numerator'), d.at('numerator'), 0, UINT32) ?? 0;
  const rawDen = d.get('denominator');
  const den = rawDen === undefined || rawDen === null ? 'HUNDRED' : oneOf(c, rawDen, d.at('denominator'), Object.keys(DENOMINATORS) as (keyof typeof DENOMINATORS)[]);
  if (den === undefined) return undefined;
  const scale = DENOMINATORS[den];
  if (num === 0 || num >= scale) return num !== 0;
  const pct = Number(((num * 100) / scale).toPrecision(4));
  c.error(d.at('numerator'), `${num}/${den} is ${pct}% of requests; Trellis rate-limits all requests or none: give numerator 100 with denominator HUNDRED (or 0 to turn the limit off)`);
  return undefined;
}

function responseHeaders(c: Checker, v: unknown, path: FieldPath): Record<string, string> {
  const out: Record<string, string> = {};
  const list = c.array(v, path) ?? [];
  if (list.length > 10) c.error(path, `may hold at most 10 headers, as Envoy allows (got ${list.length})`);
  list.forEach((h, i) => {
    const hp = [...path, i];
    const ho = c.object(h, hp, true);
    if (!ho) return;
    const m = protoMessage(c, ho, hp, ['header', 'append', 'append_action', 'keep_empty_value']);
    c.boolean(m.get('append'), m.at('append'));
    c.boolean(m.get('keep_empty_value'), m.at('keep_empty_value'));
    const action = m.get('append_action') === undefined ? undefined : oneOf(c, m.get('append_action'), m.at('append_action'), ['APPEND_IF_EXISTS_OR_ADD', 'ADD_IF_ABSENT', 'OVERWRITE_IF_EXISTS_OR_ADD', 'OVERWRITE_IF_EXISTS']);
    const header = c.object(m.get('header'), m.at('header'), true);
    if (!header) return;
    const hm = protoMessage(c, header, m.at('header'), ['key', 'value'], { raw_value: 'write the value as text in value' });
    const key = c.string(hm.get('key'), hm.at('key'), true);
    const value = c.string(hm.get('value'), hm.at('value')) ?? '';
    if (/[\r\n\0]/.test(value)) c.error(hm.at('value'), 'may not contain CR, LF or NUL');
    if (key === undefined) return;
    if (!HEADER_NAME.test(key)) c.error(hm.at('key'), `"${key}" is not a valid header name`);
    else if (action === 'OVERWRITE_IF_EXISTS') c.warn(m.at('append_action'), `adds nothing: a rate-limit reply has no ${key} header to overwrite`);
    else out[key.toLowerCase()] = value;
  });
  return out;
}
