// RouteConfiguration → the routing model's RouteConfig: the inverse of routeConfiguration() (src/xds/envoy-resources.ts)
// and of the route decorations Trellis proxies get (sidecar-listeners.ts). What the model cannot express is an error.
import type { FaultPolicy, HashPolicy, HeaderMatch, HeaderOps, Route, RouteAction, RouteConfig, StringMatch, VirtualHost } from '../routing/model.ts';
import { FAULT_FILTER } from '../xds/envoy-resources.ts';
import { readTrellisMetadata } from '../xds/xds-struct.ts';
import { anyType, At, durationMs, fractionalPercent, isObj, list, num, obj, show, str, text, wrapped, wrappedBool, type Obj } from './xds-translate-fields.ts';

const REDIRECT_CODES: Record<string, number> = { MOVED_PERMANENTLY: 301, FOUND: 302, SEE_OTHER: 303, TEMPORARY_REDIRECT: 307, PERMANENT_REDIRECT: 308 };

function stringMatch(v: unknown, at: At): StringMatch | undefined {
  const o = obj(v, at);
  if (!o) return undefined;
  const ignoreCase = o.ignore_case === true ? { ignoreCase: true } : {};
  if (typeof o.exact === 'string') return { exact: o.exact, ...ignoreCase };
  if (typeof o.prefix === 'string') return { prefix: o.prefix, ...ignoreCase };
  const re = obj(o.safe_regex, at.field('safe_regex'));
  if (re && typeof re.regex === 'string') return { regex: re.regex };
  return at.error(`unsupported string matcher (${Object.keys(o).join(', ') || 'empty'})`);
}

function headerMatch(v: unknown, at: At): HeaderMatch | undefined {
  const o = obj(v, at);
  const name = str(o?.name, at.field('name'));
  if (!o || name === undefined) return at.error('header matcher without a name');
  const out: HeaderMatch = { name };
  if (o.string_match !== undefined) {
    const m = stringMatch(o.string_match, at.field('string_match'));
    if (!m) return undefined;
    out.match = m;
  } else if (o.present_match !== undefined) out.present = o.present_match === true;
  else if (o.exact_match !== undefined) out.match = { exact: text(o.exact_match) };
  else if (o.prefix_match !== undefined) out.match = { prefix: text(o.prefix_match) };
  else if (o.safe_regex_match !== undefined && isObj(o.safe_regex_match)) out.match = { regex: String(o.safe_regex_match.regex) };
  else out.present = true;
  if (o.invert_match === true) out.invert = true;
  return out;
}

function routeMatch(v: unknown, at: At): Route['match'] | undefined {
  const m = obj(v, at) ?? {};
  const out: Route['match'] = { headers: [] };
  const ignoreCase = wrappedBool(m.case_sensitive, at.field('case_sensitive')) === false ? { ignoreCase: true } : {};
  if (typeof m.path === 'string') out.path = { exact: m.path, ...ignoreCase };
  else if (m.safe_regex !== undefined) {
    const re = obj(m.safe_regex, at.field('safe_regex'));
    if (re && typeof re.regex === 'string') out.path = { regex: re.regex };
  } else if (typeof m.prefix === 'string') {
    if (m.prefix !== '') out.path = { prefix: m.prefix, ...ignoreCase };
  } else if (m.prefix === undefined) return at.error(`unsupported path matcher (${Object.keys(m).join(', ') || 'none'})`);
  list(m.headers, at.field('headers')).forEach((h, i) => {
    const hm = headerMatch(h, at.field('headers').field(i));
    if (hm) out.headers.push(hm);
  });
  const qs = list(m.query_parameters, at.field('query_parameters'));
  if (qs.length > 0) {
    out.queryParams = [];
    qs.forEach((q, i) => {
      const qa = at.field('query_parameters').field(i);
      const o = obj(q, qa);
      const name = str(o?.name, qa.field('name'));
      if (!o || name === undefined) return;
      if (o.string_match !== undefined) {
        const sm = stringMatch(o.string_match, qa.field('string_match'));
        if (sm) out.queryParams?.push({ name, match: sm });
      } else out.queryParams?.push({ name });
    });
  }
  return out;
}

