// Conformance: the policy examples the project's issue names, each with flows for every branch.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { DirectionDecision } from '../../src/policy/decision.ts';
import { harness } from '../support/policy-harness.ts';
import { namespace, NODE_1, NODE_2, NODES, pod } from './fixtures.ts';

const CLUSTER = [
  NODES,
  namespace('default'),
  namespace('myproject-a', { project: 'myproject' }),
  namespace('otherproject', { project: 'otherproject' }),
  namespace('infra-istio'),
  namespace('team-a'),
  namespace('team-b'),
  namespace('monitoring'),
  namespace('apps'),
  namespace('kube-system'),
  pod('default', 'db', { ip: '10.244.1.10', labels: { role: 'db' } }),
  pod('default', 'frontend', { ip: '10.244.1.11', labels: { role: 'frontend' } }),
  pod('default', 'other', { ip: '10.244.2.12', node: 'node-2', labels: { role: 'other' } }),
  pod('myproject-a', 'client', { ip: '10.244.2.20', node: 'node-2', labels: { app: 'client' } }),
  pod('otherproject', 'client', { ip: '10.244.2.21', node: 'node-2', labels: { app: 'client' } }),
  pod('infra-istio', 'istiod', { ip: '10.244.1.30', labels: { app: 'istiod' } }),
  pod('team-a', 'a1', { ip: '10.244.1.40', labels: { app: 'a1' } }),
  pod('team-a', 'a2', { ip: '10.244.2.41', node: 'node-2', labels: { app: 'a2' } }),
  pod('team-b', 'b1', { ip: '10.244.2.42', node: 'node-2', labels: { app: 'b1' } }),
  pod('monitoring', 'prometheus', { ip: '10.244.1.50', sa: 'prometheus', labels: { app: 'prometheus' } }),
  pod('monitoring', 'grafana', { ip: '10.244.1.51', sa: 'grafana', labels: { app: 'grafana' } }),
  pod('default', 'impostor', { ip: '10.244.1.52', sa: 'prometheus', labels: { app: 'prometheus' } }),
  pod('apps', 'api', { ip: '10.244.2.60', node: 'node-2', labels: { app: 'api' } }),
  pod('apps', 'worker', { ip: '10.244.1.61', labels: { app: 'worker' } }),
  pod('kube-system', 'metrics-server', { ip: '10.244.1.70', sa: 'metrics-server', labels: { 'k8s-app': 'metrics-server' } }),
  pod('kube-system', 'coredns', { ip: '10.244.1.71', labels: { 'k8s-app': 'kube-dns' } }),
].join('---\n');

const h = (...policies: string[]) => harness(CLUSTER, ...policies);

function decidedBy(d: DirectionDecision, exp: { name: string; kind: string; index?: number; deny?: boolean }): void {
  assert.equal(d.verdict, exp.deny ? 'denied' : 'allowed');
  assert.equal(d.reason, exp.deny ? 'denied-by-rule' : 'allowed-by-rule');
  assert.equal(d.rule?.policy.name, exp.name);
  assert.equal(d.rule.policy.kind, exp.kind);
  assert.equal(d.rule.direction, d.direction);
  assert.equal(d.rule.deny, exp.deny ?? false);
  if (exp.index !== undefined) assert.equal(d.rule.index, exp.index);
}

function denied(d: DirectionDecision, reason = 'default-deny'): void {
  assert.equal(d.verdict, 'denied');
  assert.equal(d.reason, reason);
}

