// Validation of Istio's networking.istio.io VirtualService, following istio.io's reference and istioctl's checks.
import type { Checker, Json } from './checker.ts';
import type { FieldPath, Origin } from './kinds.ts';
import type { IstioFault, IstioHttpMatch, IstioHttpRoute, IstioL4Match, IstioL4Route, IstioRouteDestination, VirtualService } from './kinds-traffic.ts';
import { isCidrError, parseCidr } from './net.ts';
import { labelMap, objectMeta } from './validate-common.ts';
import { duration, hostList, istioDestination, istioHeaders, notImplemented, percentage, stringList, stringMatch } from './validate-traffic-common.ts';

/** gRPC status names Istio accepts for abort.grpcStatus, with their codes. */
export const GRPC_STATUS: Record<string, number> = {
  OK: 0, CANCELLED: 1, UNKNOWN: 2, INVALID_ARGUMENT: 3, DEADLINE_EXCEEDED: 4, NOT_FOUND: 5, ALREADY_EXISTS: 6, PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8, FAILED_PRECONDITION: 9, ABORTED: 10, OUT_OF_RANGE: 11, UNIMPLEMENTED: 12, INTERNAL: 13, UNAVAILABLE: 14,
  DATA_LOSS: 15, UNAUTHENTICATED: 16,
};

const HTTP_ROUTE_FIELDS = ['name', 'match', 'route', 'redirect', 'directResponse', 'rewrite', 'timeout', 'retries', 'fault', 'mirror', 'mirrorPercentage', 'corsPolicy', 'headers'];

export function readVirtualService(c: Checker, obj: Json, origin: Origin): VirtualService | undefined {
  const metadata = objectMeta(c, obj, true, 'VirtualService');
  if (!metadata) return undefined;
  c.knownFields(obj, [], ['apiVersion', 'kind', 'metadata', 'spec', 'status']);
  const spec = c.object(obj.spec, ['spec'], true) ?? {};
  c.knownFields(spec, ['spec'], ['hosts', 'gateways', 'http', 'tcp', 'tls', 'exportTo']);
  notImplemented(c, spec, ['spec'], { exportTo: 'the routes are visible in every namespace' });
  const out: VirtualService['spec'] = { hosts: hostList(c, spec.hosts, ['spec', 'hosts'], true), http: [], tcp: [], tls: [] };
  if (spec.gateways !== undefined && spec.gateways !== null) out.gateways = stringList(c, spec.gateways, ['spec', 'gateways']);
  if (spec.exportTo !== undefined && spec.exportTo !== null) out.exportTo = stringList(c, spec.exportTo, ['spec', 'exportTo']);
  (c.array(spec.http, ['spec', 'http']) ?? []).forEach((r, i) => {
    const hr = httpRoute(c, r, ['spec', 'http', i]);
    if (hr) out.http.push(hr);
  });
  for (const kind of ['tcp', 'tls'] as const) {
    (c.array(spec[kind], ['spec', kind]) ?? []).forEach((r, i) => {
      const lr = l4Route(c, r, ['spec', kind, i], kind);
      if (lr) out[kind].push(lr);
    });
  }
  if (out.http.length === 0 && out.tcp.length === 0 && out.tls.length === 0 && c.errorCount === 0) {
    c.error(['spec'], 'must have at least one http, tcp or tls route', 'required');
  }
  // Istio: only the last http route may be without matches; the ones after it are never used.
  out.http.forEach((r, i) => {
    if (r.match.length === 0 && i < out.http.length - 1) {
      c.warn(['spec', 'http', i + 1], `never used: spec.http[${i}] has no match and catches every request`, 'unreachable-route');
    }
  });
  return { kind: 'VirtualService', apiVersion: String(obj.apiVersion), metadata, origin, spec: out };
}