function hashPolicies(v: unknown[], at: At): HashPolicy[] {
  const out: HashPolicy[] = [];
  v.forEach((h, i) => {
    const a = at.field(i);
    const o = obj(h, a) ?? {};
    if (isObj(o.header)) out.push({ header: text(o.header.header_name, '') });
    else if (isObj(o.cookie)) {
      const c: NonNullable<HashPolicy['cookie']> = { name: text(o.cookie.name, '') };
      const ttl = durationMs(o.cookie.ttl, a.field('cookie').field('ttl'));
      if (ttl !== undefined) c.ttlMs = ttl;
      if (typeof o.cookie.path === 'string' && o.cookie.path !== '') c.path = o.cookie.path;
      out.push({ cookie: c });
    } else if (isObj(o.query_parameter)) out.push({ queryParameter: text(o.query_parameter.name, '') });
    else if (isObj(o.connection_properties)) out.push({ sourceIp: true });
    // gRPC's channel id stands in for the source address, which the connection_properties entry already says.
    else if (isObj(o.filter_state) && o.filter_state.key === 'io.grpc.channel_id') return;
    else a.error(`unsupported hash policy (${Object.keys(o).join(', ') || 'empty'})`);
  });
  return out;
}

function routeAction(r: Obj, at: At): RouteAction | undefined {
  const a = obj(r, at) ?? {};
  const out: Extract<RouteAction, { type: 'route' }> = { type: 'route', clusters: [] };
  if (typeof a.cluster === 'string') out.clusters = [{ cluster: a.cluster, weight: 100 }];
  else if (isObj(a.weighted_clusters)) {
    const wa = at.field('weighted_clusters').field('clusters');
    list(a.weighted_clusters.clusters, wa).forEach((c, i) => {
      const o = obj(c, wa.field(i));
      const name = str(o?.name, wa.field(i).field('name'));
      if (o && name !== undefined) out.clusters.push({ cluster: name, weight: wrapped(o.weight, wa.field(i).field('weight')) ?? 0 });
    });
    if (out.clusters.length === 0) return wa.error('no clusters');
  } else return at.error('no cluster (cluster_header and cluster_specifier_plugin are not supported)');
  const timeout = durationMs(a.timeout, at.field('timeout')) ?? durationMs((a.max_stream_duration as Obj | undefined)?.max_stream_duration, at.field('max_stream_duration'));
  if (timeout !== undefined) out.timeoutMs = timeout;
  if (a.retry_policy !== undefined) {
    const ra = at.field('retry_policy');
    const rp = obj(a.retry_policy, ra) ?? {};
    const retryOn = (str(rp.retry_on, ra.field('retry_on')) ?? '').split(',').map((s) => s.trim()).filter((s) => s !== '');
    // Envoy retries once when num_retries is not set.
    out.retry = { attempts: rp.num_retries === undefined ? 1 : (wrapped(rp.num_retries, ra.field('num_retries')) ?? 1), retryOn };
    const perTry = durationMs(rp.per_try_timeout, ra.field('per_try_timeout'));
    if (perTry !== undefined) out.retry.perTryTimeoutMs = perTry;
    if (rp.retriable_status_codes !== undefined) out.retry.retriableStatusCodes = list(rp.retriable_status_codes, ra.field('retriable_status_codes')).map((c) => Number(c));
  }
  const hp = list(a.hash_policy, at.field('hash_policy'));
  if (hp.length > 0) out.hashPolicy = hashPolicies(hp, at.field('hash_policy'));
  const rewrite: NonNullable<typeof out.rewrite> = {};
  if (typeof a.prefix_rewrite === 'string') rewrite.prefix = a.prefix_rewrite;
  if (isObj(a.regex_rewrite)) {
    const re = a.regex_rewrite;
    if (!isObj(re.pattern) || re.pattern.regex !== '.*') at.field('regex_rewrite').error('only a whole-path rewrite (pattern `.*`) is supported');
    else rewrite.fullPath = text(re.substitution, '');
  }
  if (typeof a.host_rewrite_literal === 'string') rewrite.authority = a.host_rewrite_literal;
  if (Object.keys(rewrite).length > 0) out.rewrite = rewrite;
  const mirrors = list(a.request_mirror_policies, at.field('request_mirror_policies'));
  if (mirrors.length > 1) at.field('request_mirror_policies').error('only one mirror is supported');
  const m = mirrors[0];
  if (isObj(m) && typeof m.cluster === 'string') {
    const frac = isObj(m.runtime_fraction) ? fractionalPercent(m.runtime_fraction.default_value ?? {}, at.field('request_mirror_policies').field(0)) : 100;
    out.mirror = { cluster: m.cluster, percent: frac ?? 100 };
  }
  return out;
}

