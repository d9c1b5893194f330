// Validation of Gateway API (gateway.networking.k8s.io): Gateway, HTTPRoute and GRPCRoute, following the CRDs' own rules.
import type { Checker, Json } from './checker.ts';
import type { FieldPath, Origin } from './kinds.ts';
import type {
  ReferenceGrant,
  BackendRef,
  GatewayApiGateway,
  GatewayHeaderMatch,
  GatewayHeaderModifier,
  GRPCRoute,
  GrpcRouteMatch,
  HTTPRoute,
  HttpRouteFilter,
  HttpRouteMatch,
  ParentReference,
} from './kinds-traffic.ts';
import { labelSelector, objectMeta } from './validate-common.ts';
import { hostProblem, oneOf, regex, stringList } from './validate-traffic-common.ts';

/** Gateway API durations (GEP-2257): up to four number+unit parts, units h, m, s, ms; such as 10s or 1h30m. */
function gwDuration(c: Checker, v: unknown, path: FieldPath): number | undefined {
  const s = c.string(v, path);
  if (s === undefined) return undefined;
  if (!/^([0-9]{1,5}(h|m|s|ms)){1,4}$/.test(s)) {
    c.error(path, `"${s}" is not a Gateway API duration: up to four parts of 1-5 digits and a unit h, m, s or ms, such as 10s or 1m30s`, 'invalid-duration');
    return undefined;
  }
  let ms = 0;
  for (const m of s.matchAll(/([0-9]+)(ms|h|m|s)/g)) ms += Number(m[1]) * ({ h: 3600000, m: 60000, s: 1000, ms: 1 }[m[2] as 'h'] ?? 0);
  return ms;
}

function hostnames(c: Checker, v: unknown, path: FieldPath): string[] {
  const hs = stringList(c, v, path);
  hs.forEach((h, i) => {
    const p = h === '*' ? 'hostname may not be "*" alone; leave hostnames empty to match every host' : hostProblem(h);
    if (p) c.error([...path, i], p, 'invalid-host');
  });
  return hs;
}

function parentRefs(c: Checker, v: unknown, path: FieldPath): ParentReference[] {
  const out: ParentReference[] = [];
  (c.array(v, path) ?? []).forEach((p, i) => {
    const pp = [...path, i];
    const o = c.object(p, pp, true);
    if (!o) return;
    c.knownFields(o, pp, ['group', 'kind', 'namespace', 'name', 'sectionName', 'port']);
    const name = c.string(o.name, [...pp, 'name'], true);
    const ref: ParentReference = { group: c.string(o.group, [...pp, 'group']) ?? 'gateway.networking.k8s.io', kind: c.string(o.kind, [...pp, 'kind']) ?? 'Gateway', name: name ?? '', path: pp };
    const ns = c.string(o.namespace, [...pp, 'namespace']);
    if (ns) ref.namespace = ns;
    const section = c.string(o.sectionName, [...pp, 'sectionName']);
    if (section) ref.sectionName = section;
    const port = c.integer(o.port, [...pp, 'port'], 1, 65535);
    if (port !== undefined) ref.port = port;
    if (name !== undefined) out.push(ref);
  });
  return out;
}

function backendRef(c: Checker, v: unknown, path: FieldPath, withWeight: boolean): BackendRef | undefined {
  const o = c.object(v, path, true);
  if (!o) return undefined;
  c.knownFields(o, path, withWeight ? ['group', 'kind', 'name', 'namespace', 'port', 'weight', 'filters'] : ['group', 'kind', 'name', 'namespace', 'port']);
  const name = c.string(o.name, [...path, 'name'], true);
  const ref: BackendRef = { group: c.string(o.group, [...path, 'group']) ?? '', kind: c.string(o.kind, [...path, 'kind']) ?? 'Service', name: name ?? '', weight: 1, path };
  const ns = c.string(o.namespace, [...path, 'namespace']);
  if (ns) ref.namespace = ns;
  const port = c.integer(o.port, [...path, 'port'], 1, 65535);
  if (port !== undefined) ref.port = port;
  else if ((ref.group === '' || ref.group === 'core') && ref.kind === 'Service' && (o.port === undefined || o.port === null)) c.error([...path, 'port'], 'is required when referring to a Service', 'required');
  if (withWeight) ref.weight = c.integer(o.weight, [...path, 'weight'], 0, 1000000) ?? 1;
  return name === undefined ? undefined : ref;
}

