// Decides a whole flow: the source's egress and the destination's ingress must both allow it.
import type { Decision, DirectionDecision, EnforcementMode, FlowQuery } from './decision.ts';
import { newPeerView, type Endpoint, type PeerView } from './endpoint.ts';
import type { Direction } from './ir.ts';
import { decideDirection, type DirectionQuery, type PeerMatcher, type SubjectView } from './subject-view.ts';

const NONE: readonly never[] = [];

/** What an evaluator supplies to the shared decision procedure. */
export interface FlowEvaluator extends PeerMatcher {
  /** The policies in force at `subject` for direction `d`. */
  view(subject: Endpoint, d: Direction): SubjectView;
  /**
   * How `peer` looks from `subject`, for direction `d`. The compiled engine refills one object per direction;
   * the result is only read during the decision of that direction.
   */
  peer(peer: Endpoint, subject: Endpoint, d: Direction): PeerView;
  /** A query object to fill for direction `d` (reused by the compiled engine, fresh in the naive one). */
  query(d: Direction): DirectionQuery;
}

export function decideFlow(q: FlowQuery, mode: EnforcementMode, ev: FlowEvaluator): Decision {
  const from = q.from;
  const to = q.to;
  if (from.type === 'pod' && to.type === 'pod' && from.pod === to.pod) {
    // A pod cannot block access to itself (Kubernetes docs; upstream's e2e suite ignores loopback).
    return {
      verdict: 'allowed',
      egress: { direction: 'egress', verdict: 'allowed', reason: 'self', selectedBy: NONE },
      ingress: { direction: 'ingress', verdict: 'allowed', reason: 'self', selectedBy: NONE },
    };
  }
  let egress: DirectionDecision;
  if (from.type === 'world') egress = { direction: 'egress', verdict: 'allowed', reason: 'outside-cluster', selectedBy: NONE };
  else {
    const dq = ev.query('egress');
    fill(dq, from, ev.peer(to, from, 'egress'), to, q, mode);
    egress = decideDirection(ev.view(from, 'egress'), dq, ev);
  }
  let ingress: DirectionDecision;
  if (to.type === 'world') ingress = { direction: 'ingress', verdict: 'allowed', reason: 'outside-cluster', selectedBy: NONE };
  else {
    const dq = ev.query('ingress');
    fill(dq, to, ev.peer(from, to, 'ingress'), to, q, mode);
    ingress = decideDirection(ev.view(to, 'ingress'), dq, ev);
  }
  return { verdict: egress.verdict === 'allowed' && ingress.verdict === 'allowed' ? 'allowed' : 'denied', egress, ingress };
}

function fill(dq: DirectionQuery, subject: Endpoint, peer: PeerView, destination: Endpoint, q: FlowQuery, mode: EnforcementMode): void {
  dq.subject = subject;
  dq.peer = peer;
  dq.destination = destination;
  dq.port = q.port;
  dq.protocol = q.protocol;
  dq.http = q.http;
  dq.mode = mode;
}

const NOWHERE: Endpoint = { type: 'world', ip: '0.0.0.0', bytes: new Uint8Array(4) };

/** A DirectionQuery to fill (decideFlow overwrites every field before use). */
export function newDirectionQuery(): DirectionQuery {
  return { subject: NOWHERE, peer: newPeerView(NOWHERE), destination: NOWHERE, port: 0, protocol: 'TCP', http: undefined, mode: 'default' };
}
