// Validation of networking.k8s.io/v1 Ingress, following the API server's rules (paths, path types, backends, hosts).
import type { Checker, Json } from './checker.ts';
import type { FieldPath, Origin } from './kinds.ts';
import type { Ingress, IngressBackend } from './kinds-traffic.ts';
import { parseIp } from './net.ts';
import { dnsLabelProblem, objectMeta, portNameProblem } from './validate-common.ts';
import { hostProblem, oneOf, stringList } from './validate-traffic-common.ts';

export function readIngress(c: Checker, obj: Json, origin: Origin): Ingress | undefined {
  const metadata = objectMeta(c, obj, true, 'Ingress');
  if (!metadata) return undefined;
  c.knownFields(obj, [], ['apiVersion', 'kind', 'metadata', 'spec', 'status']);
  const spec = c.object(obj.spec, ['spec'], true) ?? {};
  c.knownFields(spec, ['spec'], ['ingressClassName', 'defaultBackend', 'rules', 'tls']);
  const out: Ingress['spec'] = { rules: [], tls: [] };
  const cls = c.string(spec.ingressClassName, ['spec', 'ingressClassName']);
  if (cls) out.ingressClassName = cls;
  if (spec.defaultBackend !== undefined && spec.defaultBackend !== null) out.defaultBackend = backend(c, spec.defaultBackend, ['spec', 'defaultBackend']);
  (c.array(spec.rules, ['spec', 'rules']) ?? []).forEach((r, i) => {
    const rp = ['spec', 'rules', i];
    const ro = c.object(r, rp, true);
    if (!ro) return;
    c.knownFields(ro, rp, ['host', 'http']);
    const rule: Ingress['spec']['rules'][number] = { paths: [], fieldPath: rp };
    const host = c.string(ro.host, [...rp, 'host']);
    if (host) {
      if (parseIp(host)) c.error([...rp, 'host'], `must be a DNS name, not an IP address ("${host}")`, 'invalid-host');
      else {
        const p = hostProblem(host);
        if (p || host === '*' || host !== host.toLowerCase()) c.error([...rp, 'host'], p ?? `host "${host}" must be a lower-case DNS name, optionally with a *. prefix`, 'invalid-host');
      }
      rule.host = host;
    }
    const http = c.object(ro.http, [...rp, 'http']);
    if (http) {
      c.knownFields(http, [...rp, 'http'], ['paths']);
      const paths = c.array(http.paths, [...rp, 'http', 'paths'], true) ?? [];
      if (paths.length === 0 && Array.isArray(http.paths)) c.error([...rp, 'http', 'paths'], 'must have at least one path', 'required');
      paths.forEach((p, j) => {
        const pp = [...rp, 'http', 'paths', j];
        const po = c.object(p, pp, true);
        if (!po) return;
        c.knownFields(po, pp, ['path', 'pathType', 'backend']);
        const pathType = oneOf(c, po.pathType, [...pp, 'pathType'], ['Exact', 'Prefix', 'ImplementationSpecific'] as const, true);
        const path = c.string(po.path, [...pp, 'path']) ?? (pathType === 'ImplementationSpecific' ? '/' : undefined);
        if (path === undefined && pathType !== undefined) c.error([...pp, 'path'], `is required when pathType is ${pathType}`, 'required');
        if (path !== undefined && !path.startsWith('/')) c.error([...pp, 'path'], `must be an absolute path starting with "/" ("${path}")`);
        else if (path !== undefined && pathType !== 'ImplementationSpecific' && /\/\.\.?(\/|$)|\/\/|[%?#]/.test(path)) {
          c.error([...pp, 'path'], `"${path}" may not contain "//", "/./", "/../", "%", "?" or "#" when pathType is ${pathType}`);
        }
        const b = backend(c, po.backend, [...pp, 'backend']);
        if (pathType !== undefined && path !== undefined) rule.paths.push({ path, pathType, backend: b, fieldPath: pp });
      });
    }
    out.rules.push(rule);
  });
  (c.array(spec.tls, ['spec', 'tls']) ?? []).forEach((t, i) => {
    const tp = ['spec', 'tls', i];
    const to = c.object(t, tp, true);
    if (!to) return;
    c.knownFields(to, tp, ['hosts', 'secretName']);
    const entry: Ingress['spec']['tls'][number] = { hosts: stringList(c, to.hosts, [...tp, 'hosts']) };
    const secret = c.string(to.secretName, [...tp, 'secretName']);
    if (secret) entry.secretName = secret;
    out.tls.push(entry);
  });
  if (!out.defaultBackend && out.rules.length === 0 && c.errorCount === 0) c.error(['spec'], 'must set defaultBackend or at least one rule', 'required');
  return { kind: 'Ingress', apiVersion: String(obj.apiVersion), metadata, origin, spec: out };
}

function backend(c: Checker, v: unknown, path: FieldPath): IngressBackend {
  const out: IngressBackend = { path };
  const o = c.object(v, path, true);
  if (!o) return out;
  c.knownFields(o, path, ['service', 'resource']);
  c.exclusive(o, path, ['service', 'resource'], 'may not be combined with service (set only one of service, resource)');
  if (o.service === undefined && o.resource === undefined) c.error(path, 'must set service or resource', 'required');
  const s = c.object(o.service, [...path, 'service']);
  if (!s) return out;
  const sp = [...path, 'service'];
  c.knownFields(s, sp, ['name', 'port']);
  const name = c.string(s.name, [...sp, 'name'], true);
  if (name) {
    const p = dnsLabelProblem(name);
    if (p) c.error([...sp, 'name'], `service name ${p}`);
  }
  const port = c.object(s.port, [...sp, 'port'], true);
  if (!port || name === undefined) return out;
  c.knownFields(port, [...sp, 'port'], ['number', 'name']);
  c.exclusive(port, [...sp, 'port'], ['number', 'name'], 'may not be combined with number (set only one of number, name)');
  if (port.name !== undefined && port.name !== null) {
    const pn = c.string(port.name, [...sp, 'port', 'name']);
    const prob = pn === undefined ? undefined : portNameProblem(pn);
    if (prob) c.error([...sp, 'port', 'name'], prob, 'invalid-port-name');
    else if (pn !== undefined && port.number === undefined) out.service = { name, port: { name: pn } };
  } else {
    const n = c.integer(port.number, [...sp, 'port', 'number'], 1, 65535);
    if (port.number === undefined || port.number === null) c.error([...sp, 'port'], 'must set number or name', 'required');
    else if (n !== undefined) out.service = { name, port: { number: n } };
  }
  return out;
}
