// Serves the routing model over xDS: resolves the names each node asks for (namespace-local aliases, per-client
// route variants for sourceLabels), encodes each resource once per change, and versions it by content.
import { createHash } from 'node:crypto';
import type { ClusterSpec, EndpointSet, Route, RouteConfig, RoutingModel, ServiceListener } from '../routing/model.ts';
import { cluster, clientListener, clusterLoadAssignment, routeConfiguration } from './envoy-resources.ts';
import { encodeAny } from './protos.ts';
import { encodePolicySnapshot, POLICY_SNAPSHOT_NAME } from './policy-snapshot.ts';
import { proxyLoadAssignment } from './sidecar-listeners.ts';
import { SidecarIndex, type SidecarInputs } from './sidecar-resources.ts';
import { clusterTransportSocket, parseServerListenerName, SERVER_LISTENER_PREFIX, serverListenerForNode, serverListenerKey, type MeshSecurity } from './server-resources.ts';
import type { ResourceProvider, VersionedResource } from './resource-provider.ts';
import { TYPE, type TypeUrl } from './type-urls.ts';
import type { XdsNode } from './xds-node.ts';

/** Upper bound on cached encoded resources (about four per Service, plus per-node server listeners). */
const MAX_CACHED_RESOURCES = 1_000_000;

interface CacheEntry {
  epoch: number;
  resource: VersionedResource;
}

export class MeshResources implements ResourceProvider {
  private epoch = 0;
  private listeners = new Map<string, ServiceListener>();
  private namespaceLocal = new Map<string, Map<string, ServiceListener>>();
  private routeConfigs = new Map<string, RouteConfig>();
  private clusters = new Map<string, ClusterSpec>();
  private endpoints = new Map<string, EndpointSet>();
  private canonicalListeners: string[] = [];
  private readonly cache = new Map<string, CacheEntry>();
  /** Server listeners and client mTLS; without it, server listeners do not exist (an XdsServer does not serve). */
  private security: MeshSecurity | undefined;
  /** Trellis proxies (node metadata TRELLIS_PROXY); without inputs, they are served nothing (fail closed). */
  private sidecar: SidecarIndex | undefined;
  private sidecarInputs: SidecarInputs | undefined;

  constructor(model?: RoutingModel, security?: MeshSecurity, sidecar?: SidecarInputs) {
    if (model) this.update(model, security, sidecar);
  }

  /** Takes a new model. Resources whose content did not change keep their version. */
  update(model: RoutingModel, security?: MeshSecurity, sidecar?: SidecarInputs): void {
    this.epoch++;
    this.security = security;
    this.sidecarInputs = sidecar;
    this.sidecar = sidecar ? new SidecarIndex(model, sidecar, security) : undefined;
    this.listeners = new Map();
    this.namespaceLocal = new Map();
    for (const l of model.listeners) {
      this.listeners.set(l.name, l);
      for (const a of l.aliases) if (!this.listeners.has(a)) this.listeners.set(a, l);
      let local = this.namespaceLocal.get(l.namespace);
      if (!local) this.namespaceLocal.set(l.namespace, (local = new Map<string, ServiceListener>()));
      for (const a of l.namespaceLocalAliases) if (!local.has(a)) local.set(a, l);
    }
    this.canonicalListeners = model.listeners.map((l) => l.name).sort();
    this.routeConfigs = new Map(model.routeConfigs.map((r) => [r.name, r]));
    this.clusters = new Map(model.clusters.map((c) => [c.name, c]));
    this.endpoints = new Map(model.endpoints.map((e) => [e.cluster, e]));
    for (const [k, e] of this.cache) if (this.epoch - e.epoch > 1) this.cache.delete(k);
  }

  get(node: XdsNode, type: TypeUrl, name: string): VersionedResource | undefined {
    if (node.proxy) return this.proxyGet(node, type, name);
    switch (type) {
      case TYPE.listener: {
        if (name.startsWith(SERVER_LISTENER_PREFIX)) return this.serverListener(node, name);
        const l = this.namespaceLocal.get(node.namespace)?.get(name) ?? this.listeners.get(name);
        return l ? this.encoded(type, `${name}|${l.name}`, name, () => clientListener(name, l)) : undefined;
      }
      case TYPE.route: {
        const rc = this.routeConfigs.get(name);
        if (!rc) return undefined;
        const filter = sourceFilter(rc, node);
        return this.encoded(type, `${name}|${filter?.key ?? ''}`, name, () => routeConfiguration(rc, filter?.accepts));
      }
      case TYPE.cluster: {
        const c = this.clusters.get(name);
        return c ? this.encoded(type, name, name, () => cluster(c, clusterTransportSocket(c, this.endpoints.get(name), this.security))) : undefined;
      }
      case TYPE.endpoint: {
        const e = this.endpoints.get(name);
        return e ? this.encoded(type, name, name, () => clusterLoadAssignment(e)) : undefined;
      }
    }
    return undefined;
  }