function headerMatches(c: Checker, v: unknown, path: FieldPath, lower: boolean): GatewayHeaderMatch[] {
  const out: GatewayHeaderMatch[] = [];
  const seen = new Set<string>();
  (c.array(v, path) ?? []).forEach((h, i) => {
    const hp = [...path, i];
    const o = c.object(h, hp, true);
    if (!o) return;
    c.knownFields(o, hp, ['type', 'name', 'value']);
    const type = oneOf(c, o.type, [...hp, 'type'], ['Exact', 'RegularExpression'] as const) ?? 'Exact';
    const name = c.string(o.name, [...hp, 'name'], true);
    const value = type === 'RegularExpression' ? regex(c, o.value, [...hp, 'value'], true) : c.string(o.value, [...hp, 'value'], true);
    if (name === undefined || value === undefined) return;
    const key = lower ? name.toLowerCase() : name;
    if (seen.has(key)) c.error([...hp, 'name'], `"${name}" is matched twice in one match`, 'duplicate');
    seen.add(key);
    out.push({ type, name: key, value });
  });
  return out;
}

function headerModifier(c: Checker, v: unknown, path: FieldPath): GatewayHeaderModifier {
  const o = c.object(v, path, true) ?? {};
  c.knownFields(o, path, ['set', 'add', 'remove']);
  const pairs = (f: 'set' | 'add'): { name: string; value: string }[] =>
    (c.array(o[f], [...path, f]) ?? []).flatMap((x, i) => {
      const xo = c.object(x, [...path, f, i], true);
      if (!xo) return [];
      c.knownFields(xo, [...path, f, i], ['name', 'value']);
      const name = c.string(xo.name, [...path, f, i, 'name'], true);
      const value = c.string(xo.value, [...path, f, i, 'value'], true);
      return name === undefined || value === undefined ? [] : [{ name: name.toLowerCase(), value }];
    });
  return { set: pairs('set'), add: pairs('add'), remove: stringList(c, o.remove, [...path, 'remove']).map((s) => s.toLowerCase()) };
}

function pathModifier(c: Checker, v: unknown, path: FieldPath): { type: 'ReplaceFullPath' | 'ReplacePrefixMatch'; value: string } | undefined {
  const o = c.object(v, path);
  if (!o) return undefined;
  c.knownFields(o, path, ['type', 'replaceFullPath', 'replacePrefixMatch']);
  const type = oneOf(c, o.type, [...path, 'type'], ['ReplaceFullPath', 'ReplacePrefixMatch'] as const, true);
  if (!type) return undefined;
  const field = type === 'ReplaceFullPath' ? 'replaceFullPath' : 'replacePrefixMatch';
  const other = type === 'ReplaceFullPath' ? 'replacePrefixMatch' : 'replaceFullPath';
  if (o[other] !== undefined) c.error([...path, other], `may not be set when type is ${type}`, 'exclusive-fields', 'key');
  const value = c.string(o[field], [...path, field], true);
  return value === undefined ? undefined : { type, value };
}

