// Manifests in, typed objects out: parses every source, expands `kind: List`, validates each object by kind.
import { Checker, describe, type Json } from './checker.ts';
import type { Diagnostic } from './diagnostics.ts';
import { resourceName, type Origin, type Resource, type WorkloadKind } from './kinds.ts';
import { parseSource, subLocator, type RawObject, type SourceText } from './source.ts';
import { readCiliumPolicy } from './validate-cilium.ts';
import { readConfigMap, readSecret } from './validate-config.ts';
import { readNamespace, readNode, readPod, readService, readWorkload } from './validate-core.ts';
import { readNetworkPolicy } from './validate-network-policy.ts';
import { readAuthorizationPolicy } from './validate-authorization-policy.ts';
import { readPeerAuthentication, readRequestAuthentication } from './validate-authentication.ts';
import { readDestinationRule } from './validate-destination-rule.ts';
import { readEnvoyFilter } from './validate-envoy-filter.ts';
import { readGatewayApiGateway, readGrpcRoute, readReferenceGrant, readHttpRoute } from './validate-gateway-api.ts';
import { readIngress } from './validate-ingress.ts';
import { readIstioGateway } from './validate-istio-gateway.ts';
import { readServiceEntry } from './validate-service-entry.ts';
import { readVirtualService } from './validate-virtual-service.ts';

export interface LoadResult {
  resources: Resource[];
  /** Every error and warning, in input order. The input is usable only when none is an error. */
  diagnostics: Diagnostic[];
}

const ISTIO_NETWORKING = ['networking.istio.io/v1', 'networking.istio.io/v1beta1', 'networking.istio.io/v1alpha3'];

/** The API groups each kind may come from (`v1` is the core group). */
const KINDS: Record<string, readonly string[]> = {
  Namespace: ['v1'],
  Node: ['v1'],
  Pod: ['v1'],
  Service: ['v1'],
  ConfigMap: ['v1'],
  Secret: ['v1'],
  Deployment: ['apps/v1'],
  ReplicaSet: ['apps/v1'],
  StatefulSet: ['apps/v1'],
  DaemonSet: ['apps/v1'],
  NetworkPolicy: ['networking.k8s.io/v1'],
  CiliumNetworkPolicy: ['cilium.io/v2'],
  CiliumClusterwideNetworkPolicy: ['cilium.io/v2'],
  AuthorizationPolicy: ['security.istio.io/v1', 'security.istio.io/v1beta1'],
  PeerAuthentication: ['security.istio.io/v1', 'security.istio.io/v1beta1'],
  RequestAuthentication: ['security.istio.io/v1', 'security.istio.io/v1beta1'],
  VirtualService: ISTIO_NETWORKING,
  DestinationRule: ISTIO_NETWORKING,
  ServiceEntry: ISTIO_NETWORKING,
  // Istio serves EnvoyFilter in v1alpha3 only.
  EnvoyFilter: ['networking.istio.io/v1alpha3'],
  // Two API groups have a Gateway kind; readObject dispatches on the group.
  Gateway: [...ISTIO_NETWORKING, 'gateway.networking.k8s.io/v1', 'gateway.networking.k8s.io/v1beta1'],
  Ingress: ['networking.k8s.io/v1'],
  HTTPRoute: ['gateway.networking.k8s.io/v1', 'gateway.networking.k8s.io/v1beta1'],
  GRPCRoute: ['gateway.networking.k8s.io/v1', 'gateway.networking.k8s.io/v1alpha2'],
  ReferenceGrant: ['gateway.networking.k8s.io/v1beta1', 'gateway.networking.k8s.io/v1'],
};

const NAMESPACED = new Set(['Pod', 'Service', 'ConfigMap', 'Secret', 'Deployment', 'ReplicaSet', 'StatefulSet', 'DaemonSet', 'NetworkPolicy', 'CiliumNetworkPolicy']);
for (const k of ['AuthorizationPolicy', 'PeerAuthentication', 'RequestAuthentication']) NAMESPACED.add(k);
for (const k of ['VirtualService', 'DestinationRule', 'ServiceEntry', 'Gateway', 'Ingress', 'HTTPRoute', 'GRPCRoute', 'ReferenceGrant', 'EnvoyFilter']) NAMESPACED.add(k);

/** Kinds that commonly appear next to these and are skipped silently (they carry no connectivity). */
const QUIET_KINDS = new Set(['ServiceAccount', 'Endpoints', 'EndpointSlice', 'Role', 'RoleBinding', 'ClusterRole', 'ClusterRoleBinding', 'Event']);

export function loadManifests(sources: readonly SourceText[]): LoadResult {
  const diagnostics: Diagnostic[] = [];
  const resources: Resource[] = [];
  const seen = new Map<string, Resource>();
  for (const src of sources) {
    const parsed = parseSource(src);
    diagnostics.push(...parsed.diagnostics);
    for (const raw of parsed.objects) {
      for (const obj of expandLists(raw, diagnostics)) {
        const start = diagnostics.length;
        const r = readObject(obj, diagnostics);
        sortByLocation(diagnostics, start);
        if (!r) continue;
        // Istio and Gateway API both have a Gateway kind: the API group is part of an object's identity.
        const key = r.kind === 'Gateway' ? `${r.group} ${resourceName(r.kind, r.metadata)}` : resourceName(r.kind, r.metadata);
        const prev = seen.get(key);
        if (prev) {
          const at = prev.origin.locate(['metadata', 'name']);
          const c = new Checker(r.origin, diagnostics, resourceName(r.kind, r.metadata));
          c.error(['metadata', 'name'], `duplicate object; first defined at ${at.file}:${at.line}:${at.column}`, 'duplicate');
          continue;
        }
        seen.set(key, r);
        resources.push(r);
      }
    }
  }
  return { resources, diagnostics };
}

