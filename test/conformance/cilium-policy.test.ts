// Conformance: the policy examples of Cilium's documentation (docs.cilium.io, Documentation/security/policy
// and examples/policies in cilium/cilium), re-typed as fixtures, each checked with flows it must allow and
// flows it must deny. The harness cross-checks the compiled engine against the naive evaluator on every flow.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { DirectionDecision } from '../../src/policy/decision.ts';
import { harness } from '../support/policy-harness.ts';
import { CONTROL_PLANE, namespace, NODE_1, NODE_2, NODES, pod } from './fixtures.ts';

const CLUSTER = [
  NODES,
  namespace('default'),
  namespace('ns1'),
  namespace('ns2'),
  namespace('production'),
  namespace('kube-system'),
  pod('default', 'backend', { ip: '10.244.1.10', labels: { role: 'backend' } }),
  pod('default', 'frontend', { ip: '10.244.1.11', labels: { role: 'frontend' } }),
  pod('default', 'other', { ip: '10.244.2.12', node: 'node-2', labels: { role: 'other' } }),
  pod('default', 'service', { ip: '10.244.1.13', labels: { app: 'service' } }),
  pod('default', 'myservice', { ip: '10.244.1.14', labels: { app: 'myService' } }),
  pod('default', 'prod-client', { ip: '10.244.2.15', node: 'node-2', labels: { env: 'prod' } }),
  pod('default', 'dev', { ip: '10.244.1.16', labels: { env: 'dev' } }),
  pod('default', 'public', { ip: '10.244.1.17', labels: { role: 'public' } }),
  pod('default', 'crawler', { ip: '10.244.1.18', labels: { role: 'crawler' } }),
  pod('default', 'strict', { ip: '10.244.1.19', labels: { 'cilium.example.com/policy': 'strict' } }),
  pod('default', 'victim', { ip: '10.244.1.20', labels: { role: 'victim' } }),
  pod('default', 'restricted', { ip: '10.244.1.21', labels: { role: 'restricted' } }),
  pod('default', 'web', { ip: '10.244.1.22', labels: { app: 'web' }, ports: [{ name: 'http', containerPort: 8080 }, { name: 'metrics', containerPort: 9090 }] }),
  pod('default', 'leia-sa', { ip: '10.244.1.60', sa: 'leia' }),
  pod('default', 'luke-sa', { ip: '10.244.2.61', node: 'node-2', sa: 'luke' }),
  pod('default', 'han-sa', { ip: '10.244.2.62', node: 'node-2', sa: 'han' }),
  pod('ns1', 'leia', { ip: '10.244.1.30', labels: { name: 'leia' } }),
  pod('ns1', 'luke', { ip: '10.244.1.31', labels: { name: 'luke' } }),
  pod('ns2', 'leia', { ip: '10.244.2.34', node: 'node-2', labels: { name: 'leia' } }),
  pod('ns2', 'luke', { ip: '10.244.2.32', node: 'node-2', labels: { name: 'luke' } }),
  pod('ns2', 'other', { ip: '10.244.2.33', node: 'node-2', labels: { name: 'other' } }),
  pod('production', 'strict', { ip: '10.244.2.40', node: 'node-2', labels: { 'cilium.example.com/policy': 'strict' } }),
  pod('production', 'lax', { ip: '10.244.2.41', node: 'node-2', labels: { 'cilium.example.com/policy': 'lax' } }),
  pod('kube-system', 'kube-dns', { ip: '10.244.1.50', labels: { 'k8s-app': 'kube-dns' } }),
].join('---\n');

const WORLD = '8.8.8.8';

const h = (...policies: string[]) => harness(CLUSTER, ...policies);

/** Checks the rule that decided one direction. */
function decidedBy(d: DirectionDecision, exp: { name: string; kind?: string; deny?: boolean; index?: number; reason?: string }): void {
  assert.equal(d.rule?.policy.name, exp.name, `deciding policy (reason ${d.reason})`);
  assert.equal(d.rule.policy.kind, exp.kind ?? 'CiliumNetworkPolicy');
  assert.equal(d.rule.direction, d.direction);
  assert.equal(d.rule.deny, exp.deny ?? false);
  if (exp.index !== undefined) assert.equal(d.rule.index, exp.index);
  assert.equal(d.reason, exp.reason ?? (exp.deny ? 'denied-by-rule' : 'allowed-by-rule'));
}

function denied(d: DirectionDecision, reason = 'default-deny'): void {
  assert.equal(d.verdict, 'denied');
  assert.equal(d.reason, reason);
}

