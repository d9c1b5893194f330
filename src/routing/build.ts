// buildRoutingModel: Services, ServiceEntries, DestinationRules, VirtualServices, Gateways, Ingresses and Gateway API routes → RoutingModel.
import type { Cluster } from '../model/cluster.ts';
import type { Diagnostic } from '../resources/diagnostics.ts';
import type { Resource } from '../resources/kinds.ts';
import type { DestinationRule, GatewayApiGateway, GRPCRoute, HTTPRoute, Ingress, IstioGateway, ServiceEntry, VirtualService } from '../resources/kinds-traffic.ts';
import { clusterName, compare, isHttpLike, report, type Ctx, type HostEntry, type HostPort, type RoutingOptions } from './context.ts';
import { addClusters, indexDestinationRules } from './destination-rules.ts';
import { addIngresses, addIstioGateways, addServiceEdges } from './edges.ts';
import { attachGatewayApiRoutes, sortRanked, type RankedRoute } from './gateway-api.ts';
import type { Route, RoutingModel, ServiceListener } from './model.ts';
import { addServiceEntries } from './service-entries.ts';
import { addServices } from './services.ts';
import { defaultRetry, meshVirtualServices, primaryTcpCluster, virtualServiceRoutes, virtualServiceTcpRoutes } from './virtual-services.ts';

export type { RoutingOptions } from './context.ts';

export interface RoutingResult {
  model: RoutingModel;
  /** Warnings (and errors) about references that lead nowhere; the model is usable regardless. */
  diagnostics: Diagnostic[];
}

/** Builds the routing model. Pure and deterministic: every list is sorted, so the same input gives the same output. */
export function buildRoutingModel(resources: readonly Resource[], cluster: Cluster, opts: RoutingOptions = {}): RoutingResult {
  const ctx: Ctx = {
    domain: opts.domain ?? 'cluster.local',
    defaultLb: opts.defaultLbPolicy ?? 'ROUND_ROBIN',
    cluster,
    hosts: new Map(),
    destinationRules: new Map(),
    listeners: new Map(),
    routeConfigs: new Map(),
    clusters: new Map(),
    endpoints: new Map(),
    hashPolicies: new Map(),
    edges: new Map(),
    referenceGrants: resources.filter((r): r is Extract<Resource, { kind: 'ReferenceGrant' }> => r.kind === 'ReferenceGrant'),
    diagnostics: [],
  };
  const of = <K extends Resource['kind']>(kind: K): Extract<Resource, { kind: K }>[] => resources.filter((r): r is Extract<Resource, { kind: K }> => r.kind === kind);
  const virtualServices: VirtualService[] = of('VirtualService');
  const destinationRules: DestinationRule[] = of('DestinationRule');
  const serviceEntries: ServiceEntry[] = of('ServiceEntry');
  const gateways = of('Gateway');
  const istioGateways = gateways.filter((g): g is IstioGateway => g.group === 'networking.istio.io');
  const apiGateways = gateways.filter((g): g is GatewayApiGateway => g.group === 'gateway.networking.k8s.io');
  const ingresses: Ingress[] = of('Ingress');
  const routes: (HTTPRoute | GRPCRoute)[] = [...of('HTTPRoute'), ...of('GRPCRoute')];

  addServices(ctx);
  addServiceEntries(ctx, serviceEntries);
  indexDestinationRules(ctx, destinationRules);
  addClusters(ctx);
  const gamma = attachGatewayApiRoutes(ctx, apiGateways, routes);
  addListeners(ctx, meshVirtualServices(ctx, virtualServices), gamma);
  addServiceEdges(ctx);
  addIstioGateways(ctx, istioGateways, virtualServices);
  addIngresses(ctx, ingresses);

  const byName = <T extends { name: string }>(m: Map<string, T>): T[] => [...m.values()].sort((a, b) => compare(a.name, b.name));
  const model: RoutingModel = {
    listeners: byName(ctx.listeners),
    routeConfigs: byName(ctx.routeConfigs),
    clusters: byName(ctx.clusters),
    endpoints: [...ctx.endpoints.entries()]
      .sort(([a], [b]) => compare(a, b))
      .map(([c, eps]) => ({ cluster: c, endpoints: [...eps].sort((x, y) => compare(x.address, y.address) || x.port - y.port) })),
    edges: byName(ctx.edges),
  };
  return { model, diagnostics: dedupe(ctx.diagnostics) };
}

