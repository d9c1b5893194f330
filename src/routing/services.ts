// Kubernetes Services as routing hosts: their ports, protocols and endpoints (ready pods matched by selector, targetPort resolved).
import type { ModelPod } from '../model/cluster.ts';
import type { Service } from '../resources/kinds.ts';
import { compare, labelsMatch, report, serviceProtocol, type Ctx, type HostEntry, type HostPort } from './context.ts';
import type { Endpoint, Locality } from './model.ts';

export function serviceHost(ctx: Ctx, svc: Service): string {
  return `${svc.metadata.name}.${svc.metadata.namespace ?? 'default'}.svc.${ctx.domain}`;
}

export function podLocality(ctx: Ctx, pod: ModelPod): Locality {
  const labels = pod.nodeName ? (ctx.cluster.nodes.get(pod.nodeName)?.labels ?? {}) : {};
  return { region: labels['topology.kubernetes.io/region'] ?? '', zone: labels['topology.kubernetes.io/zone'] ?? '', subZone: '' };
}

/** The port a pod serves a Service port on: the number itself, or the container port with that name (none: not an endpoint). */
function podPort(pod: ModelPod, target: number | string, transport: string): number | undefined {
  if (typeof target === 'number') return target;
  return pod.ports.find((p) => p.name === target && p.protocol === transport)?.containerPort;
}

export function addServices(ctx: Ctx): void {
  // Pods grouped by namespace once, so each Service looks only at its own namespace's pods.
  const podsByNamespace = new Map<string, ModelPod[]>();
  for (const p of [...ctx.cluster.pods.values()].sort((a, b) => compare(a.key, b.key))) {
    const list = podsByNamespace.get(p.namespace);
    if (list) list.push(p);
    else podsByNamespace.set(p.namespace, [p]);
  }
  for (const svc of ctx.cluster.services) {
    const ns = svc.metadata.namespace ?? 'default';
    const host = serviceHost(ctx, svc);
    const ports: HostPort[] = [];
    const endpoints = new Map<number, Endpoint[]>();
    const selected = svc.spec.selector && svc.spec.type !== 'ExternalName' ? (podsByNamespace.get(ns) ?? []).filter((p) => Object.keys(svc.spec.selector ?? {}).length > 0 && labelsMatch(svc.spec.selector ?? {}, p.labels)) : [];
    svc.spec.ports.forEach((sp, i) => {
      if (sp.protocol !== 'TCP') {
        report(ctx, 'warning', 'unsupported-protocol', svc, ['spec', 'ports', i, 'protocol'], `${sp.protocol} ports are not proxied; port ${sp.port} gets no listener`);
        return;
      }
      const hp: HostPort = { port: sp.port, protocol: serviceProtocol(sp.appProtocol, sp.name, sp.protocol), targetPort: sp.targetPort };
      if (sp.name) hp.name = sp.name;
      ports.push(hp);
      const eps: Endpoint[] = [];
      for (const pod of selected) {
        const port = podPort(pod, sp.targetPort, sp.protocol);
        const address = pod.ips[0];
        if (port === undefined || address === undefined) continue;
        eps.push({ address, port, healthy: pod.ready, weight: 1, locality: podLocality(ctx, pod), pod: pod.key, labels: { ...pod.labels } });
      }
      endpoints.set(sp.port, eps);
    });
    const entry: HostEntry = { host, namespace: ns, name: svc.metadata.name, ports, endpoints, discovery: 'EDS', service: svc };
    if (svc.spec.type === 'ExternalName' && svc.spec.externalName) {
      entry.discovery = 'LOGICAL_DNS';
      entry.dns = { host: svc.spec.externalName };
    }
    ctx.hosts.set(host, entry);
  }
}