/** Puts one object's diagnostics in input order (checks run field by field, not line by line). The sort is stable. */
function sortByLocation(diagnostics: Diagnostic[], start: number): void {
  const mine = diagnostics.slice(start);
  mine.sort((a, b) => (a.location?.line ?? 0) - (b.location?.line ?? 0) || (a.location?.column ?? 0) - (b.location?.column ?? 0));
  diagnostics.splice(start, mine.length, ...mine);
}

/** `kind: List` (and `*List` kinds from kubectl) hold their objects in `items`. */
function* expandLists(raw: RawObject, diagnostics: Diagnostic[]): Generator<RawObject> {
  const d = raw.data;
  if (d !== null && typeof d === 'object' && !Array.isArray(d)) {
    const o = d as Json;
    // `kubectl get` prints `items: []` for no objects; a List without items is an empty list, not an unknown kind.
    if (typeof o.kind === 'string' && o.kind.endsWith('List') && (Array.isArray(o.items) || o.items === undefined || o.items === null)) {
      const items = Array.isArray(o.items) ? o.items : [];
      for (let i = 0; i < items.length; i++) {
        yield* expandLists({ data: items[i], file: raw.file, locate: subLocator(raw.locate, ['items', i]) }, diagnostics);
      }
      return;
    }
  }
  yield raw;
}

function readObject(raw: RawObject, diagnostics: Diagnostic[]): Resource | undefined {
  const origin: Origin = { file: raw.file, locate: raw.locate };
  const c = new Checker(origin, diagnostics);
  const obj = raw.data;
  if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) {
    c.error([], `a manifest must be an object with apiVersion and kind, not ${describe(obj)}`, 'invalid-type');
    return undefined;
  }
  const o = obj as Json;
  const kind = c.string(o.kind, ['kind'], true);
  const apiVersion = c.string(o.apiVersion, ['apiVersion'], true);
  if (kind === undefined || apiVersion === undefined) return undefined;
  const meta = (o.metadata !== null && typeof o.metadata === 'object' && !Array.isArray(o.metadata) ? o.metadata : {}) as Json;
  const groups = KINDS[kind];
  // Diagnostics name the object as the API would: namespaced kinds without a namespace are in `default`.
  const namespace = typeof meta.namespace === 'string' && meta.namespace !== '' ? meta.namespace : groups && NAMESPACED.has(kind) ? 'default' : undefined;
  const name = typeof meta.name === 'string' && meta.name !== '' ? meta.name : '<unnamed>';
  c.resource = resourceName(kind, { name, ...(namespace !== undefined && (!groups || NAMESPACED.has(kind)) ? { namespace } : {}) });
  if (!groups) {
    if (!QUIET_KINDS.has(kind)) c.warn(['kind'], `unknown kind ${apiVersion}/${kind}: skipped`, 'unknown-kind');
    return undefined;
  }
  if (!groups.includes(apiVersion)) {
    c.error(['apiVersion'], `${kind} must have apiVersion ${groups.join(' or ')}`, 'invalid-value');
    return undefined;
  }
  const before = c.errorCount;
  let r: Resource | undefined;
  switch (kind) {
    case 'Namespace':
      r = readNamespace(c, o, origin);
      break;
    case 'Node':
      r = readNode(c, o, origin);
      break;
    case 'Pod':
      r = readPod(c, o, origin);
      break;
    case 'Service':
      r = readService(c, o, origin);
      break;
    case 'ConfigMap':
      r = readConfigMap(c, o, origin);
      break;
    case 'Secret':
      r = readSecret(c, o, origin);
      break;
    case 'NetworkPolicy':
      r = readNetworkPolicy(c, o, origin);
      break;
    case 'CiliumNetworkPolicy':
    case 'CiliumClusterwideNetworkPolicy':
      r = readCiliumPolicy(c, o, origin, kind);
      break;
    case 'AuthorizationPolicy':
      r = readAuthorizationPolicy(c, o, origin);
      break;
    case 'PeerAuthentication':
      r = readPeerAuthentication(c, o, origin);
      break;
    case 'RequestAuthentication':
      r = readRequestAuthentication(c, o, origin);
      break;
    case 'VirtualService':
      r = readVirtualService(c, o, origin);
      break;
    case 'DestinationRule':
      r = readDestinationRule(c, o, origin);
      break;
    case 'ServiceEntry':
      r = readServiceEntry(c, o, origin);
      break;
    case 'EnvoyFilter':
      r = readEnvoyFilter(c, o, origin);
      break;
    case 'Gateway':
      r = apiVersion.startsWith('gateway.networking.k8s.io/') ? readGatewayApiGateway(c, o, origin) : readIstioGateway(c, o, origin);
      break;
    case 'Ingress':
      r = readIngress(c, o, origin);
      break;
    case 'HTTPRoute':
      r = readHttpRoute(c, o, origin);
      break;
    case 'GRPCRoute':
      r = readGrpcRoute(c, o, origin);
      break;
    case 'ReferenceGrant':
      r = readReferenceGrant(c, o, origin);
      break;
    default:
      r = readWorkload(c, o, origin, kind as WorkloadKind);
  }
  // An object with errors is not handed on: nothing half-valid reaches the model.
  if (r && r.metadata.namespace === undefined && kind !== 'Namespace' && kind !== 'Node' && kind !== 'CiliumClusterwideNetworkPolicy') {
    r.metadata.namespace = 'default';
  }
  return c.errorCount > before ? undefined : r;
}