void describe('endpointSelector and fromEndpoints/toEndpoints (layer3.rst "Endpoints Based")', () => {
  void it('l3.yaml: backend accepts only frontend', () => {
    const x = h(`apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: l3-rule
spec:
  endpointSelector:
    matchLabels:
      role: backend
  ingress:
  - fromEndpoints:
    - matchLabels:
        role: frontend
`);
    const ok = x.decide('default/frontend', 'default/backend', 80);
    assert.equal(ok.verdict, 'allowed');
    decidedBy(ok.ingress, { name: 'l3-rule', index: 0 });
    assert.equal(ok.egress.reason, 'not-selected');
    assert.equal(x.decide('default/frontend', 'default/backend', 9999, { protocol: 'UDP' }).verdict, 'allowed');
    denied(x.decide('default/other', 'default/backend', 80).ingress);
    denied(x.decide(WORLD, 'default/backend', 80).ingress);
    // The endpoint selector selects only backend; the CNP's fromEndpoints is scoped to its namespace.
    assert.equal(x.decide('default/other', 'default/frontend', 80).ingress.reason, 'not-selected');
    const selected = x.decide('default/other', 'default/backend', 80).ingress.selectedBy;
    assert.deepEqual(selected.map((p) => p.name), ['l3-rule']);
  });

  void it('l3_egress.yaml: frontend may reach only backend', () => {
    const x = h(`apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: l3-egress-rule
spec:
  endpointSelector:
    matchLabels:
      role: frontend
  egress:
  - toEndpoints:
    - matchLabels:
        role: backend
`);
    decidedBy(x.decide('default/frontend', 'default/backend', 80).egress, { name: 'l3-egress-rule', index: 0 });
    denied(x.decide('default/frontend', 'default/other', 80).egress);
    denied(x.decide('default/frontend', WORLD, 443).egress);
    assert.equal(x.allowed('default/other', 'default/backend', 80), true);
  });

  void it('matchExpressions AND (and-statement.yaml): namespace production AND policy=strict', () => {
    const x = h(`apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: and-statement-policy
spec:
  endpointSelector: {}
  ingress:
  - fromEndpoints:
    - matchExpressions:
      - key: "k8s:io.kubernetes.pod.namespace"
        operator: In
        values:
        - "production"
      - key: "k8s:cilium.example.com/policy"
        operator: In
        values:
        - "strict"
`);
    decidedBy(x.decide('production/strict', 'default/backend', 80).ingress, { name: 'and-statement-policy', index: 0 });
    denied(x.decide('production/lax', 'default/backend', 80).ingress);
    denied(x.decide('default/strict', 'default/backend', 80).ingress);
    // endpointSelector {} in a CNP selects only its own namespace.
    assert.equal(x.decide('default/frontend', 'ns1/leia', 80).ingress.reason, 'not-selected');
  });

  void it('matchExpressions OR (or-statement.yaml): two selectors in one fromEndpoints', () => {
    const x = h(`apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: or-statement-policy
spec:
  endpointSelector: {}
  ingress:
  - fromEndpoints:
    - matchExpressions:
      - key: "k8s:io.kubernetes.pod.namespace"
        operator: In
        values:
        - "production"
    - matchExpressions:
      - key: "k8s:cilium.example.com/policy"
        operator: In
        values:
        - "strict"
`);
    assert.equal(x.allowed('production/lax', 'default/backend', 80), true);
    assert.equal(x.allowed('production/strict', 'default/backend', 80), true);
    assert.equal(x.allowed('default/strict', 'default/backend', 80), true);
    denied(x.decide('default/frontend', 'default/backend', 80).ingress);
    denied(x.decide('ns1/luke', 'default/backend', 80).ingress);
  });

  void it('matchExpressions NotIn and Exists', () => {
    const x = h(`apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: expr
spec:
  endpointSelector:
    matchExpressions:
    - {key: role, operator: Exists}
  ingress:
  - fromEndpoints:
    - matchExpressions:
      - {key: role, operator: NotIn, values: [frontend, other]}
`);
    assert.equal(x.allowed('default/public', 'default/backend', 80), true);
    denied(x.decide('default/frontend', 'default/backend', 80).ingress);
    // A NotIn selector in a CNP still only matches pods of the policy's namespace, never the world.
    denied(x.decide(WORLD, 'default/backend', 80).ingress);
    denied(x.decide('ns1/luke', 'default/backend', 80).ingress);
    assert.equal(x.decide('default/frontend', 'default/service', 80).ingress.reason, 'not-selected');
  });
});

