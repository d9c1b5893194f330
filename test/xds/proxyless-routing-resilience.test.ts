// End to end from YAML, the resilience side: retries, outlier detection, consistent hashing, fault injection and
// route timeouts, as grpc-js-xds clients apply them from what Trellis serves. Same pipeline as proxyless-routing.
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { call, podYaml, serviceYaml, sleep, spread, startBackends, startPipeline, warmUp, type Backend, type MeshPipeline, type PodSpec } from '../support/mesh-pipeline.ts';

// This file's pods: 127.0.0.21-23.
const PODS: PodSpec[] = [
  { name: 'zone-api-a', ip: '127.0.0.21', labels: { version: 'v1' } },
  { name: 'zone-api-b', ip: '127.0.0.22', labels: { version: 'v1' } },
  { name: 'zone-api-c', ip: '127.0.0.23', labels: { version: 'v2' } },
];
const ALL = PODS.map((p) => p.name);
const BASE = [`apiVersion: v1\nkind: Namespace\nmetadata: {name: dns}\n`, serviceYaml('zone-api'), ...PODS.map(podYaml)];

const virtualService = (http: string): string => `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: zone-api, namespace: dns}
spec:
  hosts: [zone-api]
  http:
${http}`;

const destinationRule = (trafficPolicy: string): string => `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: zone-api, namespace: dns}
spec:
  host: zone-api.dns.svc.cluster.local
  trafficPolicy:
${trafficPolicy}`;

const code = (r: { error?: grpc.ServiceError }) => (r.error ? grpc.status[r.error.code] : 'OK');

