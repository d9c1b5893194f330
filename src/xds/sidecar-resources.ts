// What the control plane serves a Trellis proxy (a sidecar for one pod, or a per-node proxy for every pod of a
// node): its listener set, route configurations and clusters, derived from the routing model and the cluster model.
//
// The node contract (what the proxy sends; src/proxy/proxy-node.ts writes it):
// - id: Istio's form `sidecar~<POD_IP>~<pod>.<ns>~<ns>.svc.cluster.local` (node mode: `node~<IP>~<node>~trellis`).
// - metadata TRELLIS_PROXY: `sidecar` (serves the pod named by the id or POD_NAME), `node` (serves every pod whose
//   spec.nodeName is metadata NODE_NAME), `gateway` (reserved: served nothing yet). Without TRELLIS_PROXY a node is
//   a proxyless gRPC client or server and is served exactly as before (mesh-resources.ts).
// - metadata NAMESPACE, POD_NAME, NODE_NAME; APP_IP: where the local app listens (default 127.0.0.1); OUTBOUND_IP:
//   where outbound listeners bind (default 127.0.0.1). Pod annotations `trellis.dev/app-ip` and
//   `trellis.dev/outbound-ip` override both per pod (node mode, where pods differ).
//
// What is served (names as Istio spells them):
// - LDS (wildcard): per served pod, `inbound|<podIP>|<port>` for each container port and Service targetPort of the
//   pod, and `outbound|<OUTBOUND_IP>|<port>` for each distinct Service port in the mesh. An outbound listener whose
//   address the pod's app or another listener already uses is left out (and logged in the view's warnings).
// - RDS (by name): `outbound|<port>|<client namespace>` (plus `|<hash>` when sourceLabels routes make clients of
//   one namespace differ): the virtual hosts of every HTTP Service on that port, as this client sees them.
// - CDS (wildcard): every mesh cluster (mTLS to pod endpoints, SANs their service accounts' SPIFFE IDs) and
//   `inbound|<port>|<pod>` (STATIC, to APP_IP:port). EDS (by name): the mesh clusters' endpoints.
import { createHash } from 'node:crypto';
import { isIP } from 'node:net';
import type { Cluster, ModelPod } from '../model/cluster.ts';
import { buildAuthzModel, mtlsModeFor, workloadAuthz, type AuthzModel } from '../policy/authz-model.ts';
import type { Resource } from '../resources/kinds.ts';
import { proxyLimitsOf, type ProxyLimitAnnotations } from '../resources/proxy-annotations.ts';
import type { EnvoyFilter } from '../resources/kinds-traffic.ts';
import { httpFiltersFor } from '../routing/envoy-filters.ts';
import { isHttpLike, serviceProtocol } from '../routing/context.ts';
import type { AppProtocol, ClusterSpec, EndpointSet, Route, RouteConfig, RoutingModel, ServiceListener, TcpRoute } from '../routing/model.ts';
import { upstreamMtls, type MeshSecurity } from './server-resources.ts';
import { inboundCluster, inboundListener, listenerProtocol, meshCluster, outboundListener, proxyRouteConfiguration, type InboundPort, type OutboundPort } from './sidecar-listeners.ts';
import type { XdsNode } from './xds-node.ts';

type Obj = Record<string, unknown>;

export const APP_IP_ANNOTATION = 'trellis.dev/app-ip';
export const OUTBOUND_IP_ANNOTATION = 'trellis.dev/outbound-ip';
export const DEFAULT_APP_IP = '127.0.0.1';
export const DEFAULT_OUTBOUND_IP = '127.0.0.1';
/** Per-node views kept per model; past this, views are still built, just not kept. */
const MAX_VIEWS = 10_000;

/** What MeshResources needs beyond the routing model to serve Trellis proxies. */
export interface SidecarInputs {
  cluster: Cluster;
  /** The validated resources (pod annotations; the policy snapshot). */
  resources: readonly Resource[];
}