void describe('namespaces: CiliumNetworkPolicy vs CiliumClusterwideNetworkPolicy (kubernetes.rst)', () => {
  void it('namespace-policy.yaml: ns1/leia accepts luke from ns2 via k8s:io.kubernetes.pod.namespace', () => {
    const x = h(`apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: k8s-expose-across-namespace
  namespace: ns1
spec:
  endpointSelector:
    matchLabels:
      name: leia
  ingress:
  - fromEndpoints:
    - matchLabels:
        k8s:io.kubernetes.pod.namespace: ns2
        name: luke
`);
    const d = x.decide('ns2/luke', 'ns1/leia', 80).ingress;
    decidedBy(d, { name: 'k8s-expose-across-namespace', index: 0 });
    assert.equal(d.rule?.policy.namespace, 'ns1');
    denied(x.decide('ns1/luke', 'ns1/leia', 80).ingress);
    denied(x.decide('ns2/other', 'ns1/leia', 80).ingress);
    // The endpointSelector is scoped to ns1: ns2/leia is not selected.
    assert.equal(x.decide('ns2/other', 'ns2/leia', 80).ingress.reason, 'not-selected');
  });

  void it('a CNP fromEndpoints without a namespace matches only its own namespace', () => {
    const x = h(`apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: leia-from-luke
  namespace: ns1
spec:
  endpointSelector:
    matchLabels:
      name: leia
  ingress:
  - fromEndpoints:
    - matchLabels:
        name: luke
`);
    assert.equal(x.allowed('ns1/luke', 'ns1/leia', 80), true);
    denied(x.decide('ns2/luke', 'ns1/leia', 80).ingress);
  });

  void it('clusterscope-policy.yaml: a CCNP selects and admits across every namespace', () => {
    const x = h(`apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata:
  name: clusterwide-policy-example
spec:
  description: "ingress to leia from luke"
  endpointSelector:
    matchLabels:
      name: leia
  ingress:
  - fromEndpoints:
    - matchLabels:
        name: luke
`);
    const d = x.decide('ns2/luke', 'ns1/leia', 80).ingress;
    decidedBy(d, { name: 'clusterwide-policy-example', kind: 'CiliumClusterwideNetworkPolicy', index: 0 });
    assert.equal(d.rule?.policy.namespace, undefined);
    assert.equal(x.allowed('ns1/luke', 'ns2/leia', 80), true);
    assert.equal(x.allowed('ns1/luke', 'ns1/leia', 80), true);
    denied(x.decide('ns2/other', 'ns1/leia', 80).ingress);
    denied(x.decide(WORLD, 'ns2/leia', 80).ingress);
  });

  void it('wildcard-from-endpoints.yaml: CCNP fromEndpoints [{}] is every pod, but no reserved identity', () => {
    const x = h(`apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata:
  name: wildcard-from-endpoints
spec:
  endpointSelector:
    matchLabels:
      k8s:io.kubernetes.pod.namespace: kube-system
      k8s-app: kube-dns
  ingress:
  - fromEndpoints:
    - {}
    toPorts:
    - ports:
      - port: "53"
        protocol: UDP
`);
    decidedBy(x.decide('default/frontend', 'kube-system/kube-dns', 53, { protocol: 'UDP' }).ingress, { name: 'wildcard-from-endpoints', kind: 'CiliumClusterwideNetworkPolicy', index: 0 });
    assert.equal(x.allowed('ns2/other', 'kube-system/kube-dns', 53, { protocol: 'UDP' }), true);
    denied(x.decide('ns2/other', 'kube-system/kube-dns', 53, { protocol: 'TCP' }).ingress);
    denied(x.decide(WORLD, 'kube-system/kube-dns', 53, { protocol: 'UDP' }).ingress);
    denied(x.decide(NODE_2, 'kube-system/kube-dns', 53, { protocol: 'UDP' }).ingress);
  });

  void it('kubedns-policy.yaml: every pod of the namespace may reach kube-dns in kube-system on UDP 53', () => {
    const x = h(`apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: allow-to-kubedns
  namespace: default
spec:
  endpointSelector:
    {}
  egress:
  - toEndpoints:
    - matchLabels:
        k8s:io.kubernetes.pod.namespace: kube-system
        k8s-app: kube-dns
    toPorts:
    - ports:
      - port: '53'
        protocol: UDP
`);
    decidedBy(x.decide('default/frontend', 'kube-system/kube-dns', 53, { protocol: 'UDP' }).egress, { name: 'allow-to-kubedns', index: 0 });
    denied(x.decide('default/frontend', 'kube-system/kube-dns', 53, { protocol: 'TCP' }).egress);
    denied(x.decide('default/frontend', 'default/backend', 80).egress);
    assert.equal(x.decide('ns1/luke', 'ns1/leia', 80).egress.reason, 'not-selected');
  });

  void it('isolate-namespaces.yaml: fromEndpoints [{}] in a CNP admits its own namespace only', () => {
    const x = h(`apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: isolate-ns1
  namespace: ns1
spec:
  endpointSelector:
    matchLabels:
      {}
  ingress:
  - fromEndpoints:
    - matchLabels:
        {}
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: isolate-ns1
  namespace: ns2
spec:
  endpointSelector:
    matchLabels:
      {}
  ingress:
  - fromEndpoints:
    - matchLabels:
        {}
`);
    assert.equal(x.allowed('ns1/luke', 'ns1/leia', 80), true);
    assert.equal(x.allowed('ns2/luke', 'ns2/leia', 80), true);
    const d = x.decide('ns1/luke', 'ns2/leia', 80).ingress;
    denied(d);
    assert.deepEqual(d.selectedBy.map((p) => `${p.namespace}/${p.name}`), ['ns2/isolate-ns1']);
    denied(x.decide('default/frontend', 'ns1/leia', 80).ingress);
    assert.equal(x.allowed('ns1/luke', 'default/backend', 80), true);
  });

  void it('serviceaccount-policy.yaml: service account leia accepts service account luke', () => {
    const x = h(`apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: k8s-svc-account
spec:
  endpointSelector:
    matchLabels:
      io.cilium.k8s.policy.serviceaccount: leia
  ingress:
  - fromEndpoints:
    - matchLabels:
        io.cilium.k8s.policy.serviceaccount: luke
`);
    decidedBy(x.decide('default/luke-sa', 'default/leia-sa', 80).ingress, { name: 'k8s-svc-account', index: 0 });
    denied(x.decide('default/han-sa', 'default/leia-sa', 80).ingress);
  });
});

void describe('entities (layer3.rst "Entities Based")', () => {
  void it('world.yaml: role=public accepts the world and nothing in the cluster', () => {
    const x = h(`apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: from-world-to-role-public
spec:
  endpointSelector:
    matchLabels:
      role: public
  ingress:
    - fromEntities:
      - world
`);
    const d = x.decide(WORLD, 'default/public', 443);
    assert.equal(d.verdict, 'allowed');
    assert.equal(d.egress.reason, 'outside-cluster');
    decidedBy(d.ingress, { name: 'from-world-to-role-public', index: 0 });
    assert.equal(x.allowed('2001:db8::1', 'default/public', 443), true);
    denied(x.decide('default/frontend', 'default/public', 443).ingress);
    denied(x.decide(NODE_2, 'default/public', 443).ingress);
  });

  void it('host.yaml: env=dev may reach its own node only', () => {
    const x = h(`apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: dev-to-host
spec:
  endpointSelector:
    matchLabels:
      env: dev
  egress:
    - toEntities:
      - host
`);
    decidedBy(x.decide('default/dev', NODE_1, 10250).egress, { name: 'dev-to-host', index: 0 });
    denied(x.decide('default/dev', NODE_2, 10250).egress);
    denied(x.decide('default/dev', CONTROL_PLANE, 6443).egress);
    denied(x.decide('default/dev', WORLD, 443).egress);
    denied(x.decide('default/dev', 'default/backend', 80).egress);
  });

  void it('remote-node: every other node (a control-plane node too), not the local one', () => {
    const x = h(`apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: dev-to-remote-nodes
spec:
  endpointSelector:
    matchLabels:
      env: dev
  egress:
    - toEntities:
      - remote-node
`);
    assert.equal(x.allowed('default/dev', NODE_2, 10250), true);
    assert.equal(x.allowed('default/dev', CONTROL_PLANE, 10250), true);
    denied(x.decide('default/dev', NODE_1, 10250).egress);
    denied(x.decide('default/dev', WORLD, 443).egress);
  });

  void it('apiserver.yaml: kube-apiserver is the control-plane node', () => {
    const x = h(`apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: dev-to-kube-apiserver
spec:
  endpointSelector:
    matchLabels:
      env: dev
  egress:
    - toEntities:
      - kube-apiserver
`);
    decidedBy(x.decide('default/dev', CONTROL_PLANE, 6443).egress, { name: 'dev-to-kube-apiserver', index: 0 });
    denied(x.decide('default/dev', NODE_2, 6443).egress);
    denied(x.decide('default/dev', NODE_1, 6443).egress);
    denied(x.decide('default/dev', WORLD, 6443).egress);
  });

  void it('cluster: every pod and node, not the world', () => {
    const x = h(`apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: dev-to-cluster
spec:
  endpointSelector:
    matchLabels:
      env: dev
  egress:
    - toEntities:
      - cluster
`);
    for (const to of ['default/backend', 'ns2/other', 'kube-system/kube-dns', NODE_1, NODE_2, CONTROL_PLANE]) assert.equal(x.allowed('default/dev', to, 80), true, to);
    denied(x.decide('default/dev', WORLD, 80).egress);
  });

  void it('all: the world as well as the cluster', () => {
    const x = h(`apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: dev-to-all
spec:
  endpointSelector:
    matchLabels:
      env: dev
  egress:
    - toEntities:
      - all
`);
    for (const to of ['default/backend', 'ns2/other', NODE_1, NODE_2, CONTROL_PLANE, WORLD, '2001:db8::1']) assert.equal(x.allowed('default/dev', to, 80), true, to);
  });

  void it('from_world_deny.yaml: everything but the world may reach every pod', () => {
    const x = h(`apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata:
  name: external-lockdown
spec:
  endpointSelector: {}
  ingressDeny:
  - fromEntities:
    - "world"
  ingress:
  - fromEntities:
    - "all"
`);
    const d = x.decide(WORLD, 'default/public', 80).ingress;
    decidedBy(d, { name: 'external-lockdown', kind: 'CiliumClusterwideNetworkPolicy', deny: true, index: 0 });
    decidedBy(x.decide('default/frontend', 'ns1/leia', 80).ingress, { name: 'external-lockdown', kind: 'CiliumClusterwideNetworkPolicy', index: 0 });
    assert.equal(x.allowed(NODE_2, 'default/backend', 80), true);
  });
});

