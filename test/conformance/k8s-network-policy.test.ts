// Conformance with Kubernetes NetworkPolicy, written from upstream semantics: every scenario of the
// upstream e2e suite (test/e2e/network/netpol/network_policy.go) that can be expressed offline, checked
// as whole 9x9 truth tables, plus the API rules those tests rely on (policyTypes defaulting, endPort,
// named ports, ipBlock). Policy "updates" are modelled as two builds, before and after.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Protocol } from '../../src/policy/ir.ts';
import { loadManifests } from '../../src/resources/load.ts';
import { assertReachability, build, modelManifests, netpol, NODES, NS_NAME_LABEL, nsSel, podIP, podSel, Reachability } from './k8s-model.ts';

const allowAll = (): Reachability => new Reachability(true);
/** All pods -> x/a denied except the given sources. */
const onlyToXA = (...allowedFrom: string[]): Reachability => {
  const r = allowAll().expectAllIngress('x/a', false);
  for (const f of allowedFrom) r.expect(f, 'x/a', true);
  return r;
};
const names = (refs: readonly { name: string }[]): string[] => refs.map((p) => p.name).sort();

void describe('Kubernetes NetworkPolicy conformance (upstream e2e netpol scenarios)', () => {
  void describe('model', () => {
    void it('builds the 3x3 model with namespace labels, pod labels, named ports, pod IPs and nodes', () => {
      const h = build([]);
      assert.equal(h.cluster.pods.size, 9);
      const xb = h.cluster.pods.get('x/b');
      assert.ok(xb);
      assert.deepEqual(xb.ips, ['10.244.2.11']);
      assert.equal(xb.labels.pod, 'b');
      assert.equal(xb.nodeName, 'kind-worker2');
      assert.equal(xb.ports.length, 6);
      assert.ok(xb.ports.some((p) => p.name === 'serve-81-sctp' && p.containerPort === 81 && p.protocol === 'SCTP'));
      assert.deepEqual(h.cluster.namespaces.get('y')?.labels, { [NS_NAME_LABEL]: 'y', ns: 'y' });
      assert.equal(h.cluster.nodes.size, 3);
      // No policy: everything is reachable on every port and protocol.
      for (const proto of ['TCP', 'UDP', 'SCTP'] as const) assertReachability(h, allowAll(), 80, proto);
    });
  });

  void describe('NetworkPolicy between server and client (TCP)', () => {
    void it("1. should support a 'default-deny-ingress' policy", () => {
      const h = build([netpol('deny-ingress', { podSelector: {}, policyTypes: ['Ingress'], ingress: [] })]);
      assertReachability(h, allowAll().expectAllIngress('x/*', false), 80);
      const d = h.decide('y/a', 'x/b', 80);
      assert.equal(d.verdict, 'denied');
      assert.equal(d.ingress.reason, 'default-deny');
      assert.equal(d.ingress.rule, undefined);
      assert.deepEqual(names(d.ingress.selectedBy), ['deny-ingress']);
      assert.equal(d.egress.reason, 'not-selected');
      const other = h.decide('x/a', 'y/b', 80);
      assert.equal(other.ingress.reason, 'not-selected');
      assert.deepEqual(other.ingress.selectedBy, []);
    });

    void it("2. should support a 'default-deny-all' policy", () => {
      const h = build([netpol('deny-all', { podSelector: {}, policyTypes: ['Ingress', 'Egress'], ingress: [], egress: [] })]);
      assertReachability(h, allowAll().expectAllIngress('x/*', false).expectAllEgress('x/*', false), 80);
      const d = h.decide('x/a', 'y/a', 80);
      assert.equal(d.egress.reason, 'default-deny');
      assert.deepEqual(names(d.egress.selectedBy), ['deny-all']);
    });

    void it('3. should enforce policy to allow traffic from pods within server namespace based on PodSelector', () => {
      const h = build([netpol('x-a-allows-x-b', { podSelector: podSel('a'), policyTypes: ['Ingress'], ingress: [{ from: [{ podSelector: podSel('b') }] }] })]);
      assertReachability(h, onlyToXA('x/b'), 80);
      const d = h.decide('x/b', 'x/a', 80);
      assert.equal(d.ingress.reason, 'allowed-by-rule');
      assert.equal(d.ingress.rule?.policy.name, 'x-a-allows-x-b');
      assert.equal(d.ingress.rule?.index, 0);
      // A podSelector without namespaceSelector means the policy's own namespace only.
      assert.equal(h.decide('y/b', 'x/a', 80).ingress.reason, 'default-deny');
    });

    void it('4. should enforce policy to allow ingress traffic for a target (stacked policies are a union)', () => {
      const h = build([
        netpol('deny-all', { podSelector: {}, policyTypes: ['Ingress'], ingress: [] }),
        netpol('allow-all-to-a', { podSelector: podSel('a'), policyTypes: ['Ingress'], ingress: [{ from: [{ podSelector: {}, namespaceSelector: {} }] }] }),
      ]);
      assertReachability(h, allowAll().expectAllIngress('x/b', false).expectAllIngress('x/c', false), 80);
      const d = h.decide('z/c', 'x/a', 80);
      assert.equal(d.ingress.reason, 'allowed-by-rule');
      assert.equal(d.ingress.rule?.policy.name, 'allow-all-to-a');
      assert.equal(d.ingress.rule?.index, 0);
      assert.deepEqual(names(d.ingress.selectedBy), ['allow-all-to-a', 'deny-all']);
      const b = h.decide('z/c', 'x/b', 80);
      assert.equal(b.ingress.reason, 'default-deny');
      assert.deepEqual(names(b.ingress.selectedBy), ['deny-all']);
    });

    void it('5. should enforce policy to allow ingress traffic from pods in all namespaces', () => {
      const h = build([netpol('allow-from-another-ns', { podSelector: podSel('a'), ingress: [{ from: [{ namespaceSelector: { matchLabels: {} } }] }] })]);
      assertReachability(h, allowAll(), 80);
      // Not vacuous: x/a is isolated, and the rule is what allows it.
      const d = h.decide('z/b', 'x/a', 80);
      assert.equal(d.ingress.reason, 'allowed-by-rule');
      assert.deepEqual(names(d.ingress.selectedBy), ['allow-from-another-ns']);
      // namespaceSelector {} selects every pod in the cluster, not addresses outside it.
      assert.equal(h.decide('192.0.2.10', 'x/a', 80).verdict, 'denied');
    });

    void it('6. should enforce policy to allow traffic only from a different namespace, based on NamespaceSelector', () => {
      const h = build([netpol('allow-client-a-via-ns-selector', { podSelector: podSel('a'), ingress: [{ from: [{ namespaceSelector: nsSel('y') }] }] })]);
      assertReachability(h, onlyToXA('y/a', 'y/b', 'y/c'), 80);
    });

    void it('6b. older suite: NamespaceSelector on the `ns: <name>` label', () => {
      const h = build([netpol('allow-client-a-via-ns-selector', { podSelector: podSel('a'), ingress: [{ from: [{ namespaceSelector: { matchLabels: { ns: 'y' } } }] }] })]);
      assertReachability(h, onlyToXA('y/a', 'y/b', 'y/c'), 80);
    });

    void it('7. should enforce policy based on PodSelector with MatchExpressions', () => {
      const h = build([
        netpol('x-a-allows-x-b', { podSelector: podSel('a'), ingress: [{ from: [{ podSelector: { matchExpressions: [{ key: 'pod', operator: 'In', values: ['b'] }] } }] }] }),
      ]);
      assertReachability(h, onlyToXA('x/b'), 80);
    });

    void it('7b. PodSelector matchExpressions NotIn / Exists / DoesNotExist', () => {
      const h = build([
        netpol('notin', { podSelector: podSel('a'), ingress: [{ from: [{ podSelector: { matchExpressions: [{ key: 'pod', operator: 'NotIn', values: ['b'] }] } }] }] }),
        netpol('exists', { podSelector: podSel('b'), ingress: [{ from: [{ podSelector: { matchExpressions: [{ key: 'pod', operator: 'Exists' }] } }] }] }),
        netpol('doesnotexist', { podSelector: podSel('c'), ingress: [{ from: [{ podSelector: { matchExpressions: [{ key: 'pod', operator: 'DoesNotExist' }] } }] }] }),
      ]);
      const r = allowAll()
        .expectAllIngress('x/a', false)
        .expect('x/c', 'x/a', true)
        .expectAllIngress('x/b', false)
        .expect('x/*', 'x/b', true)
        .expectAllIngress('x/c', false);
      assertReachability(h, r, 80);
    });

    void it('8. should enforce policy based on NamespaceSelector with MatchExpressions', () => {
      const h = build([
        netpol('allow-ns-y-match-selector', {
          podSelector: podSel('a'),
          ingress: [{ from: [{ namespaceSelector: { matchExpressions: [{ key: NS_NAME_LABEL, operator: 'In', values: ['y'] }] } }] }],
        }),
      ]);
      assertReachability(h, onlyToXA('y/a', 'y/b', 'y/c'), 80);
    });

    void it('9. should enforce policy based on PodSelector or NamespaceSelector (separate peers are OR)', () => {
      const h = build([
        netpol('allow-ns-y-match-selector', {
          podSelector: podSel('a'),
          ingress: [{ from: [{ namespaceSelector: { matchExpressions: [{ key: NS_NAME_LABEL, operator: 'NotIn', values: ['x'] }] } }, { podSelector: podSel('b') }] }],
        }),
      ]);
      assertReachability(h, allowAll().expect('x/c', 'x/a', false), 80);
      assert.equal(h.decide('x/c', 'x/a', 80).ingress.reason, 'default-deny');
    });

    void it('10. should enforce policy based on PodSelector and NamespaceSelector (one peer is AND)', () => {
      const h = build([
        netpol('allow-ns-y-podselector-and-nsselector', {
          podSelector: podSel('a'),
          ingress: [{ from: [{ namespaceSelector: { matchExpressions: [{ key: NS_NAME_LABEL, operator: 'NotIn', values: ['x'] }] }, podSelector: podSel('b') }] }],
        }),
      ]);
      assertReachability(h, onlyToXA('y/b', 'z/b'), 80);
    });

    void it('11. should enforce policy based on Multiple PodSelectors and NamespaceSelectors', () => {
      const h = build([
        netpol('allow-ns-y-z-pod-b-c', {
          podSelector: podSel('a'),
          ingress: [
            {
              from: [
                {
                  namespaceSelector: { matchExpressions: [{ key: NS_NAME_LABEL, operator: 'NotIn', values: ['x'] }] },
                  podSelector: { matchExpressions: [{ key: 'pod', operator: 'In', values: ['b', 'c'] }] },
                },
              ],
            },
          ],
        }),
      ]);
      assertReachability(h, onlyToXA('y/b', 'y/c', 'z/b', 'z/c'), 80);
    });

    void it('12. should enforce policy based on any PodSelectors', () => {
      const h = build([netpol('allow-ns-x-pod-b-c', { podSelector: podSel('a'), ingress: [{ from: [{ podSelector: podSel('b') }, { podSelector: podSel('c') }] }] })]);
      assertReachability(h, onlyToXA('x/b', 'x/c'), 80);
      const d = h.decide('x/c', 'x/a', 80);
      assert.equal(d.ingress.rule?.policy.name, 'allow-ns-x-pod-b-c');
      assert.equal(d.ingress.rule?.index, 0);
      assert.deepEqual(d.ingress.rule?.path, ['spec', 'ingress', 0]);
    });

    void it('13. should enforce policy to allow traffic only from a pod in a different namespace based on PodSelector and NamespaceSelector', () => {
      const h = build([
        netpol('allow-ns-y-pod-a-via-namespace-pod-selector', { podSelector: podSel('a'), ingress: [{ from: [{ namespaceSelector: nsSel('y'), podSelector: podSel('a') }] }] }),
      ]);
      assertReachability(h, onlyToXA('y/a'), 80);
    });

    void it('14. should enforce policy based on Ports', () => {
      const h = build([
        netpol('allow-client-a-via-ns-selector', { podSelector: podSel('a'), ingress: [{ from: [{ namespaceSelector: nsSel('y') }], ports: [{ port: 81, protocol: 'TCP' }] }] }),
      ]);
      assertReachability(h, onlyToXA('y/*'), 81);
      // x/a is isolated and no rule covers port 80.
      assertReachability(h, onlyToXA(), 80);
    });

    void it('15. should enforce multiple, stacked policies with overlapping podSelectors', () => {
      const p81 = netpol('allow-client-a-via-ns-selector', { podSelector: podSel('a'), ingress: [{ from: [{ namespaceSelector: nsSel('y') }], ports: [{ port: 81, protocol: 'TCP' }] }] });
      const p80 = netpol('allow-client-a-via-ns-selector-80', { podSelector: podSel('a'), ingress: [{ from: [{ namespaceSelector: nsSel('y') }], ports: [{ port: 80, protocol: 'TCP' }] }] });
      const before = build([p81]);
      assertReachability(before, onlyToXA('y/*'), 81, 'TCP', 'step 1');
      assertReachability(before, onlyToXA(), 80, 'TCP', 'step 1');
      const after = build([p81, p80]);
      assertReachability(after, onlyToXA('y/*'), 80, 'TCP', 'step 2');
      assertReachability(after, onlyToXA('y/*'), 81, 'TCP', 'step 2');
      assert.equal(after.decide('y/b', 'x/a', 80).ingress.rule?.policy.name, 'allow-client-a-via-ns-selector-80');
      assert.equal(after.decide('y/b', 'x/a', 81).ingress.rule?.policy.name, 'allow-client-a-via-ns-selector');
    });

    void it('16. should support allow-all policy', () => {
      const h = build([netpol('allow-all', { podSelector: { matchLabels: {} }, policyTypes: ['Ingress'], ingress: [{}] })]);
      for (const port of [80, 81]) for (const proto of ['TCP', 'UDP', 'SCTP'] as const) assertReachability(h, allowAll(), port, proto);
      const d = h.decide('y/a', 'x/b', 81);
      assert.equal(d.ingress.reason, 'allowed-by-rule');
      assert.deepEqual(names(d.ingress.selectedBy), ['allow-all']);
    });

    void it('17. should allow ingress access on one named port', () => {
      const h = build([netpol('allow-all', { podSelector: {}, policyTypes: ['Ingress'], ingress: [{ ports: [{ port: 'serve-81-tcp' }] }] })]);
      assertReachability(h, allowAll(), 81);
      assertReachability(h, allowAll().expectAllIngress('x/*', false), 80);
      // The name resolves to the TCP port only: UDP/81 is not covered.
      assertReachability(h, allowAll().expectAllIngress('x/*', false), 81, 'UDP');
    });

    void it('18. should allow ingress access from namespace on one named port', () => {
      const h = build([
        netpol('allow-client-a-via-ns-selector-80', {
          podSelector: podSel('a'),
          ingress: [{ from: [{ namespaceSelector: nsSel('y') }], ports: [{ port: 'serve-80-tcp', protocol: 'TCP' }] }],
        }),
      ]);
      assertReachability(h, onlyToXA('y/*'), 80);
      assertReachability(h, onlyToXA(), 81);
    });

    void it('19. should allow egress access on one named port', () => {
      const h = build([netpol('allow-egress', { podSelector: {}, policyTypes: ['Egress'], egress: [{ ports: [{ port: 'serve-80-tcp' }] }] })]);
      assertReachability(h, allowAll(), 80);
      assertReachability(h, allowAll().expectAllEgress('x/*', false), 81);
    });

    void it('19b. an egress named port is resolved on the destination pod, not the source', () => {
      // y/d names port 8080 `serve-80-tcp`; the source x/a names port 80 that way.
      const extra = { namespace: 'y', name: 'd', labels: { pod: 'd' }, ip: '10.244.1.99', ports: [{ name: 'serve-80-tcp', containerPort: 8080, protocol: 'TCP' as const }] };
      const h = build([netpol('allow-egress', { podSelector: podSel('a'), policyTypes: ['Egress'], egress: [{ ports: [{ port: 'serve-80-tcp' }] }] })], { extraPods: [extra] });
      assert.equal(h.allowed('x/a', 'y/d', 8080), true);
      assert.equal(h.allowed('x/a', 'y/d', 80), false);
      assert.equal(h.allowed('x/a', 'y/a', 80), true);
      assert.equal(h.allowed('x/a', 'y/a', 8080), false);
      // A world address has no named ports: nothing resolves there.
      assert.equal(h.allowed('x/a', '192.0.2.10', 80), false);
      const d = h.decide('x/a', 'y/d', 8080);
      assert.equal(d.egress.rule?.policy.name, 'allow-egress');
      assert.equal(d.egress.reason, 'allowed-by-rule');
    });

    void it('20. should enforce updated policy (allow-all mutated to deny-all)', () => {
      const before = build([netpol('allow-all-mutate-to-deny-all', { podSelector: {}, policyTypes: ['Ingress'], ingress: [{}] })]);
      assertReachability(before, allowAll(), 81, 'TCP', 'before update');
      const after = build([netpol('allow-all-mutate-to-deny-all', { podSelector: {}, policyTypes: ['Ingress'], ingress: [] })]);
      assertReachability(after, allowAll().expectAllIngress('x/*', false), 81, 'TCP', 'after update');
    });

    void it('21. should allow ingress access from updated namespace', () => {
      const policy = netpol('allow-client-a-via-ns-selector', { podSelector: podSel('a'), ingress: [{ from: [{ namespaceSelector: { matchLabels: { ns2: 'updated' } } }] }] });
      assertReachability(build([policy]), onlyToXA(), 80, 'TCP', 'before labelling ns y');
      const after = build([policy], { namespaceLabels: { y: { ns2: 'updated' } } });
      assertReachability(after, onlyToXA('y/*'), 80, 'TCP', 'after labelling ns y');
    });

    void it('22. should allow ingress access from updated pod', () => {
      const policy = netpol('allow-client-a-via-pod-selector', { podSelector: podSel('a'), ingress: [{ from: [{ podSelector: { matchLabels: { pod: 'b', pod2: 'updated' } } }] }] });
      assertReachability(build([policy]), onlyToXA(), 80, 'TCP', 'before labelling x/b');
      const after = build([policy], { podLabels: { 'x/b': { pod2: 'updated' } } });
      assertReachability(after, onlyToXA('x/b'), 80, 'TCP', 'after labelling x/b');
    });

    void it('23. should deny ingress from pods on other namespaces', () => {
      const h = build([netpol('deny-empty-policy', { podSelector: {}, policyTypes: ['Ingress'], ingress: [{ from: [{ podSelector: { matchLabels: {} } }] }] })]);
      assertReachability(h, allowAll().expect('y/*', 'x/*', false).expect('z/*', 'x/*', false), 80);
    });

    void it('24. should deny ingress access to updated pod', () => {
      const policy = netpol('deny-ingress-via-label-selector', { podSelector: { matchLabels: { target: 'isolated' } }, policyTypes: ['Ingress'], ingress: [] });
      const before = build([policy]);
      assertReachability(before, allowAll(), 80, 'TCP', 'before labelling x/a');
      assert.equal(before.decide('y/a', 'x/a', 80).ingress.reason, 'not-selected');
      const after = build([policy], { podLabels: { 'x/a': { target: 'isolated' } } });
      assertReachability(after, onlyToXA(), 80, 'TCP', 'after labelling x/a');
    });

    void it('25. should deny egress from pods based on PodSelector', () => {
      const h = build([netpol('deny-egress-pod-a', { podSelector: podSel('a'), policyTypes: ['Egress'], egress: [] })]);
      assertReachability(h, allowAll().expectAllEgress('x/a', false), 80);
    });

    void it('26. should deny egress from all pods in a namespace', () => {
      const h = build([netpol('deny-egress-ns-x', { podSelector: {}, policyTypes: ['Egress'], egress: [] })]);
      assertReachability(h, allowAll().expectAllEgress('x/*', false), 80);
    });

    void it('27. should work with Ingress, Egress specified together', () => {
      const h = build([
        netpol('allow-client-a-via-pod-selector', {
          podSelector: podSel('a'),
          policyTypes: ['Egress', 'Ingress'],
          ingress: [{ from: [{ podSelector: podSel('b') }] }],
          egress: [{ ports: [{ port: 80 }] }],
        }),
      ]);
      assertReachability(h, onlyToXA('x/b'), 80);
      assertReachability(h, onlyToXA('x/b').expectAllEgress('x/a', false), 81);
      const d = h.decide('x/a', 'y/b', 81);
      assert.equal(d.egress.reason, 'default-deny');
      assert.equal(d.ingress.reason, 'not-selected');
      const e = h.decide('x/a', 'y/b', 80);
      assert.equal(e.egress.rule?.policy.name, 'allow-client-a-via-pod-selector');
      assert.deepEqual(e.egress.rule?.path, ['spec', 'egress', 0]);
    });

    void it('28. should support denying of egress traffic on the client side (even if the server explicitly allows this traffic)', () => {
      const ingressFromXA = { from: [{ namespaceSelector: nsSel('x'), podSelector: podSel('a') }] };
      const h = build([
        netpol('allow-to-ns-y-pod-a', { podSelector: podSel('a'), policyTypes: ['Egress'], egress: [{ to: [{ namespaceSelector: nsSel('y'), podSelector: podSel('a') }] }] }),
        netpol('allow-from-xa-on-ya-match-selector', { podSelector: podSel('a'), policyTypes: ['Ingress'], ingress: [ingressFromXA] }, 'y'),
        netpol('allow-from-xa-on-yb-match-selector', { podSelector: podSel('b'), policyTypes: ['Ingress'], ingress: [ingressFromXA] }, 'y'),
      ]);
      const r = allowAll().expectAllEgress('x/a', false).expectAllIngress('y/a', false).expectAllIngress('y/b', false).expect('x/a', 'y/a', true);
      assertReachability(h, r, 80);
      const d = h.decide('x/a', 'y/b', 80);
      assert.equal(d.verdict, 'denied');
      assert.equal(d.ingress.verdict, 'allowed');
      assert.equal(d.ingress.rule?.policy.name, 'allow-from-xa-on-yb-match-selector');
      assert.equal(d.egress.verdict, 'denied');
      assert.equal(d.egress.reason, 'default-deny');
    });

    void it('29. should enforce egress policy allowing traffic to a server in a different namespace based on PodSelector and NamespaceSelector', () => {
      const h = build([netpol('allow-to-ns-y-pod-a', { podSelector: podSel('a'), policyTypes: ['Egress'], egress: [{ to: [{ namespaceSelector: nsSel('y'), podSelector: podSel('a') }] }] })]);
      assertReachability(h, allowAll().expectAllEgress('x/a', false).expect('x/a', 'y/a', true), 80);
    });

    void it('30. should enforce ingress policy allowing any port traffic to a server on a specific protocol', () => {
      const h = build([netpol('allow-ingress-by-proto', { podSelector: podSel('a'), ingress: [{ ports: [{ protocol: 'TCP' }] }] })]);
      assertReachability(h, allowAll(), 80, 'TCP');
      assertReachability(h, allowAll(), 81, 'TCP');
      assert.equal(h.allowed('y/c', 'x/a', 65535), true);
      assertReachability(h, onlyToXA(), 80, 'UDP');
      assertReachability(h, onlyToXA(), 81, 'SCTP');
    });

    void it('31. should enforce multiple ingress policies with ingress allow-all policy taking precedence', () => {
      const p80 = netpol('allow-ingress-port-80', { podSelector: {}, ingress: [{ ports: [{ port: 80 }] }] });
      assertReachability(build([p80]), allowAll().expectAllIngress('x/*', false), 81, 'TCP', 'port-80 policy only');
      const both = build([p80, netpol('allow-ingress', { podSelector: {}, ingress: [{}] })]);
      assertReachability(both, allowAll(), 81, 'TCP', 'with allow-all');
      assert.equal(both.decide('y/a', 'x/a', 81).ingress.rule?.policy.name, 'allow-ingress');
    });

    void it('32. should enforce multiple egress policies with egress allow-all policy taking precedence', () => {
      const p80 = netpol('allow-egress-port-80', { podSelector: {}, policyTypes: ['Egress'], egress: [{ ports: [{ port: 80 }] }] });
      assertReachability(build([p80]), allowAll().expectAllEgress('x/*', false), 81, 'TCP', 'port-80 policy only');
      const both = build([p80, netpol('allow-egress', { podSelector: {}, policyTypes: ['Egress'], egress: [{}] })]);
      assertReachability(both, allowAll(), 81, 'TCP', 'with allow-all');
    });

    void it('33. should stop enforcing policies after they are deleted', () => {
      const withPolicy = build([netpol('deny-all', { podSelector: {}, policyTypes: ['Ingress', 'Egress'], ingress: [], egress: [] })]);
      assertReachability(withPolicy, allowAll().expectAllIngress('x/*', false).expectAllEgress('x/*', false), 80, 'TCP', 'before delete');
      assertReachability(build([]), allowAll(), 80, 'TCP', 'after delete');
    });

    void it('34. should allow egress access to server in CIDR block', () => {
      const h = build([
        netpol('allow-client-a-via-cidr-egress-rule', { podSelector: podSel('a'), policyTypes: ['Egress'], egress: [{ to: [{ ipBlock: { cidr: `${podIP('y/b')}/32` } }] }] }),
      ]);
      assertReachability(h, allowAll().expectAllEgress('x/a', false).expect('x/a', 'y/b', true), 80);
      assert.equal(h.decide('x/a', 'y/b', 80).egress.rule?.policy.name, 'allow-client-a-via-cidr-egress-rule');
    });

    void it('35. should enforce except clause while egress access to server in CIDR block', () => {
      // makeLargeCIDRForIP(10.244.2.11) = 0.0.0.0/4
      const h = build([
        netpol('allow-client-a-via-cidr-egress-rule', {
          podSelector: podSel('a'),
          policyTypes: ['Egress'],
          egress: [{ to: [{ ipBlock: { cidr: '0.0.0.0/4', except: [`${podIP('x/b')}/32`] } }] }],
        }),
      ]);
      assertReachability(h, allowAll().expect('x/a', 'x/b', false), 80);
      // Outside the /4 is not allowed either.
      assert.equal(h.allowed('x/a', '192.0.2.10', 80), false);
      assert.equal(h.allowed('x/a', '8.8.8.8', 80), true);
    });

    void it('35b. older suite: the except test with the unmasked CIDR string "<IP(x/a)>/4"', () => {
      const h = build([
        netpol('allow-client-a-via-cidr-egress-rule', {
          podSelector: podSel('a'),
          policyTypes: ['Egress'],
          egress: [{ to: [{ ipBlock: { cidr: `${podIP('x/a')}/4`, except: [`${podIP('x/b')}/32`] } }] }],
        }),
      ]);
      assertReachability(h, allowAll().expect('x/a', 'x/b', false), 80);
    });

    void it('36. should ensure an IP overlapping both IPBlock.CIDR and IPBlock.Except is allowed', () => {
      const step1 = build([
        netpol('allow-client-a-via-cidr-egress-rule', {
          podSelector: podSel('a'),
          policyTypes: ['Egress'],
          egress: [{ to: [{ ipBlock: { cidr: '0.0.0.0/4', except: [`${podIP('x/b')}/32`] } }] }],
        }),
      ]);
      assertReachability(step1, allowAll().expect('x/a', 'x/b', false), 80, 'TCP', 'step 1 (except)');
      const step2 = build([
        netpol('allow-client-a-via-cidr-egress-rule', { podSelector: podSel('a'), policyTypes: ['Egress'], egress: [{ to: [{ ipBlock: { cidr: `${podIP('x/b')}/32` } }] }] }),
      ]);
      assertReachability(step2, allowAll().expectAllEgress('x/a', false).expect('x/a', 'x/b', true), 80, 'TCP', 'step 2 (updated)');
    });

    void it('36b. an IP excepted by one ipBlock but allowed by another peer or policy is allowed (union)', () => {
      const exceptPeer = { ipBlock: { cidr: '0.0.0.0/4', except: [`${podIP('x/b')}/32`] } };
      const onePolicy = build([
        netpol('two-peers', { podSelector: podSel('a'), policyTypes: ['Egress'], egress: [{ to: [exceptPeer, { ipBlock: { cidr: `${podIP('x/b')}/32` } }] }] }),
      ]);
      assertReachability(onePolicy, allowAll(), 80, 'TCP', 'two peers in one rule');
      const twoPolicies = build([
        netpol('except', { podSelector: podSel('a'), policyTypes: ['Egress'], egress: [{ to: [exceptPeer] }] }),
        netpol('only-xb', { podSelector: podSel('a'), policyTypes: ['Egress'], egress: [{ to: [{ ipBlock: { cidr: `${podIP('x/b')}/32` } }] }] }),
      ]);
      assertReachability(twoPolicies, allowAll(), 80, 'TCP', 'two policies');
      assert.equal(twoPolicies.decide('x/a', 'x/b', 80).egress.rule?.policy.name, 'only-xb');
    });

    void it('37. should enforce policies to check ingress and egress policies can be controlled independently based on PodSelector', () => {
      const egress = netpol('allow-egress-for-target', { podSelector: podSel('a'), policyTypes: ['Egress'], egress: [{}] });
      assertReachability(build([egress]), allowAll(), 80, 'TCP', 'egress allow-all only');
      const both = build([egress, netpol('deny-ingress-via-label-selector', { podSelector: podSel('a'), policyTypes: ['Ingress'], ingress: [] })]);
      assertReachability(both, onlyToXA(), 80, 'TCP', 'plus deny ingress');
      const d = both.decide('x/a', 'y/a', 80);
      assert.equal(d.egress.reason, 'allowed-by-rule');
      assert.deepEqual(names(d.egress.selectedBy), ['allow-egress-for-target']);
      const i = both.decide('y/a', 'x/a', 80);
      assert.deepEqual(names(i.ingress.selectedBy), ['deny-ingress-via-label-selector']);
    });

    void it("38. should not mistakenly treat 'protocol: SCTP' as 'protocol: TCP'", () => {
      const h = build([
        netpol('deny-ingress', { podSelector: {}, policyTypes: ['Ingress'], ingress: [] }),
        netpol('allow-only-sctp-ingress-on-port-81', { podSelector: podSel('a'), ingress: [{ ports: [{ port: 81, protocol: 'SCTP' }] }] }),
      ]);
      assertReachability(h, allowAll().expectAllIngress('x/*', false), 81, 'TCP');
      // And SCTP/81 to x/a is what it does allow.
      assertReachability(h, allowAll().expectAllIngress('x/b', false).expectAllIngress('x/c', false), 81, 'SCTP');
    });

    void it('39. should properly isolate pods that are selected by a policy allowing SCTP', () => {
      const h = build([netpol('allow-only-sctp-ingress-on-port-80', { podSelector: podSel('a'), ingress: [{ ports: [{ port: 80, protocol: 'SCTP' }] }] })]);
      assertReachability(h, onlyToXA(), 81, 'TCP');
      assertReachability(h, onlyToXA(), 80, 'TCP');
      assertReachability(h, allowAll(), 80, 'SCTP');
    });

    void it('40. should not allow access by TCP when a policy specifies only UDP', () => {
      const h = build([netpol('allow-only-udp-ingress-on-port-81', { podSelector: podSel('a'), ingress: [{ ports: [{ port: 81, protocol: 'UDP' }] }] })]);
      assertReachability(h, onlyToXA(), 81, 'TCP');
      assertReachability(h, allowAll(), 81, 'UDP');
    });

    void it('41. should enforce policy to allow traffic based on NamespaceSelector with MatchLabels using default ns label', () => {
      const h = build([netpol('allow-client-a-via-ns-selector-for-immutable-ns-label', { podSelector: podSel('a'), ingress: [{ from: [{ namespaceSelector: nsSel('y') }] }] })]);
      assertReachability(h, onlyToXA('y/*'), 80);
    });

    void it('42. should enforce policy based on NamespaceSelector with MatchExpressions using default ns label (egress)', () => {
      const h = build([
        netpol('allow-ns-y-match-selector-for-immutable-ns-label', {
          podSelector: podSel('a'),
          policyTypes: ['Egress'],
          egress: [{ to: [{ namespaceSelector: { matchExpressions: [{ key: NS_NAME_LABEL, operator: 'NotIn', values: ['y'] }] } }] }],
        }),
      ]);
      assertReachability(h, allowAll().expect('x/a', 'y/*', false), 80);
    });
  });

  for (const proto of ['UDP', 'SCTP'] as const satisfies readonly Protocol[]) {
    void describe(`NetworkPolicy between server and client using ${proto}`, () => {
      void it(`${proto[0] ?? ''}1. should support a 'default-deny-ingress' policy`, () => {
        const h = build([netpol('deny-all', { podSelector: {}, policyTypes: ['Ingress'], ingress: [] })]);
        assertReachability(h, allowAll().expectAllIngress('x/*', false), 80, proto);
      });

      void it(`${proto[0] ?? ''}2. should enforce policy based on Ports`, () => {
        const h = build([
          netpol('allow-ingress-on-port-81-ns-x', { podSelector: podSel('a'), ingress: [{ from: [{ namespaceSelector: nsSel('y') }], ports: [{ port: 81, protocol: proto }] }] }),
        ]);
        assertReachability(h, onlyToXA('y/*'), 81, proto);
        assertReachability(h, onlyToXA(), 80, proto);
        assertReachability(h, onlyToXA(), 81, 'TCP');
      });

      void it(`${proto[0] ?? ''}3. should enforce policy to allow traffic only from a pod in a different namespace based on PodSelector and NamespaceSelector`, () => {
        const h = build([
          netpol('allow-ns-y-pod-a-via-namespace-pod-selector', { podSelector: podSel('a'), ingress: [{ from: [{ namespaceSelector: nsSel('y'), podSelector: podSel('a') }] }] }),
        ]);
        assertReachability(h, onlyToXA('y/a'), 80, proto);
      });
    });
  }

  void describe('policyTypes: explicit and inferred (SetDefaults_NetworkPolicy)', () => {
    void it('absent policyTypes with egress rules means [Ingress, Egress]', () => {
      const h = build([netpol('both', { podSelector: podSel('a'), ingress: [{ from: [{ podSelector: podSel('b') }] }], egress: [{ to: [{ namespaceSelector: nsSel('y') }] }] })]);
      assertReachability(h, onlyToXA('x/b').expectAllEgress('x/a', false).expect('x/a', 'y/*', true), 80);
      const d = h.decide('x/a', 'z/a', 80);
      assert.equal(d.egress.reason, 'default-deny');
      assert.deepEqual(names(d.egress.selectedBy), ['both']);
    });

    void it('absent policyTypes with only ingress rules means [Ingress]: egress stays open', () => {
      const h = build([netpol('ingress-only', { podSelector: podSel('a'), ingress: [{ from: [{ podSelector: podSel('b') }] }] })]);
      assertReachability(h, onlyToXA('x/b'), 80);
      const d = h.decide('x/a', 'z/c', 80);
      assert.equal(d.egress.reason, 'not-selected');
      assert.deepEqual(d.egress.selectedBy, []);
    });

    void it('absent policyTypes and no rules at all means [Ingress]: deny all ingress', () => {
      const h = build([netpol('default-deny', { podSelector: {} })]);
      assertReachability(h, allowAll().expectAllIngress('x/*', false), 80);
    });

    void it('`egress: []` without policyTypes means [Ingress] only (and a missing ingress list then denies all ingress)', () => {
      const h = build([netpol('empty-egress', { podSelector: podSel('a'), egress: [] })]);
      assertReachability(h, onlyToXA(), 80);
      assert.equal(h.decide('x/a', 'y/a', 80).egress.reason, 'not-selected');
    });

    void it('`policyTypes: []` is defaulted exactly like an absent policyTypes (len == 0)', () => {
      const ingressOnly = build([netpol('empty-types', { podSelector: podSel('a'), policyTypes: [], ingress: [{ from: [{ podSelector: podSel('b') }] }] })]);
      assertReachability(ingressOnly, onlyToXA('x/b'), 80, 'TCP', 'policyTypes [] with ingress rules');
      const withEgress = build([netpol('empty-types', { podSelector: podSel('a'), policyTypes: [], egress: [{ to: [{ namespaceSelector: nsSel('y') }] }] })]);
      assertReachability(withEgress, onlyToXA().expectAllEgress('x/a', false).expect('x/a', 'y/*', true), 80, 'TCP', 'policyTypes [] with egress rules');
    });

    void it('policyTypes [Egress] with no egress rules isolates egress only; ingress rules are then ignored', () => {
      const h = build([netpol('egress-only', { podSelector: podSel('a'), policyTypes: ['Egress'], ingress: [{ from: [{ podSelector: podSel('b') }] }] })]);
      assertReachability(h, allowAll().expectAllEgress('x/a', false), 80);
      const d = h.decide('z/c', 'x/a', 80);
      assert.equal(d.ingress.reason, 'not-selected');
      assert.equal(h.decide('x/a', 'z/c', 80).egress.reason, 'default-deny');
    });

    void it('policyTypes [Ingress] ignores egress rules (egress not isolated)', () => {
      const h = build([netpol('ingress-typed', { podSelector: podSel('a'), policyTypes: ['Ingress'], ingress: [{}], egress: [{ to: [{ podSelector: podSel('b') }] }] })]);
      assertReachability(h, allowAll(), 80);
      assert.equal(h.decide('x/a', 'z/c', 80).egress.reason, 'not-selected');
    });

    void it('an empty `ingress: []` list isolates; `ingress: [{}]` allows everything; with explicit Ingress a missing list isolates too', () => {
      assertReachability(build([netpol('p', { podSelector: podSel('a'), policyTypes: ['Ingress'], ingress: [] })]), onlyToXA(), 80, 'TCP', 'ingress: []');
      assertReachability(build([netpol('p', { podSelector: podSel('a'), policyTypes: ['Ingress'] })]), onlyToXA(), 80, 'TCP', 'ingress missing');
      assertReachability(build([netpol('p', { podSelector: podSel('a'), policyTypes: ['Ingress'], ingress: [{}] })]), allowAll(), 80, 'TCP', 'ingress: [{}]');
    });

    void it('a missing egress list isolates nothing without Egress in policyTypes; with explicit Egress it denies all egress', () => {
      assertReachability(build([netpol('p', { podSelector: podSel('a'), ingress: [{}] })]), allowAll(), 80, 'TCP', 'egress missing, types inferred');
      assertReachability(build([netpol('p', { podSelector: podSel('a'), policyTypes: ['Ingress', 'Egress'], ingress: [{}] })]), allowAll().expectAllEgress('x/a', false), 80, 'TCP', 'egress missing, Egress explicit');
      assertReachability(build([netpol('p', { podSelector: podSel('a'), policyTypes: ['Egress'], egress: [{}] })]), allowAll(), 80, 'TCP', 'egress: [{}]');
    });
  });

  void describe('rules: empty lists and the deciding rule', () => {
    void it('`from: []` matches every source and `ports: []` every port', () => {
      const h = build([netpol('empty-lists', { podSelector: podSel('a'), ingress: [{ from: [], ports: [{ port: 81 }] }, { from: [{ podSelector: podSel('b') }], ports: [] }] })]);
      assertReachability(h, allowAll(), 81);
      assertReachability(h, onlyToXA('x/b'), 80);
      assertReachability(h, onlyToXA('x/b'), 80, 'UDP');
    });

    void it('reports the index of the rule that allowed a flow, and default-deny when none did', () => {
      const h = build([
        netpol('two-rules', {
          podSelector: podSel('a'),
          policyTypes: ['Ingress'],
          ingress: [{ from: [{ podSelector: podSel('b') }], ports: [{ port: 80 }] }, { from: [{ namespaceSelector: nsSel('y') }] }],
        }),
      ]);
      assertReachability(h, onlyToXA('x/b', 'y/*'), 80);
      assertReachability(h, onlyToXA('y/*'), 81);
      const first = h.decide('x/b', 'x/a', 80);
      assert.equal(first.ingress.rule?.policy.name, 'two-rules');
      assert.equal(first.ingress.rule?.policy.namespace, 'x');
      assert.equal(first.ingress.rule?.index, 0);
      const second = h.decide('y/c', 'x/a', 81);
      assert.equal(second.ingress.reason, 'allowed-by-rule');
      assert.equal(second.ingress.rule?.index, 1);
      assert.deepEqual(second.ingress.rule?.path, ['spec', 'ingress', 1]);
      const none = h.decide('x/b', 'x/a', 81);
      assert.equal(none.verdict, 'denied');
      assert.equal(none.ingress.reason, 'default-deny');
      assert.equal(none.ingress.rule, undefined);
      assert.deepEqual(names(none.ingress.selectedBy), ['two-rules']);
    });
  });

  void describe('ports: multiple ports, endPort ranges, protocols', () => {
    void it('multiple ports in one rule are OR; each entry carries its own protocol', () => {
      const h = build([netpol('multi', { podSelector: podSel('a'), ingress: [{ from: [{ podSelector: podSel('b') }], ports: [{ port: 80 }, { port: 81, protocol: 'UDP' }] }] })]);
      assertReachability(h, onlyToXA('x/b'), 80, 'TCP');
      assertReachability(h, onlyToXA(), 81, 'TCP');
      assertReachability(h, onlyToXA('x/b'), 81, 'UDP');
      assertReachability(h, onlyToXA(), 80, 'UDP');
    });

    void it('endPort: ingress range [80, 81] includes both edges and excludes port-1 and endPort+1', () => {
      const h = build([netpol('range', { podSelector: podSel('a'), ingress: [{ from: [{ namespaceSelector: nsSel('y') }], ports: [{ protocol: 'TCP', port: 80, endPort: 81 }] }] })]);
      assertReachability(h, onlyToXA('y/*'), 80, 'TCP', 'port');
      assertReachability(h, onlyToXA('y/*'), 81, 'TCP', 'endPort');
      assertReachability(h, onlyToXA(), 82, 'TCP', 'endPort+1');
      assertReachability(h, onlyToXA(), 79, 'TCP', 'port-1');
      assertReachability(h, onlyToXA(), 80, 'UDP', 'other protocol');
    });

    void it('endPort: a wide egress range, edges included', () => {
      const h = build([netpol('range', { podSelector: podSel('a'), policyTypes: ['Egress'], egress: [{ ports: [{ protocol: 'UDP', port: 1000, endPort: 2000 }] }] })]);
      for (const [port, ok] of [
        [999, false],
        [1000, true],
        [1500, true],
        [2000, true],
        [2001, false],
      ] as const) {
        assertReachability(h, ok ? allowAll() : allowAll().expectAllEgress('x/a', false), port, 'UDP', `UDP/${port}`);
      }
      assertReachability(h, allowAll().expectAllEgress('x/a', false), 1500, 'TCP');
    });

    void it('endPort equal to port covers exactly that port', () => {
      const h = build([netpol('single', { podSelector: podSel('a'), ingress: [{ ports: [{ port: 81, endPort: 81 }] }] })]);
      assertReachability(h, allowAll(), 81);
      assertReachability(h, onlyToXA(), 80);
      assertReachability(h, onlyToXA(), 82);
    });

    void it('API validation of endPort (network_policy_api.go)', () => {
      const load = (port: unknown): string[] => {
        const doc = netpol('endport', { podSelector: {}, policyTypes: ['Ingress'], ingress: [{ ports: [port] }] });
        return loadManifests([{ name: 'np.yaml', text: doc }]).diagnostics.filter((d) => d.severity === 'error').map((d) => d.message);
      };
      assert.notDeepEqual(load({ endPort: 20000, protocol: 'TCP' }), [], 'endPort without port must be rejected');
      assert.notDeepEqual(load({ port: 'serve-80', endPort: 20000, protocol: 'TCP' }), [], 'named port with endPort must be rejected');
      assert.notDeepEqual(load({ port: 30000, endPort: 20000, protocol: 'TCP' }), [], 'endPort < port must be rejected');
      assert.deepEqual(load({ port: 20000, endPort: 20000, protocol: 'TCP' }), []);
      assert.deepEqual(load({ port: 10000, endPort: 20000, protocol: 'TCP' }), []);
    });

    void it('a port with no protocol defaults to TCP (SetDefaults_NetworkPolicyPort)', () => {
      const h = build([netpol('tcp-default', { podSelector: podSel('a'), ingress: [{ ports: [{ port: 80 }] }] })]);
      assertReachability(h, allowAll(), 80, 'TCP');
      assertReachability(h, onlyToXA(), 80, 'UDP');
      assertReachability(h, onlyToXA(), 80, 'SCTP');
    });

    void it('a named port resolves by name and protocol: serve-80-udp with protocol UDP covers UDP/80 only', () => {
      const h = build([netpol('named-udp', { podSelector: podSel('a'), ingress: [{ ports: [{ port: 'serve-80-udp', protocol: 'UDP' }] }] })]);
      assertReachability(h, allowAll(), 80, 'UDP');
      assertReachability(h, onlyToXA(), 80, 'TCP');
      assertReachability(h, onlyToXA(), 81, 'UDP');
      // The same name with the default protocol (TCP) names no TCP port: it matches nothing.
      const mismatched = build([netpol('named-mismatch', { podSelector: podSel('a'), ingress: [{ ports: [{ port: 'serve-80-udp' }] }] })]);
      assertReachability(mismatched, onlyToXA(), 80, 'TCP');
      assertReachability(mismatched, onlyToXA(), 80, 'UDP');
    });
  });

  void describe('ipBlock', () => {
    void it('ingress ipBlock with except matches source pod IPs', () => {
      // kind-worker's pod CIDR holds x/a, y/a, z/a; y/a is excepted.
      const h = build([
        netpol('from-node1-pods', { podSelector: podSel('b'), policyTypes: ['Ingress'], ingress: [{ from: [{ ipBlock: { cidr: '10.244.1.0/24', except: [`${podIP('y/a')}/32`] } }] }] }),
      ]);
      assertReachability(h, allowAll().expectAllIngress('x/b', false).expect('x/a', 'x/b', true).expect('z/a', 'x/b', true), 80);
      assert.equal(h.allowed('10.244.1.200', 'x/b', 80), true, 'an external address inside the block');
      assert.equal(h.allowed('192.0.2.10', 'x/b', 80), false, 'an external address outside the block');
      const d = h.decide('z/a', 'x/b', 80);
      assert.equal(d.ingress.rule?.policy.name, 'from-node1-pods');
      assert.equal(d.ingress.reason, 'allowed-by-rule');
    });

    void it('egress ipBlock with except to addresses outside the cluster', () => {
      const h = build([netpol('to-world', { podSelector: podSel('a'), policyTypes: ['Egress'], egress: [{ to: [{ ipBlock: { cidr: '192.0.2.0/24', except: ['192.0.2.128/25'] } }] }] })]);
      assert.equal(h.allowed('x/a', '192.0.2.10', 443), true);
      assert.equal(h.allowed('x/a', '192.0.2.200', 443), false);
      assert.equal(h.allowed('x/a', '198.51.100.1', 443), false);
      assertReachability(h, allowAll().expectAllEgress('x/a', false), 80);
    });

    void it('ipBlock and selector peers in one rule are OR', () => {
      const h = build([
        netpol('mixed', { podSelector: podSel('a'), policyTypes: ['Egress'], egress: [{ to: [{ ipBlock: { cidr: `${podIP('z/c')}/32` } }, { podSelector: podSel('b') }] }] }),
      ]);
      assertReachability(h, allowAll().expectAllEgress('x/a', false).expect('x/a', 'z/c', true).expect('x/a', 'x/b', true), 80);
    });
  });

  void describe('host traffic', () => {
    void it("a pod cannot block access from its resident node, but other nodes' traffic is subject to policy", () => {
      const h = build([netpol('deny-ingress', { podSelector: {}, policyTypes: ['Ingress'], ingress: [] })]);
      const [n1, n2] = NODES;
      const local = h.decide(n1.ip, 'x/a', 80);
      assert.equal(local.verdict, 'allowed');
      assert.equal(local.ingress.reason, 'local-host');
      assert.equal(h.allowed(n2.ip, 'x/a', 80), false);
      assert.equal(h.allowed(n2.ip, 'x/b', 80), true);
      assert.equal(h.allowed(n2.ip, 'y/a', 80), true);
    });
  });

  void describe('self connections', () => {
    void it('are allowed with reason self under deny-all in both directions', () => {
      const h = build([netpol('deny-all', { podSelector: {}, policyTypes: ['Ingress', 'Egress'], ingress: [], egress: [] })]);
      for (const p of ['x/a', 'x/b', 'x/c']) {
        const d = h.decide(p, p, 80);
        assert.equal(d.verdict, 'allowed');
        assert.equal(d.ingress.reason, 'self');
        assert.equal(d.egress.reason, 'self');
      }
    });
  });

  void it('the model manifests load without diagnostics', () => {
    const loaded = loadManifests([{ name: 'model.yaml', text: modelManifests() }]);
    assert.deepEqual(loaded.diagnostics.map((d) => d.message), []);
  });
});
