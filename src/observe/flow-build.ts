// Cheap building blocks for Flow records on the proxy's hot path: the RFC 3339 time with nanoseconds from one
// wall-clock base plus the monotonic clock (no Date per flow), a random UUID from Node's batched entropy, and the
// Hubble endpoint of a pod, node or world address, built once per pod/node and shared by every flow that names it.
import { randomUUID } from 'node:crypto';
import type { FlowEndpoint } from './flow.ts';
import type { Endpoint } from '../policy/endpoint.ts';

/** Cilium's reserved identities, as Hubble prints them. */
export const RESERVED_IDENTITY = { host: 1, world: 2, remoteNode: 6 } as const;

// The wall clock at one instant, paired with the monotonic clock at the same instant. Flow times advance with the
// monotonic clock from there, so they never go backwards within a process (a wall-clock step is not followed).
const BASE_WALL_NS = BigInt(Date.now()) * 1_000_000n;
const BASE_HR = process.hrtime.bigint();
let cachedSecond = -1;
let cachedPrefix = '';

/**
 * `2026-11-22T06:03:01.141592653Z` for the monotonic instant `hr` (default: now). `hr` is a process.hrtime.bigint()
 * reading, such as ConnectionInfo.acceptedAt. The date part is formatted once per second.
 */
export function flowTime(hr: bigint = process.hrtime.bigint()): string {
  const ns = BASE_WALL_NS + (hr - BASE_HR);
  const second = Number(ns / 1_000_000_000n);
  const frac = Number(ns % 1_000_000_000n);
  if (second !== cachedSecond) {
    cachedSecond = second;
    cachedPrefix = new Date(second * 1000).toISOString().slice(0, 19);
  }
  // 1e9 + frac has exactly ten digits: dropping the leading 1 zero-pads to nine.
  return `${cachedPrefix}.${String(1_000_000_000 + frac).slice(1)}Z`;
}

/** A random (v4) UUID; Node draws these from a cached entropy pool, so most calls make no system call. */
export function flowUuid(): string {
  return randomUUID();
}

const WORLD: FlowEndpoint = Object.freeze({
  ID: 0,
  identity: RESERVED_IDENTITY.world,
  cluster_name: '',
  namespace: '',
  labels: Object.freeze(['reserved:world']) as string[],
  pod_name: '',
  workloads: Object.freeze([]) as unknown as FlowEndpoint['workloads'],
});

const byObject = new WeakMap<object, FlowEndpoint>();

/**
 * The Hubble endpoint for one end of a flow. Pods carry their identity, namespace, Cilium labels (`k8s:key=value`,
 * sorted) and owning workload; a node is `reserved:host` when it is `localNode`, else `reserved:remote-node`; any
 * other address is `reserved:world`. The result is frozen and shared: never modify it.
 */
export function flowEndpointOf(ep: Endpoint, opts: { clusterName?: string; localNode?: string } = {}): FlowEndpoint {
  if (ep.type === 'world') return WORLD;
  const key = ep.type === 'pod' ? ep.pod : ep.node;
  const cached = byObject.get(key);
  if (cached !== undefined && cached.cluster_name === (opts.clusterName ?? 'default') && (ep.type === 'pod' || isLocal(cached, ep.node.name, opts.localNode))) {
    return cached;
  }
  const built = ep.type === 'pod' ? podEndpoint(ep, opts.clusterName ?? 'default') : nodeEndpoint(opts.clusterName ?? 'default', ep.node.name === opts.localNode);
  byObject.set(key, built);
  return built;
}

function isLocal(cached: FlowEndpoint, nodeName: string, localNode: string | undefined): boolean {
  return (cached.identity === RESERVED_IDENTITY.host) === (nodeName === localNode);
}

function podEndpoint(ep: Extract<Endpoint, { type: 'pod' }>, clusterName: string): FlowEndpoint {
  const labels = Object.entries(ep.endpointLabels)
    .map(([k, v]) => `k8s:${k}=${v}`)
    .sort();
  const owner = ep.pod.owner;
  return Object.freeze({
    ID: ep.identity,
    identity: ep.identity,
    cluster_name: clusterName,
    namespace: ep.pod.namespace,
    labels: Object.freeze(labels) as string[],
    pod_name: ep.pod.name,
    workloads: Object.freeze(owner.kind === 'Pod' ? [] : [Object.freeze({ name: owner.name, kind: owner.kind })]) as FlowEndpoint['workloads'],
  });
}

function nodeEndpoint(clusterName: string, local: boolean): FlowEndpoint {
  return Object.freeze({
    ID: 0,
    identity: local ? RESERVED_IDENTITY.host : RESERVED_IDENTITY.remoteNode,
    cluster_name: clusterName,
    namespace: '',
    labels: Object.freeze([local ? 'reserved:host' : 'reserved:remote-node']) as string[],
    pod_name: '',
    workloads: Object.freeze([]) as unknown as FlowEndpoint['workloads'],
  });
}
