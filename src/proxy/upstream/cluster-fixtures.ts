// Test fixtures for the upstream tests: cluster specs, endpoint sets and configs as the xDS translator builds them.
import type { EndpointSet } from '../../routing/model.ts';
import type { ProxyCluster, ProxyConfig } from '../proxy-config.ts';

export function clusterSpec(name: string, over: Partial<ProxyCluster> = {}): ProxyCluster {
  return { name, host: 'api.shop.svc.cluster.local', port: 80, discovery: 'EDS', lbPolicy: 'ROUND_ROBIN', http2: false, protocol: 'http', ...over };
}

export interface EndpointInit {
  address: string;
  port?: number;
  healthy?: boolean;
  weight?: number;
  pod?: string;
}

export function endpointSet(cluster: string, eps: (string | EndpointInit)[]): EndpointSet {
  return {
    cluster,
    endpoints: eps.map((e) => {
      const i = typeof e === 'string' ? { address: e } : e;
      const out: EndpointSet['endpoints'][number] = {
        address: i.address,
        port: i.port ?? 8080,
        healthy: i.healthy ?? true,
        weight: i.weight ?? 1,
        locality: { region: '', zone: '', subZone: '' },
        labels: {},
      };
      if (i.pod !== undefined) out.pod = i.pod;
      return out;
    }),
  };
}

export function proxyConfig(clusters: { spec: ProxyCluster; endpoints?: EndpointSet }[]): ProxyConfig {
  return {
    listeners: [],
    routes: new Map(),
    clusters: new Map(clusters.map((c) => [c.spec.name, c.spec])),
    endpoints: new Map(clusters.filter((c) => c.endpoints).map((c) => [c.spec.name, c.endpoints!])),
  };
}

/** Polls `cond` every 5 ms until it holds or `timeoutMs` passes; returns the time it took, ms. */
export async function waitFor(cond: () => boolean, timeoutMs: number, what: string): Promise<number> {
  const start = performance.now();
  while (!cond()) {
    if (performance.now() - start > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
  return performance.now() - start;
}