void describe('CIDR rules (layer3.rst "IP/CIDR based")', () => {
  const cidrPolicy = `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: cidr-rule
spec:
  endpointSelector:
    matchLabels:
      app: myService
  egress:
  - toCIDR:
    - 20.1.1.1/32
  - toCIDRSet:
    - cidr: 10.0.0.0/8
      except:
      - 10.96.0.0/12
`;
  void it('cidr.yaml: toCIDR and toCIDRSet with except', () => {
    const x = h(cidrPolicy);
    decidedBy(x.decide('default/myservice', '20.1.1.1', 443).egress, { name: 'cidr-rule', index: 0 });
    denied(x.decide('default/myservice', '20.1.1.2', 443).egress);
    decidedBy(x.decide('default/myservice', '10.1.2.3', 443).egress, { name: 'cidr-rule', index: 1 });
    assert.equal(x.allowed('default/myservice', '10.112.0.1', 443), true);
    denied(x.decide('default/myservice', '10.96.0.10', 443).egress);
    denied(x.decide('default/myservice', '10.111.255.254', 443).egress);
  });

  void it('CIDR rules never match pod IPs, even inside the CIDR', () => {
    const x = h(cidrPolicy);
    // 10.244.2.12 is default/other, inside 10.0.0.0/8.
    denied(x.decide('default/myservice', '10.244.2.12', 443).egress);
    denied(x.decide('default/myservice', 'default/other', 443).egress);
    // An unused address in the pod range is not a Cilium endpoint: the CIDR rule applies.
    assert.equal(x.allowed('default/myservice', '10.244.9.9', 443), true);
  });

  void it('CIDR rules never match node IPs (fromCIDR, fromCIDRSet with except)', () => {
    const x = h(`apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: from-cidr
spec:
  endpointSelector:
    matchLabels:
      role: backend
  ingress:
  - fromCIDR:
    - 10.0.0.0/8
  - fromCIDRSet:
    - cidr: 192.168.0.0/16
      except:
      - 192.168.2.0/24
`);
    decidedBy(x.decide('10.1.1.1', 'default/backend', 80).ingress, { name: 'from-cidr', index: 0 });
    decidedBy(x.decide('192.168.5.5', 'default/backend', 80).ingress, { name: 'from-cidr', index: 1 });
    denied(x.decide('192.168.2.5', 'default/backend', 80).ingress);
    denied(x.decide('172.16.0.1', 'default/backend', 80).ingress);
    // A pod (10.244.2.12) and a remote node (192.168.1.2) are inside the CIDRs but are not matched.
    denied(x.decide('default/other', 'default/backend', 80).ingress);
    denied(x.decide(NODE_2, 'default/backend', 80).ingress);
    denied(x.decide(CONTROL_PLANE, 'default/backend', 80).ingress);
  });

  void it('cidr_l4_combined.yaml: toCIDR with toPorts', () => {
    const x = h(`apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: cidr-l4-rule
spec:
  endpointSelector:
    matchLabels:
      role: crawler
  egress:
  - toCIDR:
    - 192.0.2.0/24
    toPorts:
    - ports:
      - port: "80"
        protocol: TCP
`);
    decidedBy(x.decide('default/crawler', '192.0.2.10', 80).egress, { name: 'cidr-l4-rule', index: 0 });
    denied(x.decide('default/crawler', '192.0.2.10', 443).egress);
    denied(x.decide('default/crawler', '192.0.2.10', 80, { protocol: 'UDP' }).egress);
    denied(x.decide('default/crawler', '198.51.100.1', 80).egress);
  });
});

