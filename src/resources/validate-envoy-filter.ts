// Validation of Istio's EnvoyFilter, the part Trellis applies: HTTP filters (Envoy's local rate limit and Trellis
// extension modules) added to the HTTP filter chain, and per-route local rate limits (HTTP_ROUTE MERGE of
// typed_per_filter_config). Everything else is refused with a located error, never ignored.
import type { Checker, Json } from './checker.ts';
import type { FieldPath, Origin } from './kinds.ts';
import type { EnvoyFilter, EnvoyFilterContext, EnvoyFilterHttpFilter, EnvoyFilterOperation, EnvoyFilterPatch, LocalRateLimitSettings } from './kinds-traffic.ts';
import { labelMap, objectMeta } from './validate-common.ts';
import { typedConfig } from './validate-envoy-filter-value.ts';
import { enumOf, protoMessage, unsupported } from './validate-envoy-proto.ts';
import { oneOf } from './validate-traffic-common.ts';

const HCM = ['envoy.filters.network.http_connection_manager', 'envoy.http_connection_manager'];
const POLICY = 'trellis.policy';
const ROUTER = 'envoy.filters.http.router';
/** Istio's and Envoy's names for the filters Trellis runs itself, and the Trellis filter each stands for. */
const OWN_FILTERS: Readonly<Record<string, string>> = {
  [POLICY]: POLICY,
  'envoy.filters.http.rbac': POLICY,
  'envoy.filters.http.jwt_authn': POLICY,
  istio_authn: POLICY,
  'istio.authn': POLICY,
  'envoy.filters.http.fault': 'envoy.filters.http.fault',
  'envoy.fault': 'envoy.filters.http.fault',
  [ROUTER]: ROUTER,
  'envoy.router': ROUTER,
};
const APPLY_TO_OTHER = ['INVALID', 'LISTENER', 'FILTER_CHAIN', 'NETWORK_FILTER', 'ROUTE_CONFIGURATION', 'VIRTUAL_HOST', 'CLUSTER', 'EXTENSION_CONFIG', 'BOOTSTRAP', 'LISTENER_FILTER'];
const FILTER_OPS: readonly EnvoyFilterOperation[] = ['INSERT_BEFORE', 'INSERT_AFTER', 'INSERT_FIRST', 'ADD', 'REMOVE', 'REPLACE'];
const ALL_OPS = ['INVALID', 'MERGE', ...FILTER_OPS];
const CONTEXTS: readonly EnvoyFilterContext[] = ['ANY', 'SIDECAR_INBOUND', 'SIDECAR_OUTBOUND', 'GATEWAY'];
const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;

export function readEnvoyFilter(c: Checker, obj: Json, origin: Origin): EnvoyFilter | undefined {
  const metadata = objectMeta(c, obj, true, 'EnvoyFilter');
  if (!metadata) return undefined;
  c.knownFields(obj, [], ['apiVersion', 'kind', 'metadata', 'spec', 'status']);
  const spec = c.object(obj.spec, ['spec'], true) ?? {};
  c.knownFields(spec, ['spec'], ['workloadSelector', 'configPatches', 'priority', 'targetRefs']);
  unsupported(c, spec, ['spec'], { targetRefs: 'select workloads with workloadSelector' });
  const out: EnvoyFilter['spec'] = { priority: c.integer(spec.priority, ['spec', 'priority'], -2147483648, 2147483647) ?? 0, configPatches: [] };
  const ws = c.object(spec.workloadSelector, ['spec', 'workloadSelector']);
  if (ws) {
    c.knownFields(ws, ['spec', 'workloadSelector'], ['labels']);
    out.workloadSelector = labelMap(c, ws.labels, ['spec', 'workloadSelector', 'labels']);
  }
  const patches = c.array(spec.configPatches, ['spec', 'configPatches'], true);
  if (patches?.length === 0) c.error(['spec', 'configPatches'], 'must hold at least one patch', 'required');
  (patches ?? []).forEach((p, i) => {
    const patch = configPatch(c, p, ['spec', 'configPatches', i], origin.file);
    if (patch) out.configPatches.push(patch);
  });
  const r: EnvoyFilter = { kind: 'EnvoyFilter', apiVersion: String(obj.apiVersion), metadata, origin, spec: out };
  const created = creationTimestamp(c, obj.metadata);
  if (created !== undefined) r.creationTimestampMs = created;
  return r;
}

