// The two ends of a flow as the policy engine sees them: a pod, a node (or host-network pod), or the world.
import type { Cluster, ModelNode, ModelPod } from '../model/cluster.ts';
import { formatIp, parseIp, type IpBytes } from '../resources/net.ts';
import type { ReservedName } from './ir.ts';
import type { LabelView } from './selector.ts';

export type Endpoint =
  | { type: 'pod'; pod: ModelPod; ip: string; bytes: IpBytes }
  | { type: 'node'; node: ModelNode; ip: string; bytes: IpBytes }
  | { type: 'world'; ip: string; bytes: IpBytes };

/** How one end looks from the other: its labels, identity and address. Host and remote-node are relative. */
export interface PeerView {
  endpoint: Endpoint;
  labels: LabelView;
  reserved: ReadonlySet<ReservedName>;
  identity: number;
}

export class EndpointError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = 'EndpointError';
    this.code = code;
  }
}

/**
 * Resolves `namespace/pod`, a bare pod name (namespace `default`), a workload name (its first pod), or an IP.
 * An IP resolves to the pod or node that owns it, else to the world outside the cluster.
 */
export function resolveEndpoint(cluster: Cluster, ref: string | { ip: string } | { pod: string }): Endpoint {
  const text = typeof ref === 'string' ? ref : 'ip' in ref ? ref.ip : ref.pod;
  const bytes = parseIp(text);
  if (bytes) return endpointForIp(cluster, bytes);
  if (typeof ref === 'object' && 'ip' in ref) throw new EndpointError('invalid-ip', `"${text}" is not a valid IP address`);
  const slash = text.indexOf('/');
  const ns = slash >= 0 ? text.slice(0, slash) : 'default';
  const name = slash >= 0 ? text.slice(slash + 1) : text;
  let pod = cluster.pods.get(`${ns}/${name}`);
  if (!pod) {
    // A workload's name stands for its first replica.
    pod = [...cluster.pods.values()].filter((p) => p.namespace === ns && p.owner.kind !== 'Pod' && p.owner.name === name).sort((a, b) => (a.name < b.name ? -1 : 1))[0];
  }
  if (!pod) {
    const known = [...cluster.pods.values()].filter((p) => p.namespace === ns).map((p) => p.name).slice(0, 10);
    throw new EndpointError('unknown-pod', `unknown pod ${ns}/${name}${known.length ? ` (pods in ${ns}: ${known.join(', ')})` : cluster.namespaces.has(ns) ? '' : ` (no namespace ${ns})`}`);
  }
  if (pod.ips.length === 0) throw new EndpointError('no-address', `pod ${pod.key} has no IP address`);
  const ip = pod.ips[0] ?? '';
  if (pod.hostNetwork) {
    const node = pod.nodeName ? cluster.nodes.get(pod.nodeName) : undefined;
    if (node) return { type: 'node', node, ip, bytes: parseIp(ip) ?? new Uint8Array(4) };
  }
  return { type: 'pod', pod, ip, bytes: parseIp(ip) ?? new Uint8Array(4) };
}

export function endpointForIp(cluster: Cluster, bytes: IpBytes): Endpoint {
  const ip = formatIp(bytes);
  const pod = cluster.podsByIp.get(ip);
  if (pod) return { type: 'pod', pod, ip, bytes };
  const node = cluster.nodesByIp.get(ip);
  if (node) return { type: 'node', node, ip, bytes };
  return { type: 'world', ip, bytes };
}

export function endpointName(e: Endpoint): string {
  switch (e.type) {
    case 'pod':
      return e.pod.key;
    case 'node':
      return `node ${e.node.name} (${e.ip})`;
    case 'world':
      return e.ip;
  }
}

/** The node an endpoint runs on, if known. */
export function nodeOf(e: Endpoint): string | undefined {
  return e.type === 'pod' ? e.pod.nodeName : e.type === 'node' ? e.node.name : undefined;
}

const EMPTY: Readonly<Record<string, string>> = Object.freeze({});
const CONTROL_PLANE_LABELS = ['node-role.kubernetes.io/control-plane', 'node-role.kubernetes.io/master'];

/**
 * How `peer` looks from `subject`. A node is `host` to the pods on it and `remote-node` to the others;
 * a control-plane node also carries `kube-apiserver`. An address outside the cluster is `world` (and
 * `world-ipv4` or `world-ipv6`).
 */
export function peerView(peer: Endpoint, subject: Endpoint): PeerView {
  switch (peer.type) {
    case 'pod':
      return { endpoint: peer, labels: { k8s: peer.pod.endpointLabels, reserved: NO_RESERVED }, reserved: NO_RESERVED, identity: peer.pod.identity };
    case 'node': {
      const local = nodeOf(subject) === peer.node.name;
      const names: ReservedName[] = [local ? 'host' : 'remote-node'];
      if (CONTROL_PLANE_LABELS.some((l) => l in peer.node.labels)) names.push('kube-apiserver');
      const reserved = new Set<ReservedName>(names);
      return { endpoint: peer, labels: { k8s: EMPTY, reserved }, reserved, identity: local ? 1 : names.length > 1 ? 7 : 6 };
    }
    case 'world': {
      const reserved = peer.bytes.length === 4 ? WORLD_V4 : WORLD_V6;
      return { endpoint: peer, labels: { k8s: EMPTY, reserved }, reserved, identity: 2 };
    }
  }
}

const NO_RESERVED: ReadonlySet<ReservedName> = new Set();
const WORLD_V4: ReadonlySet<ReservedName> = new Set(['world', 'world-ipv4']);
const WORLD_V6: ReadonlySet<ReservedName> = new Set(['world', 'world-ipv6']);