void describe('toPorts (layer4.rst)', () => {
  void it('l4.yaml: egress to port 80/TCP of anyone', () => {
    const x = h(`apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: l4-rule
spec:
  endpointSelector:
    matchLabels:
      app: myService
  egress:
    - toPorts:
      - ports:
        - port: "80"
          protocol: TCP
`);
    decidedBy(x.decide('default/myservice', WORLD, 80).egress, { name: 'l4-rule', index: 0 });
    assert.equal(x.allowed('default/myservice', 'default/backend', 80), true);
    assert.equal(x.allowed('default/myservice', NODE_2, 80), true);
    denied(x.decide('default/myservice', WORLD, 443).egress);
    denied(x.decide('default/myservice', WORLD, 80, { protocol: 'UDP' }).egress);
  });

  void it('l4_port_range.yaml: port 80 with endPort 444', () => {
    const x = h(`apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: l4-port-range-rule
spec:
  endpointSelector:
    matchLabels:
      app: myService
  egress:
    - toPorts:
      - ports:
        - port: "80"
          endPort: 444
          protocol: TCP
`);
    for (const p of [80, 81, 443, 444]) assert.equal(x.allowed('default/myservice', WORLD, p), true, String(p));
    for (const p of [79, 445, 8080]) denied(x.decide('default/myservice', WORLD, p).egress);
    denied(x.decide('default/myservice', WORLD, 443, { protocol: 'UDP' }).egress);
  });

  void it('l3_l4_combined.yaml: frontend may reach backend on 80/TCP only', () => {
    const x = h(`apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: l4-rule
spec:
  endpointSelector:
    matchLabels:
      role: backend
  ingress:
  - fromEndpoints:
    - matchLabels:
        role: frontend
    toPorts:
    - ports:
      - port: "80"
        protocol: TCP
`);
    decidedBy(x.decide('default/frontend', 'default/backend', 80).ingress, { name: 'l4-rule', index: 0 });
    denied(x.decide('default/frontend', 'default/backend', 443).ingress);
    denied(x.decide('default/other', 'default/backend', 80).ingress);
  });

  void it('named ports resolve on the destination pod', () => {
    const x = h(`apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: named-port
spec:
  endpointSelector:
    matchLabels:
      app: web
  ingress:
  - fromEndpoints:
    - matchLabels:
        role: frontend
    toPorts:
    - ports:
      - port: http
        protocol: TCP
`);
    decidedBy(x.decide('default/frontend', 'default/web', 8080).ingress, { name: 'named-port', index: 0 });
    denied(x.decide('default/frontend', 'default/web', 9090).ingress);
    denied(x.decide('default/frontend', 'default/web', 80).ingress);
  });

  void it('port "0" (or no port protocol ANY) matches every port', () => {
    const x = h(`apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: any-port
spec:
  endpointSelector:
    matchLabels:
      role: backend
  ingress:
  - fromEndpoints:
    - matchLabels:
        role: frontend
    toPorts:
    - ports:
      - port: "0"
        protocol: ANY
`);
    assert.equal(x.allowed('default/frontend', 'default/backend', 1), true);
    assert.equal(x.allowed('default/frontend', 'default/backend', 65535, { protocol: 'UDP' }), true);
    denied(x.decide('default/other', 'default/backend', 80).ingress);
  });
});