function creationTimestamp(c: Checker, meta: unknown): number | undefined {
  if (meta === null || typeof meta !== 'object' || Array.isArray(meta)) return undefined;
  const path = ['metadata', 'creationTimestamp'];
  const s = c.string((meta as Json).creationTimestamp, path);
  if (s === undefined) return undefined;
  const ms = RFC3339.test(s) ? Date.parse(s) : NaN;
  if (Number.isFinite(ms)) return ms;
  c.error(path, `"${s}" is not an RFC 3339 time such as 2024-05-01T12:00:00Z`);
  return undefined;
}

function configPatch(c: Checker, v: unknown, path: FieldPath, file: string): EnvoyFilterPatch | undefined {
  const o = c.object(v, path, true);
  if (!o) return undefined;
  c.knownFields(o, path, ['applyTo', 'match', 'patch']);
  const applyTo = enumOf(c, o.applyTo, [...path, 'applyTo'], ['HTTP_FILTER', 'HTTP_ROUTE'], APPLY_TO_OTHER, 'Trellis applies HTTP_FILTER patches (and HTTP_ROUTE patches for per-route rate limits)', true);
  // A patch for another part of Envoy's configuration is not read further: its match and value mean other things.
  if (!applyTo) return undefined;
  const mp = [...path, 'match'];
  const m = c.object(o.match, mp) ?? {};
  c.knownFields(m, mp, ['context', 'proxy', 'listener', 'routeConfiguration', 'cluster']);
  unsupported(c, m, mp, { proxy: 'Trellis proxies carry no Istio version or node metadata to match' });
  if (m.cluster !== undefined && m.cluster !== null) c.error([...mp, 'cluster'], `matches clusters, not what ${applyTo} patches change`, 'invalid-value', 'key');
  const context = m.context === undefined || m.context === null ? 'ANY' : enumOf(c, m.context, [...mp, 'context'], CONTEXTS, ['WAYPOINT'], 'Trellis has no waypoint proxies');
  const p = c.object(o.patch, [...path, 'patch'], true);
  if (p) c.knownFields(p, [...path, 'patch'], ['operation', 'value', 'filterClass']);
  const patch = applyTo === 'HTTP_FILTER' ? httpFilterPatch(c, m, p, path, file) : httpRoutePatch(c, m, p, path, file);
  return patch && context ? { ...patch, context } : undefined;
}

/** A patch before its context is added. */
type PatchBody<P = EnvoyFilterPatch> = P extends unknown ? Omit<P, 'context'> : never;

function httpFilterPatch(c: Checker, m: Json, p: Json | undefined, path: FieldPath, file: string): PatchBody | undefined {
  const mp = [...path, 'match'];
  if (m.routeConfiguration !== undefined && m.routeConfiguration !== null) {
    c.error([...mp, 'routeConfiguration'], 'matches routes; an HTTP_FILTER patch matches a listener (match.listener)', 'invalid-value', 'key');
  }
  const l = listenerMatch(c, m.listener, [...mp, 'listener']);
  if (!p) return undefined;
  const pp = [...path, 'patch'];
  const op = enumOf(c, p.operation, [...pp, 'operation'], FILTER_OPS, ['INVALID', 'MERGE'], 'use REPLACE to give an HTTP filter new settings', true);
  const cls = p.filterClass === undefined || p.filterClass === null ? undefined : oneOf(c, p.filterClass, [...pp, 'filterClass'], ['UNSPECIFIED', 'AUTHN', 'AUTHZ', 'STATS']);
  if (cls && cls !== 'UNSPECIFIED' && op && op !== 'ADD') c.error([...pp, 'filterClass'], `applies only to operation ADD, not ${op}`, 'invalid-value', 'key');
  const sub = l.subFilter;
  if ((op === 'REMOVE' || op === 'REPLACE') && !sub) {
    c.error([...pp, 'operation'], `${op} needs the filter to ${op === 'REMOVE' ? 'remove' : 'replace'}: name it in match.listener.filterChain.filter.subFilter.name`, 'required');
  }
  if (sub && (op === 'REMOVE' || op === 'REPLACE') && (sub.name === POLICY || sub.name === ROUTER)) {
    const what = sub.name === POLICY ? 'policy filter (it enforces authorization on every request)' : 'router';
    c.error(sub.path, `"${sub.written}" is Trellis' ${what}, which cannot be removed or replaced`);
  }
  if (sub && op === 'INSERT_AFTER' && sub.name === ROUTER) c.error(sub.path, 'nothing runs after the router: use INSERT_BEFORE to run just before it');
  if (sub && op && op !== 'ADD' && OWN_FILTERS[sub.written] === undefined && /^(envoy\.|istio[._])/.test(sub.name) && sub.name !== 'envoy.filters.http.local_ratelimit') {
    c.warn(sub.path, `Trellis runs no ${sub.name} filter of its own (it runs ${POLICY}, envoy.filters.http.fault and the router): this patch applies only where another EnvoyFilter adds a filter of that name`);
  }
  if (sub && op === 'ADD') c.warn(sub.path, 'is not used by ADD, which adds the filter wherever the listener matches: use INSERT_BEFORE or INSERT_AFTER to place it next to this filter');
  if (sub && op === 'INSERT_BEFORE' && sub.name === POLICY) {
    c.warn(sub.path, `Trellis runs no filter before its policy filter (fail closed): this filter runs right after ${POLICY}`);
  }
  let filter: EnvoyFilterHttpFilter | undefined;
  if (op === 'REMOVE') {
    if (p.value !== undefined && p.value !== null) c.warn([...pp, 'value'], 'is not used by REMOVE');
  } else filter = httpFilterValue(c, p.value, [...pp, 'value'], file);
  if (!op || (op !== 'REMOVE' && !filter)) return undefined;
  const out: PatchBody = { applyTo: 'HTTP_FILTER', operation: op, path };
  if (l.portNumber !== undefined) out.portNumber = l.portNumber;
  if (sub && op !== 'ADD') out.subFilter = sub.name;
  if (cls && cls !== 'UNSPECIFIED' && op === 'ADD') out.filterClass = cls;
  if (filter) out.filter = filter;
  return out;
}

