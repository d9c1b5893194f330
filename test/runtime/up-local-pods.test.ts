// The local pods `trellis up` runs and the manifests it gives the control plane: workload replicas get plan
// addresses; the generated Pods load back with those addresses, the address annotations and their readiness; the
// user's files keep everything but their Pods and workloads.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compileMeshConfig } from '../../src/control-plane/mesh-config.ts';
import { buildCluster } from '../../src/model/cluster.ts';
import { loadManifests } from '../../src/resources/load.ts';
import { AddressPlan } from '../../src/runtime/address-plan.ts';
import { expandLocalPods, localPodsYaml, manifestsWithoutPods } from '../../src/runtime/local-pods.ts';
import { APP_IP_ANNOTATION, OUTBOUND_IP_ANNOTATION } from '../../src/xds/sidecar-resources.ts';

const USER = `apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}, annotations: {team: a}}
    spec:
      serviceAccountName: web
      containers: [{name: main, image: x, command: [node, web.js], ports: [{name: http, containerPort: 8080}]}]
---
apiVersion: v1
kind: Pod
metadata: {name: job, namespace: shop, labels: {app: job}}
spec:
  containers: [{name: main, image: y, command: [sleep, "1"]}]
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: http}]
`;

describe('local pods for trellis up', () => {
  const sources = [{ name: '/m/shop.yaml', text: USER }];
  const loaded = loadManifests(sources);
  const cluster = buildCluster(loaded.resources);
  const plan = new AddressPlan({ podRange: '127.81.0.0/16', serviceRange: '127.82.0.0/16' });
  const { pods, skipped } = expandLocalPods(loaded.resources, cluster, plan);

  it('expands workload replicas and Pods, each with its own block of plan addresses and its manifest folder', () => {
    assert.deepEqual(skipped, []);
    assert.equal(pods.length, 3);
    assert.equal(pods.filter((p) => p.model.owner.kind === 'Deployment').length, 2);
    assert.equal(new Set(pods.map((p) => p.addresses.podIp)).size, 3);
    for (const p of pods) {
      assert.match(p.addresses.podIp, /^127\.81\./);
      assert.equal(plan.podAt(p.addresses.appIp), p.key);
      assert.equal(p.manifestDir, '/m');
    }
  });

  it('generates Pods that load back with the plan addresses, the annotations and readiness; the control plane compiles them', () => {
    const yaml = localPodsYaml(pods, (k) => k.startsWith('shop/web-'));
    const without = manifestsWithoutPods(sources);
    assert.equal(without.length, 1);
    assert.doesNotMatch(without[0]?.text ?? '', /kind: (Deployment|Pod)\b/);
    assert.match(without[0]?.text ?? '', /kind: Service/);
    const back = loadManifests([...without.map((f) => ({ name: f.name, text: f.text })), { name: 'pods.yaml', text: yaml }]);
    assert.deepEqual(back.diagnostics.filter((d) => d.severity === 'error'), []);
    const model = buildCluster(back.resources);
    assert.equal(model.pods.size, 3);
    for (const p of pods) {
      const m = model.pods.get(p.key);
      assert.ok(m, p.key);
      assert.deepEqual(m.ips, [p.addresses.podIp]);
      assert.equal(m.ready, p.key.startsWith('shop/web-'));
      assert.deepEqual(m.labels, p.model.labels);
      assert.equal(m.serviceAccount, p.model.serviceAccount);
    }
    const web = back.resources.find((r) => r.kind === 'Pod' && r.metadata.name.startsWith('web-'));
    assert.equal(web?.metadata.annotations[APP_IP_ANNOTATION], pods.find((p) => p.key === `shop/${web?.metadata.name}`)?.addresses.appIp);
    assert.ok(web?.metadata.annotations[OUTBOUND_IP_ANNOTATION]);
    assert.equal(web?.metadata.annotations.team, 'a');
    const compiled = compileMeshConfig([...without, { name: 'pods.yaml', text: yaml }]);
    assert.equal(compiled.ok, true);
  });
});
