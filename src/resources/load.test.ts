import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { ResourceError, formatDiagnostic, hasErrors } from './diagnostics.ts';
import type { Node, Pod } from './kinds.ts';
import { loadManifests } from './load.ts';

function load(text: string, name = 'in.yaml') {
  const r = loadManifests([{ name, text }]);
  return { ...r, lines: r.diagnostics.map(formatDiagnostic) };
}

describe('loadManifests: documents and formats', () => {
  it('loads multi-document YAML in order, skipping empty documents', () => {
    const r = load(`---
apiVersion: v1
kind: Namespace
metadata:
  name: a
---
# only a comment
---
---
apiVersion: v1
kind: Namespace
metadata:
  name: b
...
`);
    assert.deepEqual(r.lines, []);
    assert.deepEqual(r.resources.map((x) => x.metadata.name), ['a', 'b']);
  });

  it('loads JSON, including tab-indented JSON, and locates fields in it', () => {
    const text = '{\n\t"apiVersion": "v1",\n\t"kind": "Service",\n\t"metadata": {"name": "web", "namespace": "shop"},\n\t"spec": {"ports": [{"port": 0}]}\n}\n';
    const r = load(text, 'svc.json');
    assert.deepEqual(r.lines, ['svc.json:5:30: Service shop/web: spec.ports[0].port: must be an integer 1-65535']);
    const ok = load(JSON.stringify({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'x' } }, null, '\t'), 'ns.json');
    assert.deepEqual(ok.lines, []);
    assert.equal(ok.resources.length, 1);
  });

  it('expands kind: List and typed lists, locating errors inside items', () => {
    const r = load(`apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Namespace
  metadata: {name: a}
- apiVersion: v1
  kind: ServiceList
  items:
  - apiVersion: v1
    kind: Service
    metadata: {name: s, namespace: a}
    spec:
      type: Magic
`);
    assert.deepEqual(r.lines, ['in.yaml:14:13: Service a/s: spec.type: must be one of ClusterIP, NodePort, LoadBalancer, ExternalName']);
    assert.deepEqual(r.resources.map((x) => x.kind), ['Namespace']);
  });

  it('treats a List without items as empty', () => {
    assert.deepEqual(load('apiVersion: v1\nkind: List\nmetadata:\n  resourceVersion: ""\n').lines, []);
    assert.deepEqual(load('apiVersion: v1\nkind: List\nitems: []\n').lines, []);
  });

  it('locates YAML syntax errors and still loads the good documents', () => {
    const r = load(`apiVersion: v1
kind: Namespace
metadata: {name: good}
---
apiVersion: v1
kind: Namespace
metadata:
  name: a: b
---
apiVersion: v1
kind: Namespace
metadata: {name: also-good}
`);
    assert.deepEqual(r.lines, ['in.yaml:8:9: Nested mappings are not allowed in compact mappings']);
    assert.equal(r.diagnostics[0]?.code, 'syntax');
    assert.deepEqual(r.resources.map((x) => x.metadata.name), ['good', 'also-good']);
  });

  it('reports duplicate keys with the key and its location', () => {
    const r = load('apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n  labels: {}\n  name: b\n');
    assert.deepEqual(r.lines, ['in.yaml:6:3: duplicate key "name" (map keys must be unique)']);
    assert.equal(r.diagnostics[0]?.code, 'duplicate-key');
    assert.equal(r.resources.length, 0);
  });

  it('rejects documents that are not objects', () => {
    assert.deepEqual(load('- a\n- b\n').lines, ['in.yaml:1:1: a manifest must be an object with apiVersion and kind, not a list']);
    assert.deepEqual(load('just text\n').lines, ['in.yaml:1:1: a manifest must be an object with apiVersion and kind, not string "just text"']);
  });

  it('requires kind and apiVersion', () => {
    assert.deepEqual(load('metadata: {name: a}\n').lines, ['in.yaml:1:1: kind: is required', 'in.yaml:1:1: apiVersion: is required']);
    assert.deepEqual(load('kind: 5\napiVersion: v1\n').lines, ['in.yaml:1:7: kind: must be a string, not number 5']);
  });
});