interface ListenerMatch {
  portNumber?: number;
  subFilter?: { name: string; written: string; path: FieldPath };
}

function listenerMatch(c: Checker, v: unknown, path: FieldPath): ListenerMatch {
  const out: ListenerMatch = {};
  const l = c.object(v, path);
  if (!l) return out;
  c.knownFields(l, path, ['portNumber', 'portName', 'filterChain', 'name']);
  unsupported(c, l, path, { portName: 'select listeners by portNumber', name: "Trellis names listeners its own way: select them by context and portNumber" });
  const port = c.integer(l.portNumber, [...path, 'portNumber'], 0, 65535);
  if (port) out.portNumber = port;
  const fp = [...path, 'filterChain'];
  const fc = c.object(l.filterChain, fp);
  if (!fc) return out;
  c.knownFields(fc, fp, ['name', 'sni', 'transportProtocol', 'applicationProtocols', 'destinationPort', 'filter']);
  const one = 'Trellis runs one HTTP filter chain per listener, whatever the transport';
  unsupported(c, fc, fp, { name: one, sni: one, transportProtocol: one, applicationProtocols: one, destinationPort: 'select listeners by portNumber' });
  const f = c.object(fc.filter, [...fp, 'filter']);
  if (!f) return out;
  c.knownFields(f, [...fp, 'filter'], ['name', 'subFilter']);
  const name = c.string(f.name, [...fp, 'filter', 'name']);
  if (name !== undefined && !HCM.includes(name)) {
    c.error([...fp, 'filter', 'name'], `"${name}" is not supported: HTTP_FILTER patches change the HTTP filters of ${HCM[0]}`, 'unsupported');
  }
  const sp = [...fp, 'filter', 'subFilter'];
  const sf = c.object(f.subFilter, sp);
  if (!sf) return out;
  c.knownFields(sf, sp, ['name']);
  const sub = c.string(sf.name, [...sp, 'name'], true);
  if (sub === '') c.error([...sp, 'name'], 'may not be empty');
  if (!sub) return out;
  out.subFilter = { name: OWN_FILTERS[sub] ?? sub, written: sub, path: [...sp, 'name'] };
  return out;
}

function httpFilterValue(c: Checker, v: unknown, path: FieldPath, file: string): EnvoyFilterHttpFilter | undefined {
  const o = c.object(v, path, true);
  if (!o) return undefined;
  const m = protoMessage(c, o, path, ['name', 'typed_config'], {
    config_discovery: 'Trellis has no extension config discovery; give typed_config',
    is_optional: 'Trellis refuses filters it cannot run',
    disabled: 'leave the filter out instead',
    config: 'give typed_config',
  });
  const name = c.string(m.get('name'), m.at('name'), true);
  if (name === '') c.error(m.at('name'), 'may not be empty');
  else if (name !== undefined && OWN_FILTERS[name] !== undefined) c.error(m.at('name'), `"${name}" names a filter Trellis runs itself; give this filter a name of its own`);
  const body = typedConfig(c, m.get('typed_config'), m.at('typed_config'), file, false);
  return body && name ? { ...body, name } : undefined;
}

