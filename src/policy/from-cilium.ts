// CiliumNetworkPolicy and CiliumClusterwideNetworkPolicy → policy units, following docs.cilium.io.
import type { CiliumEntity, CiliumNetworkPolicy, CiliumPeerRule, CiliumPortRule, CiliumRule, LabelSelector } from '../resources/kinds.ts';
import { NAMESPACE_LABEL } from '../model/labels.ts';
import { compileHttpRule } from './http.ts';
import type { Direction, Peer, PolicyRef, PolicyUnit, PortMatch, ReservedName, Rule } from './ir.ts';
import { fromLabelSelector, makeSelector, selectorHasKey, selectorUsesReserved, type Requirement, type Selector } from './selector.ts';

/** What each entity selects (Cilium pkg/policy/api/entity.go). `cluster` includes hosts and nodes; only `all` includes the world. */
const ENTITY_RESERVED: Record<CiliumEntity, readonly ReservedName[]> = {
  all: ['host', 'remote-node', 'kube-apiserver', 'world', 'world-ipv4', 'world-ipv6', 'health', 'init', 'unmanaged', 'ingress'],
  world: ['world', 'world-ipv4', 'world-ipv6'],
  'world-ipv4': ['world-ipv4'],
  'world-ipv6': ['world-ipv6'],
  cluster: ['host', 'remote-node', 'kube-apiserver', 'health', 'init', 'unmanaged', 'ingress'],
  host: ['host'],
  'remote-node': ['remote-node'],
  'kube-apiserver': ['kube-apiserver'],
  ingress: ['ingress'],
  health: ['health'],
  init: ['init'],
  unmanaged: ['unmanaged'],
  none: [],
};

export function unitsFromCilium(p: CiliumNetworkPolicy, nextUnitId: () => number, nextRuleId: () => number): PolicyUnit[] {
  const clusterwide = p.kind === 'CiliumClusterwideNetworkPolicy';
  const ns = clusterwide ? undefined : (p.metadata.namespace ?? 'default');
  return p.rules.map((r) => {
    const ref: PolicyRef = { kind: p.kind, name: p.metadata.name, origin: p.origin, path: r.path };
    if (ns !== undefined) ref.namespace = ns;
    return unit(r, ref, ns, nextUnitId(), nextRuleId);
  });
}

function unit(r: CiliumRule, ref: PolicyRef, ns: string | undefined, id: number, nextRuleId: () => number): PolicyUnit {
  const subject: PolicyUnit['subject'] = r.nodeSelector
    ? { type: 'nodes', selector: makeSelector(fromLabelSelector(r.nodeSelector, true)) }
    : { type: 'pods', selector: subjectSelector(r.endpointSelector ?? { matchLabels: {}, matchExpressions: [] }, ns) };
  const has = (list: unknown[] | undefined): boolean => list !== undefined && list.length > 0;
  const u: PolicyUnit = {
    id,
    ref,
    subject,
    // An ingress or ingressDeny section (even `[{}]`) puts the direction into default deny, unless
    // enableDefaultDeny says otherwise for this rule.
    defaultDeny: {
      ingress: r.enableDefaultDeny.ingress ?? (has(r.ingress) || has(r.ingressDeny)),
      egress: r.enableDefaultDeny.egress ?? (has(r.egress) || has(r.egressDeny)),
    },
    allow: { ingress: [], egress: [] },
    deny: { ingress: [], egress: [] },
    requires: { ingress: [], egress: [] },
  };
  const sections = [
    ['ingress', false, r.ingress],
    ['egress', false, r.egress],
    ['ingress', true, r.ingressDeny],
    ['egress', true, r.egressDeny],
  ] as const;
  for (const [dir, deny, list] of sections) {
    (list ?? []).forEach((pr, i) => {
      const rule = peerRule(pr, i, dir, deny, ref, ns, nextRuleId());
      (deny ? u.deny : u.allow)[dir].push(rule);
      for (const req of pr.requires ?? []) u.requires[dir].push(peerSelector(req, ns));
    });
  }
  return u;
}

