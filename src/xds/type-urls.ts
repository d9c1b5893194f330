// The xDS v3 resource type URLs Trellis serves, and the order in which changes go out (make before break).

export const TYPE = {
  listener: 'type.googleapis.com/envoy.config.listener.v3.Listener',
  route: 'type.googleapis.com/envoy.config.route.v3.RouteConfiguration',
  cluster: 'type.googleapis.com/envoy.config.cluster.v3.Cluster',
  endpoint: 'type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment',
  /** Trellis proxies only: the policy inputs (one resource, `mesh`), see src/xds/policy-snapshot.ts. */
  policy: 'type.googleapis.com/trellis.policy.v1.PolicySnapshot',
} as const;

export type TypeUrl = (typeof TYPE)[keyof typeof TYPE];

/** Clusters before their endpoints, both before the listeners and routes that refer to them (Envoy's xds_protocol). */
/** The policy snapshot goes before the listeners whose policy filter reads it. */
export const PUSH_ORDER: readonly TypeUrl[] = [TYPE.cluster, TYPE.endpoint, TYPE.policy, TYPE.listener, TYPE.route];

/** Only listeners, clusters (and Trellis' policy snapshot) may be requested by wildcard. */
export const WILDCARD_TYPES: ReadonlySet<string> = new Set([TYPE.listener, TYPE.cluster, TYPE.policy]);

export function isKnownType(t: string): t is TypeUrl {
  return (PUSH_ORDER as readonly string[]).includes(t);
}

export function shortType(t: string): string {
  switch (t) {
    case TYPE.listener:
      return 'LDS';
    case TYPE.route:
      return 'RDS';
    case TYPE.cluster:
      return 'CDS';
    case TYPE.endpoint:
      return 'EDS';
    case TYPE.policy:
      return 'PDS';
    default:
      return t.slice(t.lastIndexOf('.') + 1);
  }
}
