// End to end, as users drive it: YAML manifests → routing model → Trellis xDS → real grpc-js-xds clients → real
// grpc-js servers, each pod on its own loopback address (status.podIP) and the fixed containerPort 50051.
// Traffic shape: Service zone-api in namespace dns, its pods, and VirtualServices, DestinationRules and GRPCRoutes.
// The resilience scenarios (retries, outlier detection, ring hash, faults, timeouts) are in proxyless-routing-resilience.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import type { EchoReply, EchoRequest } from '../support/echo-service.ts';
import {
  answeredBy,
  call,
  podYaml,
  serviceYaml,
  sleep,
  spread,
  startBackends,
  startPipeline,
  warmUp,
  type Backend,
  type MeshPipeline,
  type PodSpec,
} from '../support/mesh-pipeline.ts';

// This file's pods: 127.0.0.11-14 (other test files use other addresses, so files may run in parallel).
const PODS: PodSpec[] = [
  { name: 'zone-api-a', ip: '127.0.0.11', labels: { version: 'v1' } },
  { name: 'zone-api-b', ip: '127.0.0.12', labels: { version: 'v1' } },
  { name: 'zone-api-c', ip: '127.0.0.13', labels: { version: 'v2' } },
];
const NOT_READY: PodSpec = { name: 'zone-api-d', ip: '127.0.0.14', labels: { version: 'v1' }, notReady: true };

const NAMESPACES = `apiVersion: v1
kind: Namespace
metadata: {name: dns}
---
apiVersion: v1
kind: Namespace
metadata: {name: other}
`;

function base(pods: PodSpec[] = PODS): string[] {
  return [NAMESPACES, serviceYaml('zone-api'), ...pods.map(podYaml)];
}

const SUBSETS = `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: zone-api, namespace: dns}
spec:
  host: zone-api
  subsets:
  - name: v1
    labels: {version: v1}
  - name: v2
    labels: {version: v2}
`;

const SPLIT_90_10 = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: zone-api, namespace: dns}
spec:
  hosts: [zone-api]
  http:
  - route:
    - destination: {host: zone-api, subset: v1}
      weight: 90
    - destination: {host: zone-api, subset: v2}
      weight: 10
`;

const CANARY_HEADER = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: zone-api, namespace: dns}
spec:
  hosts: [zone-api.dns.svc.cluster.local]
  http:
  - name: canary
    match:
    - headers:
        x-canary: {exact: "true"}
    route:
    - destination: {host: zone-api, subset: v2}
  - name: stable
    route:
    - destination: {host: zone-api, subset: v1}
`;

const ALL_TO_V2 = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: zone-api, namespace: dns}
spec:
  hosts: [zone-api]
  http:
  - route:
    - destination: {host: zone-api, subset: v2}
`;

// GAMMA: a GRPCRoute whose parent is the Service itself. ServerStream goes to the v2 pods, everything else to v1.
const GRPC_ROUTE = `${serviceYaml('zone-api-v1', { app: 'zone-api', version: 'v1' })}---
${serviceYaml('zone-api-v2', { app: 'zone-api', version: 'v2' })}---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: zone-api, namespace: dns}
spec:
  parentRefs:
  - {group: "", kind: Service, name: zone-api, port: 50051}
  rules:
  - matches:
    - method: {service: trellis.test.v1.Echo, method: ServerStream}
    backendRefs:
    - {name: zone-api-v2, port: 50051}
  - backendRefs:
    - {name: zone-api-v1, port: 50051}