  list(node: XdsNode, type: TypeUrl): VersionedResource[] {
    if (node.proxy) return this.proxyNames(node, type).map((n) => this.proxyGet(node, type, n)).filter((r): r is VersionedResource => r !== undefined);
    const names = type === TYPE.listener ? this.canonicalListeners : type === TYPE.cluster ? [...this.clusters.keys()].sort() : [];
    return names.map((n) => this.get(node, type, n)).filter((r): r is VersionedResource => r !== undefined);
  }

  /** What a Trellis proxy is served (see sidecar-resources.ts): its own listener set, mesh clusters with mTLS, the policy snapshot. */
  private proxyGet(node: XdsNode, type: TypeUrl, name: string): VersionedResource | undefined {
    const idx = this.sidecar;
    const inputs = this.sidecarInputs;
    if (!idx || !inputs) return undefined;
    const local = (m: 'listeners' | 'routes' | 'clusters'): VersionedResource | undefined => {
      const obj = idx.view(node)[m].get(name);
      return obj ? this.encoded(type, `proxy|${idx.viewKey(node)}|${name}`, name, () => obj) : undefined;
    };
    switch (type) {
      case TYPE.listener:
        return local('listeners');
      case TYPE.route:
        return local('routes');
      case TYPE.cluster: {
        if (name.startsWith('inbound|')) return local('clusters');
        const c = idx.meshCluster(name);
        return c ? this.encoded(type, `proxy|${name}`, name, () => c) : undefined;
      }
      case TYPE.endpoint: {
        const e = idx.endpointSet(name);
        return e ? this.encoded(type, `proxy|${name}`, name, () => proxyLoadAssignment(e)) : undefined;
      }
      case TYPE.policy:
        if (name !== POLICY_SNAPSHOT_NAME) return undefined;
        return this.encoded(type, POLICY_SNAPSHOT_NAME, name, () => encodePolicySnapshot(inputs.resources, this.security?.authz.trustDomain ?? 'cluster.local', this.security?.authz.rootNamespace));
    }
    return undefined;
  }

  private proxyNames(node: XdsNode, type: TypeUrl): string[] {
    const idx = this.sidecar;
    if (!idx) return [];
    if (type === TYPE.listener) return [...idx.view(node).listeners.keys()].sort();
    if (type === TYPE.cluster) return [...idx.meshClusterNames(), ...[...idx.view(node).clusters.keys()].sort()];
    if (type === TYPE.policy) return [POLICY_SNAPSHOT_NAME];
    return [];
  }

  /** The listener a proxyless gRPC server bound to the address in `name` asks for, for the workload `node` is. */
  private serverListener(node: XdsNode, name: string): VersionedResource | undefined {
    const security = this.security;
    const address = parseServerListenerName(name);
    if (!security || !address) return undefined;
    return this.encoded(TYPE.listener, serverListenerKey(name, node), name, () => serverListenerForNode(name, address, node, security).listener);
  }

  /** Builds a resource's object at most once per model; re-encodes only when its content changed. */
  private encoded(type: TypeUrl, key: string, name: string, build: () => Record<string, unknown>): VersionedResource {
    const cacheKey = `${type}\0${key}`;
    const hit = this.cache.get(cacheKey);
    if (hit && hit.epoch === this.epoch) return hit.resource;
    const obj = build();
    // The version is a hash of the content; only the hash is kept, not the content's text.
    const version = createHash('sha256').update(JSON.stringify(obj)).digest('hex').slice(0, 16);
    if (hit && hit.resource.version === version) {
      hit.epoch = this.epoch;
      return hit.resource;
    }
    const resource: VersionedResource = { name, version, resource: encodeAny(type, obj) };
    // Keys can come from what clients ask for (server listener addresses, node labels): past the bound,
    // resources are still served, just no longer cached, so no client can grow this map without limit.
    if (this.cache.size < MAX_CACHED_RESOURCES || hit) this.cache.set(cacheKey, { epoch: this.epoch, resource });
    return resource;
  }
}

/** Routes with sourceLabels or sourceNamespace apply only to matching clients: one variant per distinct answer. */
function sourceFilter(rc: RouteConfig, node: XdsNode): { key: string; accepts: (r: Route) => boolean } | undefined {
  const conditional = rc.virtualHosts.flatMap((vh) => vh.routes).filter((r) => r.match.sourceLabels || r.match.sourceNamespace);
  if (conditional.length === 0) return undefined;
  const accepts = (r: Route): boolean => {
    if (r.match.sourceNamespace && r.match.sourceNamespace !== node.namespace) return false;
    for (const [k, v] of Object.entries(r.match.sourceLabels ?? {})) if (node.labels[k] !== v) return false;
    return true;
  };
  return { key: conditional.map((r) => (accepts(r) ? '1' : '0')).join(''), accepts };
}
