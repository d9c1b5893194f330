// Which cluster an opaque TCP connection goes to: the listener's TCP routes (Istio tcp/tls routes: SNI, destination
// subnets, source labels and namespace; first match wins, then a weighted pick), else the listener's tcpCluster.
// A listener's routes are parsed once (CIDRs, SNI patterns) and cached by config object.
import type { Endpoint } from '../policy/endpoint.ts';
import { cidrContains, isCidrError, parseCidr, parseIp, type Cidr } from '../resources/net.ts';
import type { TcpRoute, WeightedCluster } from '../routing/model.ts';
import type { ClusterManager, ConnectionInfo, UpstreamCluster } from './contracts.ts';
import type { ListenerConfig } from './proxy-config.ts';

interface CompiledRoute {
  sni?: { exact: Set<string>; suffixes: string[] };
  subnets?: Cidr[];
  sourceLabels?: [string, string][];
  sourceNamespace?: string;
  clusters: WeightedCluster[];
  totalWeight: number;
}

interface CompiledRoutes {
  sni: boolean;
  routes: CompiledRoute[];
}

const cache = new WeakMap<ListenerConfig, CompiledRoutes>();

function compile(l: ListenerConfig): CompiledRoutes {
  let c = cache.get(l);
  if (c !== undefined) return c;
  const routes = (l.tcpRoutes ?? []).map((r: TcpRoute): CompiledRoute => {
    const out: CompiledRoute = { clusters: r.clusters, totalWeight: r.clusters.reduce((s, w) => s + Math.max(0, w.weight), 0) };
    if (r.sniHosts !== undefined && r.sniHosts.length > 0) {
      const exact = new Set<string>();
      const suffixes: string[] = [];
      for (const h of r.sniHosts) {
        const name = h.toLowerCase();
        if (name === '*') suffixes.push('');
        else if (name.startsWith('*.')) suffixes.push(name.slice(1));
        else exact.add(name);
      }
      out.sni = { exact, suffixes };
    }
    if (r.destinationSubnets !== undefined && r.destinationSubnets.length > 0) {
      out.subnets = r.destinationSubnets.map((s) => parseCidr(s.includes('/') ? s : `${s}/${s.includes(':') ? 128 : 32}`)).filter((x): x is Cidr => !isCidrError(x));
    }
    if (r.sourceLabels !== undefined) out.sourceLabels = Object.entries(r.sourceLabels);
    if (r.sourceNamespace !== undefined) out.sourceNamespace = r.sourceNamespace;
    return out;
  });
  c = { sni: routes.some((r) => r.sni !== undefined), routes };
  cache.set(l, c);
  return c;
}

/** The listener has routes that match on SNI, so detection must read the ClientHello. */
export function usesSni(l: ListenerConfig): boolean {
  return l.tcpRoutes !== undefined && l.tcpRoutes.length > 0 && compile(l).sni;
}

function sourcePod(e: Endpoint): { namespace: string; labels: Record<string, string> } | undefined {
  return e.type === 'pod' ? e.pod : undefined;
}

function matches(r: CompiledRoute, info: ConnectionInfo): boolean {
  if (r.sni !== undefined) {
    const sni = info.sni;
    if (sni === undefined) return false;
    if (!r.sni.exact.has(sni) && !r.sni.suffixes.some((s) => sni.endsWith(s) && sni.length > s.length)) return false;
  }
  if (r.subnets !== undefined) {
    const ip = parseIp(info.local.ip);
    if (ip === undefined || !r.subnets.some((c) => cidrContains(c, ip))) return false;
  }
  if (r.sourceLabels !== undefined || r.sourceNamespace !== undefined) {
    const pod = sourcePod(info.source);
    if (pod === undefined) return false;
    if (r.sourceNamespace !== undefined && pod.namespace !== r.sourceNamespace) return false;
    if (r.sourceLabels !== undefined && !r.sourceLabels.every(([k, v]) => pod.labels[k] === v)) return false;
  }
  return true;
}

function weighted(r: CompiledRoute, clusters: ClusterManager): UpstreamCluster | undefined {
  const list = r.clusters;
  if (list.length === 1) return clusters.get(list[0]!.cluster);
  if (r.totalWeight <= 0) return list.length > 0 ? clusters.get(list[0]!.cluster) : undefined;
  let x = Math.random() * r.totalWeight;
  for (const w of list) {
    x -= Math.max(0, w.weight);
    if (x < 0) return clusters.get(w.cluster);
  }
  return clusters.get(list[list.length - 1]!.cluster);
}

/** The cluster for an opaque TCP connection; undefined when nothing routes it (the connection is reset). */
export function pickTcpCluster(l: ListenerConfig, info: ConnectionInfo, clusters: ClusterManager): UpstreamCluster | undefined {
  if (l.tcpRoutes !== undefined && l.tcpRoutes.length > 0) {
    for (const r of compile(l).routes) if (matches(r, info)) return weighted(r, clusters);
  }
  return l.tcpCluster !== undefined ? clusters.get(l.tcpCluster) : undefined;
}
