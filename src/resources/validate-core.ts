// Validation of the core and workload kinds: Namespace, Node, Pod, Deployment/ReplicaSet/StatefulSet/DaemonSet, Service.
// These kinds are read leniently (fields Trellis does not use are ignored), so `kubectl get -o yaml` output loads as is.
import type { Checker, Json } from './checker.ts';
import { formatPath } from './diagnostics.ts';
import type { ContainerPort, Namespace, Node, Origin, Pod, PodSpec, Service, ServicePort, ServiceType, Workload, WorkloadKind } from './kinds.ts';
import { isCidrError, parseCidr, parseIp } from './net.ts';
import type { RestartPolicy } from './kinds-container.ts';
import { dnsLabelProblem, labelMap, labelSelector, objectMeta, portNameProblem, protocol } from './validate-common.ts';
import { readContainerRun } from './validate-container.ts';
import { checkProxyAnnotations } from './proxy-annotations.ts';

export function readNamespace(c: Checker, obj: Json, origin: Origin): Namespace | undefined {
  const metadata = objectMeta(c, obj, false, 'Namespace');
  if (!metadata) return undefined;
  return { kind: 'Namespace', apiVersion: String(obj.apiVersion), metadata, origin };
}

export function readNode(c: Checker, obj: Json, origin: Origin): Node | undefined {
  const metadata = objectMeta(c, obj, false, 'Node');
  if (!metadata) return undefined;
  const spec = c.object(obj.spec, ['spec']) ?? {};
  const status = c.object(obj.status, ['status']) ?? {};
  const podCIDRs: string[] = [];
  const cidrs = c.array(spec.podCIDRs, ['spec', 'podCIDRs']) ?? (typeof spec.podCIDR === 'string' ? [spec.podCIDR] : []);
  cidrs.forEach((x, i) => {
    const path = spec.podCIDRs !== undefined ? ['spec', 'podCIDRs', i] : ['spec', 'podCIDR'];
    const s = c.string(x, path);
    if (s === undefined) return;
    const p = parseCidr(s);
    if (isCidrError(p)) c.error(path, p.error, 'invalid-cidr');
    else podCIDRs.push(p.text);
  });
  const addresses: string[] = [];
  (c.array(status.addresses, ['status', 'addresses']) ?? []).forEach((a, i) => {
    const ao = c.object(a, ['status', 'addresses', i]);
    if (!ao) return;
    if (ao.type !== 'InternalIP' && ao.type !== 'ExternalIP') return;
    const s = c.string(ao.address, ['status', 'addresses', i, 'address'], true);
    if (s === undefined) return;
    if (!parseIp(s)) c.error(['status', 'addresses', i, 'address'], `"${s}" is not a valid IP address`, 'invalid-ip');
    else addresses.push(s);
  });
  return { kind: 'Node', apiVersion: String(obj.apiVersion), metadata, origin, addresses, podCIDRs };
}

const RESTART_POLICIES: readonly RestartPolicy[] = ['Always', 'OnFailure', 'Never'];

/** restartPolicy, terminationGracePeriodSeconds, enableServiceLinks, hostname, subdomain: set only when given. */
function podRunFields(c: Checker, spec: Json, path: (string | number)[], out: PodSpec, workload: boolean): void {
  const rp = c.string(spec.restartPolicy, [...path, 'restartPolicy']);
  if (rp !== undefined && rp !== '') {
    // Workload controllers only run pods that restart always.
    const allowed = workload ? (['Always'] as const) : RESTART_POLICIES;
    if ((allowed as readonly string[]).includes(rp)) out.restartPolicy = rp as RestartPolicy;
    else c.error([...path, 'restartPolicy'], `unsupported value "${rp}": supported values: ${allowed.map((x) => `"${x}"`).join(', ')}`, 'unsupported-value');
  }
  const grace = c.integer(spec.terminationGracePeriodSeconds, [...path, 'terminationGracePeriodSeconds'], 0, Number.MAX_SAFE_INTEGER);
  if (grace !== undefined) out.terminationGracePeriodSeconds = grace;
  const links = c.boolean(spec.enableServiceLinks, [...path, 'enableServiceLinks']);
  if (links !== undefined) out.enableServiceLinks = links;
  for (const f of ['hostname', 'subdomain'] as const) {
    const v = c.string(spec[f], [...path, f]);
    if (v === undefined || v === '') continue;
    const p = dnsLabelProblem(v);
    if (p) c.error([...path, f], p);
    else out[f] = v;
  }
}