function httpRoute(c: Checker, v: unknown, path: FieldPath): IstioHttpRoute | undefined {
  const o = c.object(v, path, true);
  if (!o) return undefined;
  c.knownFields(o, path, HTTP_ROUTE_FIELDS);
  notImplemented(c, o, path, { corsPolicy: 'CORS requests and preflights go to the destination unchanged' });
  const out: IstioHttpRoute = { match: [], route: [], path };
  const name = c.string(o.name, [...path, 'name']);
  if (name) out.name = name;
  (c.array(o.match, [...path, 'match']) ?? []).forEach((m, i) => {
    const hm = httpMatch(c, m, [...path, 'match', i]);
    if (hm) out.match.push(hm);
  });
  const present = (f: string): boolean => o[f] !== undefined && o[f] !== null;
  if (present('route') && present('redirect')) c.error([...path, 'redirect'], 'may not be combined with route (a rule either forwards or redirects)', 'exclusive-fields', 'key');
  if (present('directResponse') && (present('route') || present('redirect'))) {
    c.error([...path, 'directResponse'], `may not be combined with ${present('route') ? 'route' : 'redirect'} (set only one of route, redirect, directResponse)`, 'exclusive-fields', 'key');
  }
  if (!present('route') && !present('redirect') && !present('directResponse')) c.error(path, 'must set one of route, redirect, directResponse', 'required');
  out.route = destinations(c, o.route, [...path, 'route']);
  const redirect = c.object(o.redirect, [...path, 'redirect']);
  if (redirect) {
    const rp = [...path, 'redirect'];
    c.knownFields(redirect, rp, ['uri', 'authority', 'port', 'scheme', 'redirectCode', 'derivePort']);
    notImplemented(c, redirect, rp, { derivePort: 'the redirect keeps the port given in port, or none' });
    const r: NonNullable<IstioHttpRoute['redirect']> = { redirectCode: c.integer(redirect.redirectCode, [...rp, 'redirectCode'], 300, 399) ?? 301 };
    for (const f of ['uri', 'authority', 'scheme'] as const) {
      const s = c.string(redirect[f], [...rp, f]);
      if (s !== undefined) r[f] = s;
    }
    const port = c.integer(redirect.port, [...rp, 'port'], 1, 65535);
    if (port !== undefined) r.port = port;
    out.redirect = r;
  }
  const dr = c.object(o.directResponse, [...path, 'directResponse']);
  if (dr) {
    const dp = [...path, 'directResponse'];
    c.knownFields(dr, dp, ['status', 'body']);
    const d: NonNullable<IstioHttpRoute['directResponse']> = { status: c.integer(dr.status, [...dp, 'status'], 200, 599, true) ?? 200 };
    const body = c.object(dr.body, [...dp, 'body']);
    if (body) {
      c.knownFields(body, [...dp, 'body'], ['string', 'bytes']);
      const s = c.string(body.string, [...dp, 'body', 'string']);
      const b = c.string(body.bytes, [...dp, 'body', 'bytes']);
      if (s !== undefined) d.body = s;
      else if (b !== undefined) d.body = Buffer.from(b, 'base64').toString('utf8');
    }
    out.directResponse = d;
  }
  const rw = c.object(o.rewrite, [...path, 'rewrite']);
  if (rw) {
    c.knownFields(rw, [...path, 'rewrite'], ['uri', 'authority']);
    out.rewrite = {};
    const uri = c.string(rw.uri, [...path, 'rewrite', 'uri']);
    if (uri !== undefined) out.rewrite.uri = uri;
    const auth = c.string(rw.authority, [...path, 'rewrite', 'authority']);
    if (auth !== undefined) out.rewrite.authority = auth;
    if (present('redirect')) c.error([...path, 'rewrite'], 'may not be combined with redirect', 'exclusive-fields', 'key');
  }
  const timeout = duration(c, o.timeout, [...path, 'timeout'], { allowZero: true });
  if (timeout !== undefined) out.timeoutMs = timeout;
  const retries = c.object(o.retries, [...path, 'retries']);
  if (retries) {
    const rp = [...path, 'retries'];
    c.knownFields(retries, rp, ['attempts', 'perTryTimeout', 'retryOn', 'retryRemoteLocalities']);
    notImplemented(c, retries, rp, { retryRemoteLocalities: 'retries may go to any locality' });
    out.retries = { attempts: c.integer(retries.attempts, [...rp, 'attempts'], 0, 1000) ?? 0 };
    const ptt = duration(c, retries.perTryTimeout, [...rp, 'perTryTimeout']);
    if (ptt !== undefined) out.retries.perTryTimeoutMs = ptt;
    const on = c.string(retries.retryOn, [...rp, 'retryOn']);
    if (on !== undefined) out.retries.retryOn = on;
  }
  const fault = faultInjection(c, o.fault, [...path, 'fault']);
  if (fault) out.fault = fault;
  if (o.mirror !== undefined && o.mirror !== null) {
    const m = istioDestination(c, o.mirror, [...path, 'mirror']);
    if (m) out.mirror = m;
  }
  if (o.mirrorPercentage !== undefined && o.mirrorPercentage !== null) {
    const p = percentage(c, o.mirrorPercentage, [...path, 'mirrorPercentage']);
    if (p !== undefined) out.mirrorPercent = p;
  }
  const cors = c.object(o.corsPolicy, [...path, 'corsPolicy']);
  if (cors) {
    c.knownFields(cors, [...path, 'corsPolicy'], ['allowOrigins', 'allowOrigin', 'allowMethods', 'allowHeaders', 'exposeHeaders', 'maxAge', 'allowCredentials', 'unmatchedPreflights']);
    out.corsPolicy = cors;
  }
  const headers = istioHeaders(c, o.headers, [...path, 'headers']);
  if (headers) out.headers = headers;
  return out;
}

