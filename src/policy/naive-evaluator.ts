// The naive evaluator: scans every policy and evaluates every selector on each decision.
// It is the baseline the benchmark measures the compiled engine against, and an oracle for tests.
import type { Cluster } from '../model/cluster.ts';
import type { Decision, EnforcementMode, FlowQuery } from './decision.ts';
import { peerView, type Endpoint, type PeerView } from './endpoint.ts';
import { decideFlow, newDirectionQuery, type FlowEvaluator } from './evaluate-flow.ts';
import type { Direction, PolicyUnit } from './ir.ts';
import { CidrTrie } from './cidr-trie.ts';
import { selectorMatches, type LabelView, type Selector } from './selector.ts';
import { Candidate, PORT_DYNAMIC, viewParts, type DirectionQuery, type SubjectView } from './subject-view.ts';

export class NaiveEvaluator implements FlowEvaluator {
  private readonly units: readonly PolicyUnit[];

  constructor(_cluster: Cluster, units: readonly PolicyUnit[]) {
    this.units = units;
  }

  decide(q: FlowQuery, mode: EnforcementMode = 'default'): Decision {
    return decideFlow(q, mode, this);
  }

  /** Every rule of every selecting unit is a candidate, in rule-id order (viewParts sorts them). */
  view(subject: Endpoint, direction: Direction): SubjectView {
    const selecting = this.units.filter((u) => subjectMatches(u, subject));
    const parts = viewParts(selecting, direction);
    const allow = parts.allow.map((r) => new Candidate(r, PORT_DYNAMIC, null));
    const deny = parts.deny.map((r) => new Candidate(r, PORT_DYNAMIC, null));
    return { units: parts.units, isolatedBy: parts.isolatedBy, requires: parts.requires, direction, allowCandidates: () => allow, denyCandidates: () => deny };
  }

  peer(peer: Endpoint, subject: Endpoint): PeerView {
    return peerView(peer, subject);
  }

  query(): DirectionQuery {
    return newDirectionQuery();
  }

  matchesSelector(sel: Selector, peer: PeerView): boolean {
    return selectorMatches(sel, peer.labels);
  }

  matches(c: Candidate, peer: PeerView): boolean {
    const rule = c.rule;
    if (!rule.peers) return true;
    const e = peer.endpoint;
    for (const p of rule.peers) {
      switch (p.type) {
        case 'selector':
          if (selectorMatches(p.selector, peer.labels)) return true;
          break;
        case 'entities':
          if (e.type === 'pod' ? p.allPods : [...peer.reserved].some((r) => p.reserved.has(r))) return true;
          break;
        case 'cidr': {
          if (p.semantics === 'cilium' && e.type !== 'world') break;
          const t = new CidrTrie();
          t.add(p.cidr, p.except);
          if (t.contains(e.bytes)) return true;
          break;
        }
        case 'nodes':
          if (e.type === 'node' && selectorMatches(p.selector, { k8s: e.node.labels, reserved: peer.reserved })) return true;
          break;
      }
    }
    return false;
  }
}

export function subjectLabels(subject: Endpoint): LabelView | undefined {
  if (subject.type === 'pod') return { k8s: subject.pod.endpointLabels, reserved: new Set() };
  if (subject.type === 'node') return { k8s: subject.node.labels, reserved: new Set(['host']) };
  return undefined;
}

function subjectMatches(u: PolicyUnit, subject: Endpoint): boolean {
  if ((u.subject.type === 'pods') !== (subject.type === 'pod')) return false;
  const labels = subjectLabels(subject);
  return labels !== undefined && selectorMatches(u.subject.selector, labels);
}