function podSpec(c: Checker, v: unknown, path: (string | number)[], workload = false): PodSpec {
  const spec = c.object(v, path) ?? {};
  const sa = c.string(spec.serviceAccountName, [...path, 'serviceAccountName']) ?? c.string(spec.serviceAccount, [...path, 'serviceAccount']) ?? 'default';
  const out: PodSpec = {
    serviceAccountName: sa,
    hostNetwork: c.boolean(spec.hostNetwork, [...path, 'hostNetwork']) ?? false,
    containers: [],
  };
  const nodeName = c.string(spec.nodeName, [...path, 'nodeName']);
  if (nodeName) out.nodeName = nodeName;
  podRunFields(c, spec, path, out, workload);
  const containerNames = new Set<string>();
  // A port name repeated inside one container is an API error; across containers the API only warns
  // (services and probes that refer to the name use the first one).
  const seen = new Map<string, string>();
  for (const listName of ['containers', 'initContainers'] as const) {
    (c.array(spec[listName], [...path, listName]) ?? []).forEach((ct, i) => {
      if (listName === 'initContainers') return; // init containers serve no ports
      const cp = [...path, listName, i];
      const co = c.object(ct, cp);
      if (!co) return;
      const name = c.string(co.name, [...cp, 'name']) ?? `container-${i}`;
      if (typeof co.name === 'string') {
        const p = co.name === '' ? 'is required' : dnsLabelProblem(co.name);
        if (p) c.error([...cp, 'name'], p, co.name === '' ? 'required' : 'invalid-name');
        else if (containerNames.has(name)) c.error([...cp, 'name'], `duplicate container name "${name}"`, 'duplicate');
        containerNames.add(name);
      }
      const ports: ContainerPort[] = [];
      const own = new Set<string>();
      (c.array(co.ports, [...cp, 'ports']) ?? []).forEach((p, j) => {
        const pp = [...cp, 'ports', j];
        const po = c.object(p, pp);
        if (!po) return;
        const containerPort = c.integer(po.containerPort, [...pp, 'containerPort'], 1, 65535, true);
        const port: ContainerPort = { containerPort: containerPort ?? 0, protocol: protocol(c, po.protocol, [...pp, 'protocol']) };
        const pname = c.string(po.name, [...pp, 'name']);
        if (pname !== undefined) {
          const prob = portNameProblem(pname);
          if (prob) c.error([...pp, 'name'], prob, 'invalid-port-name');
          const first = seen.get(pname);
          if (own.has(pname)) c.error([...pp, 'name'], `duplicate port name "${pname}" in this container`, 'duplicate');
          else if (first !== undefined) c.warn([...pp, 'name'], `duplicate port name "${pname}" (also ${first}); services and probes that select ports by name will use ${first}`, 'duplicate');
          else seen.set(pname, formatPath(pp));
          own.add(pname);
          port.name = pname;
        }
        if (containerPort !== undefined) ports.push(port);
      });
      out.containers.push({ name, ports, ...readContainerRun(c, co, cp, ports) });
    });
  }
  return out;
}

export function readPod(c: Checker, obj: Json, origin: Origin): Pod | undefined {
  const metadata = objectMeta(c, obj, true, 'Pod');
  if (!metadata) return undefined;
  checkProxyAnnotations(c, metadata.annotations, ['metadata', 'annotations']);
  const spec = podSpec(c, obj.spec, ['spec']);
  const st = c.object(obj.status, ['status']) ?? {};
  const podIPs: string[] = [];
  const ipList = c.array(st.podIPs, ['status', 'podIPs']);
  const candidates: [unknown, (string | number)[]][] = ipList
    ? ipList.map((x, i) => [(x as Json | null)?.ip, ['status', 'podIPs', i, 'ip']])
    : [[st.podIP, ['status', 'podIP']]];
  for (const [x, path] of candidates) {
    const s = c.string(x, path);
    if (s === undefined || s === '') continue;
    if (!parseIp(s)) c.error(path, `"${s}" is not a valid IP address`, 'invalid-ip');
    else if (!podIPs.includes(s)) podIPs.push(s);
  }
  const status: Pod['status'] = { podIPs };
  const hostIP = c.string(st.hostIP, ['status', 'hostIP']);
  if (hostIP) status.hostIP = hostIP;
  const phase = c.string(st.phase, ['status', 'phase']);
  if (phase) status.phase = phase;
  const conds = c.array(st.conditions, ['status', 'conditions']) ?? [];
  for (const cond of conds) {
    const co = cond as Json | null;
    if (co && co.type === 'Ready') status.ready = co.status === 'True';
  }
  return { kind: 'Pod', apiVersion: String(obj.apiVersion), metadata, origin, spec, status };
}