void describe('a. the kubernetes.io NetworkPolicy example (test-network-policy)', () => {
  const x = h(`apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: test-network-policy
  namespace: default
spec:
  podSelector:
    matchLabels:
      role: db
  policyTypes:
  - Ingress
  - Egress
  ingress:
  - from:
    - ipBlock:
        cidr: 172.17.0.0/16
        except:
        - 172.17.1.0/24
    - namespaceSelector:
        matchLabels:
          project: myproject
    - podSelector:
        matchLabels:
          role: frontend
    ports:
    - protocol: TCP
      port: 6379
  egress:
  - to:
    - ipBlock:
        cidr: 10.0.0.0/24
    ports:
    - protocol: TCP
      port: 5978
`);
  const NP = { name: 'test-network-policy', kind: 'NetworkPolicy', index: 0 };

  void it('ipBlock admits 172.17.0.5 but not the excepted 172.17.1.5', () => {
    const d = x.decide('172.17.0.5', 'default/db', 6379);
    assert.equal(d.verdict, 'allowed');
    assert.equal(d.egress.reason, 'outside-cluster');
    decidedBy(d.ingress, NP);
    assert.equal(d.ingress.rule?.policy.namespace, 'default');
    denied(x.decide('172.17.1.5', 'default/db', 6379).ingress);
    denied(x.decide('172.18.0.5', 'default/db', 6379).ingress);
  });

  void it('namespaceSelector admits any pod of a project=myproject namespace', () => {
    decidedBy(x.decide('myproject-a/client', 'default/db', 6379).ingress, NP);
    denied(x.decide('otherproject/client', 'default/db', 6379).ingress);
  });

  void it('podSelector admits frontend pods of the policy namespace only', () => {
    decidedBy(x.decide('default/frontend', 'default/db', 6379).ingress, NP);
    denied(x.decide('default/other', 'default/db', 6379).ingress);
  });

  void it('only TCP 6379', () => {
    denied(x.decide('default/frontend', 'default/db', 6380).ingress);
    denied(x.decide('default/frontend', 'default/db', 6379, { protocol: 'UDP' }).ingress);
    denied(x.decide('172.17.0.5', 'default/db', 80).ingress);
  });

  void it('egress to 10.0.0.0/24 on TCP 5978 only', () => {
    const d = x.decide('default/db', '10.0.0.7', 5978);
    assert.equal(d.verdict, 'allowed');
    decidedBy(d.egress, NP);
    assert.equal(d.ingress.reason, 'outside-cluster');
    denied(x.decide('default/db', '10.0.1.7', 5978).egress);
    denied(x.decide('default/db', '10.0.0.7', 5979).egress);
    denied(x.decide('default/db', 'default/frontend', 5978).egress);
  });

  void it('other pods are not selected', () => {
    assert.equal(x.decide('default/other', 'default/frontend', 80).ingress.reason, 'not-selected');
    assert.equal(x.decide('default/frontend', '10.0.1.7', 80).egress.reason, 'not-selected');
  });
});

void describe('b. every pod may reach namespace infra-istio on 8443 (clusterwide)', () => {
  const x = h(`apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata:
  name: allow-to-infra-istio
spec:
  endpointSelector:
    matchLabels:
      k8s:io.kubernetes.pod.namespace: infra-istio
  ingress:
  - fromEndpoints:
    - {}
    toPorts:
    - ports:
      - port: "8443"
        protocol: TCP
`);
  const CCNP = { name: 'allow-to-infra-istio', kind: 'CiliumClusterwideNetworkPolicy', index: 0 };

  void it('pods of every namespace reach 8443', () => {
    for (const from of ['default/frontend', 'team-b/b1', 'kube-system/coredns', 'myproject-a/client']) decidedBy(x.decide(from, 'infra-istio/istiod', 8443).ingress, CCNP);
  });

  void it('other ports, the world and remote nodes are denied', () => {
    denied(x.decide('default/frontend', 'infra-istio/istiod', 15010).ingress);
    denied(x.decide('default/frontend', 'infra-istio/istiod', 8443, { protocol: 'UDP' }).ingress);
    denied(x.decide('8.8.8.8', 'infra-istio/istiod', 8443).ingress);
    denied(x.decide(NODE_2, 'infra-istio/istiod', 8443).ingress);
  });

  void it('only infra-istio is selected', () => {
    assert.equal(x.decide('team-b/b1', 'team-a/a1', 80).ingress.reason, 'not-selected');
  });

  void it('the egress form: every pod may reach infra-istio on 8443, and nothing else', () => {
    const y = h(`apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata:
  name: egress-to-infra-istio
spec:
  endpointSelector: {}
  egress:
  - toEndpoints:
    - matchLabels:
        k8s:io.kubernetes.pod.namespace: infra-istio
    toPorts:
    - ports:
      - port: "8443"
        protocol: TCP
`);
    decidedBy(y.decide('team-a/a1', 'infra-istio/istiod', 8443).egress, { name: 'egress-to-infra-istio', kind: 'CiliumClusterwideNetworkPolicy', index: 0 });
    denied(y.decide('team-a/a1', 'infra-istio/istiod', 8080).egress);
    denied(y.decide('team-a/a1', 'team-a/a2', 8443).egress);
  });
});

