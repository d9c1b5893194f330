// The policies in force at one endpoint for one direction, and the decision procedure both evaluators share.
import type { DirectionDecision, EnforcementMode } from './decision.ts';
import type { Endpoint, PeerView } from './endpoint.ts';
import { httpMatches, lowerCaseHeaders, type HttpRequest } from './http.ts';
import type { Direction, PolicyRef, PolicyUnit, Protocol, Rule } from './ir.ts';
import type { Selector } from './selector.ts';

/** Decides whether one peer matches a rule's peers; the compiled and naive evaluators supply their own. */
export interface PeerMatcher {
  matches(rule: Rule, peer: PeerView): boolean;
  matchesSelector(sel: Selector, peer: PeerView): boolean;
}

/** What the evaluator found for a subject endpoint and direction. */
export interface SubjectView {
  direction: Direction;
  /** Units that select the subject at all (they contribute rules). */
  units: readonly PolicyUnit[];
  /** Units that select the subject and put this direction into default deny. */
  isolatedBy: readonly PolicyRef[];
  denyRules: readonly Rule[];
  /** Allow rules that may match this protocol and port (a superset; each is still checked). */
  allowCandidates(protocol: Protocol, port: number): readonly (readonly Rule[])[];
  requires: readonly Selector[];
}

export interface DirectionQuery {
  subject: Endpoint;
  peer: PeerView;
  /** The pod that receives the flow, where named ports are resolved. */
  destination: Endpoint;
  port: number;
  protocol: Protocol;
  http: HttpRequest | undefined;
  mode: EnforcementMode;
}

/** A named port resolves on the destination pod, by name and protocol. */
export function resolvePortName(dest: Endpoint, name: string, protocol: Protocol): number | undefined {
  if (dest.type !== 'pod') return undefined;
  for (const p of dest.pod.ports) if (p.name === name && p.protocol === protocol) return p.containerPort;
  return undefined;
}

type HttpRules = NonNullable<NonNullable<Rule['ports']>[number]['http']>;

/** No entry of the rule's ports matches the flow's protocol and port. */
const PORT_NONE = 0;
/** Some matching entry carries no L7 rules: the rule applies at L3/L4. */
const PORT_L4 = 1;
/** Every matching entry carries L7 rules. */
const PORT_L7 = 2;

function portEntryMatches(pm: NonNullable<Rule['ports']>[number], q: DirectionQuery): boolean {
  if (pm.protocol !== undefined && pm.protocol !== q.protocol) return false;
  if (pm.port !== undefined) {
    const start = typeof pm.port === 'number' ? pm.port : resolvePortName(q.destination, pm.port, q.protocol);
    if (start === undefined) return false;
    const end = pm.endPort ?? start;
    if (q.port < start || q.port > end) return false;
  }
  return true;
}

/** How a rule's ports match the flow: PORT_NONE, PORT_L4 or PORT_L7. Allocates nothing (it runs for every candidate rule). */
function portMatch(rule: Rule, q: DirectionQuery): number {
  const ports = rule.ports;
  if (!ports) return PORT_L4;
  let result = PORT_NONE;
  for (let i = 0; i < ports.length; i++) {
    const pm = ports[i] as NonNullable<Rule['ports']>[number];
    if (!portEntryMatches(pm, q)) continue;
    if (!pm.http) return PORT_L4;
    result = PORT_L7;
  }
  return result;
}

/** The L7 rule lists of a rule's port entries that match the flow, in order (for a rule whose portMatch is PORT_L7). */
function collectHttp(rule: Rule, q: DirectionQuery, into: { rule: Rule; http: HttpRules }[]): void {
  for (const pm of rule.ports ?? []) if (pm.http && portEntryMatches(pm, q)) into.push({ rule, http: pm.http });
}

