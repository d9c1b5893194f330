// Decides a whole flow: the source's egress and the destination's ingress must both allow it.
import type { Decision, DirectionDecision, EnforcementMode, FlowQuery } from './decision.ts';
import { peerView, type Endpoint } from './endpoint.ts';
import type { Direction } from './ir.ts';
import { decideDirection, type PeerMatcher, type SubjectView } from './subject-view.ts';

const NONE: readonly never[] = [];

export function decideFlow(q: FlowQuery, mode: EnforcementMode, viewFor: (subject: Endpoint, d: Direction) => SubjectView, m: PeerMatcher): Decision {
  if (q.from.type === 'pod' && q.to.type === 'pod' && q.from.pod === q.to.pod) {
    // A pod cannot block access to itself (Kubernetes docs; upstream's e2e suite ignores loopback).
    const self = (direction: Direction): DirectionDecision => ({ direction, verdict: 'allowed', reason: 'self', selectedBy: NONE });
    return { verdict: 'allowed', egress: self('egress'), ingress: self('ingress') };
  }
  const egress: DirectionDecision = q.from.type === 'world'
    ? { direction: 'egress', verdict: 'allowed', reason: 'outside-cluster', selectedBy: NONE }
    : decideDirection(viewFor(q.from, 'egress'), { subject: q.from, peer: peerView(q.to, q.from), destination: q.to, port: q.port, protocol: q.protocol, http: q.http, mode }, m);
  const ingress: DirectionDecision = q.to.type === 'world'
    ? { direction: 'ingress', verdict: 'allowed', reason: 'outside-cluster', selectedBy: NONE }
    : decideDirection(viewFor(q.to, 'ingress'), { subject: q.to, peer: peerView(q.from, q.to), destination: q.to, port: q.port, protocol: q.protocol, http: q.http, mode }, m);
  return { verdict: egress.verdict === 'allowed' && ingress.verdict === 'allowed' ? 'allowed' : 'denied', egress, ingress };
}
