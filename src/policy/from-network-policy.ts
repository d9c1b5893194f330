// Kubernetes NetworkPolicy → policy units, following the Kubernetes documentation and upstream's e2e suite.
import type { LabelSelector, NetworkPolicy, NetworkPolicyRule } from '../resources/kinds.ts';
import { NAMESPACE_LABEL, NAMESPACE_LABELS_PREFIX } from '../model/labels.ts';
import type { Direction, Peer, PolicyRef, PolicyUnit, PortMatch, Rule } from './ir.ts';
import { fromLabelSelector, makeSelector, type Requirement } from './selector.ts';

export function unitFromNetworkPolicy(np: NetworkPolicy, nextUnitId: number, nextRuleId: () => number): PolicyUnit {
  const ns = np.metadata.namespace ?? 'default';
  const ref: PolicyRef = { kind: 'NetworkPolicy', namespace: ns, name: np.metadata.name, origin: np.origin, path: ['spec'] };
  const inNamespace: Requirement = { space: 'k8s', key: NAMESPACE_LABEL, op: 'In', values: [ns] };
  // policyTypes, when absent or empty, is inferred: Ingress always, Egress only if the policy has egress
  // rules (the API server's SetDefaults_NetworkPolicy tests the length, so `[]` counts as absent).
  const written = np.spec.policyTypes;
  const types = written && written.length > 0 ? written : np.spec.egress && np.spec.egress.length > 0 ? ['Ingress', 'Egress'] : ['Ingress'];
  const unit: PolicyUnit = {
    id: nextUnitId,
    ref,
    subject: { type: 'pods', selector: makeSelector([...fromLabelSelector(np.spec.podSelector), inNamespace]) },
    defaultDeny: { ingress: types.includes('Ingress'), egress: types.includes('Egress') },
    allow: { ingress: [], egress: [] },
    deny: { ingress: [], egress: [] },
    requires: { ingress: [], egress: [] },
  };
  for (const dir of ['ingress', 'egress'] as const) {
    // Rules of a direction that policyTypes leaves out have no effect, as the API documents.
    if (!unit.defaultDeny[dir]) continue;
    (np.spec[dir] ?? []).forEach((r, i) => unit.allow[dir].push(rule(r, i, dir, ref, ns, nextRuleId())));
  }
  return unit;
}

function rule(r: NetworkPolicyRule, index: number, direction: Direction, policy: PolicyRef, ns: string, id: number): Rule {
  const out: Rule = { id, ref: { policy, direction, deny: false, index, path: ['spec', direction, index] } };
  // An empty or missing from/to matches every peer; an empty or missing ports list matches every port.
  if (r.peers && r.peers.length > 0) out.peers = r.peers.map((p): Peer => {
    if (p.ipBlock) return { type: 'cidr', cidr: p.ipBlock.cidr, except: p.ipBlock.except, semantics: 'k8s' };
    return { type: 'selector', selector: makeSelector(peerRequirements(p.podSelector, p.namespaceSelector, ns)) };
  });
  if (r.ports && r.ports.length > 0) {
    out.ports = r.ports.map((p): PortMatch => {
      const m: PortMatch = { protocol: p.protocol };
      if (p.port !== undefined) m.port = p.port;
      if (p.endPort !== undefined) m.endPort = p.endPort;
      return m;
    });
  }
  return out;
}

/**
 * A peer's pod and namespace selectors as one selector over endpoint labels: podSelector alone means pods
 * of the policy's namespace; namespaceSelector reads the namespace's labels, which every endpoint carries
 * as `io.cilium.k8s.namespace.labels.*`; both together must hold at once (AND).
 */
function peerRequirements(pod: LabelSelector | undefined, nsSel: LabelSelector | undefined, ns: string): Requirement[] {
  const reqs: Requirement[] = pod ? fromLabelSelector(pod) : [];
  if (nsSel) {
    for (const r of fromLabelSelector(nsSel)) reqs.push({ ...r, key: NAMESPACE_LABELS_PREFIX + r.key });
    // Only pods carry a namespace; this keeps `namespaceSelector: {}` from matching hosts or the world.
    reqs.push({ space: 'k8s', key: NAMESPACE_LABEL, op: 'Exists', values: [] });
  } else {
    reqs.push({ space: 'k8s', key: NAMESPACE_LABEL, op: 'In', values: [ns] });
  }
  return reqs;
}