/** A reference checked once per listener port would be reported once per port; keep one of each. */
function dedupe(ds: Diagnostic[]): Diagnostic[] {
  const seen = new Set<string>();
  const out = ds.filter((d) => {
    const k = `${d.severity}|${d.resource ?? ''}|${d.field ?? ''}|${d.message}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
  return out.sort((a, b) => compare(a.location?.file ?? '', b.location?.file ?? '') || (a.location?.line ?? 0) - (b.location?.line ?? 0) || (a.location?.column ?? 0) - (b.location?.column ?? 0));
}

/** The implicit route of a host port no VirtualService or route configures: everything to the default cluster. */
function defaultRoute(ctx: Ctx, entry: HostEntry, hp: HostPort): Route {
  const cluster = clusterName(hp.port, undefined, entry.host);
  const action: Route['action'] = { type: 'route', clusters: [{ cluster, weight: 100 }], retry: defaultRetry() };
  const hash = ctx.hashPolicies.get(cluster);
  if (hash) action.hashPolicy = hash.map((h) => ({ ...h }));
  return { name: 'default', match: { path: { prefix: '/' }, headers: [] }, action };
}

function addListeners(ctx: Ctx, vsByHost: Map<string, VirtualService>, gamma: Map<string, RankedRoute[]>): void {
  for (const entry of ctx.hosts.values()) {
    const isService = entry.service !== undefined;
    const short = entry.name;
    entry.ports.forEach((hp, i) => {
      const name = `${entry.host}:${hp.port}`;
      const l: ServiceListener = {
        name,
        // Names without a port, as Kubernetes DNS gives them, reach the Service's first port.
        aliases: isService
          ? [`${short}.${entry.namespace}:${hp.port}`, `${short}.${entry.namespace}.svc:${hp.port}`, ...(i === 0 ? [`${short}.${entry.namespace}`, `${short}.${entry.namespace}.svc`, entry.host] : [])]
          : [],
        namespaceLocalAliases: isService ? (i === 0 ? [`${short}:${hp.port}`, short] : [`${short}:${hp.port}`]) : [],
        namespace: entry.namespace,
        service: entry.name,
        host: entry.host,
        port: hp.port,
        protocol: hp.protocol,
        routeConfig: name,
      };
      const vs = vsByHost.get(entry.host);
      const mesh = gamma.get(name);
      let routes: Route[] = [];
      const producer = (mesh ?? []).filter((x) => x.route.match.sourceNamespace === undefined);
      if (producer.length > 0) {
        routes = sortRanked(producer);
        if (vs) report(ctx, 'warning', 'conflict', vs, ['spec', 'hosts'], `HTTPRoutes/GRPCRoutes attached to Service ${entry.namespace}/${entry.name} take precedence; this VirtualService is ignored for port ${hp.port}`);
      } else if (vs && isHttpLike(hp.protocol)) {
        routes = virtualServiceRoutes(ctx, vs, hp.port, 'mesh');
      }
      // A VirtualService none of whose rules apply to this port leaves the port to the default route.
      if (routes.length === 0) routes = [defaultRoute(ctx, entry, hp)];
      // Consumer routes come first for their own namespace's clients, and replace the rest for them: a request
      // they do not match gets 404 there, as a Gateway API route that matches nothing does.
      const consumers = new Map<string, RankedRoute[]>();
      for (const x of mesh ?? []) {
        const ns = x.route.match.sourceNamespace;
        if (ns !== undefined) consumers.set(ns, [...(consumers.get(ns) ?? []), x]);
      }
      const consumerRoutes = [...consumers.keys()].sort().flatMap((ns) => [
        ...sortRanked(consumers.get(ns) ?? []),
        { name: `consumer-routes-${ns}/no-match`, match: { headers: [], sourceNamespace: ns }, action: { type: 'direct-response' as const, status: 404 } },
      ]);
      routes = [...consumerRoutes, ...routes];
      const domains = [entry.host, name, ...l.aliases, ...l.aliases.map((a) => (a.includes(':') ? a.slice(0, a.lastIndexOf(':')) : a)), ...l.namespaceLocalAliases.filter((a) => a !== short), short]
        .filter((d, k, all) => all.indexOf(d) === k);
      ctx.routeConfigs.set(name, { name, virtualHosts: [{ name, domains: isService ? domains : [entry.host, name], routes }] });
      if (!isHttpLike(hp.protocol) || hp.protocol === 'unknown') {
        const tcp = vs && !isHttpLike(hp.protocol) ? virtualServiceTcpRoutes(ctx, vs, hp.port, 'mesh', hp.protocol === 'tcp' ? 'tcp' : 'tls') : vs && hp.protocol === 'unknown' ? virtualServiceTcpRoutes(ctx, vs, hp.port, 'mesh', 'tcp') : [];
        if (tcp.length > 0) l.tcpRoutes = tcp;
        l.tcpCluster = primaryTcpCluster(tcp) ?? clusterName(hp.port, undefined, entry.host);
      }
      ctx.listeners.set(name, l);
    });
  }
}
