// The cluster as data: namespaces, nodes, pods (from Pods and workloads) with addresses, labels and identities.
import type { ContainerPort, Origin, PodSpec, Resource, Service, Workload } from '../resources/kinds.ts';
import { formatIp, isCidrError, nthAddress, parseCidr, parseIp, type Cidr, type IpBytes } from '../resources/net.ts';
import { allocateIdentities } from './identity.ts';
import { endpointLabelsWith, labelSetKey, namespaceEndpointLabels, NAMESPACE_NAME_LABEL } from './labels.ts';

/** Where pods without an address get one when their node has no pod CIDR. */
export const DEFAULT_POD_CIDR = '10.244.0.0/16';

export interface ModelNamespace {
  name: string;
  labels: Record<string, string>;
  /** False when only mentioned by other objects. */
  declared: boolean;
}

export interface ModelNode {
  name: string;
  labels: Record<string, string>;
  ips: string[];
  podCIDRs: string[];
  origin?: Origin;
}

export interface ModelPod {
  /** `namespace/name`. */
  key: string;
  name: string;
  namespace: string;
  labels: Record<string, string>;
  /** The labels Cilium derives (pod, namespace, service account, cluster), keyed without the `k8s:` source. */
  endpointLabels: Record<string, string>;
  serviceAccount: string;
  nodeName?: string;
  ips: string[];
  /** Pods on the host network share their node's address and identity; policies do not select them. */
  hostNetwork: boolean;
  ports: ContainerPort[];
  ready: boolean;
  identity: number;
  /** The object it came from: a Pod, or the workload that templates it. */
  owner: { kind: string; name: string; origin: Origin };
}

export interface Cluster {
  namespaces: Map<string, ModelNamespace>;
  nodes: Map<string, ModelNode>;
  pods: Map<string, ModelPod>;
  podsByIp: Map<string, ModelPod>;
  nodesByIp: Map<string, ModelNode>;
  services: Service[];
  /** Identity number to the label-set key it stands for. */
  identities: Map<number, string>;
}

export interface ClusterOptions {
  podCidr?: string;
  clusterName?: string;
}

interface PodDraft extends Omit<ModelPod, 'endpointLabels' | 'identity' | 'ips'> {
  ips: string[];
  /** The workload whose template it replicates: its replicas share one identity key. */
  template?: Workload;
  /** Its replicas also carry the same labels (not a StatefulSet), so they share their endpoint labels. */
  sameLabels?: boolean;
}

/** Builds the model. Pure: the same resources always give the same pods, addresses and identities. */
export function buildCluster(resources: readonly Resource[], opts: ClusterOptions = {}): Cluster {
  const namespaces = new Map<string, ModelNamespace>();
  const nodes = new Map<string, ModelNode>();
  const drafts: PodDraft[] = [];
  const services: Service[] = [];
  const workloads: Workload[] = [];

  for (const r of resources) {
    switch (r.kind) {
      case 'Namespace':
        namespaces.set(r.metadata.name, {
          name: r.metadata.name,
          labels: { ...r.metadata.labels, [NAMESPACE_NAME_LABEL]: r.metadata.name },
          declared: true,
        });
        break;
      case 'Node':
        nodes.set(r.metadata.name, { name: r.metadata.name, labels: { ...r.metadata.labels }, ips: r.addresses, podCIDRs: r.podCIDRs, origin: r.origin });
        break;
      case 'Pod':
        drafts.push(podDraft(r.metadata.namespace ?? 'default', r.metadata.name, r.metadata.labels, r.spec, { kind: 'Pod', name: r.metadata.name, origin: r.origin }, r.status.podIPs, r.status.ready ?? true));
        break;
      case 'Service':
        services.push(r);
        break;
      case 'Deployment':
      case 'ReplicaSet':
      case 'StatefulSet':
      case 'DaemonSet':
        workloads.push(r);
        break;
      default:
        break;
    }
  }
  const nodeNames = [...nodes.keys()].sort();
  for (const w of workloads) drafts.push(...workloadPods(w, nodeNames));

  // Namespaces that objects mention exist implicitly, as they would have to in a real cluster.
  for (const r of resources) {
    const ns = r.metadata.namespace;
    if (ns !== undefined && !namespaces.has(ns)) namespaces.set(ns, { name: ns, labels: { [NAMESPACE_NAME_LABEL]: ns }, declared: false });
  }

  assignAddresses(drafts, nodes, opts.podCidr ?? DEFAULT_POD_CIDR);

  // The identity key of each pod is computed once (it sorts the labels).
  // Replicas of one template share it: their identity labels are equal (only non-identity labels differ).
  const prefixed = new Map<string, Record<string, string>>();
  const byTemplate = new Map<Workload, { labels: Record<string, string>; key: string }>();
  const withLabels = drafts.map((d) => {
    const t = d.template;
    const hit = t !== undefined ? byTemplate.get(t) : undefined;
    if (hit !== undefined && d.sameLabels === true) return { d, labels: hit.labels, key: hit.key };
    let nsLabels = prefixed.get(d.namespace);
    if (!nsLabels) prefixed.set(d.namespace, (nsLabels = namespaceEndpointLabels(namespaces.get(d.namespace)?.labels ?? {})));
    const labels = endpointLabelsWith(d, nsLabels, opts.clusterName);
    if (hit !== undefined) return { d, labels, key: hit.key };
    const key = labelSetKey(labels);
    if (t !== undefined) byTemplate.set(t, { labels, key });
    return { d, labels, key };
  });
  const ids = allocateIdentities(withLabels.map((x) => x.key));
  const pods = new Map<string, ModelPod>();
  const podsByIp = new Map<string, ModelPod>();
  for (const { d, labels, key } of withLabels) {
    const pod = modelPod(d, labels, ids.get(key) ?? 0);
    pods.set(pod.key, pod);
    if (!pod.hostNetwork) for (const ip of pod.ips) podsByIp.set(ip, pod);
  }
  const nodesByIp = new Map<string, ModelNode>();
  for (const n of nodes.values()) for (const ip of n.ips) nodesByIp.set(ip, n);
  const identities = new Map<number, string>();
  for (const [k, v] of ids) identities.set(v, k);
  return { namespaces, nodes, pods, podsByIp, nodesByIp, services, identities };
}

