// Edge listeners: NodePort and LoadBalancer Services, Istio Gateways (with the VirtualServices bound to them) and Ingresses.
import type { Service } from '../resources/kinds.ts';
import type { Ingress, IstioGateway, VirtualService } from '../resources/kinds-traffic.ts';
import { clusterName, compare, hostMatches, isHttpLike, report, resolveHost, type Ctx } from './context.ts';
import type { AppProtocol, EdgeListener, Route, VirtualHost } from './model.ts';
import { elementPrefix } from './paths.ts';
import { serviceHost } from './services.ts';
import { boundGateways, defaultRetry, primaryTcpCluster, virtualServiceRoutes, virtualServiceTcpRoutes } from './virtual-services.ts';

const NODE_PORT_MIN = 30000;
const NODE_PORT_MAX = 32767;

/**
 * NodePort Services listen on their nodePort on every node; LoadBalancer Services on their nodePort and on their own
 * port at the balancer's address. Both reuse the Service listener's routes. A nodePort the manifest leaves out is
 * allocated from 30000-32767 by hashing the Service and port, so it stays put when other Services change.
 */
export function addServiceEdges(ctx: Ctx): void {
  const services = [...ctx.cluster.services].filter((s) => s.spec.type === 'NodePort' || s.spec.type === 'LoadBalancer');
  services.sort((a, b) => compare(`${a.metadata.namespace ?? ''}/${a.metadata.name}`, `${b.metadata.namespace ?? ''}/${b.metadata.name}`));
  const used = new Set<number>();
  for (const s of services) for (const p of s.spec.ports) if (p.nodePort !== undefined) used.add(p.nodePort);
  for (const s of services) {
    s.spec.ports.forEach((p, i) => {
      const listener = ctx.listeners.get(`${serviceHost(ctx, s)}:${p.port}`);
      if (!listener) return;
      let nodePort = p.nodePort;
      if (nodePort === undefined) {
        nodePort = allocate(`${s.metadata.namespace ?? ''}/${s.metadata.name}/${p.port}`, used);
        used.add(nodePort);
      } else if (ctx.edges.has(`nodeport/${nodePort}`)) {
        // Kubernetes lets one Service use a nodePort for TCP and UDP alike (a DNS port): both map to one listener.
        const same = ctx.edges.get(`nodeport/${nodePort}`);
        if (same && same.routeConfig === listener.routeConfig && same.tcpCluster === listener.tcpCluster && s.spec.ports.some((q, j) => j < i && q.port === p.port && q.nodePort === nodePort)) return;
        report(ctx, 'error', 'port-conflict', s, ['spec', 'ports', i, 'nodePort'], `nodePort ${nodePort} is already used by ${ctx.edges.get(`nodeport/${nodePort}`)?.routeConfig ?? 'another Service'}`);
        return;
      }
      const base = { port: nodePort, protocol: listener.protocol, routeConfig: listener.routeConfig };
      ctx.edges.set(`nodeport/${nodePort}`, withTcp({ name: `nodeport/${nodePort}`, kind: 'NodePort', ...base }, listener.tcpCluster));
      if (s.spec.type === 'LoadBalancer') {
        const name = `loadbalancer/${s.metadata.namespace ?? 'default'}/${s.metadata.name}:${p.port}`;
        ctx.edges.set(name, withTcp({ name, kind: 'LoadBalancer', port: p.port, protocol: listener.protocol, routeConfig: listener.routeConfig }, listener.tcpCluster));
      }
    });
  }
}

function withTcp(e: EdgeListener, tcp: string | undefined): EdgeListener {
  if (tcp) e.tcpCluster = tcp;
  return e;
}

function allocate(key: string, used: Set<number>): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193) >>> 0;
  const size = NODE_PORT_MAX - NODE_PORT_MIN + 1;
  for (let k = 0; k < size; k++) {
    const p = NODE_PORT_MIN + ((h + k) % size);
    if (!used.has(p)) return p;
  }
  return NODE_PORT_MIN;
}

const GATEWAY_PROTOCOLS: Record<string, AppProtocol> = { HTTP: 'http', HTTP2: 'http2', GRPC: 'grpc', 'GRPC-WEB': 'http', HTTPS: 'https', TLS: 'tls', TCP: 'tcp', MONGO: 'tcp' };

/** Whether a Gateway server host (`[ns/]host`, ns may be `*` or `.`) admits a VirtualService host from a namespace. */
function serverAdmits(serverHost: string, gwNs: string, vsNs: string, vsHost: string): boolean {
  const slash = serverHost.indexOf('/');
  const ns = slash >= 0 ? serverHost.slice(0, slash) : '*';
  const host = slash >= 0 ? serverHost.slice(slash + 1) : serverHost;
  if (ns !== '*' && (ns === '.' ? gwNs : ns) !== vsNs) return false;
  return hostMatches(host, vsHost) || hostMatches(vsHost, host);
}

