// The policies in force at one endpoint for one direction, and the decision procedure both evaluators share.
import type { DirectionDecision, EnforcementMode } from './decision.ts';
import { RESERVED_BITS, type Endpoint, type PeerView } from './endpoint.ts';
import { httpMatches, lowerCaseHeaders, type HttpRequest } from './http.ts';
import type { Direction, PolicyRef, PolicyUnit, Protocol, Rule } from './ir.ts';
import type { Selector } from './selector.ts';

/** Decides whether one peer matches a rule's peers; the compiled and naive evaluators supply their own. */
export interface PeerMatcher {
  matches(candidate: Candidate, peer: PeerView): boolean;
  matchesSelector(sel: Selector, peer: PeerView): boolean;
}

/**
 * What the evaluator found for a subject endpoint and direction. Candidate lists are in rule-id order, and
 * the deciding rule is the first one that matches in that order, in both evaluators.
 */
export interface SubjectView {
  direction: Direction;
  /** Units that select the subject at all (they contribute rules). */
  units: readonly PolicyUnit[];
  /** Units that select the subject and put this direction into default deny. */
  isolatedBy: readonly PolicyRef[];
  /** Optional: `isolatedBy.length > 0`, kept on the view so that a decision does not load the array. */
  isolated?: boolean;
  /** Deny rules that may match this protocol and port (a superset, ascending rule id; each is still checked). */
  denyCandidates(protocol: Protocol, port: number): readonly Candidate[];
  /** Allow rules that may match this protocol and port (a superset, ascending rule id; each is still checked). */
  allowCandidates(protocol: Protocol, port: number): readonly Candidate[];
  requires: readonly Selector[];
  /**
   * Optional fast scan: the index ≥ `start` of the first candidate of the deny (or allow) list for the flow's
   * protocol and port whose ports and peers match the flow, or -1 (also when `start` is past the end). It must
   * give what `scanCandidates` gives; with it, decideDirection reads a candidate list only for a match.
   */
  firstMatch?(deny: boolean, start: number, q: DirectionQuery, m: PeerMatcher): number;
}

/** The index ≥ `start` of the first candidate whose ports and peers match the flow, or -1 (the reference scan). */
export function scanCandidates(list: readonly Candidate[], start: number, q: DirectionQuery, m: PeerMatcher): number {
  for (let i = start; i < list.length; i++) {
    const c = list[i] as Candidate;
    if ((c.port === PORT_DYNAMIC ? portMatch(c.rule, q) : c.port) !== PORT_NONE && m.matches(c, q.peer)) return i;
  }
  return -1;
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
  const ports = dest.pod.ports;
  for (let i = 0; i < ports.length; i++) {
    const p = ports[i] as (typeof ports)[number];
    if (p.name === name && p.protocol === protocol) return p.containerPort;
  }
  return undefined;
}

const HOST_BIT = RESERVED_BITS.host;

type HttpRules = NonNullable<NonNullable<Rule['ports']>[number]['http']>;

/** No entry of the rule's ports matches the flow's protocol and port. */
export const PORT_NONE = 0;
/** Some matching entry carries no L7 rules: the rule applies at L3/L4. */
export const PORT_L4 = 1;
/** Every matching entry carries L7 rules. */
export const PORT_L7 = 2;
/** Not known ahead of the flow (named ports, or a lookup that does not fix the port): computed per flow. */
export const PORT_DYNAMIC = -1;

/** One rule as a candidate of a lookup. Every instance has the same shape. */
export class Candidate {
  readonly rule: Rule;
  /** `rule.ref`, read here so that a decision does not load the rule. */
  readonly ref: Rule['ref'];
  /** PORT_L4 or PORT_L7 when the lookup key fixes how the rule's ports match, else PORT_DYNAMIC. */
  readonly port: number;
  /** The evaluator's compiled form of the rule's peers, or null. */
  readonly peers: unknown;
  constructor(rule: Rule, port: number, peers: unknown) {
    this.rule = rule;
    this.ref = rule.ref;
    this.port = port;
    this.peers = peers;
  }
}

