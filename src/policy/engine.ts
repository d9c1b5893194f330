// The compiled policy engine: every policy resolved once into per-identity views indexed by protocol and
// port, selectors into identity sets and CIDRs into prefix tries. A decision looks things up; it never scans.
import type { Cluster } from '../model/cluster.ts';
import type { Resource } from '../resources/kinds.ts';
import type { Decision, EnforcementMode, FlowQuery } from './decision.ts';
import type { Endpoint, PeerView } from './endpoint.ts';
import { decideFlow } from './evaluate-flow.ts';
import { CidrTrie } from './cidr-trie.ts';
import type { Direction, PolicyUnit, Protocol, ReservedName, Rule } from './ir.ts';
import { LabelIndex } from './label-index.ts';
import { buildPolicyUnits } from './policy-set.ts';
import { selectorMatches, type Selector } from './selector.ts';
import { viewParts, type PeerMatcher, type SubjectView } from './subject-view.ts';

/** A rule's peers in compiled form. */
interface CompiledPeers {
  /** Identity sets of the rule's selector peers (shared between equal selectors). */
  idSets: ReadonlySet<number>[];
  /** Selector peers that can also match non-pod peers (they read `reserved:` labels). */
  reservedSelectors: Selector[];
  allPods: boolean;
  reserved: Set<ReservedName>;
  k8sCidrs?: CidrTrie;
  ciliumCidrs?: CidrTrie;
  nodeSelectors: Selector[];
}

const PROTOCOLS: readonly Protocol[] = ['TCP', 'UDP', 'SCTP'];
const EMPTY_RULES: readonly Rule[] = [];

class CompiledView implements SubjectView {
  readonly direction: Direction;
  readonly units: readonly PolicyUnit[];
  readonly isolatedBy;
  readonly denyRules;
  readonly requires;
  private readonly exact = new Map<number, Rule[]>();
  private readonly other: Rule[] = [];
  private readonly scratch: (readonly Rule[])[] = [EMPTY_RULES, EMPTY_RULES];

  constructor(units: readonly PolicyUnit[], direction: Direction) {
    const parts = viewParts(units, direction);
    this.direction = direction;
    this.units = units;
    this.isolatedBy = parts.isolatedBy;
    this.denyRules = parts.denyRules;
    this.requires = parts.requires;
    for (const r of parts.allow) {
      if (!r.ports) {
        this.other.push(r);
        continue;
      }
      let inOther = false;
      for (const pm of r.ports) {
        if (typeof pm.port === 'number' && (pm.endPort === undefined || pm.endPort === pm.port)) {
          for (const proto of pm.protocol ? [pm.protocol] : PROTOCOLS) {
            const key = portKey(proto, pm.port);
            const list = this.exact.get(key);
            if (!list) this.exact.set(key, [r]);
            else if (list[list.length - 1] !== r) list.push(r);
          }
        } else if (!inOther) {
          this.other.push(r);
          inOther = true;
        }
      }
    }
    this.scratch[1] = this.other;
  }

  allowCandidates(protocol: Protocol, port: number): readonly (readonly Rule[])[] {
    this.scratch[0] = this.exact.get(portKey(protocol, port)) ?? EMPTY_RULES;
    return this.scratch;
  }
}

function portKey(protocol: Protocol, port: number): number {
  return (protocol === 'TCP' ? 0 : protocol === 'UDP' ? 1 : 2) * 65536 + port;
}

export interface EngineStats {
  units: number;
  rules: number;
  identities: number;
  views: number;
}

export class PolicyEngine implements PeerMatcher {
  readonly cluster: Cluster;
  readonly units: readonly PolicyUnit[];
  private readonly peers: CompiledPeers[] = [];
  private readonly podViews = new Map<number, [CompiledView, CompiledView]>();
  private readonly nodeViews = new Map<string, [CompiledView, CompiledView]>();
  private readonly emptyViews: [CompiledView, CompiledView] = [new CompiledView([], 'ingress'), new CompiledView([], 'egress')];
  private readonly unitsByIdentity = new Map<number, PolicyUnit[]>();
  private readonly unitsByNode = new Map<string, PolicyUnit[]>();
  /** Resolves selectors to the pod identities they match (shared, cached results). */
  readonly labelIndex: LabelIndex;

  static fromResources(cluster: Cluster, resources: readonly Resource[]): PolicyEngine {
    return new PolicyEngine(cluster, buildPolicyUnits(resources));
  }

