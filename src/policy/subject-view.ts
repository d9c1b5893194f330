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

function portMatches(rule: Rule, q: DirectionQuery, collect?: (http: NonNullable<NonNullable<Rule['ports']>[number]['http']>) => void): { matched: boolean; l4Only: boolean } {
  if (!rule.ports) return { matched: true, l4Only: true };
  let matched = false;
  let l4Only = false;
  for (const pm of rule.ports) {
    if (pm.protocol !== undefined && pm.protocol !== q.protocol) continue;
    if (pm.port !== undefined) {
      const start = typeof pm.port === 'number' ? pm.port : resolvePortName(q.destination, pm.port, q.protocol);
      if (start === undefined) continue;
      const end = pm.endPort ?? start;
      if (q.port < start || q.port > end) continue;
    }
    matched = true;
    if (!pm.http) l4Only = true;
    else collect?.(pm.http);
  }
  return { matched, l4Only };
}

/** The one decision procedure, used by the compiled engine and the naive evaluator alike. */
export function decideDirection(view: SubjectView, q: DirectionQuery, m: PeerMatcher): DirectionDecision {
  const base = { direction: view.direction, selectedBy: view.isolatedBy };
  if (q.mode === 'never') return { ...base, verdict: 'allowed', reason: 'enforcement-disabled' };
  // Deny rules win over every allow, from any policy kind.
  for (const r of view.denyRules) {
    if (portMatches(r, q).matched && m.matches(r, q.peer)) return { ...base, verdict: 'denied', reason: 'denied-by-rule', rule: r.ref };
  }
  const enforced = view.isolatedBy.length > 0 || (q.mode === 'always' && (q.subject.type === 'pod' || view.units.length > 0));
  if (!enforced) return { ...base, verdict: 'allowed', reason: 'not-selected' };
  if (view.direction === 'ingress' && q.peer.reserved.has('host') && q.subject.type === 'pod') {
    return { ...base, verdict: 'allowed', reason: 'local-host' };
  }
  for (const req of view.requires) {
    if (!m.matchesSelector(req, q.peer)) return { ...base, verdict: 'denied', reason: 'requires-unmet', requires: formatReq(req) };
  }
  let l7: { rule: Rule; http: NonNullable<NonNullable<Rule['ports']>[number]['http']> }[] | undefined;
  for (const list of view.allowCandidates(q.protocol, q.port)) {
    for (const r of list) {
      let https: NonNullable<NonNullable<Rule['ports']>[number]['http']>[] | undefined;
      const pm = portMatches(r, q, (h) => (https ??= []).push(h));
      if (!pm.matched || !m.matches(r, q.peer)) continue;
      // An L3/L4 rule for this peer and port allows every request, whatever L7 rules other rules carry.
      if (pm.l4Only) return { ...base, verdict: 'allowed', reason: 'allowed-by-rule', rule: r.ref };
      for (const h of https ?? []) (l7 ??= []).push({ rule: r, http: h });
    }
  }
  if (!l7) return { ...base, verdict: 'denied', reason: 'default-deny' };
  if (!q.http) {
    const byRule = new Map<Rule, { index: number; text: string }[]>();
    for (const e of l7) {
      const list = byRule.get(e.rule) ?? [];
      for (const h of e.http) if (!list.some((x) => x.index === h.index)) list.push({ index: h.index, text: h.text });
      byRule.set(e.rule, list);
    }
    const first = l7[0];
    return {
      ...base,
      verdict: 'allowed',
      reason: 'allowed-by-rule',
      ...(first ? { rule: first.rule.ref } : {}),
      l7: { rules: [...byRule].map(([rule, http]) => ({ rule: rule.ref, http })) },
    };
  }
  const headers = lowerCaseHeaders(q.http.headers);
  for (const e of l7) {
    for (const h of e.http) {
      if (httpMatches(h, q.http, headers)) return { ...base, verdict: 'allowed', reason: 'allowed-by-rule', rule: e.rule.ref, http: { index: h.index, text: h.text } };
    }
  }
  const first = l7[0];
  return { ...base, verdict: 'denied', reason: 'l7-denied', ...(first ? { rule: first.rule.ref } : {}) };
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