function httpRoutePatch(c: Checker, m: Json, p: Json | undefined, path: FieldPath, file: string): PatchBody | undefined {
  const mp = [...path, 'match'];
  if (m.listener !== undefined && m.listener !== null) {
    c.error([...mp, 'listener'], 'matches listeners; an HTTP_ROUTE patch matches a route configuration (match.routeConfiguration)', 'invalid-value', 'key');
  }
  const port = routeMatch(c, m.routeConfiguration, [...mp, 'routeConfiguration']);
  if (!p) return undefined;
  const pp = [...path, 'patch'];
  const op = enumOf(c, p.operation, [...pp, 'operation'], ['MERGE'], ALL_OPS.filter((x) => x !== 'MERGE'), 'routes take MERGE, as in Istio', true);
  if (p.filterClass !== undefined && p.filterClass !== null) c.error([...pp, 'filterClass'], 'applies only to HTTP_FILTER patches with operation ADD', 'invalid-value', 'key');
  const vp = [...pp, 'value'];
  const value = c.object(p.value, vp, true);
  if (!value) return undefined;
  const m2 = protoMessage(c, value, vp, ['typed_per_filter_config'], {}, Object.keys(value).filter((k) => k !== 'typed_per_filter_config' && k !== 'typedPerFilterConfig'));
  for (const k of Object.keys(value)) {
    if (k !== 'typed_per_filter_config' && k !== 'typedPerFilterConfig') {
      c.error([...vp, k], 'is not supported: Trellis merges only typed_per_filter_config (local rate limits) into routes; set timeouts, retries and the like with a VirtualService', 'unsupported', 'key');
    }
  }
  const per = c.object(m2.get('typed_per_filter_config'), m2.at('typed_per_filter_config'), true);
  const perFilter: { name: string; settings: LocalRateLimitSettings }[] = [];
  if (per && Object.keys(per).length === 0) c.error(m2.at('typed_per_filter_config'), 'must configure at least one filter', 'required');
  for (const [name, cfg] of Object.entries(per ?? {})) {
    const body = typedConfig(c, cfg, [...m2.at('typed_per_filter_config'), name], file, true);
    if (body?.type === 'local_ratelimit') perFilter.push({ name, settings: body.settings });
  }
  if (!op || perFilter.length === 0) return undefined;
  return port === undefined ? { applyTo: 'HTTP_ROUTE', perFilter, path } : { applyTo: 'HTTP_ROUTE', portNumber: port, perFilter, path };
}

const INBOUND_VHOST = /^inbound\|http\|([0-9]{1,5})$/;

/** The port a route configuration match selects (undefined: every port). */
function routeMatch(c: Checker, v: unknown, path: FieldPath): number | undefined {
  const r = c.object(v, path);
  if (!r) return undefined;
  c.knownFields(r, path, ['portNumber', 'portName', 'gateway', 'vhost', 'name']);
  const byPort = 'Trellis selects route configurations by context and portNumber';
  unsupported(c, r, path, { portName: byPort, gateway: byPort, name: byPort });
  let port = c.integer(r.portNumber, [...path, 'portNumber'], 0, 65535) || undefined;
  const hp = [...path, 'vhost'];
  const vh = c.object(r.vhost, hp);
  if (!vh) return port;
  c.knownFields(vh, hp, ['name', 'route', 'domainName']);
  unsupported(c, vh, hp, { domainName: byPort });
  const name = c.string(vh.name, [...hp, 'name']);
  const inbound = name === undefined ? undefined : INBOUND_VHOST.exec(name);
  if (name !== undefined && !inbound) {
    c.error([...hp, 'name'], `"${name}" is not supported: Trellis gives per-route settings to every route of a listener; select it by context and portNumber (or an inbound virtual host name inbound|http|<port>)`, 'unsupported');
  } else if (inbound) {
    const vport = Number(inbound[1]);
    if (port !== undefined && vport !== port) c.error([...hp, 'name'], `names port ${vport}, but portNumber is ${port}`);
    port = vport;
  }
  const rp = [...hp, 'route'];
  const route = c.object(vh.route, rp);
  if (route) {
    c.knownFields(route, rp, ['name', 'action']);
    unsupported(c, route, rp, { name: 'Trellis gives per-route settings to every route of the matched listener' });
    const everyRoute = 'Trellis gives per-route settings to every route of the matched listener (action ANY)';
    if (route.action !== undefined && route.action !== null) enumOf(c, route.action, [...rp, 'action'], ['ANY'], ['ROUTE', 'REDIRECT', 'DIRECT_RESPONSE'], everyRoute);
  }
  return port;
}