function httpMatch(c: Checker, v: unknown, path: FieldPath): IstioHttpMatch | undefined {
  const o = c.object(v, path, true);
  if (!o) return undefined;
  c.knownFields(o, path, ['name', 'uri', 'scheme', 'method', 'authority', 'headers', 'port', 'sourceLabels', 'gateways', 'queryParams', 'ignoreUriCase', 'withoutHeaders', 'sourceNamespace', 'statPrefix']);
  const out: IstioHttpMatch = { headers: [], withoutHeaders: [], queryParams: [], ignoreUriCase: c.boolean(o.ignoreUriCase, [...path, 'ignoreUriCase']) ?? false, path };
  const name = c.string(o.name, [...path, 'name']);
  if (name) out.name = name;
  for (const f of ['uri', 'scheme', 'method', 'authority'] as const) {
    const m = stringMatch(c, o[f], [...path, f]);
    if (m) out[f] = m;
  }
  for (const f of ['headers', 'withoutHeaders', 'queryParams'] as const) {
    const map = c.object(o[f], [...path, f]);
    if (!map) continue;
    for (const [k, mv] of Object.entries(map)) {
      const hp = [...path, f, k];
      if (f !== 'queryParams' && !/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(k)) c.error(hp, `"${k}" is not a valid header name`, 'invalid-value', 'key');
      const m = stringMatch(c, mv, hp, { allowEmpty: true, noPrefix: f === 'queryParams' });
      const entry: { name: string; match?: (typeof out.headers)[number]['match'] } = { name: f === 'queryParams' ? k : k.toLowerCase() };
      if (m) entry.match = m;
      out[f].push(entry);
    }
    out[f].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }
  const port = c.integer(o.port, [...path, 'port'], 1, 65535);
  if (port !== undefined) out.port = port;
  if (o.sourceLabels !== undefined && o.sourceLabels !== null) out.sourceLabels = labelMap(c, o.sourceLabels, [...path, 'sourceLabels']);
  const sns = c.string(o.sourceNamespace, [...path, 'sourceNamespace']);
  if (sns) out.sourceNamespace = sns;
  if (o.gateways !== undefined && o.gateways !== null) out.gateways = stringList(c, o.gateways, [...path, 'gateways']);
  return out;
}

function faultInjection(c: Checker, v: unknown, path: FieldPath): IstioFault | undefined {
  const o = c.object(v, path);
  if (!o) return undefined;
  c.knownFields(o, path, ['delay', 'abort']);
  const out: IstioFault = {};
  const delay = c.object(o.delay, [...path, 'delay']);
  if (delay) {
    const dp = [...path, 'delay'];
    c.knownFields(delay, dp, ['fixedDelay', 'percentage', 'percent']);
    const d = duration(c, delay.fixedDelay, [...dp, 'fixedDelay']);
    if (delay.fixedDelay === undefined || delay.fixedDelay === null) c.error([...dp, 'fixedDelay'], 'is required', 'required');
    const pct = faultPercent(c, delay, dp);
    if (d !== undefined && pct !== undefined) out.delay = { fixedDelayMs: d, percent: pct };
  }
  const abort = c.object(o.abort, [...path, 'abort']);
  if (abort) {
    const ap = [...path, 'abort'];
    c.knownFields(abort, ap, ['httpStatus', 'grpcStatus', 'http2Error', 'percentage']);
    notImplemented(c, abort, ap, { http2Error: 'the abort answers HTTP 503' });
    c.exclusive(abort, ap, ['httpStatus', 'grpcStatus', 'http2Error'], 'set only one of httpStatus, grpcStatus, http2Error');
    const pct = faultPercent(c, abort, ap);
    const a: NonNullable<IstioFault['abort']> = { percent: pct ?? 0 };
    const hs = c.integer(abort.httpStatus, [...ap, 'httpStatus'], 200, 599);
    if (hs !== undefined) a.httpStatus = hs;
    const gs = c.string(abort.grpcStatus, [...ap, 'grpcStatus']);
    if (gs !== undefined) {
      const code = GRPC_STATUS[gs];
      if (code === undefined) c.error([...ap, 'grpcStatus'], `"${gs}" is not a gRPC status name such as UNAVAILABLE or DEADLINE_EXCEEDED`);
      else a.grpcStatus = code;
    }
    if (abort.httpStatus === undefined && abort.grpcStatus === undefined && abort.http2Error === undefined) c.error(ap, 'must set httpStatus or grpcStatus', 'required');
    if (pct !== undefined) out.abort = a;
  }
  if (!out.delay && !out.abort && !delay && !abort) c.error(path, 'must set delay or abort', 'required');
  return out;
}