function filters(c: Checker, v: unknown, path: FieldPath, grpc: boolean): HttpRouteFilter[] {
  const out: HttpRouteFilter[] = [];
  const types = grpc ? (['RequestHeaderModifier', 'ResponseHeaderModifier', 'RequestMirror', 'ExtensionRef'] as const) : (['RequestHeaderModifier', 'ResponseHeaderModifier', 'RequestRedirect', 'URLRewrite', 'RequestMirror', 'ExtensionRef'] as const);
  const fieldOf: Record<string, string> = {
    RequestHeaderModifier: 'requestHeaderModifier', ResponseHeaderModifier: 'responseHeaderModifier', RequestRedirect: 'requestRedirect',
    URLRewrite: 'urlRewrite', RequestMirror: 'requestMirror', ExtensionRef: 'extensionRef',
  };
  (c.array(v, path) ?? []).forEach((f, i) => {
    const fp = [...path, i];
    const o = c.object(f, fp, true);
    if (!o) return;
    c.knownFields(o, fp, ['type', ...types.map((t) => fieldOf[t] ?? t)]);
    const type = oneOf(c, o.type, [...fp, 'type'], types, true);
    if (!type) return;
    const field = fieldOf[type] ?? type;
    for (const t of types) {
      const other = fieldOf[t] ?? t;
      if (other !== field && o[other] !== undefined) c.error([...fp, other], `may not be set when type is ${type}`, 'exclusive-fields', 'key');
    }
    const cfgPath = [...fp, field];
    if (o[field] === undefined || o[field] === null) {
      c.error(cfgPath, `is required when type is ${type}`, 'required');
      return;
    }
    switch (type) {
      case 'RequestHeaderModifier':
      case 'ResponseHeaderModifier':
        out.push({ type, modifier: headerModifier(c, o[field], cfgPath) });
        break;
      case 'RequestRedirect': {
        const r = c.object(o[field], cfgPath) ?? {};
        c.knownFields(r, cfgPath, ['scheme', 'hostname', 'path', 'port', 'statusCode']);
        const status = c.integer(r.statusCode, [...cfgPath, 'statusCode'], 300, 399) ?? 302;
        if (status !== 301 && status !== 302 && status !== 303 && status !== 307 && status !== 308) c.error([...cfgPath, 'statusCode'], 'must be 301, 302, 303, 307 or 308');
        const f: Extract<HttpRouteFilter, { type: 'RequestRedirect' }> = { type, statusCode: status };
        const scheme = oneOf(c, r.scheme, [...cfgPath, 'scheme'], ['http', 'https'] as const);
        if (scheme) f.scheme = scheme;
        const host = c.string(r.hostname, [...cfgPath, 'hostname']);
        if (host) f.hostname = host;
        const pm = pathModifier(c, r.path, [...cfgPath, 'path']);
        if (pm) f.path = pm;
        const port = c.integer(r.port, [...cfgPath, 'port'], 1, 65535);
        if (port !== undefined) f.port = port;
        out.push(f);
        break;
      }
      case 'URLRewrite': {
        const r = c.object(o[field], cfgPath) ?? {};
        c.knownFields(r, cfgPath, ['hostname', 'path']);
        const f: Extract<HttpRouteFilter, { type: 'URLRewrite' }> = { type };
        const host = c.string(r.hostname, [...cfgPath, 'hostname']);
        if (host) f.hostname = host;
        const pm = pathModifier(c, r.path, [...cfgPath, 'path']);
        if (pm) f.path = pm;
        out.push(f);
        break;
      }
      case 'RequestMirror': {
        const r = c.object(o[field], cfgPath) ?? {};
        c.knownFields(r, cfgPath, ['backendRef', 'percent', 'fraction']);
        const ref = backendRef(c, r.backendRef, [...cfgPath, 'backendRef'], false);
        let percent = c.integer(r.percent, [...cfgPath, 'percent'], 0, 100) ?? 100;
        const frac = c.object(r.fraction, [...cfgPath, 'fraction']);
        if (frac) {
          c.exclusive(r, cfgPath, ['percent', 'fraction'], 'may not be combined with percent');
          const num = c.integer(frac.numerator, [...cfgPath, 'fraction', 'numerator'], 0, 2147483647, true) ?? 0;
          const den = c.integer(frac.denominator, [...cfgPath, 'fraction', 'denominator'], 1, 2147483647) ?? 100;
          if (num > den) c.error([...cfgPath, 'fraction', 'numerator'], `must be at most the denominator (${den})`);
          percent = (num / den) * 100;
        }
        if (ref) out.push({ type, backendRef: ref, percent });
        break;
      }
      case 'ExtensionRef':
        out.push({ type });
        break;
    }
  });
  const redirect = out.some((f) => f.type === 'RequestRedirect');
  if (redirect && out.some((f) => f.type === 'URLRewrite')) c.error(path, 'may not combine RequestRedirect and URLRewrite in one rule', 'exclusive-fields', 'key');
  return out;
}