void describe('c. all traffic within a namespace', () => {
  const x = h(`apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: allow-within-namespace
  namespace: team-a
spec:
  endpointSelector: {}
  ingress:
  - fromEndpoints:
    - {}
  egress:
  - toEndpoints:
    - {}
`);
  const CNP = { name: 'allow-within-namespace', kind: 'CiliumNetworkPolicy', index: 0 };

  void it('pods of the namespace reach each other on any port and protocol', () => {
    const d = x.decide('team-a/a1', 'team-a/a2', 12345);
    decidedBy(d.egress, CNP);
    decidedBy(d.ingress, CNP);
    assert.equal(x.allowed('team-a/a2', 'team-a/a1', 53, { protocol: 'UDP' }), true);
  });

  void it('traffic across the namespace boundary is denied both ways', () => {
    denied(x.decide('team-b/b1', 'team-a/a1', 80).ingress);
    denied(x.decide('team-a/a1', 'team-b/b1', 80).egress);
    denied(x.decide('team-a/a1', '8.8.8.8', 443).egress);
    denied(x.decide('8.8.8.8', 'team-a/a1', 443).ingress);
  });
});

void describe('d. one service account may scrape every pod of another namespace', () => {
  const x = h(`apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: allow-prometheus-scrape
  namespace: apps
spec:
  endpointSelector: {}
  ingress:
  - fromEndpoints:
    - matchLabels:
        k8s:io.kubernetes.pod.namespace: monitoring
        k8s:io.cilium.k8s.policy.serviceaccount: prometheus
`);
  const CNP = { name: 'allow-prometheus-scrape', kind: 'CiliumNetworkPolicy', index: 0 };

  void it('prometheus scrapes every pod of apps', () => {
    decidedBy(x.decide('monitoring/prometheus', 'apps/api', 9090).ingress, CNP);
    decidedBy(x.decide('monitoring/prometheus', 'apps/worker', 8080).ingress, CNP);
  });

  void it('another service account, or the same one in another namespace, is denied', () => {
    denied(x.decide('monitoring/grafana', 'apps/api', 9090).ingress);
    denied(x.decide('default/impostor', 'apps/api', 9090).ingress);
    denied(x.decide('apps/worker', 'apps/api', 9090).ingress);
  });
});

void describe('e. the metrics server reaches kubelet (10250) on every node', () => {
  const hostPolicy = `apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata:
  name: kubelet-from-metrics-server
spec:
  nodeSelector:
    matchLabels:
      kubernetes.io/os: linux
  ingress:
  - fromEndpoints:
    - matchLabels:
        k8s:io.kubernetes.pod.namespace: kube-system
        k8s-app: metrics-server
    toPorts:
    - ports:
      - port: "10250"
        protocol: TCP
`;
  const egress = `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: metrics-server
  namespace: kube-system
spec:
  endpointSelector:
    matchLabels:
      k8s-app: metrics-server
  egress:
  - toEntities:
    - host
    - remote-node
    toPorts:
    - ports:
      - port: "10250"
        protocol: TCP
`;
  const x = h(hostPolicy, egress);

  void it('metrics-server reaches kubelet on its own node and on the others', () => {
    for (const n of [NODE_1, NODE_2]) {
      const d = x.decide('kube-system/metrics-server', n, 10250);
      assert.equal(d.verdict, 'allowed', n);
      decidedBy(d.egress, { name: 'metrics-server', kind: 'CiliumNetworkPolicy', index: 0 });
      decidedBy(d.ingress, { name: 'kubelet-from-metrics-server', kind: 'CiliumClusterwideNetworkPolicy', index: 0 });
    }
  });

  void it('other ports of the nodes are denied at both ends', () => {
    const d = x.decide('kube-system/metrics-server', NODE_2, 10255);
    denied(d.egress);
    denied(d.ingress);
  });

  void it('metrics-server may reach nothing else', () => {
    denied(x.decide('kube-system/metrics-server', 'apps/api', 10250).egress);
    denied(x.decide('kube-system/metrics-server', '8.8.8.8', 10250).egress);
  });

  void it('other pods and the world may not reach kubelet', () => {
    denied(x.decide('kube-system/coredns', NODE_1, 10250).ingress);
    denied(x.decide('default/frontend', NODE_2, 10250).ingress);
    denied(x.decide('8.8.8.8', NODE_2, 10250).ingress);
  });

  void it('the host policy alone decides traffic to the node, not to its pods', () => {
    const y = h(hostPolicy);
    assert.equal(y.allowed('kube-system/metrics-server', NODE_2, 10250), true);
    denied(y.decide('default/frontend', NODE_2, 10250).ingress);
    assert.equal(y.decide('default/frontend', 'apps/api', 10250).ingress.reason, 'not-selected');
  });
});
