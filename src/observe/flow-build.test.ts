import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildCluster } from '../model/cluster.ts';
import { resolveEndpoint } from '../policy/endpoint.ts';
import { formatDiagnostic, hasErrors } from '../resources/diagnostics.ts';
import { loadManifests } from '../resources/load.ts';
import { flowEndpointOf, flowTime, flowUuid, RESERVED_IDENTITY } from './flow-build.ts';

const RFC3339_NS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{9}Z$/;

function cluster() {
  const loaded = loadManifests([
    {
      name: 'shop.yaml',
      text: `apiVersion: v1
kind: Node
metadata: {name: node-a}
status: {addresses: [{type: InternalIP, address: 10.0.0.1}]}
---
apiVersion: v1
kind: Node
metadata: {name: node-b}
status: {addresses: [{type: InternalIP, address: 10.0.0.2}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: api, namespace: shop}
spec:
  replicas: 1
  selector: {matchLabels: {app: api}}
  template:
    metadata: {labels: {app: api, version: v1}}
    spec: {serviceAccountName: api-sa, containers: [{name: app}]}
---
apiVersion: v1
kind: Pod
metadata: {name: solo, namespace: shop, labels: {app: solo}}
spec: {containers: [{name: app}]}
status: {podIP: 10.1.0.9}
`,
    },
  ]);
  assert.equal(hasErrors(loaded.diagnostics), false, loaded.diagnostics.map(formatDiagnostic).join('\n'));
  return buildCluster(loaded.resources);
}

describe('flowTime', () => {
  it('prints RFC 3339 with nanoseconds, close to the wall clock, and never goes backwards', () => {
    const before = Date.now();
    const t = flowTime();
    const after = Date.now();
    assert.match(t, RFC3339_NS);
    const ms = Date.parse(t);
    assert.ok(ms >= before - 5 && ms <= after + 5, `${t} not within [${before}, ${after}]`);
    let prev = '';
    for (let i = 0; i < 10_000; i++) {
      const x = flowTime();
      assert.ok(x >= prev, `${x} < ${prev}`);
      prev = x;
    }
  });

  it('places a given monotonic instant: one second later prints one second later, to the nanosecond', () => {
    const hr = process.hrtime.bigint();
    const a = flowTime(hr);
    const b = flowTime(hr + 1_000_000_007n);
    const frac = (s: string): number => Number(s.slice(20, 29));
    assert.equal(Date.parse(b) - Date.parse(a) >= 999, true);
    assert.equal((frac(b) - frac(a) + 1e9) % 1e9, 7);
  });
});

describe('flowUuid', () => {
  it('gives distinct v4 UUIDs', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 1000; i++) seen.add(flowUuid());
    assert.equal(seen.size, 1000);
    assert.match([...seen][0] ?? '', /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  });
});

describe('flowEndpointOf', () => {
  const c = cluster();

  it('describes a pod as Hubble does: identity, namespace, k8s: labels, its workload', () => {
    const pod = [...c.pods.values()].find((p) => p.owner.name === 'api');
    assert.ok(pod);
    const ep = flowEndpointOf(resolveEndpoint(c, { ip: pod.ips[0] ?? '' }), { clusterName: 'kind' });
    assert.equal(ep.identity, pod.identity);
    assert.equal(ep.ID, pod.identity);
    assert.equal(ep.namespace, 'shop');
    assert.equal(ep.pod_name, pod.name);
    assert.equal(ep.cluster_name, 'kind');
    assert.ok(ep.labels.includes('k8s:app=api'), ep.labels.join(','));
    assert.ok(ep.labels.includes('k8s:version=v1'));
    assert.deepEqual([...ep.labels], [...ep.labels].sort());
    assert.deepEqual(ep.workloads, [{ name: 'api', kind: 'Deployment' }]);
    assert.ok(Object.isFrozen(ep));
    // The same pod gives the same shared object.
    assert.equal(flowEndpointOf(resolveEndpoint(c, { ip: pod.ips[0] ?? '' }), { clusterName: 'kind' }), ep);
  });

  it('a bare pod has no workload', () => {
    const ep = flowEndpointOf(resolveEndpoint(c, 'shop/solo'));
    assert.equal(ep.pod_name, 'solo');
    assert.deepEqual(ep.workloads, []);
    assert.equal(ep.cluster_name, 'default');
  });

  it('nodes are host or remote-node relative to the local node; other addresses are world', () => {
    const a = resolveEndpoint(c, { ip: '10.0.0.1' });
    assert.equal(a.type, 'node');
    assert.equal(flowEndpointOf(a, { localNode: 'node-a' }).identity, RESERVED_IDENTITY.host);
    assert.deepEqual(flowEndpointOf(a, { localNode: 'node-a' }).labels, ['reserved:host']);
    assert.equal(flowEndpointOf(a, { localNode: 'node-b' }).identity, RESERVED_IDENTITY.remoteNode);
    const w = flowEndpointOf(resolveEndpoint(c, { ip: '192.0.2.7' }));
    assert.equal(w.identity, RESERVED_IDENTITY.world);
    assert.deepEqual(w.labels, ['reserved:world']);
  });
});