/**
 * An Istio Gateway's servers become edge listeners (servers sharing a port share one). Each VirtualService bound to
 * the Gateway adds a virtual host per host the server admits; VirtualServices for one host are concatenated, as Istio
 * merges them on gateways. A host with no VirtualService gets no route (404), as on Istio gateways.
 */
export function addIstioGateways(ctx: Ctx, gateways: readonly IstioGateway[], virtualServices: readonly VirtualService[]): void {
  const vss = [...virtualServices].sort((a, b) => compare(`${a.metadata.namespace ?? ''}/${a.metadata.name}`, `${b.metadata.namespace ?? ''}/${b.metadata.name}`));
  for (const g of gateways) {
    const gns = g.metadata.namespace ?? 'default';
    const gwName = `${gns}/${g.metadata.name}`;
    const bound = vss.filter((vs) => boundGateways(vs, vs.spec.gateways).includes(gwName) || vs.spec.http.some((r) => r.match.some((m) => m.gateways && boundGateways(vs, m.gateways).includes(gwName))));
    const byPort = new Map<number, IstioGateway['spec']['servers']>();
    for (const s of g.spec.servers) byPort.set(s.port.number, [...(byPort.get(s.port.number) ?? []), s]);
    for (const [port, servers] of byPort) {
      const name = `istio-gateway/${gwName}:${port}`;
      const first = servers[0];
      if (!first) continue;
      const protocol = GATEWAY_PROTOCOLS[first.port.protocol] ?? 'unknown';
      const edge: EdgeListener = { name, kind: 'Gateway', port, protocol, routeConfig: name };
      const tlsServer = servers.find((s) => s.tls && !s.tls.httpsRedirect) ?? servers.find((s) => s.tls);
      if (tlsServer?.tls && (protocol === 'https' || protocol === 'tls')) {
        edge.tls = { mode: tlsServer.tls.mode, hosts: servers.flatMap((s) => s.hosts.map((h) => h.slice(h.indexOf('/') + 1))) };
        if (tlsServer.tls.credentialName) edge.tls.credentialName = tlsServer.tls.credentialName;
      }
      const vhosts = new Map<string, Route[]>();
      const tcpRoutes: NonNullable<EdgeListener['tcpRoutes']> = [];
      for (const vs of bound) {
        const vns = vs.metadata.namespace ?? 'default';
        for (const h of vs.spec.hosts) {
          const host = resolveHost(ctx, h, vns);
          const server = servers.find((s) => s.hosts.some((sh) => serverAdmits(sh, gns, vns, host)));
          if (!server) continue;
          if (server.tls?.httpsRedirect && protocol === 'http') {
            vhosts.set(host, [{ name: `${gwName}/https-redirect`, match: { path: { prefix: '/' }, headers: [] }, action: { type: 'redirect', scheme: 'https', status: 301 } }]);
            continue;
          }
          if (isHttpLike(protocol) || (protocol === 'https' && server.tls?.mode !== 'PASSTHROUGH')) {
            vhosts.set(host, [...(vhosts.get(host) ?? []), ...virtualServiceRoutes(ctx, vs, port, gwName)]);
          } else {
            tcpRoutes.push(...virtualServiceTcpRoutes(ctx, vs, port, gwName, protocol === 'tcp' ? 'tcp' : 'tls'));
          }
        }
      }
      if (tcpRoutes.length > 0) {
        edge.tcpRoutes = tcpRoutes;
        const primary = primaryTcpCluster(tcpRoutes);
        if (primary) edge.tcpCluster = primary;
      }
      ctx.edges.set(name, edge);
      const virtualHosts: VirtualHost[] = [...vhosts.keys()].sort(compare).map((h) => ({ name: h, domains: h === '*' ? ['*'] : [h, `${h}:${port}`], routes: vhosts.get(h) ?? [] }));
      ctx.routeConfigs.set(name, { name, virtualHosts });
    }
  }
}

/**
 * Ingresses share one edge listener on port 80 (and 443 when any Ingress has tls) and one route table: a virtual host
 * per rule host (`*` for rules without one). Within a host, Exact paths come before Prefix paths and longer paths
 * before shorter ones, as Kubernetes specifies; an Ingress's defaultBackend catches what its rules do not.
 */