describe('proxyless resilience from YAML manifests', () => {
  let backends: Map<string, Backend>;
  let mesh: MeshPipeline;
  let ids = 0;
  const client = () => mesh.client('xds:///zone-api', { id: `resilience-${++ids}`, namespace: 'dns' });
  const backend = (n: string) => backends.get(n) as Backend;

  before(async () => {
    backends = await startBackends(PODS);
    mesh = await startPipeline(BASE);
  });
  afterEach(() => {
    for (const b of backends.values()) {
      delete b.failWith;
      delete b.delayMs;
    }
  });
  after(async () => {
    // Whatever the scenarios served, no client rejected any of it.
    const nacks = mesh?.nacks() ?? [];
    await mesh?.close();
    await Promise.all([...(backends?.values() ?? [])].map((b) => b.close()));
    assert.deepEqual(nacks, []);
  });

  it('retries UNAVAILABLE on another pod (attempts 3, retryOn unavailable); with attempts 0 some calls fail', async () => {
    const withRetries = virtualService(`  - route:
    - destination: {host: zone-api}
    retries: {attempts: 3, retryOn: unavailable}
`);
    mesh.apply([...BASE, withRetries]);
    const c = client();
    await warmUp(c, ALL);
    backend('zone-api-c').failWith = grpc.status.UNAVAILABLE;
    const before = backend('zone-api-c').calls;
    const ok = await spread(c, 90, {}, 1);
    assert.deepEqual([...ok.keys()].sort(), ['zone-api-a', 'zone-api-b'], `every call succeeds: ${JSON.stringify([...ok])}`);
    assert.ok(backend('zone-api-c').calls - before >= 20, 'the failing pod was tried, and the calls retried elsewhere');

    // Istio retries unavailable by default (2 attempts), so "no retries" has to be said: attempts: 0.
    mesh.apply([...BASE, virtualService(`  - route:\n    - destination: {host: zone-api}\n    retries: {attempts: 0}\n`)]);
    await sleep(200);
    const c2 = client();
    await warmUp(c2, ['zone-api-a', 'zone-api-b']);
    const some = await spread(c2, 90, {}, 1);
    assert.ok((some.get('error:UNAVAILABLE') ?? 0) >= 20, `about a third fail without retries: ${JSON.stringify([...some])}`);
  });

  // gRPC clients implement only success-rate and failure-percentage ejection (gRFC A50), not consecutive errors.
  // Trellis serves the smallest enabled consecutive-error count also as failure_percentage with that request_volume,
  // threshold 50%, minimum_hosts 1 and enforcement 100% (success-rate off). Deterministic because: calls are
  // sequential and round robin, so in each 1 s interval the failing pod gets a third of ~30 calls (well over the
  // volume), all of which fail (100% > 50%) while the others fail none; enforcement 100% removes the coin toss;
  // maxEjectionPercent 100 means the cap never stops it; baseEjectionTime 30 s keeps it out for the whole test.
  const outlierCases = [
    // INTERNAL, so that Istio's default retries (unavailable, cancelled) leave the failures visible to the client.
    { what: 'consecutive5xxErrors: 5', fields: 'consecutive5xxErrors: 5', status: grpc.status.INTERNAL, visible: true },
    // A gateway error is UNAVAILABLE in gRPC terms. The default retries hide it from the caller, but every attempt
    // counts; with 5xx detection off (0), only the gateway count can give the volume.
    { what: 'consecutiveGatewayErrors: 3 (5xx off)', fields: 'consecutive5xxErrors: 0\n      consecutiveGatewayErrors: 3', status: grpc.status.UNAVAILABLE, visible: false },
  ];
  for (const oc of outlierCases) {
    it(`ejects a failing pod by outlier detection (${oc.what}), and calls no longer reach it`, async () => {
      mesh.apply([...BASE, destinationRule(`    outlierDetection:
      ${oc.fields}
      interval: 1s
      baseEjectionTime: 30s
      maxEjectionPercent: 100
`)]);
      const c = client();
      await warmUp(c, ALL);
      const bad = backend('zone-api-c');
      bad.failWith = oc.status;
      const t0 = performance.now();
      const first = bad.calls;
      let failures = 0;
      let quietSince = bad.calls;
      let quietCalls = 0;
      let lastReach = 0;
      // Calls every ~30 ms until 30 calls in a row have not reached the bad pod (at most 4 s).
      while (quietCalls < 30 && performance.now() - t0 < 4000) {
        const r = await call(c);
        if (r.error) failures++;
        if (bad.calls === quietSince) quietCalls++;
        else {
          quietSince = bad.calls;
          quietCalls = 0;
          lastReach = performance.now() - t0;
        }
        await sleep(30);
      }
      assert.equal(quietCalls, 30, `zone-api-c was not ejected within 4 s (${bad.calls - first} calls reached it)`);
      if (oc.visible) assert.ok(failures >= 5, `failures the callers saw before the ejection: ${failures}`);
      else assert.equal(failures, 0, 'retries hid the failures');
      const reached = bad.calls;
      const after = await spread(c, 60, {}, 1);
      assert.deepEqual([...after.keys()].sort(), ['zone-api-a', 'zone-api-b']);
      assert.equal(bad.calls, reached);
      console.log(`# outlier detection (${oc.what}): last reached ${lastReach.toFixed(0)} ms after it began failing; ${bad.calls - first} calls reached it, callers saw ${failures} failures`);
    });
  }

  it('keeps calls with one x-user value on one pod with a consistent hash, and spreads different values', async () => {
    mesh.apply([...BASE, destinationRule(`    loadBalancer:
      consistentHash: {httpHeaderName: x-user}
`)]);
    const c = client();
    const users = Array.from({ length: 24 }, (_, i) => `user-${i}`);
    // The first call per user may wait for its pod's connection (ring hash connects lazily).
    for (const u of users) await call(c, { 'x-user': u });
    const homes = new Map<string, Set<string>>();
    for (let round = 0; round < 5; round++) {
      await Promise.all(
        users.map(async (u) => {
          const r = await call(c, { 'x-user': u });
          assert.equal(r.error, undefined, r.error?.message);
          const s = homes.get(u) ?? new Set<string>();
          s.add(r.reply?.server ?? '');
          homes.set(u, s);
        }),
      );
    }
    for (const [u, s] of homes) assert.equal(s.size, 1, `${u} went to ${[...s].join(', ')}`);
    const used = new Set([...homes.values()].flatMap((s) => [...s]));
    assert.ok(used.size >= 2, `24 users all hashed to ${[...used].join(', ')}`);
    console.log(`# ring hash: 24 users over ${used.size} pods`);
  });

  it('injects faults: aborts with grpcStatus and httpStatus at 100%, and a 300 ms delay at 100%', async () => {
    const faults = virtualService(`  - match:
    - headers: {x-fault: {exact: abort-grpc}}
    fault:
      abort: {grpcStatus: PERMISSION_DENIED, percentage: {value: 100}}
    route:
    - destination: {host: zone-api}
  - match:
    - headers: {x-fault: {exact: abort-http}}
    fault:
      abort: {httpStatus: 503, percentage: {value: 100}}
    route:
    - destination: {host: zone-api}
    retries: {attempts: 0}
  - match:
    - headers: {x-fault: {exact: delay}}
    fault:
      delay: {fixedDelay: 300ms, percentage: {value: 100}}
    route:
    - destination: {host: zone-api}
  - route:
    - destination: {host: zone-api}
`);
    mesh.apply([...BASE, faults]);
    const c = client();
    await warmUp(c, ALL);
    const reached = () => ALL.reduce((s, n) => s + backend(n).calls, 0);
    const before = reached();
    const grpcAborts = await spread(c, 40, { 'x-fault': 'abort-grpc' });
    assert.deepEqual([...grpcAborts], [['error:PERMISSION_DENIED', 40]]);
    // HTTP 503 maps to UNAVAILABLE (gRPC's HTTP-to-status mapping).
    const httpAborts = await spread(c, 40, { 'x-fault': 'abort-http' });
    assert.deepEqual([...httpAborts], [['error:UNAVAILABLE', 40]]);
    assert.equal(reached(), before, 'aborted calls never leave the client');

    const plain = await Promise.all(Array.from({ length: 10 }, () => call(c)));
    const delayed = await Promise.all(Array.from({ length: 10 }, () => call(c, { 'x-fault': 'delay' })));
    assert.deepEqual([...new Set([...plain, ...delayed].map(code))], ['OK']);
    const min = Math.min(...delayed.map((r) => r.ms));
    const max = Math.max(...delayed.map((r) => r.ms));
    const plainMax = Math.max(...plain.map((r) => r.ms));
    assert.ok(min >= 295, `every delayed call waits 300 ms (shortest ${min.toFixed(0)} ms)`);
    assert.ok(max < 1000, `and not much longer (longest ${max.toFixed(0)} ms)`);
    assert.ok(plainMax < 200, `calls without the header are not delayed (${plainMax.toFixed(0)} ms)`);
    console.log(`# fault delay: ${min.toFixed(0)}–${max.toFixed(0)} ms delayed vs ≤${plainMax.toFixed(0)} ms plain`);
  });

  it('ends calls to a slow pod at the route timeout with DEADLINE_EXCEEDED', async () => {
    const timeouts = virtualService(`  - match:
    - headers: {x-timeout: {exact: "yes"}}
    timeout: 200ms
    route:
    - destination: {host: zone-api}
  - route:
    - destination: {host: zone-api}
`);
    mesh.apply([...BASE, timeouts]);
    const c = client();
    await warmUp(c, ALL);
    for (const b of backends.values()) b.delayMs = 400;
    const [limited, unlimited] = await Promise.all([
      Promise.all(Array.from({ length: 6 }, () => call(c, { 'x-timeout': 'yes' }))),
      Promise.all(Array.from({ length: 6 }, () => call(c))),
    ]);
    assert.deepEqual([...new Set(limited.map(code))], ['DEADLINE_EXCEEDED']);
    for (const r of limited) assert.ok(r.ms >= 190 && r.ms < 390, `timed out at ${r.ms.toFixed(0)} ms`);
    // Without a timeout on the route (Istio's default: none), the same slow calls complete.
    assert.deepEqual([...new Set(unlimited.map(code))], ['OK']);
    for (const r of unlimited) assert.ok(r.ms >= 395, `completed after ${r.ms.toFixed(0)} ms`);
    console.log(`# route timeout: ${limited.map((r) => r.ms.toFixed(0)).join(', ')} ms`);
  });
});
