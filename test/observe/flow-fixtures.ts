// Synthetic Flow records for Observer tests: realistic shapes (pods, labels, L4, L7, policies) with overridable fields.
import type { Flow, FlowEndpoint } from '../../src/observe/flow.ts';

export function endpoint(namespace: string, pod: string, labels: string[] = [`k8s:app=${pod.replace(/-\d+$/, '')}`], identity = 1000): FlowEndpoint {
  return { ID: identity, identity, cluster_name: 'default', namespace, labels: [...labels, `k8s:io.kubernetes.pod.namespace=${namespace}`], pod_name: pod, workloads: [{ name: pod.replace(/-\d+$/, ''), kind: 'Deployment' }] };
}

/** `2026-11-22T08:00:00.000000000Z` plus `ms` milliseconds. */
export function timeAt(ms: number, base = Date.UTC(2026, 10, 22, 8, 0, 0)): string {
  const t = base + ms;
  return `${new Date(t - (t % 1000)).toISOString().slice(0, 19)}.${String((t % 1000) * 1_000_000).padStart(9, '0')}Z`;
}

let n = 0;

export function flow(over: Partial<Flow> = {}): Flow {
  n++;
  return {
    time: timeAt(n),
    uuid: `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`,
    verdict: 'FORWARDED',
    IP: { source: '10.0.1.1', destination: '10.0.2.1', ipVersion: 'IPv4' },
    l4: { TCP: { source_port: 40000 + (n % 1000), destination_port: 8080 } },
    source: endpoint('shop', 'web-1'),
    destination: endpoint('shop', 'db-1', ['k8s:app=db', 'k8s:tier=data'], 2000),
    Type: 'L3_L4',
    node_name: 'node-a',
    traffic_direction: 'INGRESS',
    is_reply: false,
    ingress_allowed_by: [{ name: 'allow-web', namespace: 'shop', labels: [], revision: 1, kind: 'NetworkPolicy' }],
    Summary: 'TCP allowed by NetworkPolicy shop/allow-web',
    ...over,
  };
}

export function httpFlow(code: number, method: string, url: string, over: Partial<Flow> = {}): Flow {
  return flow({ Type: 'L7', l7: { type: code === 0 ? 'REQUEST' : 'RESPONSE', latency_ns: 1000, http: { code, method, url, protocol: 'HTTP/1.1', headers: [] } }, ...over });
}