export function addIngresses(ctx: Ctx, ingresses: readonly Ingress[]): void {
  if (ingresses.length === 0) return;
  const sorted = [...ingresses].sort((a, b) => compare(`${a.metadata.namespace ?? ''}/${a.metadata.name}`, `${b.metadata.namespace ?? ''}/${b.metadata.name}`));
  const vhosts = new Map<string, { route: Route; rank: [number, number, number] }[]>();
  const defaults = new Map<string, Route>();
  let order = 0;
  const tls = sorted.flatMap((i) => i.spec.tls);
  for (const ing of sorted) {
    const ns = ing.metadata.namespace ?? 'default';
    const base = `${ns}/${ing.metadata.name}`;
    const target = (b: Ingress['spec']['rules'][number]['paths'][number]['backend']): string | undefined => {
      if (!b.service) {
        report(ctx, 'warning', 'unsupported', ing, b.path, 'resource backends are not supported; only Services are');
        return undefined;
      }
      const svc: Service | undefined = ctx.cluster.services.find((s) => s.metadata.name === b.service?.name && (s.metadata.namespace ?? 'default') === ns);
      if (!svc) {
        report(ctx, 'warning', 'unknown-backend', ing, [...b.path, 'service', 'name'], `Service ${ns}/${b.service.name} does not exist`);
        return undefined;
      }
      const want = b.service.port;
      const sp = svc.spec.ports.find((p) => ('number' in want ? p.port === want.number : p.name === want.name));
      if (!sp) {
        report(ctx, 'warning', 'unknown-backend', ing, [...b.path, 'service', 'port'], `Service ${ns}/${b.service.name} has no port ${'number' in want ? want.number : `named "${want.name}"`}`);
        return undefined;
      }
      return clusterName(sp.port, undefined, serviceHost(ctx, svc));
    };
    const route = (name: string, path: Route['match']['path'], cluster: string, src: readonly (string | number)[]): Route => ({
      name,
      match: { path, headers: [] },
      action: { type: 'route', clusters: [{ cluster, weight: 100 }], retry: defaultRetry() },
      source: { origin: ing.origin, path: src },
    });
    const hostsOfIngress = new Set<string>();
    ing.spec.rules.forEach((rule, i) => {
      const host = rule.host ?? '*';
      hostsOfIngress.add(host);
      rule.paths.forEach((p, j) => {
        const cluster = target(p.backend);
        if (!cluster) return;
        const m = p.pathType === 'Exact' ? { exact: p.path } : p.pathType === 'Prefix' ? elementPrefix(p.path) : { prefix: p.path };
        const list = vhosts.get(host) ?? [];
        list.push({ route: route(`${base}/rules[${i}].paths[${j}]`, m, cluster, p.fieldPath), rank: [-p.path.replace(/\/+$/, '').length, p.pathType === 'Exact' ? 0 : 1, order++] });
        vhosts.set(host, list);
      });
    });
    if (ing.spec.defaultBackend) {
      const cluster = target(ing.spec.defaultBackend);
      if (cluster) {
        const r = route(`${base}/defaultBackend`, { prefix: '/' }, cluster, ['spec', 'defaultBackend']);
        for (const h of [...hostsOfIngress, '*']) if (!defaults.has(h)) defaults.set(h, r);
      }
    }
  }
  for (const h of defaults.keys()) if (!vhosts.has(h)) vhosts.set(h, []);
  const virtualHosts: VirtualHost[] = [...vhosts.keys()].sort(compare).map((h) => {
    const routes = (vhosts.get(h) ?? []).sort((a, b) => a.rank[0] - b.rank[0] || a.rank[1] - b.rank[1] || a.rank[2] - b.rank[2]).map((x) => x.route);
    const d = defaults.get(h);
    if (d) routes.push({ ...d, match: structuredClone(d.match), action: structuredClone(d.action) });
    return { name: h, domains: h === '*' ? ['*'] : [h, `${h}:*`], routes };
  });
  ctx.routeConfigs.set('ingress', { name: 'ingress', virtualHosts });
  ctx.edges.set('ingress/80', { name: 'ingress/80', kind: 'Ingress', port: 80, protocol: 'http', routeConfig: 'ingress' });
  if (tls.length > 0) {
    const edge: EdgeListener = { name: 'ingress/443', kind: 'Ingress', port: 443, protocol: 'https', routeConfig: 'ingress', tls: { mode: 'SIMPLE', hosts: [...new Set(tls.flatMap((t) => t.hosts))].sort(compare) } };
    const secret = tls.find((t) => t.secretName)?.secretName;
    if (secret && edge.tls) edge.tls.credentialName = secret;
    ctx.edges.set('ingress/443', edge);
  }
}
