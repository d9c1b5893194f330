// Validation of Istio's networking.istio.io ServiceEntry: hosts outside (or inside) the mesh, their ports and endpoints.
import type { Checker, Json } from './checker.ts';
import type { FieldPath, Origin } from './kinds.ts';
import type { IstioPort, IstioPortProtocol, ServiceEntry } from './kinds-traffic.ts';
import { isCidrError, parseCidr, parseIp } from './net.ts';
import { labelMap, objectMeta } from './validate-common.ts';
import { hostList, hostProblem, oneOf } from './validate-traffic-common.ts';

export const ISTIO_PROTOCOLS: readonly IstioPortProtocol[] = ['HTTP', 'HTTPS', 'GRPC', 'GRPC-WEB', 'HTTP2', 'MONGO', 'TCP', 'TLS', 'UDP'];

/** Istio's Port (ServiceEntry, Gateway server): number, protocol (upper case) and a name. */
export function istioPort(c: Checker, v: unknown, path: FieldPath, opts: { targetPort?: boolean } = {}): IstioPort | undefined {
  const o = c.object(v, path, true);
  if (!o) return undefined;
  c.knownFields(o, path, opts.targetPort ? ['number', 'protocol', 'name', 'targetPort'] : ['number', 'protocol', 'name', 'targetPort']);
  const number = c.integer(o.number, [...path, 'number'], 1, 65535, true);
  const name = c.string(o.name, [...path, 'name'], true);
  const protocol = oneOf(c, o.protocol, [...path, 'protocol'], ISTIO_PROTOCOLS, true);
  const out: IstioPort = { number: number ?? 0, name: name ?? '', protocol: protocol ?? 'TCP' };
  const tp = c.integer(o.targetPort, [...path, 'targetPort'], 1, 65535);
  if (tp !== undefined) out.targetPort = tp;
  return number === undefined || name === undefined || protocol === undefined ? undefined : out;
}

export function readServiceEntry(c: Checker, obj: Json, origin: Origin): ServiceEntry | undefined {
  const metadata = objectMeta(c, obj, true, 'ServiceEntry');
  if (!metadata) return undefined;
  c.knownFields(obj, [], ['apiVersion', 'kind', 'metadata', 'spec', 'status']);
  const spec = c.object(obj.spec, ['spec'], true) ?? {};
  c.knownFields(spec, ['spec'], ['hosts', 'addresses', 'ports', 'location', 'resolution', 'endpoints', 'workloadSelector', 'exportTo', 'subjectAltNames']);
  const out: ServiceEntry['spec'] = {
    hosts: hostList(c, spec.hosts, ['spec', 'hosts'], true),
    addresses: [],
    ports: [],
    location: oneOf(c, spec.location, ['spec', 'location'], ['MESH_EXTERNAL', 'MESH_INTERNAL'] as const) ?? 'MESH_EXTERNAL',
    resolution: oneOf(c, spec.resolution, ['spec', 'resolution'], ['NONE', 'STATIC', 'DNS', 'DNS_ROUND_ROBIN'] as const) ?? 'NONE',
    endpoints: [],
  };
  (c.array(spec.addresses, ['spec', 'addresses']) ?? []).forEach((a, i) => {
    const s = c.string(a, ['spec', 'addresses', i], true);
    if (s === undefined) return;
    const cidr = parseCidr(s.includes('/') ? s : s.includes(':') ? `${s}/128` : `${s}/32`);
    if (isCidrError(cidr)) c.error(['spec', 'addresses', i], `"${s}" must be an IP address or CIDR`, 'invalid-ip');
    else out.addresses.push(s);
  });
  const names = new Set<string>();
  const numbers = new Set<number>();
  (c.array(spec.ports, ['spec', 'ports']) ?? []).forEach((p, i) => {
    const port = istioPort(c, p, ['spec', 'ports', i], { targetPort: true });
    if (!port) return;
    if (names.has(port.name)) c.error(['spec', 'ports', i, 'name'], `duplicate port name "${port.name}"`, 'duplicate');
    if (numbers.has(port.number)) c.error(['spec', 'ports', i, 'number'], `duplicate port number ${port.number}`, 'duplicate');
    names.add(port.name);
    numbers.add(port.number);
    out.ports.push(port);
  });
  const ws = c.object(spec.workloadSelector, ['spec', 'workloadSelector']);
  if (ws) {
    c.knownFields(ws, ['spec', 'workloadSelector'], ['labels']);
    out.workloadSelector = labelMap(c, ws.labels, ['spec', 'workloadSelector', 'labels']);
    if (spec.endpoints !== undefined && spec.endpoints !== null) c.error(['spec', 'workloadSelector'], 'may not be combined with endpoints', 'exclusive-fields', 'key');
  }
  (c.array(spec.endpoints, ['spec', 'endpoints']) ?? []).forEach((e, i) => {
    const ep = ['spec', 'endpoints', i];
    const eo = c.object(e, ep, true);
    if (!eo) return;
    c.knownFields(eo, ep, ['address', 'ports', 'labels', 'network', 'locality', 'weight', 'serviceAccount']);
    const address = c.string(eo.address, [...ep, 'address'], out.resolution === 'STATIC') ?? '';
    if (address !== '') {
      if (out.resolution === 'STATIC' && !parseIp(address) && !address.startsWith('unix://')) {
        c.error([...ep, 'address'], `"${address}" must be an IP address when resolution is STATIC`, 'invalid-ip');
      } else if (out.resolution !== 'STATIC' && !parseIp(address)) {
        const hp = hostProblem(address, { wildcard: false });
        if (hp) c.error([...ep, 'address'], hp, 'invalid-host');
      }
    }
    const ports: Record<string, number> = {};
    const po = c.object(eo.ports, [...ep, 'ports']);
    for (const [k, n] of Object.entries(po ?? {})) {
      const num = c.integer(n, [...ep, 'ports', k], 1, 65535);
      if (!names.has(k)) c.error([...ep, 'ports', k], `no port named "${k}" in spec.ports`, 'invalid-value', 'key');
      if (num !== undefined) ports[k] = num;
    }
    const entry: ServiceEntry['spec']['endpoints'][number] = { address, ports, labels: labelMap(c, eo.labels, [...ep, 'labels']), path: ep };
    const w = c.integer(eo.weight, [...ep, 'weight'], 0, 4294967295);
    if (w !== undefined) entry.weight = w;
    const loc = c.string(eo.locality, [...ep, 'locality']);
    if (loc) entry.locality = loc;
    out.endpoints.push(entry);
  });
  if (out.resolution === 'STATIC' && out.endpoints.length === 0 && !ws) {
    c.error(['spec', 'resolution'], 'STATIC needs endpoints or a workloadSelector', 'required');
  }
  if ((out.resolution === 'DNS' || out.resolution === 'DNS_ROUND_ROBIN') && out.endpoints.length === 0) {
    out.hosts.forEach((h, i) => {
      if (h.startsWith('*')) c.error(['spec', 'hosts', i], `wildcard host "${h}" cannot be resolved by DNS; use resolution NONE or give endpoints`, 'invalid-host');
    });
  }
  if (out.ports.length === 0 && (spec.ports === undefined || spec.ports === null)) c.error(['spec', 'ports'], 'is required', 'required');
  return { kind: 'ServiceEntry', apiVersion: String(obj.apiVersion), metadata, origin, spec: out };
}