void describe('L7 HTTP (layer7.rst)', () => {
  void it('http.yaml: GET /path1$ and PUT /path2$ with X-My-Header: true', () => {
    const x = h(`apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: l7-rule
spec:
  endpointSelector:
    matchLabels:
      app: myService
  ingress:
  - toPorts:
    - ports:
      - port: '80'
        protocol: TCP
      rules:
        http:
        - method: GET
          path: "/path1$"
        - method: PUT
          path: "/path2$"
          headers:
          - 'X-My-Header: true'
`);
    const get = x.decide('default/frontend', 'default/myservice', 80, { http: { method: 'GET', path: '/path1' } }).ingress;
    decidedBy(get, { name: 'l7-rule', index: 0 });
    assert.equal(get.http?.index, 0);
    const put = x.decide('default/frontend', 'default/myservice', 80, { http: { method: 'PUT', path: '/path2', headers: { 'x-my-header': 'true' } } }).ingress;
    decidedBy(put, { name: 'l7-rule', index: 0 });
    assert.equal(put.http?.index, 1);
    denied(x.decide('default/frontend', 'default/myservice', 80, { http: { method: 'PUT', path: '/path2' } }).ingress, 'l7-denied');
    denied(x.decide('default/frontend', 'default/myservice', 80, { http: { method: 'PUT', path: '/path2', headers: { 'X-My-Header': 'false' } } }).ingress, 'l7-denied');
    denied(x.decide('default/frontend', 'default/myservice', 80, { http: { method: 'POST', path: '/path1' } }).ingress, 'l7-denied');
    denied(x.decide('default/frontend', 'default/myservice', 80, { http: { method: 'GET', path: '/path1/x' } }).ingress, 'l7-denied');
    denied(x.decide('default/frontend', 'default/myservice', 80, { http: { method: 'GET', path: '/path2' } }).ingress, 'l7-denied');
    // No request given: the connection is allowed and the port's L7 rules are listed.
    const conn = x.decide('default/frontend', 'default/myservice', 80).ingress;
    assert.equal(conn.verdict, 'allowed');
    assert.deepEqual(conn.l7?.rules.map((r) => r.http.map((e) => e.index)), [[0, 1]]);
    denied(x.decide('default/frontend', 'default/myservice', 81).ingress);
  });

  void it('l7.yaml: GET /public from env=prod; the path is matched in full', () => {
    const x = h(`apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: rule1
spec:
  description: "Allow HTTP GET /public from env=prod to app=service"
  endpointSelector:
    matchLabels:
      app: service
  ingress:
  - fromEndpoints:
    - matchLabels:
        env: prod
    toPorts:
    - ports:
      - port: "80"
        protocol: TCP
      rules:
        http:
        - method: "GET"
          path: "/public"
`);
    const ok = x.decide('default/prod-client', 'default/service', 80, { http: { method: 'GET', path: '/public' } }).ingress;
    decidedBy(ok, { name: 'rule1', index: 0 });
    assert.deepEqual(ok.http, { index: 0, text: ok.http?.text });
    denied(x.decide('default/prod-client', 'default/service', 80, { http: { method: 'GET', path: '/public/x' } }).ingress, 'l7-denied');
    denied(x.decide('default/prod-client', 'default/service', 80, { http: { method: 'GET', path: '/private' } }).ingress, 'l7-denied');
    denied(x.decide('default/prod-client', 'default/service', 80, { http: { method: 'POST', path: '/public' } }).ingress, 'l7-denied');
    denied(x.decide('default/frontend', 'default/service', 80, { http: { method: 'GET', path: '/public' } }).ingress);
  });

  void it('host, presence-only headers and headerMatches', () => {
    const x = h(`apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: l7-headers
spec:
  endpointSelector:
    matchLabels:
      app: service
  ingress:
  - toPorts:
    - ports:
      - port: "80"
        protocol: TCP
      rules:
        http:
        - host: "api\\\\.example\\\\.com"
          path: "/v1/.*"
        - path: "/presence"
          headers:
          - X-Token
        - path: "/matches"
          headerMatches:
          - name: X-Tenant
            value: blue
          - name: X-Trace
`);
    const req = (path: string, host?: string, headers?: Record<string, string>) =>
      x.decide('default/frontend', 'default/service', 80, { http: { method: 'GET', path, ...(host ? { host } : {}), ...(headers ? { headers } : {}) } }).ingress;
    assert.equal(req('/v1/users', 'api.example.com').http?.index, 0);
    denied(req('/v1/users', 'apixexample.com'), 'l7-denied');
    denied(req('/v1/users', 'www.api.example.com'), 'l7-denied');
    denied(req('/v2/users', 'api.example.com'), 'l7-denied');
    assert.equal(req('/presence', undefined, { 'X-Token': 'anything' }).http?.index, 1);
    assert.equal(req('/presence', undefined, { 'x-token': '' }).http?.index, 1);
    denied(req('/presence'), 'l7-denied');
    assert.equal(req('/matches', undefined, { 'X-Tenant': 'blue', 'X-Trace': '1' }).http?.index, 2);
    denied(req('/matches', undefined, { 'X-Tenant': 'green', 'X-Trace': '1' }), 'l7-denied');
    denied(req('/matches', undefined, { 'X-Tenant': 'blue' }), 'l7-denied');
  });

  void it('a gRPC call is POST /package.Service/Method', () => {
    const x = h(`apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: grpc-rule
spec:
  endpointSelector:
    matchLabels:
      app: service
  ingress:
  - fromEndpoints:
    - matchLabels:
        role: frontend
    toPorts:
    - ports:
      - port: "50051"
        protocol: TCP
      rules:
        http:
        - method: "POST"
          path: "/helloworld.Greeter/SayHello"
        - method: "POST"
          path: "/grpc.health.v1.Health/.*"
`);
    const call = (path: string) => x.decide('default/frontend', 'default/service', 50051, { http: { method: 'POST', path, headers: { 'content-type': 'application/grpc' } } }).ingress;
    assert.equal(call('/helloworld.Greeter/SayHello').http?.index, 0);
    assert.equal(call('/grpc.health.v1.Health/Check').http?.index, 1);
    denied(call('/helloworld.Greeter/SayGoodbye'), 'l7-denied');
    denied(call('/helloworld.Greeter/SayHelloAgain'), 'l7-denied');
    denied(x.decide('default/frontend', 'default/service', 50051, { http: { method: 'GET', path: '/helloworld.Greeter/SayHello' } }).ingress, 'l7-denied');
  });

  void it('an L4-only rule and an L7 rule on the same port for the same peer: L4 wins, all HTTP allowed', () => {
    const x = h(`apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: l4-and-l7
spec:
  endpointSelector:
    matchLabels:
      app: service
  ingress:
  - fromEndpoints:
    - matchLabels:
        role: frontend
    toPorts:
    - ports:
      - port: "80"
        protocol: TCP
  - fromEndpoints:
    - matchLabels:
        role: frontend
    toPorts:
    - ports:
      - port: "80"
        protocol: TCP
      rules:
        http:
        - method: GET
          path: /public
`);
    const d = x.decide('default/frontend', 'default/service', 80, { http: { method: 'POST', path: '/private' } }).ingress;
    decidedBy(d, { name: 'l4-and-l7', index: 0 });
    assert.equal(d.http, undefined);
    assert.equal(d.l7, undefined);
  });

  void it('an L4-only rule and an L7 rule on the same port for different peers: each peer keeps its own', () => {
    const x = h(`apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: l4-and-l7-peers
spec:
  endpointSelector:
    matchLabels:
      app: service
  ingress:
  - fromEndpoints:
    - matchLabels:
        role: frontend
    toPorts:
    - ports:
      - port: "80"
        protocol: TCP
  - fromEndpoints:
    - matchLabels:
        role: other
    toPorts:
    - ports:
      - port: "80"
        protocol: TCP
      rules:
        http:
        - method: GET
          path: /public
`);
    decidedBy(x.decide('default/frontend', 'default/service', 80, { http: { method: 'POST', path: '/private' } }).ingress, { name: 'l4-and-l7-peers', index: 0 });
    const ok = x.decide('default/other', 'default/service', 80, { http: { method: 'GET', path: '/public' } }).ingress;
    decidedBy(ok, { name: 'l4-and-l7-peers', index: 1 });
    assert.equal(ok.http?.index, 0);
    const no = x.decide('default/other', 'default/service', 80, { http: { method: 'POST', path: '/private' } }).ingress;
    denied(no, 'l7-denied');
    assert.equal(no.rule?.index, 1);
    denied(x.decide('default/dev', 'default/service', 80, { http: { method: 'GET', path: '/public' } }).ingress);
  });
});