function fault(v: unknown, at: At): FaultPolicy | undefined {
  if (anyType(v) !== 'envoy.extensions.filters.http.fault.v3.HTTPFault') return at.error(`expected an HTTPFault, got ${anyType(v) ?? 'nothing'}`);
  const f = v as Obj;
  const out: FaultPolicy = {};
  if (isObj(f.delay)) {
    const ms = durationMs(f.delay.fixed_delay, at.field('delay').field('fixed_delay'));
    if (ms === undefined) at.field('delay').error('only fixed_delay is supported');
    else out.delay = { fixedDelayMs: ms, percent: fractionalPercent(f.delay.percentage ?? {}, at.field('delay').field('percentage')) ?? 0 };
  }
  if (isObj(f.abort)) {
    const percent = fractionalPercent(f.abort.percentage ?? {}, at.field('abort').field('percentage')) ?? 0;
    if (f.abort.grpc_status !== undefined) out.abort = { grpcStatus: num(f.abort.grpc_status, at.field('abort').field('grpc_status')) ?? 2, percent };
    else if (f.abort.http_status !== undefined) out.abort = { httpStatus: num(f.abort.http_status, at.field('abort').field('http_status')) ?? 503, percent };
    else at.field('abort').error('only http_status and grpc_status aborts are supported');
  }
  return out;
}

/** Header operations: set (overwrite), add (append), remove. */
function headerOps(add: unknown, remove: unknown, at: At, name: string): HeaderOps {
  const ops: HeaderOps = { set: {}, add: {}, remove: list(remove, at.field(`${name}_headers_to_remove`)).map(String) };
  list(add, at.field(`${name}_headers_to_add`)).forEach((h, i) => {
    const ha = at.field(`${name}_headers_to_add`).field(i);
    const o = obj(h, ha);
    const hv = obj(o?.header, ha.field('header'));
    const key = str(hv?.key, ha.field('header').field('key'));
    if (!o || !hv || key === undefined) return;
    const value = text(hv.value, '');
    // APPEND_IF_EXISTS_OR_ADD is the enum's zero value; the legacy `append` flag says the same when true.
    const action = o.append_action ?? (wrappedBool(o.append, ha.field('append')) === false ? 'OVERWRITE_IF_EXISTS_OR_ADD' : 'APPEND_IF_EXISTS_OR_ADD');
    if (action === 'OVERWRITE_IF_EXISTS_OR_ADD' || action === 'ADD_IF_ABSENT') ops.set[key.toLowerCase()] = value;
    else ops.add[key.toLowerCase()] = value;
  });
  return ops;
}

