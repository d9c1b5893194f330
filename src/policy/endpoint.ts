// The two ends of a flow as the policy engine sees them: a pod, a node (or host-network pod), or the world.
import type { Cluster, ModelNode, ModelPod } from '../model/cluster.ts';
import { formatIp, parseIp, type IpBytes } from '../resources/net.ts';
import type { ReservedName } from './ir.ts';

/**
 * A pod endpoint also carries its pod's identity and endpoint labels (the same values as `pod.identity` and
 * `pod.endpointLabels`), so that a decision reads them from the endpoint without loading the pod: with random
 * flows every distinct object read is a cache miss. Build pod endpoints with `podEndpointOf`.
 */
export type Endpoint =
  | { type: 'pod'; pod: ModelPod; ip: string; bytes: IpBytes; identity: number; endpointLabels: Readonly<Record<string, string>> }
  | { type: 'node'; node: ModelNode; ip: string; bytes: IpBytes }
  | { type: 'world'; ip: string; bytes: IpBytes };

/**
 * How one end looks from the other: its labels, identity and address. Host and remote-node are relative.
 * The compiled engine keeps one PeerView per direction and refills it for each decision (`fillPeerView`),
 * so nothing is allocated per decision; the naive evaluator makes a fresh one (`peerView`).
 */
export interface PeerView {
  endpoint: Endpoint;
  labels: { k8s: Readonly<Record<string, string>>; reserved: ReadonlySet<string> };
  reserved: ReadonlySet<ReservedName>;
  /** The reserved names as a bitmask of RESERVED_BITS (0 for pods). */
  reservedBits: number;
  identity: number;
}

/** One bit per reserved name, so that a rule's entities and a peer's reserved names intersect in one AND. */
export const RESERVED_BITS: Readonly<Record<ReservedName, number>> = {
  host: 1 << 0,
  'remote-node': 1 << 1,
  world: 1 << 2,
  'world-ipv4': 1 << 3,
  'world-ipv6': 1 << 4,
  'kube-apiserver': 1 << 5,
  health: 1 << 6,
  init: 1 << 7,
  unmanaged: 1 << 8,
  ingress: 1 << 9,
};

export function reservedBitsOf(names: Iterable<ReservedName>): number {
  let bits = 0;
  for (const n of names) bits |= RESERVED_BITS[n];
  return bits;
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
  return podEndpointOf(pod, ip, parseIp(ip) ?? new Uint8Array(4));
}

/** A pod endpoint (one object shape for every pod endpoint). */
export function podEndpointOf(pod: ModelPod, ip: string, bytes: IpBytes): Endpoint & { type: 'pod' } {
  return { type: 'pod', pod, ip, bytes, identity: pod.identity, endpointLabels: pod.endpointLabels };
}

export function endpointForIp(cluster: Cluster, bytes: IpBytes): Endpoint {
  const ip = formatIp(bytes);
  const pod = cluster.podsByIp.get(ip);
  if (pod) return podEndpointOf(pod, ip, bytes);
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
  return fillPeerView(newPeerView(peer), peer, subject);
}

/** A PeerView to refill with `fillPeerView` (one object shape for every kind of peer). */
export function newPeerView(peer: Endpoint): PeerView {
  return { endpoint: peer, labels: { k8s: EMPTY, reserved: NO_RESERVED }, reserved: NO_RESERVED, reservedBits: 0, identity: 0 };
}

/** Writes how `peer` looks from `subject` into `into`, allocating nothing; returns `into`. */
export function fillPeerView(into: PeerView, peer: Endpoint, subject: Endpoint): PeerView {
  into.endpoint = peer;
  const labels = into.labels;
  switch (peer.type) {
    case 'pod':
      labels.k8s = peer.endpointLabels;
      labels.reserved = NO_RESERVED;
      into.reserved = NO_RESERVED;
      into.reservedBits = 0;
      into.identity = peer.identity;
      break;
    case 'node': {
      const local = nodeOf(subject) === peer.node.name;
      const apiserver = isControlPlane(peer.node.labels);
      const reserved = local ? (apiserver ? HOST_APISERVER : HOST) : apiserver ? REMOTE_APISERVER : REMOTE;
      labels.k8s = EMPTY;
      labels.reserved = reserved;
      into.reserved = reserved;
      into.reservedBits = local ? (apiserver ? HOST_APISERVER_BITS : HOST_BITS) : apiserver ? REMOTE_APISERVER_BITS : REMOTE_BITS;
      into.identity = local ? 1 : apiserver ? 7 : 6;
      break;
    }
    case 'world': {
      const v4 = peer.bytes.length === 4;
      const reserved = v4 ? WORLD_V4 : WORLD_V6;
      labels.k8s = EMPTY;
      labels.reserved = reserved;
      into.reserved = reserved;
      into.reservedBits = v4 ? WORLD_V4_BITS : WORLD_V6_BITS;
      into.identity = 2;
      break;
    }
  }
  return into;
}

function isControlPlane(labels: Readonly<Record<string, string>>): boolean {
  for (let i = 0; i < CONTROL_PLANE_LABELS.length; i++) if ((CONTROL_PLANE_LABELS[i] as string) in labels) return true;
  return false;
}

const NO_RESERVED: ReadonlySet<ReservedName> = new Set();
const WORLD_V4: ReadonlySet<ReservedName> = new Set(['world', 'world-ipv4']);
const WORLD_V6: ReadonlySet<ReservedName> = new Set(['world', 'world-ipv6']);
const HOST: ReadonlySet<ReservedName> = new Set(['host']);
const HOST_APISERVER: ReadonlySet<ReservedName> = new Set(['host', 'kube-apiserver']);
const REMOTE: ReadonlySet<ReservedName> = new Set(['remote-node']);
const REMOTE_APISERVER: ReadonlySet<ReservedName> = new Set(['remote-node', 'kube-apiserver']);
const WORLD_V4_BITS = reservedBitsOf(WORLD_V4);
const WORLD_V6_BITS = reservedBitsOf(WORLD_V6);
const HOST_BITS = reservedBitsOf(HOST);
const HOST_APISERVER_BITS = reservedBitsOf(HOST_APISERVER);
const REMOTE_BITS = reservedBitsOf(REMOTE);
const REMOTE_APISERVER_BITS = reservedBitsOf(REMOTE_APISERVER);