/**
 * How a rule's ports match a flow of this protocol and port, as far as it is known without the flow's
 * destination: PORT_NONE, PORT_L4, PORT_L7, or PORT_DYNAMIC when a named port would have to be resolved.
 */
export function staticPortMatch(rule: Rule, protocol: Protocol, port: number): number {
  const ports = rule.ports;
  if (!ports) return PORT_L4;
  let result = PORT_NONE;
  for (let i = 0; i < ports.length; i++) {
    const pm = ports[i] as NonNullable<Rule['ports']>[number];
    if (pm.protocol !== undefined && pm.protocol !== protocol) continue;
    if (typeof pm.port === 'string') return PORT_DYNAMIC;
    if (pm.port !== undefined && (port < pm.port || port > (pm.endPort ?? pm.port))) continue;
    if (!pm.http) return PORT_L4;
    result = PORT_L7;
  }
  return result;
}

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
export function portMatch(rule: Rule, q: DirectionQuery): number {
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
  // Deny rules win over every allow, from any policy kind. With a fast scan, the candidate list is only read
  // for the deciding rule (the scan reads its own flat data).
  const di = view.firstMatch !== undefined ? view.firstMatch(true, 0, q, m) : scanCandidates(view.denyCandidates(q.protocol, q.port), 0, q, m);
  if (di >= 0) return { direction, selectedBy, verdict: 'denied', reason: 'denied-by-rule', rule: (view.denyCandidates(q.protocol, q.port)[di] as Candidate).ref };
  const enforced = (view.isolated ?? selectedBy.length > 0) || (q.mode === 'always' && (q.subject.type === 'pod' || view.units.length > 0));
  if (!enforced) return { direction, selectedBy, verdict: 'allowed', reason: 'not-selected' };
  if (view.direction === 'ingress' && (q.peer.reservedBits & HOST_BIT) !== 0 && q.subject.type === 'pod') {
    return { direction, selectedBy, verdict: 'allowed', reason: 'local-host' };
  }
  for (const req of view.requires) {
    if (!m.matchesSelector(req, q.peer)) return { direction, selectedBy, verdict: 'denied', reason: 'requires-unmet', requires: formatReq(req) };
  }
  let l7: { rule: Rule; http: HttpRules }[] | undefined;
  let list: readonly Candidate[] | undefined;
  for (let i = 0; ; i++) {
    i = view.firstMatch !== undefined ? view.firstMatch(false, i, q, m) : scanCandidates((list ??= view.allowCandidates(q.protocol, q.port)), i, q, m);
    if (i < 0) break;
    list ??= view.allowCandidates(q.protocol, q.port);
    const c = list[i] as Candidate;
    const pm = c.port === PORT_DYNAMIC ? portMatch(c.rule, q) : c.port;
    // An L3/L4 rule for this peer and port allows every request, whatever L7 rules other rules carry.
    if (pm === PORT_L4) return { direction, selectedBy, verdict: 'allowed', reason: 'allowed-by-rule', rule: c.ref };
    collectHttp(c.rule, q, (l7 ??= []));
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

/**
 * Collects the units selecting a subject into the parts of a view; the caller decides how candidates are found.
 * Allow and deny rules come out in ascending rule id: the one order both evaluators check rules in.
 */
export function viewParts(units: readonly PolicyUnit[], direction: Direction): Pick<SubjectView, 'units' | 'isolatedBy' | 'requires'> & { allow: Rule[]; deny: Rule[] } {
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
  denyRules.sort(byRuleId);
  allow.sort(byRuleId);
  // Empty lists are one shared array: a decision that reads it finds it in cache.
  return { units, isolatedBy: isolatedBy.length ? isolatedBy : NO_REFS, requires: requires.length ? requires : NO_SELECTORS, allow, deny: denyRules };
}

const NO_REFS: readonly PolicyRef[] = Object.freeze([]);
const NO_SELECTORS: readonly Selector[] = Object.freeze([]);

function byRuleId(a: Rule, b: Rule): number {
  return a.id - b.id;
}