export interface ServedPod {
  pod: ModelPod;
  ip: string;
  appIp: string;
  outboundIp: string;
  /** HCM limits from the pod's trellis.dev/* annotations (resources/proxy-annotations.ts), for its listeners. */
  limits?: ProxyLimitAnnotations;
}

/** Everything one proxy is served, built once per model and node. */
export interface SidecarView {
  pods: ServedPod[];
  listeners: Map<string, Obj>;
  routes: Map<string, Obj>;
  /** The inbound clusters of the served pods (mesh clusters are shared, see SidecarIndex.meshCluster). */
  clusters: Map<string, Obj>;
  warnings: string[];
}

export function isTrellisProxy(node: XdsNode): boolean {
  return node.proxy !== undefined;
}

function sameNamespaceLabels(r: Route, pod: ModelPod): boolean {
  if (r.match.sourceNamespace && r.match.sourceNamespace !== pod.namespace) return false;
  for (const [k, v] of Object.entries(r.match.sourceLabels ?? {})) if (pod.labels[k] !== v) return false;
  return true;
}

function tcpRouteApplies(r: TcpRoute, pod: ModelPod): boolean {
  if (r.sourceNamespace && r.sourceNamespace !== pod.namespace) return false;
  for (const [k, v] of Object.entries(r.sourceLabels ?? {})) if (pod.labels[k] !== v) return false;
  return true;
}

export class SidecarIndex {
  private readonly views = new Map<string, SidecarView>();
  private readonly byPort = new Map<number, ServiceListener[]>();
  private readonly podPorts = new Map<string, Map<number, AppProtocol[]>>();
  private readonly podsByNode = new Map<string, ModelPod[]>();
  private readonly annotations = new Map<string, Record<string, string>>();
  private readonly clusterIps = new Map<string, string>();
  private readonly routeConfigs: Map<string, RouteConfig>;
  private readonly clusterSpecs: Map<string, ClusterSpec>;
  private readonly endpoints: Map<string, EndpointSet>;
  private readonly authz: AuthzModel;
  private readonly envoyFilters: EnvoyFilter[] = [];

  constructor(model: RoutingModel, private readonly inputs: SidecarInputs, private readonly security?: MeshSecurity) {
    this.authz = security?.authz ?? buildAuthzModel([]);
    this.routeConfigs = new Map(model.routeConfigs.map((r) => [r.name, r]));
    this.clusterSpecs = new Map(model.clusters.map((c) => [c.name, c]));
    this.endpoints = new Map(model.endpoints.map((e) => [e.cluster, e]));
    for (const l of [...model.listeners].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
      const list = this.byPort.get(l.port);
      if (list) list.push(l);
      else this.byPort.set(l.port, [l]);
    }
    for (const e of model.endpoints) {
      const c = this.clusterSpecs.get(e.cluster);
      if (!c || c.subset !== undefined) continue;
      for (const ep of e.endpoints) {
        if (!ep.pod) continue;
        let ports = this.podPorts.get(ep.pod);
        if (!ports) this.podPorts.set(ep.pod, (ports = new Map<number, AppProtocol[]>()));
        ports.set(ep.port, [...(ports.get(ep.port) ?? []), c.protocol]);
      }
    }
    for (const p of [...inputs.cluster.pods.values()].sort((a, b) => (a.key < b.key ? -1 : 1))) {
      if (!p.nodeName) continue;
      const list = this.podsByNode.get(p.nodeName);
      if (list) list.push(p);
      else this.podsByNode.set(p.nodeName, [p]);
    }
    for (const r of inputs.resources) {
      const ns = r.metadata.namespace ?? 'default';
      if (r.kind === 'Pod') this.annotations.set(`${ns}/Pod/${r.metadata.name}`, r.metadata.annotations);
      else if (r.kind === 'Deployment' || r.kind === 'ReplicaSet' || r.kind === 'StatefulSet' || r.kind === 'DaemonSet') this.annotations.set(`${ns}/${r.kind}/${r.metadata.name}`, r.template.annotations);
      else if (r.kind === 'EnvoyFilter') this.envoyFilters.push(r);
      else if (r.kind === 'Service' && r.spec.clusterIP && r.spec.clusterIP !== 'None') this.clusterIps.set(`${ns}/${r.metadata.name}`, r.spec.clusterIP);
    }
  }