void describe('deny policies (deny.rst)', () => {
  void it('egress-deny.yaml: egressDeny wins over toEntities all', () => {
    const x = h(`apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: deny-egress-example
spec:
  endpointSelector:
    matchLabels:
      role: frontend
  egress:
  - toEntities:
    - all
  egressDeny:
  - toEndpoints:
    - matchLabels:
        role: backend
`);
    decidedBy(x.decide('default/frontend', 'default/backend', 80).egress, { name: 'deny-egress-example', deny: true, index: 0 });
    decidedBy(x.decide('default/frontend', 'default/other', 80).egress, { name: 'deny-egress-example', index: 0 });
    assert.equal(x.allowed('default/frontend', WORLD, 443), true);
  });

  void it('an ingressDeny wins over a Kubernetes NetworkPolicy allow', () => {
    const x = h(`apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: allow-frontend
  namespace: default
spec:
  podSelector:
    matchLabels:
      role: backend
  ingress:
  - from:
    - podSelector:
        matchLabels:
          role: frontend
    ports:
    - port: 80
      protocol: TCP
`, `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: deny-frontend-80
spec:
  endpointSelector:
    matchLabels:
      role: backend
  ingressDeny:
  - fromEndpoints:
    - matchLabels:
        role: frontend
    toPorts:
    - ports:
      - port: "80"
        protocol: TCP
`);
    decidedBy(x.decide('default/frontend', 'default/backend', 80).ingress, { name: 'deny-frontend-80', deny: true, index: 0 });
    denied(x.decide('default/other', 'default/backend', 80).ingress);
    denied(x.decide('default/frontend', 'default/backend', 443).ingress);
  });

  void it('a policy with only ingressDeny puts the endpoint into ingress default-deny', () => {
    const x = h(`apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: deny-only
spec:
  endpointSelector:
    matchLabels:
      role: backend
  ingressDeny:
  - fromEndpoints:
    - matchLabels:
        role: frontend
`);
    decidedBy(x.decide('default/frontend', 'default/backend', 80).ingress, { name: 'deny-only', deny: true, index: 0 });
    const other = x.decide('default/other', 'default/backend', 80).ingress;
    denied(other);
    assert.deepEqual(other.selectedBy.map((p) => p.name), ['deny-only']);
    // Egress is untouched.
    assert.equal(x.decide('default/backend', 'default/other', 80).egress.reason, 'not-selected');
  });

  void it('deny only some traffic by pairing the deny with an allow-all (deny.rst)', () => {
    const x = h(`apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: deny-some
spec:
  endpointSelector:
    matchLabels:
      role: backend
  ingress:
  - fromEntities:
    - all
  ingressDeny:
  - fromEndpoints:
    - matchLabels:
        role: frontend
`);
    denied(x.decide('default/frontend', 'default/backend', 80).ingress, 'denied-by-rule');
    assert.equal(x.allowed('default/other', 'default/backend', 80), true);
    assert.equal(x.allowed(WORLD, 'default/backend', 80), true);
  });

  void it('a deny in a CCNP wins over an allow in a CNP', () => {
    const x = h(`apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: allow-all-in
spec:
  endpointSelector: {}
  ingress:
  - fromEntities: [all]
`, `apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata:
  name: no-ssh
spec:
  endpointSelector: {}
  ingressDeny:
  - toPorts:
    - ports:
      - port: "22"
        protocol: TCP
`);
    decidedBy(x.decide('default/frontend', 'default/backend', 22).ingress, { name: 'no-ssh', kind: 'CiliumClusterwideNetworkPolicy', deny: true, index: 0 });
    decidedBy(x.decide('default/frontend', 'default/backend', 23).ingress, { name: 'allow-all-in', index: 0 });
    // ns1 pods are selected only by the CCNP, which has only a deny: default-deny for them.
    denied(x.decide('default/frontend', 'ns1/leia', 80).ingress);
  });
});

void describe('default deny (intro.rst "Endpoint default policy")', () => {
  void it('egress-default-deny.yaml: egress [{}] denies all egress', () => {
    const x = h(`apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: deny-all-egress
spec:
  endpointSelector:
    matchLabels:
      role: restricted
  egress:
  - {}
`);
    for (const to of ['default/backend', WORLD, NODE_1, NODE_2]) {
      const d = x.decide('default/restricted', to, 80).egress;
      denied(d);
      assert.deepEqual(d.selectedBy.map((p) => p.name), ['deny-all-egress']);
    }
    assert.equal(x.decide('default/frontend', 'default/restricted', 80).ingress.reason, 'not-selected');
  });

  void it('ingress [{}] denies all ingress (except from the local host)', () => {
    const x = h(`apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: deny-all-ingress
spec:
  endpointSelector:
    matchLabels:
      role: restricted
  ingress:
  - {}
`);
    denied(x.decide('default/frontend', 'default/restricted', 80).ingress);
    denied(x.decide(WORLD, 'default/restricted', 80).ingress);
    denied(x.decide(NODE_2, 'default/restricted', 80).ingress);
    assert.equal(x.decide(NODE_1, 'default/restricted', 80).ingress.reason, 'local-host');
  });

  void it('ingress-allow-all.yaml: fromEndpoints [{}] admits every pod of the namespace', () => {
    const x = h(`apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: allow-all-to-victim
spec:
  endpointSelector:
    matchLabels:
      role: victim
  ingress:
  - fromEndpoints:
    - {}
`);
    decidedBy(x.decide('default/frontend', 'default/victim', 80).ingress, { name: 'allow-all-to-victim', index: 0 });
    denied(x.decide('ns1/luke', 'default/victim', 80).ingress);
    denied(x.decide(WORLD, 'default/victim', 80).ingress);
  });

  void it('enableDefaultDeny: false adds allows without isolating the endpoint', () => {
    const cnp = `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: non-isolating
spec:
  endpointSelector:
    matchLabels:
      role: backend
  enableDefaultDeny:
    ingress: false
  ingress:
  - fromEndpoints:
    - matchLabels:
        role: frontend
    toPorts:
    - ports:
      - port: "80"
        protocol: TCP
  ingressDeny:
  - fromEndpoints:
    - matchLabels:
        role: other
    toPorts:
    - ports:
      - port: "22"
        protocol: TCP
`;
    const x = h(cnp);
    assert.equal(x.allowed('default/other', 'default/backend', 80), true);
    assert.equal(x.allowed(WORLD, 'default/backend', 443), true);
    assert.equal(x.allowed('default/frontend', 'default/backend', 80), true);
    assert.deepEqual(x.decide('default/other', 'default/backend', 80).ingress.selectedBy, []);
    // Its deny rules still apply.
    decidedBy(x.decide('default/other', 'default/backend', 22).ingress, { name: 'non-isolating', deny: true, index: 0 });

    // Another policy that does isolate: the non-isolating policy's allows still count.
    const y = h(cnp, `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: isolate-backend
  namespace: default
spec:
  podSelector:
    matchLabels:
      role: backend
  ingress:
  - from:
    - podSelector:
        matchLabels:
          role: other
`);
    decidedBy(y.decide('default/frontend', 'default/backend', 80).ingress, { name: 'non-isolating', index: 0 });
    denied(y.decide('default/frontend', 'default/backend', 443).ingress);
    decidedBy(y.decide('default/other', 'default/backend', 80).ingress, { name: 'isolate-backend', kind: 'NetworkPolicy', index: 0 });
    denied(y.decide('default/dev', 'default/backend', 80).ingress);
  });
});