function route(v: unknown, at: At): Route | undefined {
  const r = obj(v, at);
  if (!r) return undefined;
  const match = routeMatch(r.match, at.field('match'));
  if (!match) return undefined;
  let action: RouteAction | undefined;
  if (r.route !== undefined) action = routeAction(r.route as Obj, at.field('route'));
  else if (isObj(r.redirect)) {
    const d = r.redirect;
    const code = REDIRECT_CODES[text(d.response_code, 'MOVED_PERMANENTLY')];
    if (code === undefined) return at.field('redirect').field('response_code').error(`unknown code ${show(d.response_code)}`);
    const rd: Extract<RouteAction, { type: 'redirect' }> = { type: 'redirect', status: code };
    if (typeof d.scheme_redirect === 'string') rd.scheme = d.scheme_redirect;
    if (d.https_redirect === true) rd.scheme = 'https';
    if (typeof d.host_redirect === 'string') rd.host = d.host_redirect;
    if (d.port_redirect !== undefined) rd.port = num(d.port_redirect, at.field('redirect').field('port_redirect')) ?? 0;
    if (typeof d.path_redirect === 'string') rd.path = d.path_redirect;
    if (typeof d.prefix_rewrite === 'string') rd.prefixRewrite = d.prefix_rewrite;
    action = rd;
  } else if (isObj(r.direct_response)) {
    const d = r.direct_response;
    const dr: Extract<RouteAction, { type: 'direct-response' }> = { type: 'direct-response', status: num(d.status, at.field('direct_response').field('status')) ?? 0 };
    if (isObj(d.body)) {
      if (typeof d.body.inline_string === 'string') dr.body = d.body.inline_string;
      else if (typeof d.body.inline_bytes === 'string') dr.body = Buffer.from(d.body.inline_bytes, 'base64').toString('utf8');
      else at.field('direct_response').field('body').error('only inline bodies are supported');
    }
    action = dr;
  } else return at.error('unsupported route action (route, redirect and direct_response are)');
  if (!action) return undefined;
  const out: Route = { name: typeof r.name === 'string' ? r.name : '', match, action };
  const perFilter = isObj(r.typed_per_filter_config) ? r.typed_per_filter_config : {};
  for (const [name, cfg] of Object.entries(perFilter)) {
    if (name !== FAULT_FILTER) {
      at.field('typed_per_filter_config').error(`no per-route config for filter ${name}`);
      continue;
    }
    const f = fault(cfg, at.field('typed_per_filter_config').field(name));
    if (f && (f.delay || f.abort)) out.fault = f;
  }
  const meta = readTrellisMetadata(r.metadata);
  const present = Array.isArray(meta.headerOps) ? meta.headerOps.map(String) : undefined;
  const request = headerOps(r.request_headers_to_add, r.request_headers_to_remove, at, 'request');
  const response = headerOps(r.response_headers_to_add, r.response_headers_to_remove, at, 'response');
  const any = (h: HeaderOps): boolean => Object.keys(h.set).length + Object.keys(h.add).length + h.remove.length > 0;
  const headers: NonNullable<Route['headers']> = {};
  if (present ? present.includes('request') : any(request)) headers.request = request;
  if (present ? present.includes('response') : any(response)) headers.response = response;
  if (headers.request || headers.response) out.headers = headers;
  if (action.type === 'route' && (Object.keys(request.set).length > 0 || Object.keys(request.add).length > 0)) action.headersToAdd = { ...request.add, ...request.set };
  const src = isObj(meta.source) ? meta.source : undefined;
  if (src && Array.isArray(src.path)) {
    const loc = { file: text(src.file, ''), line: Number(src.line ?? 0), column: Number(src.column ?? 0) };
    out.source = { origin: { file: loc.file, locate: () => loc }, path: src.path.map((s) => (typeof s === 'number' ? s : String(s))) };
  }
  return out;
}

/** One RouteConfiguration (from RDS, or inline in an HttpConnectionManager). */
export function translateRouteConfiguration(v: Obj, at: At): RouteConfig | undefined {
  const name = str(v.name, at.field('name'));
  if (name === undefined) return at.field('name').error('missing');
  const virtualHosts: VirtualHost[] = [];
  list(v.virtual_hosts, at.field('virtual_hosts')).forEach((vh, i) => {
    const va = at.field('virtual_hosts').field(i);
    const o = obj(vh, va);
    if (!o) return;
    const domains = list(o.domains, va.field('domains')).map(String);
    if (domains.length === 0) va.field('domains').error('a virtual host needs at least one domain');
    const routes: Route[] = [];
    list(o.routes, va.field('routes')).forEach((r, j) => {
      const t = route(r, va.field('routes').field(j));
      if (t) routes.push(t);
    });
    virtualHosts.push({ name: typeof o.name === 'string' ? o.name : '', domains, routes });
  });
  return { name, virtualHosts };
}