`;

type Kinds = {
  ServerStream(r: EchoRequest, m: grpc.Metadata): grpc.ClientReadableStream<EchoReply>;
  ClientStream(m: grpc.Metadata, cb: (e: grpc.ServiceError | null, v?: EchoReply) => void): grpc.ClientWritableStream<EchoRequest>;
  Bidi(m: grpc.Metadata): grpc.ClientDuplexStream<EchoRequest, EchoReply>;
};

function serverStream(c: grpc.Client, count: number): Promise<EchoReply[]> {
  return new Promise((resolve, reject) => {
    const out: EchoReply[] = [];
    const s = (c as unknown as Kinds).ServerStream({ message: 'ss', count }, new grpc.Metadata());
    s.on('data', (r: EchoReply) => out.push(r));
    s.on('error', reject);
    s.on('end', () => resolve(out));
  });
}

function clientStream(c: grpc.Client, messages: string[]): Promise<EchoReply> {
  return new Promise((resolve, reject) => {
    const s = (c as unknown as Kinds).ClientStream(new grpc.Metadata(), (e, v) => (e ? reject(e) : resolve(v as EchoReply)));
    for (const m of messages) s.write({ message: m });
    s.end();
  });
}

function bidi(c: grpc.Client, messages: string[]): Promise<EchoReply[]> {
  return new Promise((resolve, reject) => {
    const out: EchoReply[] = [];
    const s = (c as unknown as Kinds).Bidi(new grpc.Metadata());
    s.on('data', (r: EchoReply) => {
      out.push(r);
      // Ping-pong: the next message goes out only after the previous answer came back.
      const next = messages[out.length];
      if (next === undefined) s.end();
      else s.write({ message: next });
    });
    s.on('error', reject);
    s.on('end', () => resolve(out));
    s.write({ message: messages[0] ?? '' });
  });
}

describe('proxyless routing from YAML manifests', () => {
  let backends: Map<string, Backend>;
  let mesh: MeshPipeline;
  let ids = 0;
  const dnsClient = (target = 'xds:///zone-api') => mesh.client(target, { id: `routing-${++ids}`, namespace: 'dns' });
  const callsOf = (name: string) => backends.get(name)?.calls ?? 0;

  before(async () => {
    backends = await startBackends([...PODS, NOT_READY]);
    mesh = await startPipeline(base());
  });
  after(async () => {
    // Whatever the scenarios served, no client rejected any of it.
    const nacks = mesh?.nacks() ?? [];
    await mesh?.close();
    await Promise.all([...(backends?.values() ?? [])].map((b) => b.close()));
    assert.deepEqual(nacks, []);
  });

  it('spreads calls round robin over the three pods of a Service', async () => {
    mesh.apply(base());
    const c = dnsClient();
    await warmUp(c, ['zone-api-a', 'zone-api-b', 'zone-api-c']);
    const seen = new Map<string, number>();
    for (let i = 0; i < 30; i++) {
      const s = await answeredBy(c);
      seen.set(s, (seen.get(s) ?? 0) + 1);
    }
    assert.deepEqual(Object.fromEntries([...seen].sort()), { 'zone-api-a': 10, 'zone-api-b': 10, 'zone-api-c': 10 });
    // The endpoints came from the Pods' status.podIP and their containerPort named grpc.
    const eps = mesh.model.endpoints.find((e) => e.cluster === 'outbound|50051||zone-api.dns.svc.cluster.local')?.endpoints;
    assert.deepEqual(eps?.map((e) => `${e.address}:${e.port}`), ['127.0.0.11:50051', '127.0.0.12:50051', '127.0.0.13:50051']);
  });

  it('falls back to round robin for LEAST_REQUEST and RANDOM, which gRPC lacks, without rejecting the Cluster', async () => {
    for (const simple of ['LEAST_REQUEST', 'RANDOM']) {
      mesh.apply([...base(), `apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: zone-api, namespace: dns}\nspec:\n  host: zone-api\n  trafficPolicy:\n    loadBalancer: {simple: ${simple}}\n`]);
      const c = dnsClient();
      await warmUp(c, ['zone-api-a', 'zone-api-b', 'zone-api-c']);
      assert.deepEqual(mesh.nacks(), []);
    }
  });

  it('splits 90/10 between DestinationRule subsets over 2,000 calls, within 3 points', async () => {
    mesh.apply([...base(), SUBSETS, SPLIT_90_10]);
    const c = dnsClient();
    await warmUp(c, ['zone-api-a', 'zone-api-b', 'zone-api-c']);
    const counts = await spread(c, 2000);
    const pct = (n: string) => ((counts.get(n) ?? 0) * 100) / 2000;
    const v1 = pct('zone-api-a') + pct('zone-api-b');
    const v2 = pct('zone-api-c');
    assert.equal(v1 + v2, 100, `every call answered: ${JSON.stringify([...counts])}`);
    assert.ok(Math.abs(v1 - 90) <= 3, `v1 got ${v1}%`);
    assert.ok(Math.abs(v2 - 10) <= 3, `v2 got ${v2}%`);
    console.log(`# 90/10 split over 2,000 calls: v1 ${v1}%, v2 ${v2}%`);
    // Inside subset v1, round robin still spreads over both pods.
    assert.ok(pct('zone-api-a') > 40 && pct('zone-api-b') > 40, `a ${pct('zone-api-a')}%, b ${pct('zone-api-b')}%`);
  });

  it('routes calls with x-canary: true to subset v2, and the rest to v1', async () => {
    mesh.apply([...base(), SUBSETS, CANARY_HEADER]);
    const c = dnsClient();
    const canary = await spread(c, 40, { 'x-canary': 'true' });
    assert.deepEqual([...canary], [['zone-api-c', 40]]);
    const stable = await spread(c, 40, {}, 1);
    assert.deepEqual([...stable.keys()].sort(), ['zone-api-a', 'zone-api-b']);
    const other = await spread(c, 20, { 'x-canary': 'false' }, 1);
    assert.equal(other.get('zone-api-c'), undefined, 'an exact match does not take other values');
  });

  it('moves traffic off a pod removed from the manifests within one second', async () => {
    mesh.apply(base());
    const c = dnsClient();
    const id = `routing-${ids}`;
    await warmUp(c, ['zone-api-a', 'zone-api-b', 'zone-api-c']);
    const t0 = performance.now();
    mesh.apply(base(PODS.filter((p) => p.name !== 'zone-api-c')));
    // Call steadily for 1.5 s and note the last time the removed pod answered (its server stays up throughout).
    let lastOnC = -1;
    let after1s = 0;
    while (performance.now() - t0 < 1500) {
      const s = await answeredBy(c);
      const t = performance.now() - t0;
      if (s === 'zone-api-c') lastOnC = t;
      if (t > 1000) after1s++;
      await sleep(5);
    }
    assert.ok(lastOnC < 1000, `zone-api-c still answered ${lastOnC.toFixed(0)} ms after the push`);
    assert.ok(after1s > 20, `enough calls after the first second (${after1s})`);
    const rest = await spread(c, 30, {}, 1);
    assert.deepEqual([...rest.keys()].sort(), ['zone-api-a', 'zone-api-b']);
    // The client acknowledged the new endpoints (the one resource that changed) soon after the push.
    const ack = mesh.events.find((e) => e.kind === 'ack' && e.node.id === id && e.type.endsWith('ClusterLoadAssignment') && e.at > t0);
    assert.ok(ack, 'the client ACKed the new ClusterLoadAssignment');
    console.log(`# pod removal: new endpoints ACKed ${(ack.at - t0).toFixed(1)} ms after the push; last call on the removed pod ${lastOnC < 0 ? 'none after the push' : `${lastOnC.toFixed(0)} ms after it`}`);
  });

  it('does not use a pod whose Ready condition is False', async () => {
    mesh.apply(base([...PODS, NOT_READY]));
    const d = mesh.model.endpoints.find((e) => e.cluster === 'outbound|50051||zone-api.dns.svc.cluster.local')?.endpoints.find((e) => e.pod === 'dns/zone-api-d');
    assert.equal(d?.healthy, false, 'the not-ready pod is listed, as unhealthy');
    const c = dnsClient();
    await warmUp(c, ['zone-api-a', 'zone-api-b', 'zone-api-c']);
    const before = callsOf('zone-api-d');
    const counts = await spread(c, 60, {}, 1);
    assert.deepEqual(Object.fromEntries([...counts].sort()), { 'zone-api-a': 20, 'zone-api-b': 20, 'zone-api-c': 20 });
    assert.equal(callsOf('zone-api-d'), before);
    // Once ready, it takes its share: the same pod is used as soon as its condition says so.
    mesh.apply(base([...PODS, { ...NOT_READY, notReady: false }]));
    await warmUp(c, ['zone-api-d']);
  });

  it('carries all four call kinds through xDS routing', async () => {
    mesh.apply([...base(), SUBSETS, ALL_TO_V2]);
    const c = dnsClient();
    const u = await answeredBy(c);
    assert.equal(u, 'zone-api-c');
    const ss = await serverStream(c, 5);
    assert.deepEqual(ss.map((r) => `${r.server} ${r.message}`), [0, 1, 2, 3, 4].map((i) => `zone-api-c ss#${i}`));
    const cs = await clientStream(c, ['x', 'y', 'z']);
    assert.deepEqual(cs, { message: 'x,y,z', server: 'zone-api-c' });
    const bd = await bidi(c, ['p', 'q', 'r', 's']);
    assert.deepEqual(bd.map((r) => `${r.server} ${r.message}`), ['zone-api-c p', 'zone-api-c q', 'zone-api-c r', 'zone-api-c s']);
  });

  it('routes one gRPC method to another backend with a GRPCRoute on the Service', async () => {
    mesh.apply([...base(), GRPC_ROUTE]);
    const c = dnsClient();
    const unaries = await spread(c, 20, {}, 1);
    assert.deepEqual([...unaries.keys()].sort(), ['zone-api-a', 'zone-api-b']);
    for (let i = 0; i < 6; i++) {
      const replies = await serverStream(c, 2);
      assert.deepEqual(replies.map((r) => r.server), ['zone-api-c', 'zone-api-c']);
    }
    const cs = await clientStream(c, ['m']);
    assert.notEqual(cs.server, 'zone-api-c');
  });

  it('resolves the short name in the namespace, and <svc>.<ns>:port and the FQDN from another', async () => {
    mesh.apply(base());
    const reach = async (target: string, namespace: string) => {
      const c = mesh.client(target, { id: `routing-${++ids}`, namespace });
      return call(c, {}, 1500);
    };
    const local = await reach('xds:///zone-api', 'dns');
    assert.ok(local.reply?.server.startsWith('zone-api-'), `xds:///zone-api from dns: ${local.error?.message ?? ''}`);
    const localPort = await reach('xds:///zone-api:50051', 'dns');
    assert.ok(localPort.reply?.server.startsWith('zone-api-'), `xds:///zone-api:50051 from dns: ${localPort.error?.message ?? ''}`);
    const short = await reach('xds:///zone-api.dns:50051', 'other');
    assert.ok(short.reply?.server.startsWith('zone-api-'), `xds:///zone-api.dns:50051 from other: ${short.error?.message ?? ''}`);
    // Kubernetes DNS names without a port reach the Service's first port.
    const portless = await reach('xds:///zone-api.dns', 'other');
    assert.ok(portless.reply?.server.startsWith('zone-api-'), `xds:///zone-api.dns from other: ${portless.error?.message ?? ''}`);
    const fqdn = await reach('xds:///zone-api.dns.svc.cluster.local:50051', 'other');
    assert.ok(fqdn.reply?.server.startsWith('zone-api-'), `FQDN from other: ${fqdn.error?.message ?? ''}`);
    // A namespace-local name means nothing in another namespace: there is no such listener, so the call never
    // gets a route (grpc-js-xds waits for the resource, then fails; which of the two codes depends on timing).
    const foreign = await reach('xds:///zone-api', 'other');
    assert.equal(foreign.reply, undefined, `xds:///zone-api from other must not resolve (answered by ${foreign.reply?.server ?? ''})`);
    assert.ok(foreign.error && [grpc.status.UNAVAILABLE, grpc.status.DEADLINE_EXCEEDED].includes(foreign.error.code), foreign.error?.message);
  });
});
