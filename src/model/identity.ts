// Numeric security identities, as Cilium gives them: fixed numbers for reserved entities, and one per label set.

/** Cilium's reserved identities (pkg/identity/numericidentity.go). */
export const ReservedIdentity = {
  unknown: 0,
  host: 1,
  world: 2,
  unmanaged: 3,
  health: 4,
  init: 5,
  remoteNode: 6,
  kubeApiserver: 7,
  ingress: 8,
  worldIpv4: 9,
  worldIpv6: 10,
} as const;

/** Cluster-local identities start here, as in Cilium. */
export const FIRST_CLUSTER_IDENTITY = 256;

/** Names of the reserved identities, as `reserved:<name>` labels carry them. */
export const RESERVED_NAMES: Record<number, string> = {
  1: 'host',
  2: 'world',
  3: 'unmanaged',
  4: 'health',
  5: 'init',
  6: 'remote-node',
  7: 'kube-apiserver',
  8: 'ingress',
  9: 'world-ipv4',
  10: 'world-ipv6',
};

export function isReservedIdentity(id: number): boolean {
  return id > 0 && id < FIRST_CLUSTER_IDENTITY;
}

/**
 * Assigns identities to label-set keys in sorted order, so the same manifests always give the same numbers.
 */
export function allocateIdentities(keys: Iterable<string>): Map<string, number> {
  const sorted = [...new Set(keys)].sort();
  const out = new Map<string, number>();
  sorted.forEach((k, i) => out.set(k, FIRST_CLUSTER_IDENTITY + i));
  return out;
}