  constructor(cluster: Cluster, units: readonly PolicyUnit[]) {
    this.cluster = cluster;
    this.units = units;
    const identityLabels = new Map<number, Readonly<Record<string, string>>>();
    for (const p of cluster.pods.values()) if (!p.hostNetwork && !identityLabels.has(p.identity)) identityLabels.set(p.identity, p.endpointLabels);
    const index = new LabelIndex(identityLabels);
    this.labelIndex = index;
    for (const u of units) {
      if (u.subject.type === 'pods') {
        for (const id of index.resolve(u.subject.selector)) push(this.unitsByIdentity, id, u);
      } else {
        for (const n of cluster.nodes.values()) {
          if (selectorMatches(u.subject.selector, { k8s: n.labels, reserved: new Set(['host']) })) push(this.unitsByNode, n.name, u);
        }
      }
      for (const d of ['ingress', 'egress'] as const) for (const r of [...u.allow[d], ...u.deny[d]]) this.peers[r.id] = compilePeers(r, index);
    }
    for (const [id, list] of this.unitsByIdentity) this.podViews.set(id, [new CompiledView(list, 'ingress'), new CompiledView(list, 'egress')]);
    for (const [n, list] of this.unitsByNode) this.nodeViews.set(n, [new CompiledView(list, 'ingress'), new CompiledView(list, 'egress')]);
  }

  decide(q: FlowQuery, mode: EnforcementMode = 'default'): Decision {
    return decideFlow(q, mode, this.viewFor, this);
  }

  /** The policy units that select an endpoint (pods by identity, nodes by host policies). */
  unitsSelecting(e: Endpoint): readonly PolicyUnit[] {
    if (e.type === 'pod') return this.unitsByIdentity.get(e.pod.identity) ?? [];
    if (e.type === 'node') return this.unitsByNode.get(e.node.name) ?? [];
    return [];
  }

  stats(): EngineStats {
    return { units: this.units.length, rules: this.peers.length, identities: this.unitsByIdentity.size, views: this.podViews.size + this.nodeViews.size };
  }

  private readonly viewFor = (subject: Endpoint, d: Direction): SubjectView => {
    const pair = subject.type === 'pod' ? this.podViews.get(subject.pod.identity) : subject.type === 'node' ? this.nodeViews.get(subject.node.name) : undefined;
    return (pair ?? this.emptyViews)[d === 'ingress' ? 0 : 1];
  };

  matchesSelector(sel: Selector, peer: PeerView): boolean {
    return selectorMatches(sel, peer.labels);
  }

  matches(rule: Rule, peer: PeerView): boolean {
    if (!rule.peers) return true;
    const c = this.peers[rule.id];
    if (!c) return false;
    const e = peer.endpoint;
    if (e.type === 'pod') {
      if (c.allPods) return true;
      for (const s of c.idSets) if (s.has(peer.identity)) return true;
    } else {
      for (const r of peer.reserved) if (c.reserved.has(r)) return true;
      for (const s of c.reservedSelectors) if (selectorMatches(s, peer.labels)) return true;
      if (e.type === 'node') for (const s of c.nodeSelectors) if (selectorMatches(s, { k8s: e.node.labels, reserved: peer.reserved })) return true;
      if (e.type === 'world' && c.ciliumCidrs?.contains(e.bytes)) return true;
    }
    return c.k8sCidrs?.contains(e.bytes) ?? false;
  }
}

function push<K, V>(m: Map<K, V[]>, k: K, v: V): void {
  const l = m.get(k);
  if (l) l.push(v);
  else m.set(k, [v]);
}

function compilePeers(r: Rule, index: LabelIndex): CompiledPeers {
  const c: CompiledPeers = { idSets: [], reservedSelectors: [], allPods: false, reserved: new Set(), nodeSelectors: [] };
  for (const p of r.peers ?? []) {
    switch (p.type) {
      case 'selector':
        c.idSets.push(index.resolve(p.selector));
        if (p.selector.reqs.some((q) => q.space !== 'k8s' || q.op === 'NotIn' || q.op === 'DoesNotExist')) c.reservedSelectors.push(p.selector);
        break;
      case 'entities':
        c.allPods ||= p.allPods;
        for (const x of p.reserved) c.reserved.add(x);
        break;
      case 'cidr':
        if (p.semantics === 'k8s') (c.k8sCidrs ??= new CidrTrie()).add(p.cidr, p.except);
        else (c.ciliumCidrs ??= new CidrTrie()).add(p.cidr, p.except);
        break;
      case 'nodes':
        c.nodeSelectors.push(p.selector);
        break;
    }
  }
  return c;
}
