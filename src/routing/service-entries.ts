// ServiceEntries as routing hosts: external (or mesh-internal) hosts with STATIC endpoints, workload selectors or DNS resolution.
import type { ServiceEntry } from '../resources/kinds-traffic.ts';
import { compare, labelsMatch, report, type Ctx, type HostEntry, type HostPort } from './context.ts';
import type { AppProtocol, Endpoint, Locality } from './model.ts';
import { podLocality } from './services.ts';

const PROTOCOLS: Record<string, AppProtocol> = { HTTP: 'http', HTTP2: 'http2', GRPC: 'grpc', 'GRPC-WEB': 'http', HTTPS: 'https', TLS: 'tls', TCP: 'tcp', MONGO: 'tcp' };

function locality(text: string | undefined): Locality {
  const [region = '', zone = '', subZone = ''] = (text ?? '').split('/');
  return { region, zone, subZone };
}

/**
 * Each host of a ServiceEntry becomes a routing host. STATIC entries list their endpoints (or the pods their
 * workloadSelector picks); DNS entries resolve the host (or each endpoint address) by DNS; NONE entries, which
 * Istio forwards to the original destination, are resolved by DNS here as the nearest equivalent.
 * Wildcard hosts get no listener (there is no single name to dial). A host a Service already has keeps the Service.
 */
export function addServiceEntries(ctx: Ctx, entries: readonly ServiceEntry[]): void {
  const pods = [...ctx.cluster.pods.values()].sort((a, b) => compare(a.key, b.key));
  for (const se of entries) {
    const ns = se.metadata.namespace ?? 'default';
    se.spec.hosts.forEach((host, hi) => {
      if (host.startsWith('*')) return;
      if (ctx.hosts.has(host)) {
        report(ctx, 'warning', 'host-conflict', se, ['spec', 'hosts', hi], `host ${host} is already defined by ${ctx.hosts.get(host)?.service ? 'a Service' : 'another ServiceEntry'}; this entry is ignored for it`);
        return;
      }
      const ports: HostPort[] = se.spec.ports.map((p) => ({ port: p.number, name: p.name, protocol: PROTOCOLS[p.protocol] ?? 'unknown', targetPort: p.targetPort ?? p.number }));
      const endpoints = new Map<number, Endpoint[]>();
      for (const p of se.spec.ports) {
        const eps: Endpoint[] = [];
        if (se.spec.workloadSelector) {
          for (const pod of pods) {
            if (pod.namespace !== ns || !labelsMatch(se.spec.workloadSelector, pod.labels) || pod.ips[0] === undefined) continue;
            eps.push({ address: pod.ips[0], port: p.targetPort ?? p.number, healthy: pod.ready, weight: 1, locality: podLocality(ctx, pod), pod: pod.key, labels: { ...pod.labels } });
          }
        } else if (se.spec.resolution === 'STATIC') {
          for (const e of se.spec.endpoints) {
            eps.push({ address: e.address, port: e.ports[p.name] ?? p.targetPort ?? p.number, healthy: true, weight: e.weight ?? 1, locality: locality(e.locality), labels: { ...e.labels } });
          }
        }
        endpoints.set(p.number, eps);
      }
      const entry: HostEntry = { host, namespace: ns, name: host, ports, endpoints, discovery: 'EDS', serviceEntry: se };
      if (!se.spec.workloadSelector && se.spec.resolution !== 'STATIC') {
        entry.discovery = 'LOGICAL_DNS';
        const first = se.spec.endpoints[0];
        entry.dns = first ? { host: first.address } : { host };
        if (se.spec.endpoints.length > 1) {
          report(ctx, 'warning', 'dns-endpoints', se, ['spec', 'endpoints', 1], `only the first endpoint (${first?.address ?? ''}) is resolved; a LOGICAL_DNS cluster has one address`);
        }
      }
      ctx.hosts.set(host, entry);
    });
  }
}