  /** The parts of a node its view depends on. */
  viewKey(node: XdsNode): string {
    const p = node.proxy;
    return [p?.mode ?? '', node.namespace, node.pod ?? '', p?.nodeName ?? '', p?.appIp ?? '', p?.outboundIp ?? ''].join('|');
  }

  /** The pods a proxy serves: its own (sidecar), its node's (node), none (gateway, unknown modes, unknown pods). */
  servedPods(node: XdsNode, warnings: string[] = []): ServedPod[] {
    const p = node.proxy;
    if (!p) return [];
    let pods: ModelPod[] = [];
    if (p.mode === 'sidecar') {
      const pod = node.pod ? this.inputs.cluster.pods.get(node.pod) : undefined;
      if (pod) pods = [pod];
      else warnings.push(`sidecar ${node.id}: pod ${node.pod ?? '(none)'} is not in the mesh; nothing is served`);
    } else if (p.mode === 'node') pods = p.nodeName ? (this.podsByNode.get(p.nodeName) ?? []) : [];
    const out: ServedPod[] = [];
    for (const pod of pods) {
      const ip = pod.ips[0];
      if (pod.hostNetwork || ip === undefined) continue;
      const ann = this.annotations.get(`${pod.namespace}/${pod.owner.kind}/${pod.owner.name}`) ?? {};
      const addr = (key: string, fromNode: string | undefined, dflt: string): string => {
        const v = ann[key];
        if (v !== undefined && isIP(v) === 0) warnings.push(`pod ${pod.key}: annotation ${key}: ${v} is not an IP address; ignored`);
        return v !== undefined && isIP(v) !== 0 ? v : fromNode && isIP(fromNode) !== 0 ? fromNode : dflt;
      };
      out.push({ pod, ip, appIp: addr(APP_IP_ANNOTATION, p.appIp, DEFAULT_APP_IP), outboundIp: addr(OUTBOUND_IP_ANNOTATION, p.outboundIp, DEFAULT_OUTBOUND_IP), limits: proxyLimitsOf(ann) });
    }
    return out;
  }

  view(node: XdsNode): SidecarView {
    const key = this.viewKey(node);
    const hit = this.views.get(key);
    if (hit) return hit;
    const v = this.buildView(node);
    if (this.views.size < MAX_VIEWS) this.views.set(key, v);
    return v;
  }

  /** The ports a pod serves: Service targetPorts (with their Services' protocols) and container ports. */
  inboundPorts(pod: ModelPod): InboundPort[] {
    const ports = new Map<number, AppProtocol[]>(this.podPorts.get(pod.key) ?? []);
    for (const cp of pod.ports) if (cp.protocol === 'TCP' && !ports.has(cp.containerPort)) ports.set(cp.containerPort, [serviceProtocol(undefined, cp.name, 'TCP')]);
    return [...ports.entries()]
      .sort(([a], [b]) => a - b)
      .map(([port, ps]) => {
        const uniq = [...new Set(ps)];
        return { port, protocol: listenerProtocol(uniq), http2: uniq.some((p) => p === 'grpc' || p === 'http2'), appProtocol: uniq.length === 1 ? uniq[0]! : 'unknown' };
      });
  }