void describe('policy enforcement modes (intro.rst "Policy Enforcement Modes")', () => {
  const policy = `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: l3-rule
spec:
  endpointSelector:
    matchLabels:
      role: backend
  ingress:
  - fromEndpoints:
    - matchLabels:
        role: frontend
  ingressDeny:
  - fromEndpoints:
    - matchLabels:
        role: other
`;
  void it('default: only selected endpoints are enforced', () => {
    const x = h(policy);
    assert.equal(x.decide('default/dev', 'default/frontend', 80, { mode: 'default' }).ingress.reason, 'not-selected');
    denied(x.decide('default/dev', 'default/backend', 80, { mode: 'default' }).ingress);
  });

  void it('always: every endpoint is enforced, selected or not', () => {
    const x = h(policy);
    const d = x.decide('default/dev', 'default/frontend', 80, { mode: 'always' });
    assert.equal(d.verdict, 'denied');
    denied(d.egress);
    denied(d.ingress);
    denied(x.decide(WORLD, 'default/frontend', 80, { mode: 'always' }).ingress);
    // Allows still allow; the frontend's egress has no allow, though.
    const f = x.decide('default/frontend', 'default/backend', 80, { mode: 'always' });
    decidedBy(f.ingress, { name: 'l3-rule', index: 0 });
    denied(f.egress);
    // With no policy at all, always still enforces.
    denied(h().decide('default/dev', 'default/frontend', 80, { mode: 'always' }).ingress);
  });

  void it('never: nothing is enforced, not even deny rules', () => {
    const x = h(policy);
    for (const from of ['default/dev', 'default/other', WORLD]) {
      const d = x.decide(from, 'default/backend', 80, { mode: 'never' });
      assert.equal(d.verdict, 'allowed', from);
      assert.equal(d.ingress.reason, 'enforcement-disabled');
    }
  });
});

void describe('host policies (host-firewall.rst, demo-host-policy.yaml)', () => {
  const demo = `apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata:
  name: demo-host-policy
spec:
  description: ""
  nodeSelector:
    matchLabels:
      node-access: ssh
  ingress:
  - fromEntities:
    - cluster
  - toPorts:
    - ports:
      - port: "22"
        protocol: TCP
`;
  void it('demo-host-policy.yaml: the cluster may reach the node; the world only on 22/TCP', () => {
    const x = h(demo);
    decidedBy(x.decide('default/frontend', NODE_2, 10250).ingress, { name: 'demo-host-policy', kind: 'CiliumClusterwideNetworkPolicy', index: 0 });
    decidedBy(x.decide(NODE_1, NODE_2, 10250).ingress, { name: 'demo-host-policy', kind: 'CiliumClusterwideNetworkPolicy', index: 0 });
    decidedBy(x.decide(WORLD, NODE_2, 22).ingress, { name: 'demo-host-policy', kind: 'CiliumClusterwideNetworkPolicy', index: 1 });
    denied(x.decide(WORLD, NODE_2, 80).ingress);
    // Nodes without the label are not selected.
    assert.equal(x.decide(WORLD, NODE_1, 80).ingress.reason, 'not-selected');
    // Host policies do not apply to pod-to-pod traffic.
    assert.equal(x.decide(WORLD, 'default/other', 80).ingress.reason, 'not-selected');
  });

  void it('demo-host-policy.yaml with its icmps rule is accepted', () => {
    const x = h(`${demo}  - icmps:
    - fields:
      - type: EchoRequest
        family: IPv4
`);
    assert.equal(x.allowed(WORLD, NODE_2, 22), true);
    denied(x.decide(WORLD, NODE_2, 80).ingress);
  });
});

void describe('Kubernetes NetworkPolicy and Cilium policies on one endpoint (intro.rst, deny.rst)', () => {
  const knp = `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: knp-frontend-80
  namespace: default
spec:
  podSelector:
    matchLabels:
      role: backend
  ingress:
  - from:
    - podSelector:
        matchLabels:
          role: frontend
    ports:
    - port: 80
`;
  const cnp = `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: cnp-other-443
spec:
  endpointSelector:
    matchLabels:
      role: backend
  ingress:
  - fromEndpoints:
    - matchLabels:
        role: other
    toPorts:
    - ports:
      - port: "443"
        protocol: TCP
`;
  void it('allows are a union; anything neither allows is denied', () => {
    const x = h(knp, cnp);
    decidedBy(x.decide('default/frontend', 'default/backend', 80).ingress, { name: 'knp-frontend-80', kind: 'NetworkPolicy', index: 0 });
    decidedBy(x.decide('default/other', 'default/backend', 443).ingress, { name: 'cnp-other-443', index: 0 });
    const d = x.decide('default/frontend', 'default/backend', 443).ingress;
    denied(d);
    assert.deepEqual(d.selectedBy.map((p) => p.name).sort(), ['cnp-other-443', 'knp-frontend-80']);
    denied(x.decide('default/other', 'default/backend', 80).ingress);
    denied(x.decide('default/dev', 'default/backend', 80).ingress);
  });

  void it('any one of them selecting the endpoint isolates it', () => {
    denied(h(knp).decide('default/other', 'default/backend', 443).ingress);
    denied(h(cnp).decide('default/frontend', 'default/backend', 80).ingress);
  });

  void it('a Cilium deny wins over the union', () => {
    const x = h(knp, cnp, `apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata:
  name: deny-frontend
spec:
  endpointSelector:
    matchLabels:
      role: backend
  ingressDeny:
  - fromEndpoints:
    - matchLabels:
        role: frontend
`);
    decidedBy(x.decide('default/frontend', 'default/backend', 80).ingress, { name: 'deny-frontend', kind: 'CiliumClusterwideNetworkPolicy', deny: true, index: 0 });
    assert.equal(x.allowed('default/other', 'default/backend', 443), true);
  });
});