/**
 * The pod as one object literal (same keys, same order as `{ ...draft, endpointLabels, identity }`): V8 keeps
 * every field of a literal in the object itself, where a spread leaves the later ones in a separate property
 * array — an extra memory access for `identity` and `endpointLabels`, which every policy decision reads.
 */
function modelPod(d: PodDraft, endpointLabels: Record<string, string>, identity: number): ModelPod {
  if (d.nodeName === undefined) {
    return { key: d.key, name: d.name, namespace: d.namespace, labels: d.labels, serviceAccount: d.serviceAccount, ips: d.ips, hostNetwork: d.hostNetwork, ports: d.ports, ready: d.ready, owner: d.owner, endpointLabels, identity };
  }
  return { key: d.key, name: d.name, namespace: d.namespace, labels: d.labels, serviceAccount: d.serviceAccount, ips: d.ips, hostNetwork: d.hostNetwork, ports: d.ports, ready: d.ready, owner: d.owner, nodeName: d.nodeName, endpointLabels, identity };
}

/** `labels` is copied unless `own` (a fresh object of the caller's); `ports` are the spec's, when already collected. */
function podDraft(namespace: string, name: string, labels: Record<string, string>, spec: PodSpec, owner: ModelPod['owner'], ips: string[], ready: boolean, own = false, ports?: ContainerPort[]): PodDraft {
  const draft: PodDraft = {
    key: `${namespace}/${name}`,
    name,
    namespace,
    labels: own ? labels : { ...labels },
    serviceAccount: spec.serviceAccountName,
    ips: ips.length === 0 ? [] : ips.map((ip) => formatIp(parseIp(ip) ?? new Uint8Array(4))),
    hostNetwork: spec.hostNetwork,
    ports: ports ?? spec.containers.flatMap((c) => c.ports),
    ready,
    owner,
  };
  if (spec.nodeName) draft.nodeName = spec.nodeName;
  return draft;
}