/** Istio injects a fault into the percentage of requests given; without one, into every request. */
function faultPercent(c: Checker, o: Json, path: FieldPath): number | undefined {
  if (o.percentage !== undefined && o.percentage !== null) return percentage(c, o.percentage, [...path, 'percentage']);
  if (o.percent !== undefined && o.percent !== null) return c.integer(o.percent, [...path, 'percent'], 0, 100);
  return 100;
}

function destinations(c: Checker, v: unknown, path: FieldPath): IstioRouteDestination[] {
  const list = c.array(v, path) ?? [];
  const out: IstioRouteDestination[] = [];
  list.forEach((d, i) => {
    const dp = [...path, i];
    const o = c.object(d, dp, true);
    if (!o) return;
    c.knownFields(o, dp, ['destination', 'weight', 'headers']);
    notImplemented(c, o, dp, { headers: "per-destination header operations are not applied; set them on the route's headers" });
    const dest = istioDestination(c, o.destination, [...dp, 'destination']);
    const r: IstioRouteDestination = { destination: dest ?? { host: '', path: [...dp, 'destination'] }, path: dp };
    const w = c.integer(o.weight, [...dp, 'weight'], 0, 100);
    if (w !== undefined) r.weight = w;
    const h = istioHeaders(c, o.headers, [...dp, 'headers']);
    if (h) r.headers = h;
    if (dest) out.push(r);
  });
  if (out.length > 1) {
    const sum = out.reduce((s, r) => s + (r.weight ?? 0), 0);
    // Istio: weights across destinations should add up to 100; a single destination takes all traffic.
    if (sum !== 100) c.warn(path, `weights add up to ${sum}, not 100; traffic is split in proportion to them`, 'weights');
  }
  return out;
}

function l4Route(c: Checker, v: unknown, path: FieldPath, kind: 'tcp' | 'tls'): IstioL4Route | undefined {
  const o = c.object(v, path, true);
  if (!o) return undefined;
  c.knownFields(o, path, ['match', 'route']);
  const out: IstioL4Route = { match: [], route: destinations(c, o.route, [...path, 'route']), path };
  if (out.route.length === 0 && (o.route === undefined || o.route === null)) c.error([...path, 'route'], 'is required', 'required');
  (c.array(o.match, [...path, 'match'], kind === 'tls') ?? []).forEach((m, i) => {
    const mp = [...path, 'match', i];
    const mo = c.object(m, mp, true);
    if (!mo) return;
    c.knownFields(mo, mp, kind === 'tls' ? ['sniHosts', 'destinationSubnets', 'port', 'sourceLabels', 'gateways', 'sourceNamespace'] : ['destinationSubnets', 'port', 'sourceLabels', 'gateways', 'sourceNamespace', 'sourceSubnet']);
    notImplemented(c, mo, mp, { sourceSubnet: 'the match applies to every source address' });
    const lm: IstioL4Match = {};
    if (kind === 'tls') lm.sniHosts = hostList(c, mo.sniHosts, [...mp, 'sniHosts'], true);
    if (mo.destinationSubnets !== undefined && mo.destinationSubnets !== null) {
      lm.destinationSubnets = stringList(c, mo.destinationSubnets, [...mp, 'destinationSubnets']).filter((s, j) => {
        const cidr = parseCidr(s.includes('/') ? s : s.includes(':') ? `${s}/128` : `${s}/32`);
        if (isCidrError(cidr)) c.error([...mp, 'destinationSubnets', j], cidr.error, 'invalid-cidr');
        return !isCidrError(cidr);
      });
    }
    const port = c.integer(mo.port, [...mp, 'port'], 1, 65535);
    if (port !== undefined) lm.port = port;
    if (mo.sourceLabels !== undefined && mo.sourceLabels !== null) lm.sourceLabels = labelMap(c, mo.sourceLabels, [...mp, 'sourceLabels']);
    const sns = c.string(mo.sourceNamespace, [...mp, 'sourceNamespace']);
    if (sns) lm.sourceNamespace = sns;
    if (mo.gateways !== undefined && mo.gateways !== null) lm.gateways = stringList(c, mo.gateways, [...mp, 'gateways']);
    out.match.push(lm);
  });
  return out;
}