/** The one decision procedure, used by the compiled engine and the naive evaluator alike. */
export function decideDirection(view: SubjectView, q: DirectionQuery, m: PeerMatcher): DirectionDecision {
  // Results are written as plain literals, not `{ ...base, … }`: V8 (Node 20) takes a slow path for a spread
  // followed by more properties, which cost more than the rest of a decision.
  const direction = view.direction;
  const selectedBy = view.isolatedBy;
  if (q.mode === 'never') return { direction, selectedBy, verdict: 'allowed', reason: 'enforcement-disabled' };
  // Deny rules win over every allow, from any policy kind.
  const denyRules = view.denyRules;
  for (let i = 0; i < denyRules.length; i++) {
    const r = denyRules[i] as Rule;
    if (portMatch(r, q) !== PORT_NONE && m.matches(r, q.peer)) return { direction, selectedBy, verdict: 'denied', reason: 'denied-by-rule', rule: r.ref };
  }
  const enforced = view.isolatedBy.length > 0 || (q.mode === 'always' && (q.subject.type === 'pod' || view.units.length > 0));
  if (!enforced) return { direction, selectedBy, verdict: 'allowed', reason: 'not-selected' };
  if (view.direction === 'ingress' && q.peer.reserved.has('host') && q.subject.type === 'pod') {
    return { direction, selectedBy, verdict: 'allowed', reason: 'local-host' };
  }
  for (const req of view.requires) {
    if (!m.matchesSelector(req, q.peer)) return { direction, selectedBy, verdict: 'denied', reason: 'requires-unmet', requires: formatReq(req) };
  }
  let l7: { rule: Rule; http: HttpRules }[] | undefined;
  const candidates = view.allowCandidates(q.protocol, q.port);
  for (let c = 0; c < candidates.length; c++) {
    const list = candidates[c] as readonly Rule[];
    for (let i = 0; i < list.length; i++) {
      const r = list[i] as Rule;
      const pm = portMatch(r, q);
      if (pm === PORT_NONE || !m.matches(r, q.peer)) continue;
      // An L3/L4 rule for this peer and port allows every request, whatever L7 rules other rules carry.
      if (pm === PORT_L4) return { direction, selectedBy, verdict: 'allowed', reason: 'allowed-by-rule', rule: r.ref };
      collectHttp(r, q, (l7 ??= []));
    }
  }
  if (!l7) return { direction, selectedBy, verdict: 'denied', reason: 'default-deny' };
  if (!q.http) {
    const byRule = new Map<Rule, { index: number; text: string }[]>();
    for (const e of l7) {
      const list = byRule.get(e.rule) ?? [];
      for (const h of e.http) if (!list.some((x) => x.index === h.index)) list.push({ index: h.index, text: h.text });
      byRule.set(e.rule, list);
    }
    const first = l7[0];
    const out: DirectionDecision = { direction, selectedBy, verdict: 'allowed', reason: 'allowed-by-rule' };
    if (first) out.rule = first.rule.ref;
    out.l7 = { rules: [...byRule].map(([rule, http]) => ({ rule: rule.ref, http })) };
    return out;
  }
  const headers = lowerCaseHeaders(q.http.headers);
  for (const e of l7) {
    for (const h of e.http) {
      if (httpMatches(h, q.http, headers)) return { direction, selectedBy, verdict: 'allowed', reason: 'allowed-by-rule', rule: e.rule.ref, http: { index: h.index, text: h.text } };
    }
  }
  const first = l7[0];
  const out: DirectionDecision = { direction, selectedBy, verdict: 'denied', reason: 'l7-denied' };
  if (first) out.rule = first.rule.ref;
  return out;
}

function formatReq(s: Selector): string {
  return s.reqs.map((r) => `${r.key} ${r.op} ${r.values.join(',')}`).join(', ');
}

/** Collects the units selecting a subject into the parts of a view; the caller decides how candidates are found. */
export function viewParts(units: readonly PolicyUnit[], direction: Direction): Pick<SubjectView, 'units' | 'isolatedBy' | 'denyRules' | 'requires'> & { allow: Rule[] } {
  const isolatedBy: PolicyRef[] = [];
  const denyRules: Rule[] = [];
  const requires: Selector[] = [];
  const allow: Rule[] = [];
  for (const u of units) {
    if (u.defaultDeny[direction]) isolatedBy.push(u.ref);
    denyRules.push(...u.deny[direction]);
    allow.push(...u.allow[direction]);
    requires.push(...u.requires[direction]);
  }
  return { units, isolatedBy, denyRules, requires, allow };
}