function backendRefs(c: Checker, v: unknown, path: FieldPath): BackendRef[] {
  const out: BackendRef[] = [];
  (c.array(v, path) ?? []).forEach((b, i) => {
    const r = backendRef(c, b, [...path, i], true);
    if (r) out.push(r);
  });
  return out;
}

export function readHttpRoute(c: Checker, obj: Json, origin: Origin): HTTPRoute | undefined {
  const metadata = objectMeta(c, obj, true, 'HTTPRoute');
  if (!metadata) return undefined;
  c.knownFields(obj, [], ['apiVersion', 'kind', 'metadata', 'spec', 'status']);
  const spec = c.object(obj.spec, ['spec'], true) ?? {};
  c.knownFields(spec, ['spec'], ['parentRefs', 'hostnames', 'rules']);
  const out: HTTPRoute['spec'] = { parentRefs: parentRefs(c, spec.parentRefs, ['spec', 'parentRefs']), hostnames: hostnames(c, spec.hostnames, ['spec', 'hostnames']), rules: [] };
  const rules = c.array(spec.rules, ['spec', 'rules']) ?? [{}];
  rules.forEach((r, i) => {
    const rp = ['spec', 'rules', i];
    const ro = c.object(r, rp, true);
    if (!ro) return;
    c.knownFields(ro, rp, ['name', 'matches', 'filters', 'backendRefs', 'timeouts', 'retry', 'sessionPersistence']);
    const rule: HTTPRoute['spec']['rules'][number] = { matches: [], filters: filters(c, ro.filters, [...rp, 'filters'], false), backendRefs: backendRefs(c, ro.backendRefs, [...rp, 'backendRefs']), path: rp };
    const name = c.string(ro.name, [...rp, 'name']);
    if (name) rule.name = name;
    // An absent or empty `matches` matches every request (a single PathPrefix / match), as the spec says.
    const listed = c.array(ro.matches, [...rp, 'matches']);
    const matches = listed && listed.length > 0 ? listed : [{}];
    matches.forEach((m, j) => {
      const mp = [...rp, 'matches', j];
      const mo = c.object(m, mp, true);
      if (!mo) return;
      c.knownFields(mo, mp, ['path', 'headers', 'queryParams', 'method']);
      const match: HttpRouteMatch = { path: { type: 'PathPrefix', value: '/' }, headers: headerMatches(c, mo.headers, [...mp, 'headers'], true), queryParams: headerMatches(c, mo.queryParams, [...mp, 'queryParams'], false) };
      const po = c.object(mo.path, [...mp, 'path']);
      if (po) {
        c.knownFields(po, [...mp, 'path'], ['type', 'value']);
        const type = oneOf(c, po.type, [...mp, 'path', 'type'], ['Exact', 'PathPrefix', 'RegularExpression'] as const) ?? 'PathPrefix';
        const value = type === 'RegularExpression' ? regex(c, po.value, [...mp, 'path', 'value']) : c.string(po.value, [...mp, 'path', 'value']);
        if (value !== undefined && type !== 'RegularExpression') {
          if (!value.startsWith('/')) c.error([...mp, 'path', 'value'], `must be an absolute path starting with "/" ("${value}")`);
          else if (/\/\/|\/\.\.?(\/|$)|[?#]/.test(value)) c.error([...mp, 'path', 'value'], `"${value}" may not contain "//", "/./", "/../", "?" or "#"`);
        }
        match.path = { type, value: value ?? '/' };
      }
      const method = oneOf(c, mo.method, [...mp, 'method'], ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH'] as const);
      if (method) match.method = method;
      rule.matches.push(match);
    });
    const to = c.object(ro.timeouts, [...rp, 'timeouts']);
    if (to) {
      c.knownFields(to, [...rp, 'timeouts'], ['request', 'backendRequest']);
      rule.timeouts = {};
      const req = gwDuration(c, to.request, [...rp, 'timeouts', 'request']);
      if (req !== undefined) rule.timeouts.requestMs = req;
      const be = gwDuration(c, to.backendRequest, [...rp, 'timeouts', 'backendRequest']);
      if (be !== undefined) rule.timeouts.backendRequestMs = be;
      if (req !== undefined && be !== undefined && req !== 0 && (be === 0 || be > req)) {
        c.error([...rp, 'timeouts', 'backendRequest'], `must not be longer than timeouts.request (${String(to.request)})`);
      }
    }
    out.rules.push(rule);
  });
  return { kind: 'HTTPRoute', apiVersion: String(obj.apiVersion), metadata, origin, spec: out };
}

export function readGrpcRoute(c: Checker, obj: Json, origin: Origin): GRPCRoute | undefined {
  const metadata = objectMeta(c, obj, true, 'GRPCRoute');
  if (!metadata) return undefined;
  c.knownFields(obj, [], ['apiVersion', 'kind', 'metadata', 'spec', 'status']);
  const spec = c.object(obj.spec, ['spec'], true) ?? {};
  c.knownFields(spec, ['spec'], ['parentRefs', 'hostnames', 'rules']);
  const out: GRPCRoute['spec'] = { parentRefs: parentRefs(c, spec.parentRefs, ['spec', 'parentRefs']), hostnames: hostnames(c, spec.hostnames, ['spec', 'hostnames']), rules: [] };
  (c.array(spec.rules, ['spec', 'rules']) ?? [{}]).forEach((r, i) => {
    const rp = ['spec', 'rules', i];
    const ro = c.object(r, rp, true);
    if (!ro) return;
    c.knownFields(ro, rp, ['name', 'matches', 'filters', 'backendRefs', 'sessionPersistence']);
    const rule: GRPCRoute['spec']['rules'][number] = { matches: [], filters: filters(c, ro.filters, [...rp, 'filters'], true), backendRefs: backendRefs(c, ro.backendRefs, [...rp, 'backendRefs']), path: rp };
    const name = c.string(ro.name, [...rp, 'name']);
    if (name) rule.name = name;
    (c.array(ro.matches, [...rp, 'matches']) ?? []).forEach((m, j) => {
      const mp = [...rp, 'matches', j];
      const mo = c.object(m, mp, true);
      if (!mo) return;
      c.knownFields(mo, mp, ['method', 'headers']);
      const match: GrpcRouteMatch = { headers: headerMatches(c, mo.headers, [...mp, 'headers'], true) };
      const meth = c.object(mo.method, [...mp, 'method']);
      if (meth) {
        const pp = [...mp, 'method'];
        c.knownFields(meth, pp, ['type', 'service', 'method']);
        const type = oneOf(c, meth.type, [...pp, 'type'], ['Exact', 'RegularExpression'] as const) ?? 'Exact';
        const mm: NonNullable<GrpcRouteMatch['method']> = { type };
        for (const f of ['service', 'method'] as const) {
          const s = type === 'RegularExpression' ? regex(c, meth[f], [...pp, f]) : c.string(meth[f], [...pp, f]);
          if (s === undefined) continue;
          if (type === 'Exact' && f === 'service' && !/^[A-Za-z_][A-Za-z_0-9]*(\.[A-Za-z_][A-Za-z_0-9]*)*$/.test(s)) c.error([...pp, f], `"${s}" is not a fully-qualified gRPC service name such as pkg.Service`);
          if (type === 'Exact' && f === 'method' && !/^[A-Za-z_][A-Za-z_0-9]*$/.test(s)) c.error([...pp, f], `"${s}" is not a gRPC method name`);
          mm[f] = s;
        }
        if (type === 'Exact' && mm.service === undefined && mm.method === undefined) c.error(pp, 'must set service or method (or both)', 'required');
        match.method = mm;
      }
      rule.matches.push(match);
    });
    out.rules.push(rule);
  });
  return { kind: 'GRPCRoute', apiVersion: String(obj.apiVersion), metadata, origin, spec: out };
}

export function readGatewayApiGateway(c: Checker, obj: Json, origin: Origin): GatewayApiGateway | undefined {
  const metadata = objectMeta(c, obj, true, 'Gateway');
  if (!metadata) return undefined;
  c.knownFields(obj, [], ['apiVersion', 'kind', 'metadata', 'spec', 'status']);
  const spec = c.object(obj.spec, ['spec'], true) ?? {};
  c.knownFields(spec, ['spec'], ['gatewayClassName', 'listeners', 'addresses', 'infrastructure', 'backendTLS', 'allowedListeners']);
  const out: GatewayApiGateway['spec'] = { gatewayClassName: c.string(spec.gatewayClassName, ['spec', 'gatewayClassName'], true) ?? '', listeners: [] };
  const names = new Set<string>();
  (c.array(spec.listeners, ['spec', 'listeners'], true) ?? []).forEach((l, i) => {
    const lp = ['spec', 'listeners', i];
    const lo = c.object(l, lp, true);
    if (!lo) return;
    c.knownFields(lo, lp, ['name', 'hostname', 'port', 'protocol', 'tls', 'allowedRoutes']);
    const name = c.string(lo.name, [...lp, 'name'], true);
    if (name !== undefined && names.has(name)) c.error([...lp, 'name'], `duplicate listener name "${name}"`, 'duplicate');
    if (name !== undefined) names.add(name);
    const port = c.integer(lo.port, [...lp, 'port'], 1, 65535, true);
    const protocol = oneOf(c, lo.protocol, [...lp, 'protocol'], ['HTTP', 'HTTPS', 'TLS', 'TCP', 'UDP'] as const, true);
    const listener: GatewayApiGateway['spec']['listeners'][number] = { name: name ?? '', port: port ?? 0, protocol: protocol ?? 'HTTP', allowedRoutes: { namespaces: { from: 'Same' } }, path: lp };
    const host = c.string(lo.hostname, [...lp, 'hostname']);
    if (host) {
      const p = host === '*' ? 'hostname may not be "*" alone; leave it out to match every host' : hostProblem(host);
      if (p) c.error([...lp, 'hostname'], p, 'invalid-host');
      listener.hostname = host;
    }
    const tls = c.object(lo.tls, [...lp, 'tls']);
    if (tls) {
      c.knownFields(tls, [...lp, 'tls'], ['mode', 'certificateRefs', 'options', 'frontendValidation']);
      const mode = oneOf(c, tls.mode, [...lp, 'tls', 'mode'], ['Terminate', 'Passthrough'] as const) ?? 'Terminate';
      const refs = (c.array(tls.certificateRefs, [...lp, 'tls', 'certificateRefs']) ?? []).map((r, j) => c.string((r as Json | null)?.name, [...lp, 'tls', 'certificateRefs', j, 'name'], true) ?? '');
      if (mode === 'Terminate' && refs.length === 0) c.error([...lp, 'tls', 'certificateRefs'], 'must name at least one certificate when mode is Terminate', 'required');
      listener.tls = { mode, certificateRefs: refs };
    }
    if ((protocol === 'HTTPS' || protocol === 'TLS') && !tls) c.error([...lp, 'tls'], `is required when protocol is ${protocol}`, 'required');
    if ((protocol === 'HTTP' || protocol === 'TCP' || protocol === 'UDP') && tls) c.error([...lp, 'tls'], `may not be set when protocol is ${protocol}`, 'invalid-value', 'key');
    const ar = c.object(lo.allowedRoutes, [...lp, 'allowedRoutes']);
    if (ar) {
      c.knownFields(ar, [...lp, 'allowedRoutes'], ['namespaces', 'kinds']);
      const ns = c.object(ar.namespaces, [...lp, 'allowedRoutes', 'namespaces']);
      if (ns) {
        const np = [...lp, 'allowedRoutes', 'namespaces'];
        c.knownFields(ns, np, ['from', 'selector']);
        const from = oneOf(c, ns.from, [...np, 'from'], ['Same', 'All', 'Selector'] as const) ?? 'Same';
        listener.allowedRoutes.namespaces.from = from;
        if (from === 'Selector') {
          if (ns.selector === undefined || ns.selector === null) c.error([...np, 'selector'], 'is required when from is Selector', 'required');
          listener.allowedRoutes.namespaces.selector = labelSelector(c, ns.selector, [...np, 'selector']);
        }
      }
    }
    if (port !== undefined && protocol !== undefined) out.listeners.push(listener);
  });
  return { kind: 'Gateway', group: 'gateway.networking.k8s.io', apiVersion: String(obj.apiVersion), metadata, origin, spec: out };
}

/** gateway.networking.k8s.io ReferenceGrant: which kinds from which namespaces may refer to which objects here. */
export function readReferenceGrant(c: Checker, obj: Json, origin: Origin): ReferenceGrant | undefined {
  const metadata = objectMeta(c, obj, true, 'ReferenceGrant');
  if (!metadata) return undefined;
  c.knownFields(obj, [], ['apiVersion', 'kind', 'metadata', 'spec', 'status']);
  const spec = c.object(obj.spec, ['spec'], true) ?? {};
  c.knownFields(spec, ['spec'], ['from', 'to']);
  const out: ReferenceGrant['spec'] = { from: [], to: [] };
  const from = c.array(spec.from, ['spec', 'from'], true) ?? [];
  if (from.length === 0) c.error(['spec', 'from'], 'must list at least one source', 'required');
  from.forEach((f, i) => {
    const p = ['spec', 'from', i];
    const o = c.object(f, p, true);
    if (!o) return;
    c.knownFields(o, p, ['group', 'kind', 'namespace']);
    const group = c.string(o.group, [...p, 'group'], true);
    const kind = c.string(o.kind, [...p, 'kind'], true);
    const namespace = c.string(o.namespace, [...p, 'namespace'], true);
    if (group !== undefined && kind !== undefined && namespace !== undefined) out.from.push({ group, kind, namespace });
  });
  const to = c.array(spec.to, ['spec', 'to'], true) ?? [];
  if (to.length === 0) c.error(['spec', 'to'], 'must list at least one target', 'required');
  to.forEach((t, i) => {
    const p = ['spec', 'to', i];
    const o = c.object(t, p, true);
    if (!o) return;
    c.knownFields(o, p, ['group', 'kind', 'name']);
    const group = c.string(o.group, [...p, 'group'], true);
    const kind = c.string(o.kind, [...p, 'kind'], true);
    const name = c.string(o.name, [...p, 'name']);
    if (group !== undefined && kind !== undefined) out.to.push(name ? { group, kind, name } : { group, kind });
  });
  return { kind: 'ReferenceGrant', apiVersion: String(obj.apiVersion), metadata, origin, spec: out };
}