/** A namespaced policy selects only endpoints of its own namespace; any namespace the selector names is replaced. */
function subjectSelector(sel: LabelSelector, ns: string | undefined): Selector {
  const reqs = fromLabelSelector(sel, true);
  if (ns === undefined) return makeSelector(reqs);
  return makeSelector([...reqs.filter((q) => !(q.space === 'k8s' && q.key === NAMESPACE_LABEL)), { space: 'k8s', key: NAMESPACE_LABEL, op: 'In', values: [ns] }]);
}

/**
 * fromEndpoints/toEndpoints (and the requires lists): in a CiliumNetworkPolicy a selector that does not
 * name a namespace (`io.kubernetes.pod.namespace`) is scoped to the policy's namespace; in a clusterwide
 * policy it matches pods of every namespace, but no reserved identity. Selectors on `reserved:` labels
 * are left as written. Namespace labels (`io.cilium.k8s.namespace.labels.*`) do not lift the scoping in a
 * namespaced policy, as Cilium's documentation states.
 */
function peerSelector(sel: LabelSelector, ns: string | undefined): Selector {
  const reqs = fromLabelSelector(sel, true);
  const s = makeSelector(reqs);
  if (selectorUsesReserved(s) || selectorHasKey(s, NAMESPACE_LABEL)) return s;
  const scope: Requirement = ns === undefined
    ? { space: 'k8s', key: NAMESPACE_LABEL, op: 'Exists', values: [] }
    : { space: 'k8s', key: NAMESPACE_LABEL, op: 'In', values: [ns] };
  return makeSelector([...reqs, scope]);
}

function peerRule(pr: CiliumPeerRule, index: number, direction: Direction, deny: boolean, policy: PolicyRef, ns: string | undefined, id: number): Rule {
  const field = deny ? (direction === 'ingress' ? 'ingressDeny' : 'egressDeny') : direction;
  const rule: Rule = { id, ref: { policy, direction, deny, index, path: [...policy.path, field, index] } };
  const peers: Peer[] = [];
  for (const e of pr.endpoints ?? []) peers.push({ type: 'selector', selector: peerSelector(e, ns) });
  if (pr.entities && pr.entities.length > 0) {
    const reserved = new Set<ReservedName>();
    for (const e of pr.entities) for (const r of ENTITY_RESERVED[e]) reserved.add(r);
    peers.push({ type: 'entities', reserved, allPods: pr.entities.includes('all') || pr.entities.includes('cluster'), entities: pr.entities });
  }
  for (const c of pr.cidr ?? []) peers.push({ type: 'cidr', cidr: c, except: [], semantics: 'cilium' });
  for (const c of pr.cidrSet ?? []) peers.push({ type: 'cidr', cidr: c.cidr, except: c.except, semantics: 'cilium' });
  for (const n of pr.nodes ?? []) peers.push({ type: 'nodes', selector: makeSelector(fromLabelSelector(n, true)) });
  const hasL3 = peers.length > 0 || pr.opaqueL3 === true;
  const hasPorts = pr.toPorts !== undefined && pr.toPorts.length > 0;
  // No L3 field means every peer, but only when the rule names ports; an empty rule (`- {}`) allows nothing.
  // L3 fields that cannot be evaluated offline (toFQDNs, toServices, groups) match no peer: fail closed.
  if (hasL3) rule.peers = peers;
  else if (!hasPorts) rule.peers = [];
  if (hasPorts) rule.ports = (pr.toPorts ?? []).flatMap(portMatches);
  return rule;
}

function portMatches(pr: CiliumPortRule): PortMatch[] {
  const http = pr.http?.map((h, i) => compileHttpRule(h, i));
  return pr.ports.map((p) => {
    const m: PortMatch = {};
    if (p.protocol !== 'ANY') m.protocol = p.protocol;
    // Port 0 means every port.
    if (p.port !== 0) m.port = p.port;
    if (p.endPort !== undefined) m.endPort = p.endPort;
    if (http) m.http = http;
    return m;
  });
}