describe('loadManifests: kinds and objects', () => {
  it('warns about unknown kinds and skips them; known harmless kinds are silent', () => {
    const r = load(`apiVersion: example.com/v1
kind: Widget
metadata: {name: w, namespace: x}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: c}
`);
    assert.deepEqual(r.lines, ['in.yaml:2:1: warning: Widget x/w: kind: unknown kind example.com/v1/Widget: skipped']);
    assert.equal(r.diagnostics[0]?.severity, 'warning');
    assert.equal(r.resources.length, 0);
    assert.equal(hasErrors(r.diagnostics), false);
  });

  it('rejects a wrong apiVersion for a known kind', () => {
    const r = load(`apiVersion: extensions/v1beta1
kind: NetworkPolicy
metadata: {name: np}
spec: {podSelector: {}}
---
apiVersion: v1
kind: Deployment
metadata: {name: web, namespace: shop}
`);
    assert.deepEqual(r.lines, [
      'in.yaml:1:13: NetworkPolicy default/np: apiVersion: NetworkPolicy must have apiVersion networking.k8s.io/v1',
      'in.yaml:6:13: Deployment shop/web: apiVersion: Deployment must have apiVersion apps/v1',
    ]);
  });

  it('names namespaced objects without a namespace as default/NAME, cluster-scoped ones without', () => {
    const r = load(`apiVersion: v1
kind: Service
metadata: {name: web}
spec: {type: Nope}
---
apiVersion: v1
kind: Namespace
metadata: {name: Bad_Name, labels: {"a b": x}}
`);
    assert.deepEqual(r.lines, [
      'in.yaml:4:14: Service default/web: spec.type: must be one of ClusterIP, NodePort, LoadBalancer, ExternalName',
      'in.yaml:8:37: Namespace Bad_Name: metadata.labels.a b: label key "a b" must be at most 63 characters of alphanumerics, "-", "_" or ".", starting and ending with an alphanumeric',
    ]);
  });

  it('reports duplicate objects across files with both locations', () => {
    const ns = 'apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n';
    const r = loadManifests([
      { name: 'a.yaml', text: ns },
      { name: 'b.yaml', text: `apiVersion: v1\nkind: Namespace\nmetadata: {name: other}\n---\n${ns}` },
    ]);
    assert.deepEqual(r.diagnostics.map(formatDiagnostic), ['b.yaml:8:9: Namespace shop: metadata.name: duplicate object; first defined at a.yaml:4:9']);
    assert.equal(r.resources.length, 2);
    // The same name in another namespace, or of another kind, is not a duplicate.
    const r2 = load(`apiVersion: v1
kind: Service
metadata: {name: web, namespace: a}
spec: {}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: b}
spec: {}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec: {}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec: {}
`);
    assert.deepEqual(r2.lines, ['in.yaml:18:18: Service default/web: metadata.name: duplicate object; first defined at in.yaml:13:18']);
  });

  it('keeps validating an object without metadata so every error shows', () => {
    const r = load(`apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
spec:
  podSelector: {}
  policyTypes: [ingress]
`);
    assert.deepEqual(r.lines, [
      'in.yaml:1:1: NetworkPolicy default/<unnamed>: metadata: is required',
      'in.yaml:5:17: NetworkPolicy default/<unnamed>: spec.policyTypes[0]: must be Ingress or Egress, not "ingress" (values are case-sensitive: Ingress)',
    ]);
  });

  it('ResourceError carries every diagnostic', () => {
    const r = load('apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec: {type: X, ports: [{port: 0}]}\n');
    const e = new ResourceError(r.diagnostics);
    assert.equal(e.diagnostics.length, 2);
    assert.match(e.message, /^2 error\(s\) in input:\nin\.yaml:4:14: Service default\/a: spec\.type: /);
  });
});

describe('kubectl get pods,ns,nodes -A -o yaml', () => {
  const text = readFileSync(new URL('../../test/fixtures/kubectl-get-all.yaml', import.meta.url), 'utf8');
  const r = loadManifests([{ name: 'kubectl-get-all.yaml', text }]);

  it('loads with no errors', () => {
    assert.equal(hasErrors(r.diagnostics), false, r.diagnostics.map(formatDiagnostic).join('\n'));
    assert.deepEqual(r.diagnostics.map(formatDiagnostic), [
      'kubectl-get-all.yaml:252:9: warning: Pod shop/web-7c5b8d6f4-q9z8m: spec.containers[1].ports[0].name: duplicate port name "http" (also spec.containers[0].ports[0]); services and probes that select ports by name will use spec.containers[0].ports[0]',
    ]);
    assert.deepEqual(
      r.resources.map((x) => `${x.kind} ${x.metadata.namespace ?? ''}/${x.metadata.name}`),
      ['Pod kube-system/coredns-5d78c9869d-7xk2p', 'Pod shop/web-7c5b8d6f4-q9z8m', 'Namespace /kube-system', 'Namespace /shop', 'Node /kind-control-plane', 'Node /kind-worker'],
    );
  });

  it('reads pod addresses, readiness, service account and ports', () => {
    const dns = r.resources[0] as Pod;
    assert.deepEqual(dns.status, { podIPs: ['10.244.0.3', 'fd00:10:244::3'], hostIP: '172.18.0.2', phase: 'Running', ready: true });
    assert.equal(dns.spec.serviceAccountName, 'coredns');
    assert.equal(dns.spec.nodeName, 'kind-control-plane');
    assert.deepEqual(dns.spec.containers[0]?.ports.map((p) => `${p.name ?? ''}:${p.containerPort}/${p.protocol}`), ['dns:53/UDP', 'dns-tcp:53/TCP', 'metrics:9153/TCP']);
    const web = r.resources[1] as Pod;
    assert.deepEqual(web.status, { podIPs: [], hostIP: '172.18.0.3', phase: 'Pending', ready: false });
    assert.deepEqual(web.spec.containers.map((c) => c.name), ['web', 'sidecar']);
  });

  it('reads node addresses and pod CIDRs', () => {
    const cp = r.resources[4] as Node;
    assert.deepEqual(cp.addresses, ['172.18.0.2', 'fc00:f853:ccd:e793::2']);
    assert.deepEqual(cp.podCIDRs, ['10.244.0.0/24', 'fd00:10:244::/64']);
    assert.equal(cp.metadata.labels['node-role.kubernetes.io/control-plane'], '');
  });
});
