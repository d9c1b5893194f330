// Pod annotations that tune a pod's Trellis proxy where Istio has no manifest field (in the spirit of Istio's
// `sidecar.istio.io/*` annotations): the HTTP connection manager limits of the pod's inbound and outbound listeners.
// Validated here with located errors; the control plane reads the values back with proxyLimitsOf().
import type { Checker } from './checker.ts';
import type { FieldPath } from './kinds.ts';
import { parseDurationMs } from './validate-traffic-common.ts';

/** The HCM limits a pod may set, as the control plane sends them (Envoy's HttpConnectionManager fields). */
export interface ProxyLimitAnnotations {
  /** `request_headers_timeout`: time to receive a full request header block (slowloris), ms. */
  requestHeadersTimeoutMs?: number;
  /** `common_http_protocol_options.idle_timeout`: a downstream connection with no request closes after it, ms. */
  idleTimeoutMs?: number;
  /** `common_http_protocol_options.max_headers_count`. */
  maxRequestHeaders?: number;
  /** `max_request_headers_kb`. */
  maxRequestHeadersKb?: number;
  /** `http2_protocol_options.max_concurrent_streams`. */
  maxConcurrentStreams?: number;
}

type Field = keyof ProxyLimitAnnotations;

/** Annotation → field, kind and bounds (Envoy's: header count 1..8192, header block 1..8192 KiB, streams 1..2^31-1). */
const ANNOTATIONS: Readonly<Record<string, { field: Field; kind: 'duration' | 'count'; min: number; max: number }>> = {
  'trellis.dev/request-headers-timeout': { field: 'requestHeadersTimeoutMs', kind: 'duration', min: 1, max: 3_600_000 },
  'trellis.dev/idle-timeout': { field: 'idleTimeoutMs', kind: 'duration', min: 1, max: 86_400_000 },
  'trellis.dev/max-request-headers': { field: 'maxRequestHeaders', kind: 'count', min: 1, max: 8192 },
  'trellis.dev/max-request-headers-kb': { field: 'maxRequestHeadersKb', kind: 'count', min: 1, max: 8192 },
  'trellis.dev/max-concurrent-streams': { field: 'maxConcurrentStreams', kind: 'count', min: 1, max: 2_147_483_647 },
};

export const PROXY_LIMIT_ANNOTATIONS: readonly string[] = Object.keys(ANNOTATIONS);

function parse(kind: 'duration' | 'count', v: string): number | undefined {
  if (kind === 'duration') return parseDurationMs(v);
  return /^[0-9]{1,10}$/.test(v) ? Number(v) : undefined;
}

/** The limits a pod's (or pod template's) annotations set; values that do not parse or are out of bounds are left out. */
export function proxyLimitsOf(annotations: Readonly<Record<string, string>> | undefined): ProxyLimitAnnotations {
  const out: ProxyLimitAnnotations = {};
  if (!annotations) return out;
  for (const key in ANNOTATIONS) {
    const v = annotations[key];
    if (v === undefined) continue;
    const a = ANNOTATIONS[key]!;
    const n = parse(a.kind, v);
    if (n !== undefined && n >= a.min && n <= a.max) out[a.field] = Math.round(n);
  }
  return out;
}

/** Checks the proxy annotations among `annotations` (at `path`, the annotations map), one located error per bad value. */
export function checkProxyAnnotations(c: Checker, annotations: Readonly<Record<string, string>>, path: FieldPath): void {
  for (const [key, v] of Object.entries(annotations)) {
    const a = ANNOTATIONS[key];
    if (!a) {
      if (key.startsWith('trellis.dev/') && /timeout|header|stream/.test(key)) c.warn([...path, key], `unknown proxy annotation; known ones are ${PROXY_LIMIT_ANNOTATIONS.join(', ')}`, 'unknown-annotation');
      continue;
    }
    const n = parse(a.kind, v);
    const what = a.kind === 'duration' ? 'a duration such as 5s or 300ms' : 'a whole number';
    if (n === undefined) c.error([...path, key], `"${v}" is not ${what}`);
    else if (n < a.min || n > a.max) c.error([...path, key], `${v} is out of range (${a.kind === 'duration' ? `${a.min}ms..${a.max / 1000}s` : `${a.min}..${a.max}`})`);
  }
}