  private buildView(node: XdsNode): SidecarView {
    const view: SidecarView = { pods: [], listeners: new Map(), routes: new Map(), clusters: new Map(), warnings: [] };
    view.pods = this.servedPods(node, view.warnings);
    // Addresses the proxy binds, and those the apps bind: an outbound listener must not take either.
    const bound = new Map<string, string>();
    for (const sp of view.pods) {
      const mtls = workloadAuthz(this.authz, { namespace: sp.pod.namespace, labels: sp.pod.labels }).mtls;
      for (const p of this.inboundPorts(sp.pod)) {
        const chain = httpFiltersFor(this.envoyFilters, sp.pod, { direction: 'inbound', port: p.port }, this.authz.rootNamespace);
        const l = inboundListener(sp.ip, sp.pod.key, p, mtlsModeFor(mtls, p.port), this.security?.tls, chain, sp.limits);
        view.listeners.set(l.name as string, l);
        const c = inboundCluster(sp.pod.key, sp.appIp, p);
        view.clusters.set(c.name as string, c);
        bound.set(`${sp.ip}:${p.port}`, `listener ${l.name as string}`);
        bound.set(`${sp.appIp}:${p.port}`, `the app of pod ${sp.pod.key}`);
      }
    }
    for (const sp of view.pods) {
      for (const port of [...this.byPort.keys()].sort((a, b) => a - b)) {
        const addr = `${sp.outboundIp}:${port}`;
        const taken = bound.get(addr);
        if (taken) {
          view.warnings.push(`pod ${sp.pod.key}: no outbound listener on ${addr}: ${taken} uses it (set ${OUTBOUND_IP_ANNOTATION})`);
          continue;
        }
        const op = this.outboundPort(sp, port, view.routes, view.pods.length === 1);
        const chain = httpFiltersFor(this.envoyFilters, sp.pod, { direction: 'outbound', port }, this.authz.rootNamespace);
        const l = outboundListener(sp.outboundIp, sp.pod.key, sp.ip, op, chain, sp.limits);
        view.listeners.set(l.name as string, l);
        bound.set(addr, `listener ${l.name as string}`);
      }
    }
    return view;
  }

  private outboundPort(sp: ServedPod, port: number, routes: Map<string, Obj>, ownAddress = false): OutboundPort {
    const ls = this.byPort.get(port) ?? [];
    const http = ls.filter((l) => isHttpLike(l.protocol));
    // A plain TCP port cannot tell Services apart: the first by name is served, the others are shadowed.
    const tcp = ls.filter((l) => l.tcpCluster !== undefined);
    const out: OutboundPort = { port, protocol: http.length === 0 ? 'tcp' : tcp.length === 0 ? 'http' : 'auto' };
    if (http.length > 0) {
      const rc = this.outboundRoute(sp.pod, port, http, ownAddress ? sp.outboundIp : undefined);
      routes.set(rc.name as string, rc);
      out.routeConfig = rc.name as string;
    }
    const first = tcp[0];
    if (first) {
      if (first.tcpCluster !== undefined) out.tcpCluster = first.tcpCluster;
      const tcpRoutes = (first.tcpRoutes ?? []).filter((r) => tcpRouteApplies(r, sp.pod)).map(({ sourceLabels: _l, sourceNamespace: _n, ...r }) => r);
      if (tcpRoutes.length > 0) out.tcpRoutes = tcpRoutes;
      if (tcp.length > 1) out.shadowed = tcp.slice(1).map((l) => l.name);
    }
    return out;
  }

