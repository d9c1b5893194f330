// The labels Cilium derives for an endpoint, and which of them make up its security identity.

/** Keys Cilium adds to every pod endpoint (under the `k8s:` source). */
export const NAMESPACE_LABEL = 'io.kubernetes.pod.namespace';
export const SERVICE_ACCOUNT_LABEL = 'io.cilium.k8s.policy.serviceaccount';
export const CLUSTER_LABEL = 'io.cilium.k8s.policy.cluster';
export const NAMESPACE_LABELS_PREFIX = 'io.cilium.k8s.namespace.labels.';
export const NAMESPACE_NAME_LABEL = 'kubernetes.io/metadata.name';
export const DEFAULT_CLUSTER_NAME = 'default';

/**
 * Pod labels that Cilium's default label filter leaves out of the identity, because they differ
 * between replicas of one workload and would give every pod its own identity.
 */
const NON_IDENTITY_LABELS = [
  'pod-template-hash',
  'controller-revision-hash',
  'pod-template-generation',
  'statefulset.kubernetes.io/pod-name',
  'apps.kubernetes.io/pod-index',
  'batch.kubernetes.io/controller-uid',
  'controller-uid',
  'job-name',
  'batch.kubernetes.io/job-name',
];

export function isIdentityLabel(key: string): boolean {
  return !NON_IDENTITY_LABELS.includes(key);
}

/**
 * The `k8s:`-source labels of a pod endpoint as Cilium derives them: the pod's own labels plus its
 * namespace, service account, cluster and every namespace label. Keys are stored without the source.
 */
export function endpointLabels(
  pod: { namespace: string; labels: Record<string, string>; serviceAccount: string },
  namespaceLabels: Record<string, string>,
  clusterName = DEFAULT_CLUSTER_NAME,
): Record<string, string> {
  return endpointLabelsWith(pod, namespaceEndpointLabels(namespaceLabels), clusterName);
}

/** A namespace's labels as endpoint labels (`io.cilium.k8s.namespace.labels.<key>`); compute once per namespace. */
export function namespaceEndpointLabels(namespaceLabels: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k in namespaceLabels) out[NAMESPACE_LABELS_PREFIX + k] = namespaceLabels[k] as string;
  return out;
}

/** `endpointLabels`, given the namespace's labels already prefixed by `namespaceEndpointLabels`. */
export function endpointLabelsWith(
  pod: { namespace: string; labels: Record<string, string>; serviceAccount: string },
  prefixedNamespaceLabels: Record<string, string>,
  clusterName = DEFAULT_CLUSTER_NAME,
): Record<string, string> {
  const out: Record<string, string> = { ...pod.labels };
  out[NAMESPACE_LABEL] = pod.namespace;
  out[SERVICE_ACCOUNT_LABEL] = pod.serviceAccount;
  out[CLUSTER_LABEL] = clusterName;
  for (const k in prefixedNamespaceLabels) out[k] = prefixedNamespaceLabels[k] as string;
  return out;
}

/** A canonical string for a label set, used as the key of its identity. */
export function labelSetKey(labels: Record<string, string>): string {
  const keys: string[] = [];
  for (const k in labels) if (isIdentityLabel(k)) keys.push(k);
  keys.sort();
  let out = '';
  for (let i = 0; i < keys.length; i++) {
    const k = keys[i] as string;
    out += `${i > 0 ? ';' : ''}k8s:${k}=${labels[k] ?? ''}`;
  }
  return out;
}