/** Replicas of a workload's template, with names shaped like the controllers' own and stable across runs. */
function workloadPods(w: Workload, nodeNames: string[]): PodDraft[] {
  const ns = w.metadata.namespace ?? 'default';
  const owner = { kind: w.kind, name: w.metadata.name, origin: w.origin };
  const hash = templateHash(`${ns}/${w.kind}/${w.metadata.name}/${JSON.stringify(w.template)}`);
  const out: PodDraft[] = [];
  const ports = w.template.spec.containers.flatMap((c) => c.ports);
  const sameLabels = w.kind !== 'StatefulSet';
  const make = (name: string, extra: Record<string, string>, nodeName?: string): void => {
    const spec: PodSpec = nodeName ? { ...w.template.spec, nodeName } : w.template.spec;
    const d = podDraft(ns, name, { ...w.template.labels, ...extra }, spec, owner, [], true, true, ports);
    d.template = w;
    d.sameLabels = sameLabels;
    out.push(d);
  };
  switch (w.kind) {
    case 'StatefulSet':
      for (let i = 0; i < w.replicas; i++) make(`${w.metadata.name}-${i}`, { 'statefulset.kubernetes.io/pod-name': `${w.metadata.name}-${i}` });
      break;
    case 'DaemonSet': {
      const targets = w.template.spec.nodeName ? [w.template.spec.nodeName] : nodeNames.length > 0 ? nodeNames : [undefined];
      targets.forEach((n, i) => make(`${w.metadata.name}-${suffix(hash, i)}`, {}, n));
      break;
    }
    case 'Deployment':
      for (let i = 0; i < w.replicas; i++) make(`${w.metadata.name}-${hash.slice(0, 10)}-${suffix(hash, i)}`, { 'pod-template-hash': hash.slice(0, 10) });
      break;
    case 'ReplicaSet':
      for (let i = 0; i < w.replicas; i++) make(`${w.metadata.name}-${suffix(hash, i)}`, {});
      break;
  }
  return out;
}

/** FNV-1a over the text, rendered in the consonant-and-digit alphabet Kubernetes uses for generated names. */
function templateHash(text: string): string {
  let h = 0x811c9dc5;
  let h2 = 0x01000193;
  for (let i = 0; i < text.length; i++) {
    h = Math.imul(h ^ text.charCodeAt(i), 0x01000193) >>> 0;
    h2 = Math.imul(h2 ^ text.charCodeAt(i), 0x85ebca6b) >>> 0;
  }
  return encode(h, 6) + encode(h2, 6);
}

const ALPHABET = 'bcdfghjklmnpqrstvwxz2456789';

function encode(n: number, len: number): string {
  let out = '';
  let x = n;
  for (let i = 0; i < len; i++) {
    out += ALPHABET[x % ALPHABET.length];
    x = Math.floor(x / ALPHABET.length);
  }
  return out;
}

function suffix(hash: string, i: number): string {
  return encode((parseInt(hash.slice(0, 6), 36) * 31 + i * 7919) >>> 0, 5);
}

/**
 * Gives every pod without an address one from its node's pod CIDR (or the default pod CIDR), by hashing
 * its key and probing, so that adding a pod does not move the others. Host-network pods take their node's IP.
 */
function assignAddresses(drafts: PodDraft[], nodes: Map<string, ModelNode>, defaultCidr: string): void {
  const used = new Set<string>();
  for (const d of drafts) for (const ip of d.ips) used.add(ip);
  for (const n of nodes.values()) for (const ip of n.ips) used.add(ip);
  const cidrs = new Map<string, ReturnType<typeof parseCidr>>();
  for (const d of [...drafts].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))) {
    if (d.ips.length > 0) continue;
    const node = d.nodeName ? nodes.get(d.nodeName) : undefined;
    if (d.hostNetwork) {
      if (node) d.ips = [...node.ips];
      continue;
    }
    const cidrText = node?.podCIDRs[0] ?? defaultCidr;
    let cidr = cidrs.get(cidrText);
    if (cidr === undefined) cidrs.set(cidrText, (cidr = parseCidr(cidrText)));
    if (isCidrError(cidr)) continue;
    const hostBits = cidr.bytes.length * 8 - cidr.prefix;
    const size = hostBits >= 31 ? 2 ** 31 : 2 ** hostBits;
    // Skip the network address and the first host (often the gateway), and the broadcast address.
    const usable = Math.max(1, size - 3);
    let slot = hashIndex(d.key) % usable;
    for (let tries = 0; tries < usable; tries++) {
      const text = nthAddressText(cidr, 2 + slot);
      if (text === undefined) break;
      if (!used.has(text)) {
        used.add(text);
        d.ips = [text];
        break;
      }
      slot = (slot + 1) % usable;
    }
  }
}

/** `formatIp(nthAddress(c, index))`, without the byte array for IPv4. */
function nthAddressText(c: Cidr, index: number): string | undefined {
  const b = c.bytes;
  if (b.length !== 4) {
    const ip: IpBytes | undefined = nthAddress(c, index);
    return ip ? formatIp(ip) : undefined;
  }
  if (index >= 2 ** (32 - c.prefix)) return undefined;
  const n = ((b[0] as number) * 16777216 + (b[1] as number) * 65536 + (b[2] as number) * 256 + (b[3] as number) + index) >>> 0;
  return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

function hashIndex(key: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}