export function readWorkload(c: Checker, obj: Json, origin: Origin, kind: WorkloadKind): Workload | undefined {
  const metadata = objectMeta(c, obj, true, kind);
  if (!metadata) return undefined;
  const spec = c.object(obj.spec, ['spec'], true) ?? {};
  const replicas = kind === 'DaemonSet' ? 1 : (c.integer(spec.replicas, ['spec', 'replicas'], 0, 100000) ?? 1);
  const selector = labelSelector(c, spec.selector, ['spec', 'selector']);
  const tmpl = c.object(spec.template, ['spec', 'template'], true) ?? {};
  const tmeta = c.object(tmpl.metadata, ['spec', 'template', 'metadata']) ?? {};
  const labels = labelMap(c, tmeta.labels, ['spec', 'template', 'metadata', 'labels']);
  const annotations = c.stringMap(tmeta.annotations, ['spec', 'template', 'metadata', 'annotations']);
  checkProxyAnnotations(c, annotations, ['spec', 'template', 'metadata', 'annotations']);
  const podSpecValue = podSpec(c, tmpl.spec, ['spec', 'template', 'spec'], true);
  // The API server rejects a workload whose selector does not match its own template.
  for (const [k, v] of Object.entries(selector.matchLabels)) {
    if (labels[k] !== v) c.error(['spec', 'selector', 'matchLabels', k], `selector does not match template labels (template has ${k}=${labels[k] ?? '<unset>'})`, 'selector-mismatch');
  }
  const out: Workload = { kind, apiVersion: String(obj.apiVersion), metadata, origin, replicas, selector, template: { labels, annotations, spec: podSpecValue } };
  if (kind === 'StatefulSet') {
    const sn = c.string(spec.serviceName, ['spec', 'serviceName']);
    if (sn !== undefined && sn !== '') {
      const p = dnsLabelProblem(sn);
      if (p) c.error(['spec', 'serviceName'], p);
      else out.serviceName = sn;
    }
  }
  return out;
}

const SERVICE_TYPES: readonly ServiceType[] = ['ClusterIP', 'NodePort', 'LoadBalancer', 'ExternalName'];

export function readService(c: Checker, obj: Json, origin: Origin): Service | undefined {
  const metadata = objectMeta(c, obj, true, 'Service');
  if (!metadata) return undefined;
  const spec = c.object(obj.spec, ['spec'], true) ?? {};
  const typeText = c.string(spec.type, ['spec', 'type']) ?? 'ClusterIP';
  let type: ServiceType = 'ClusterIP';
  if ((SERVICE_TYPES as readonly string[]).includes(typeText)) type = typeText as ServiceType;
  else c.error(['spec', 'type'], `must be one of ${SERVICE_TYPES.join(', ')}`);
  const out: Service['spec'] = { type, ports: [] };
  if (spec.selector !== undefined && spec.selector !== null) out.selector = labelMap(c, spec.selector, ['spec', 'selector']);
  const clusterIP = c.string(spec.clusterIP, ['spec', 'clusterIP']);
  if (clusterIP !== undefined && clusterIP !== '' && clusterIP !== 'None' && !parseIp(clusterIP)) {
    c.error(['spec', 'clusterIP'], `must be an IP address, "None" (headless) or empty`, 'invalid-ip');
  }
  if (clusterIP) out.clusterIP = clusterIP;
  const pnra = c.boolean(spec.publishNotReadyAddresses, ['spec', 'publishNotReadyAddresses']);
  if (pnra !== undefined) out.publishNotReadyAddresses = pnra;
  if (type === 'ExternalName') {
    const en = c.string(spec.externalName, ['spec', 'externalName'], true);
    if (en) out.externalName = en;
  }
  const names = new Set<string>();
  const ports = c.array(spec.ports, ['spec', 'ports']) ?? [];
  ports.forEach((p, i) => {
    const pp = ['spec', 'ports', i];
    const po = c.object(p, pp);
    if (!po) return;
    const port = c.integer(po.port, [...pp, 'port'], 1, 65535, true);
    const sp: ServicePort = { port: port ?? 0, protocol: protocol(c, po.protocol, [...pp, 'protocol']), targetPort: port ?? 0 };
    const name = c.string(po.name, [...pp, 'name']);
    if (name !== undefined && name !== '') {
      if (names.has(name)) c.error([...pp, 'name'], `duplicate port name "${name}"`, 'duplicate');
      names.add(name);
      sp.name = name;
    } else if (ports.length > 1) c.error([...pp, 'name'], 'is required when a Service has more than one port', 'required');
    if (typeof po.targetPort === 'string') {
      const prob = portNameProblem(po.targetPort);
      if (prob && !/^[0-9]+$/.test(po.targetPort)) c.error([...pp, 'targetPort'], prob, 'invalid-port-name');
      sp.targetPort = /^[0-9]+$/.test(po.targetPort) ? Number(po.targetPort) : po.targetPort;
    } else if (po.targetPort !== undefined) {
      sp.targetPort = c.integer(po.targetPort, [...pp, 'targetPort'], 1, 65535) ?? sp.targetPort;
    }
    const appProtocol = c.string(po.appProtocol, [...pp, 'appProtocol']);
    if (appProtocol) sp.appProtocol = appProtocol;
    if (po.nodePort !== undefined && po.nodePort !== null) {
      if (type !== 'NodePort' && type !== 'LoadBalancer') c.error([...pp, 'nodePort'], 'may only be set when type is NodePort or LoadBalancer');
      const np = c.integer(po.nodePort, [...pp, 'nodePort'], 1, 65535);
      if (np !== undefined) sp.nodePort = np;
    }
    if (port !== undefined) out.ports.push(sp);
  });
  return { kind: 'Service', apiVersion: String(obj.apiVersion), metadata, origin, spec: out };
}
