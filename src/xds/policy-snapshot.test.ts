// The policy snapshot round trip: encode → proto bytes → decode gives resources that make every policy decision
// (verdict, deciding rule, file:line:col) exactly as the originals do, and locate every recorded field as they did.
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { buildCluster, type Cluster } from '../model/cluster.ts';
import { buildAuthzModel } from '../policy/authz-model.ts';
import { decideAuthz } from '../policy/authz-decide.ts';
import { resolveEndpoint, type Endpoint } from '../policy/endpoint.ts';
import { PolicyEngine } from '../policy/engine.ts';
import { decisionJson } from '../policy/explain.ts';
import { podEndpoint } from '../policy/matrix.ts';
import { formatDiagnostic, hasErrors } from '../resources/diagnostics.ts';
import type { Resource } from '../resources/kinds.ts';
import { loadManifests } from '../resources/load.ts';
import { candidatePaths, decodePolicySnapshot, encodePolicySnapshot, pathKey, PolicySnapshotError } from './policy-snapshot.ts';
import { decodeAny, encodeAny } from './protos.ts';
import { TYPE } from './type-urls.ts';

const jwk = { ...generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'jwk' }), kid: 'k1', alg: 'ES256', use: 'sig' };

const EXTRA = `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: api-egress, namespace: shop}
spec:
  podSelector: {matchLabels: {app: api}}
  policyTypes: [Egress]
  egress:
  - to: [{podSelector: {matchLabels: {role: db}}}]
    ports: [{protocol: TCP, port: 6379}]
  - to: [{ipBlock: {cidr: 0.0.0.0/0, except: [10.0.0.0/8]}}]
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: multi, namespace: monitoring}
specs:
- endpointSelector: {matchLabels: {app: prometheus}}
  egress:
  - toEndpoints: [{matchLabels: {"k8s:io.kubernetes.pod.namespace": shop}}]
    toPorts: [{ports: [{port: "8080", protocol: TCP}]}]
- endpointSelector: {matchLabels: {app: prometheus}}
  ingressDeny:
  - fromEntities: [world]
---
apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata: {name: nodes}
spec:
  nodeSelector: {matchLabels: {kubernetes.io/hostname: node-2}}
  ingress:
  - fromEntities: [cluster]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: api, namespace: shop}
spec:
  selector: {matchLabels: {app: api}}
  action: ALLOW
  rules:
  - from: [{source: {principals: [cluster.local/ns/shop/sa/default]}}]
    to: [{operation: {methods: [GET], paths: ["/products/*"]}}]
  - from: [{source: {namespaces: [monitoring]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-admin, namespace: shop}
spec:
  action: DENY
  rules:
  - to: [{operation: {paths: [/admin]}}]
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: api, namespace: shop}
spec:
  selector: {matchLabels: {app: api}}
  mtls: {mode: STRICT}
  portLevelMtls: {"9090": {mode: DISABLE}}
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt, namespace: shop}
spec:
  selector: {matchLabels: {app: api}}
  jwtRules:
  - issuer: https://issuer.example
    jwks: '${JSON.stringify({ keys: [jwk] })}'
`;

function load(): Resource[] {
  const sources = ['cluster.yaml', 'policies.yaml'].map((f) => ({ name: `examples/policy-basics/${f}`, text: readFileSync(new URL(`../../examples/policy-basics/${f}`, import.meta.url), 'utf8') }));
  const loaded = loadManifests([...sources, { name: 'extra.yaml', text: EXTRA }]);
  assert.equal(hasErrors(loaded.diagnostics), false, loaded.diagnostics.map(formatDiagnostic).join('\n'));
  return loaded.resources;
}

function endpoints(c: Cluster): Endpoint[] {
  const pods = [...c.pods.values()].sort((a, b) => (a.key < b.key ? -1 : 1)).flatMap((p) => podEndpoint(p) ?? []);
  return [...pods, ...['192.168.10.11', '192.168.10.12', '8.8.8.8'].map((ip) => resolveEndpoint(c, { ip }))];
}

