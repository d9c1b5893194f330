// What `trellis up` derives from the manifests for its own use: loading with the control plane's compile, each
// Service's endpoints for `trellis status`, what is exposed, a pod's signature (to tell a changed pod on edits), and
// the cluster DNS table over the local pods' addresses and readiness.
import { listManifestFiles, readManifestFiles } from '../control-plane/manifest-files.ts';
import { compileMeshConfig } from '../control-plane/mesh-config.ts';
import type { Cluster } from '../model/cluster.ts';
import type { Diagnostic } from '../resources/diagnostics.ts';
import type { Resource, Service } from '../resources/kinds.ts';
import type { SourceText } from '../resources/source.ts';
import type { AddressPlan } from './address-plan.ts';
import { ClusterDnsTable } from './cluster-dns-table.ts';
import type { LocalPod } from './local-pods.ts';
import type { UpPod } from './up-pod.ts';
import type { UpState } from './up-state.ts';

export interface Loaded {
  resources: Resource[];
  sources: SourceText[];
  diagnostics: Diagnostic[];
}

/** Reads the manifests and compiles them as the control plane would, so what it would refuse is refused here, located. */
export function loadUpManifests(paths: readonly string[]): Loaded {
  const { files, missing } = listManifestFiles(paths);
  if (missing.length > 0) {
    const diagnostics: Diagnostic[] = missing.map((m) => ({ severity: 'error', code: 'not-found', message: `${m}: no such file or directory` }));
    return { resources: [], sources: [], diagnostics };
  }
  const sources = readManifestFiles(files);
  const result = compileMeshConfig(sources);
  if (!result.ok) return { resources: [], sources, diagnostics: result.diagnostics };
  return { resources: result.config.resources, sources, diagnostics: result.config.warnings };
}

/** What running a pod depends on: a pod whose signature changes is replaced on an edit. */
export function podSignature(lp: LocalPod): string {
  return JSON.stringify([lp.model.labels, lp.model.serviceAccount, lp.source.annotations, lp.source.spec, lp.manifestDir]);
}

export function serviceStatuses(services: readonly Service[], pods: readonly UpPod[]): UpState['services'] {
  return services.map((svc) => {
    const ns = svc.metadata.namespace ?? 'default';
    const sel = svc.spec.selector;
    const endpoints: UpState['services'][number]['endpoints'] = [];
    if (sel && Object.keys(sel).length > 0) {
      for (const p of pods) {
        const m = p.lp.model;
        if (m.namespace !== ns || !Object.entries(sel).every(([k, v]) => m.labels[k] === v)) continue;
        for (const sp of svc.spec.ports) {
          const port = typeof sp.targetPort === 'number' ? sp.targetPort : m.ports.find((c) => c.name === sp.targetPort)?.containerPort;
          if (port !== undefined && !endpoints.some((e) => e.address === `${p.lp.addresses.podIp}:${port}`)) endpoints.push({ pod: m.key, address: `${p.lp.addresses.podIp}:${port}`, ready: p.ready });
        }
      }
    }
    return { key: `${ns}/${svc.metadata.name}`, type: svc.spec.type, ports: svc.spec.ports.map((p) => `${p.port}/${p.protocol}`), endpoints };
  });
}

/** NodePort/LoadBalancer Services and Ingresses: listed honestly, as nothing exposes them in loopback mode yet. */
export function exposedEntries(resources: readonly Resource[]): string[] {
  const out: string[] = [];
  for (const r of resources) {
    const name = `${r.metadata.namespace ?? 'default'}/${r.metadata.name}`;
    if (r.kind === 'Service' && (r.spec.type === 'NodePort' || r.spec.type === 'LoadBalancer')) {
      const ports = r.spec.ports.map((p) => `${p.nodePort ?? p.port}/${p.protocol}`).join(', ');
      out.push(`${r.spec.type} ${name} ${ports}: not exposed on the host yet (no NodePort gateway in this version)`);
    } else if (r.kind === 'Ingress') out.push(`Ingress ${name}: not served yet (no Trellis gateway proxy in this version)`);
  }
  return out;
}

/**
 * The DNS table over the local pods: pod names at their pod IPs with their live readiness; a Service name answers
 * the asking pod's own outbound address (its sidecar), or the Service's virtual IP to a client that is no pod.
 */
export function localDnsTable(base: Cluster, resources: readonly Resource[], running: readonly UpPod[], plan: AddressPlan): ClusterDnsTable {
  const byKey = new Map<string, LocalPod>(running.map((p) => [p.lp.key, p.lp]));
  const ready = new Map(running.map((p) => [p.lp.key, p.ready] as const));
  const pods = new Map([...base.pods].map(([k, p]) => {
    const lp = byKey.get(k);
    return [k, { ...p, ready: ready.get(k) ?? false, ips: lp ? [lp.addresses.podIp] : p.ips }] as const;
  }));
  const cluster: Cluster = { ...base, pods, podsByIp: new Map([...pods.values()].flatMap((p) => p.ips.map((ip) => [ip, p] as const))) };
  return new ClusterDnsTable({
    cluster,
    resources,
    serviceAddress: (svc, client) => {
      const lp = client ? byKey.get(client.key) : undefined;
      return lp ? lp.addresses.outboundIp : plan.service(`${svc.metadata.namespace ?? 'default'}/${svc.metadata.name}`);
    },
    clientPod: (ip) => {
      const key = plan.podAt(ip);
      return key ? pods.get(key) : undefined;
    },
  });
}