  /**
   * `outbound|<port>|<ns>`: the virtual hosts of every HTTP Service listener on the port, as `pod` sees them. With
   * `outboundIp` (a sidecar's own outbound address), the first Service by name on the port also answers to that
   * address as Host (`<ip>`, `<ip>:<port>`): apps that call `$<SVC>_SERVICE_HOST:$<SVC>_SERVICE_PORT` in loopback mode.
   */
  private outboundRoute(pod: ModelPod, port: number, ls: readonly ServiceListener[], outboundIp?: string): Obj {
    let bits = '';
    const claimed = new Set<string>();
    const virtualHosts: Obj[] = [];
    const accepts = (r: Route): boolean => sameNamespaceLabels(r, pod);
    for (const l of ls) {
      const rc = this.routeConfigs.get(l.routeConfig);
      if (!rc) continue;
      for (const vh of rc.virtualHosts) for (const r of vh.routes) if (r.match.sourceLabels || r.match.sourceNamespace) bits += accepts(r) ? '1' : '0';
      const local = new Set(l.namespaceLocalAliases);
      const ip = l.host.startsWith(`${l.service}.${l.namespace}.svc.`) ? this.clusterIps.get(`${l.namespace}/${l.service}`) : undefined;
      const extra = ip ? [ip, `${ip.includes(':') ? `[${ip}]` : ip}:${l.port}`] : [];
      if (outboundIp !== undefined) extra.push(outboundIp, `${outboundIp.includes(':') ? `[${outboundIp}]` : outboundIp}:${l.port}`);
      for (const vh of proxyRouteConfiguration(rc, accepts).virtual_hosts as Obj[]) {
        // Envoy refuses a domain in two virtual hosts of one route configuration: the first listener by name keeps it.
        const domains = [...(vh.domains as string[]), ...extra].filter((d) => (l.namespace === pod.namespace || !local.has(d)) && !claimed.has(d));
        for (const d of domains) claimed.add(d);
        if (domains.length > 0) virtualHosts.push({ ...vh, domains });
      }
    }
    const base = `outbound|${port}|${pod.namespace}`;
    const name = bits === '' ? base : `${base}|${createHash('sha256').update(bits).digest('hex').slice(0, 8)}`;
    return { name, virtual_hosts: virtualHosts };
  }

  /** Mesh cluster names, for CDS. */
  meshClusterNames(): string[] {
    return [...this.clusterSpecs.keys()].sort();
  }

  /** A mesh cluster as a Trellis proxy gets it: mTLS whenever its endpoints are pods. */
  meshCluster(name: string): Obj | undefined {
    const c = this.clusterSpecs.get(name);
    if (!c) return undefined;
    const sans = this.meshSans(c);
    return meshCluster(c, sans ? upstreamMtls(sans.map((exact) => ({ exact })), this.security?.tls) : undefined);
  }

  /**
   * The SPIFFE IDs a proxy accepts from a cluster's endpoints, or undefined for plaintext. A DestinationRule's tls
   * mode decides when set (ISTIO_MUTUAL: mTLS; DISABLE, SIMPLE, MUTUAL: not Trellis mTLS); otherwise a cluster whose
   * endpoints are pods (or a Service with none yet) is a mesh cluster. Its SANs: the DestinationRule's
   * subjectAltNames, else each endpoint pod's service account; none (any workload of the trust domain) when the
   * cluster has no endpoint to name.
   */
  meshSans(c: ClusterSpec): string[] | undefined {
    const mode = c.tls?.mode;
    if (mode === 'DISABLE' || mode === 'SIMPLE' || mode === 'MUTUAL') return undefined;
    const eps = this.endpoints.get(c.name)?.endpoints ?? [];
    const pods = eps.filter((ep) => ep.pod !== undefined);
    const service = c.discovery === 'EDS' && /^[^.]+\.[^.]+\.svc\./.test(c.host);
    if (mode !== 'ISTIO_MUTUAL' && pods.length === 0 && !(service && eps.length === 0)) return undefined;
    if (c.tls?.subjectAltNames && c.tls.subjectAltNames.length > 0) return [...c.tls.subjectAltNames];
    const td = this.authz.trustDomain;
    const sans = new Set<string>();
    for (const ep of pods) {
      const pod = this.inputs.cluster.pods.get(ep.pod ?? '');
      if (pod) sans.add(`spiffe://${td}/ns/${pod.namespace}/sa/${pod.serviceAccount}`);
    }
    return [...sans].sort();
  }

  endpointSet(name: string): EndpointSet | undefined {
    return this.endpoints.get(name);
  }
}
