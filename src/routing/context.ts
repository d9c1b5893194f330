// The routing builder's working state: the host registry (Services and ServiceEntries), what is built so far, and diagnostics.
import type { Cluster } from '../model/cluster.ts';
import type { Diagnostic } from '../resources/diagnostics.ts';
import { formatPath } from '../resources/diagnostics.ts';
import { resourceName, type FieldPath, type Origin, type Service } from '../resources/kinds.ts';
import type { ReferenceGrant, DestinationRule, ServiceEntry } from '../resources/kinds-traffic.ts';
import type { AppProtocol, ClusterSpec, EdgeListener, Endpoint, HashPolicy, RouteConfig, ServiceListener } from './model.ts';

export interface RoutingOptions {
  /** The cluster DNS domain; `cluster.local` unless given. */
  domain?: string;
  /** The load-balancing policy of clusters no DestinationRule configures; ROUND_ROBIN unless given. */
  defaultLbPolicy?: 'ROUND_ROBIN' | 'LEAST_REQUEST' | 'RANDOM';
}

export interface HostPort {
  port: number;
  name?: string;
  protocol: AppProtocol;
  /** What endpoints listen on: a number, or a container port name. */
  targetPort: number | string;
}

/** A host clients can address: a Service FQDN or a ServiceEntry host. */
export interface HostEntry {
  host: string;
  namespace: string;
  /** The Service's name, or the ServiceEntry host. */
  name: string;
  ports: HostPort[];
  /** Every candidate endpoint per port (ready or not), with labels for subset selection. */
  endpoints: Map<number, Endpoint[]>;
  discovery: 'EDS' | 'LOGICAL_DNS';
  dns?: { host: string; port?: number };
  service?: Service;
  serviceEntry?: ServiceEntry;
}

/** Something that owns a field, for located diagnostics. */
export interface Subject {
  kind: string;
  metadata: { name: string; namespace?: string };
  origin: Origin;
}

export interface Ctx {
  domain: string;
  defaultLb: 'ROUND_ROBIN' | 'LEAST_REQUEST' | 'RANDOM';
  cluster: Cluster;
  hosts: Map<string, HostEntry>;
  destinationRules: Map<string, DestinationRule>;
  listeners: Map<string, ServiceListener>;
  routeConfigs: Map<string, RouteConfig>;
  clusters: Map<string, ClusterSpec>;
  endpoints: Map<string, Endpoint[]>;
  /** Hash policies routes to a consistent-hash cluster must carry, by cluster name. */
  hashPolicies: Map<string, HashPolicy[]>;
  edges: Map<string, EdgeListener>;
  /** Gateway API ReferenceGrants, which permit cross-namespace backendRefs. */
  referenceGrants: ReferenceGrant[];
  diagnostics: Diagnostic[];
}

export function report(ctx: Ctx, severity: 'error' | 'warning', code: string, subject: Subject, path: FieldPath, message: string): void {
  const d: Diagnostic = { severity, code, message, location: subject.origin.locate(path, 'value'), resource: resourceName(subject.kind, subject.metadata) };
  if (path.length > 0) d.field = formatPath(path);
  ctx.diagnostics.push(d);
}

/** Istio's cluster names: `outbound|<port>|<subset>|<host>`. */
export function clusterName(port: number, subset: string | undefined, host: string): string {
  return `outbound|${port}|${subset ?? ''}|${host}`;
}

/** Resolves a host as Istio does: a short name (no dot) is a Service in the given namespace; anything else is taken as written. */
export function resolveHost(ctx: Ctx, host: string, namespace: string): string {
  return host.includes('.') || host === '*' || host.startsWith('*') ? host : `${host}.${namespace}.svc.${ctx.domain}`;
}

/** Whether a host pattern (`*`, `*.suffix` or a name) covers a concrete host. */
export function hostMatches(pattern: string, host: string): boolean {
  if (pattern === '*') return true;
  if (pattern.startsWith('*.')) return host.endsWith(pattern.slice(1)) && host.length > pattern.length - 1;
  return pattern === host;
}

const ISTIO_PROTOCOLS: Record<string, AppProtocol> = {
  http: 'http', http2: 'http2', grpc: 'grpc', 'grpc-web': 'http', https: 'https', tcp: 'tcp', tls: 'tls',
  'kubernetes.io/h2c': 'http2', 'kubernetes.io/ws': 'http', 'kubernetes.io/wss': 'https', mongo: 'tcp', mysql: 'tcp', redis: 'tcp',
};

/**
 * A Service port's protocol, as Istio selects it: `appProtocol` first, else the port name `<protocol>[-<suffix>]`.
 * grpc-web is HTTP/1.1 on the wire; mongo, mysql and redis are proxied as TCP here.
 */
export function serviceProtocol(appProtocol: string | undefined, name: string | undefined, transport: string): AppProtocol {
  if (transport !== 'TCP') return 'unknown';
  if (appProtocol !== undefined) {
    const p = ISTIO_PROTOCOLS[appProtocol.toLowerCase()];
    if (p) return p;
  }
  if (name !== undefined) {
    const lower = name.toLowerCase();
    if (lower.startsWith('grpc-web')) return 'http';
    const prefix = lower.split('-')[0] ?? '';
    const p = ISTIO_PROTOCOLS[prefix];
    if (p) return p;
  }
  return 'unknown';
}

/** Whether HTTP routing applies on a port (Istio sniffs unknown protocols, so HTTP routes apply to them too). */
export function isHttpLike(p: AppProtocol): boolean {
  return p === 'http' || p === 'http2' || p === 'grpc' || p === 'unknown';
}

export function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export function labelsMatch(selector: Record<string, string>, labels: Record<string, string>): boolean {
  for (const [k, v] of Object.entries(selector)) if (labels[k] !== v) return false;
  return true;
}