/** Every decision over every pair, port and a few requests, as JSON (verdicts, rules and their locations). */
function decisions(resources: readonly Resource[]): unknown[] {
  const c = buildCluster(resources);
  const engine = PolicyEngine.fromResources(c, resources);
  const eps = endpoints(c);
  const out: unknown[] = [];
  for (const from of eps) {
    for (const to of eps) {
      for (const port of [80, 443, 6379, 8080, 9090]) out.push(decisionJson({ from, to, port, protocol: 'TCP' }, engine.decide({ from, to, port, protocol: 'TCP' })));
      for (const http of [{ method: 'GET', path: '/products/1' }, { method: 'POST', path: '/orders' }, { method: 'DELETE', path: '/x' }]) {
        const q = { from, to, port: 8080, protocol: 'TCP' as const, http };
        out.push(decisionJson(q, engine.decide(q)));
      }
    }
  }
  const authz = buildAuthzModel(resources, { trustDomain: 'cluster.local' });
  for (const dst of c.pods.values()) {
    for (const src of c.pods.values()) {
      for (const path of ['/products/1', '/admin', '/orders']) {
        const req = { source: { principal: `cluster.local/ns/${src.namespace}/sa/${src.serviceAccount}`, ip: src.ips[0] ?? '' }, destination: { pod: { namespace: dst.namespace, labels: dst.labels }, port: 8080 }, http: { method: 'GET', path } };
        out.push(JSON.parse(JSON.stringify(decideAuthz(authz, req))));
      }
    }
  }
  return out;
}

const wire = (msg: Record<string, unknown>): Record<string, unknown> => decodeAny(encodeAny(TYPE.policy, msg));

describe('policy snapshot', () => {
  const original = load();
  const msg = encodePolicySnapshot(original, 'cluster.local', 'istio-system');
  const decoded = decodePolicySnapshot(wire(msg));

  it('carries the policy inputs and nothing else, with its trust domain and root namespace', () => {
    assert.deepEqual(decoded.resources.map((r) => `${r.kind} ${r.metadata.namespace ?? ''}/${r.metadata.name}`), original.map((r) => `${r.kind} ${r.metadata.namespace ?? ''}/${r.metadata.name}`));
    assert.equal(decoded.trustDomain, 'cluster.local');
    assert.equal(decoded.rootNamespace, 'istio-system');
    assert.match(decoded.version, /^[0-9a-f]{16}$/);
    assert.equal(encodePolicySnapshot(load(), 'cluster.local', 'istio-system').version, msg.version, 'the version is a content hash');
  });

  it('makes every policy decision as the original resources do, naming the same rules at the same locations', () => {
    const before = decisions(original);
    const after = decisions(decoded.resources);
    assert.ok(before.length > 700, `${before.length} decisions`);
    const text = JSON.stringify(before);
    assert.match(text, /"verdict":"denied"/);
    assert.match(text, /"verdict":"allowed"/);
    assert.match(text, /policies\.yaml:\d+:\d+/, 'decisions name file:line:col');
    assert.match(text, /extra\.yaml:\d+:\d+/);
    assert.deepEqual(after, before);
  });

  it('locates every recorded field exactly, and others at their nearest recorded ancestor', () => {
    original.forEach((r, i) => {
      const d = decoded.resources[i] as Resource;
      for (const path of candidatePaths(r)) {
        assert.deepEqual(d.origin.locate(path, 'value'), r.origin.locate(path, 'value'), `${r.kind} ${r.metadata.name} ${pathKey(path)}`);
        assert.deepEqual(d.origin.locate(path, 'key'), r.origin.locate(path, 'key'), `${r.kind} ${r.metadata.name} ${pathKey(path)} (key)`);
      }
    });
    const cnp = decoded.resources.find((r) => r.metadata.name === 'multi');
    assert.deepEqual(cnp?.origin.locate(['specs', 1, 'ingressDeny', 0, 'no', 'such', 'field']), cnp?.origin.locate(['specs', 1, 'ingressDeny', 0]));
    assert.equal(pathKey(['metadata', 'labels', 'app.kubernetes.io/name', 0]), 'metadata.labels.app\\.kubernetes\\.io/name[0]');
  });

  it('refuses a malformed snapshot with every problem listed', () => {
    const bad = { version: 'x', objects: [{ object: { fields: { kind: { stringValue: 'Secret' } } } }, { object: { fields: { kind: { stringValue: 'Pod' } } } }] };
    assert.throws(
      () => decodePolicySnapshot(wire(bad)),
      (e: unknown) => e instanceof PolicySnapshotError && e.code === 'bad-policy-snapshot' && e.errors.length === 3 && e.errors[0] === 'trust_domain: missing',
    );
  });
});
