// Decisions: the verdict for each direction of a flow, the exact rule that decided it, and why.
import type { Endpoint } from './endpoint.ts';
import type { HttpRequest } from './http.ts';
import type { Direction, PolicyRef, Protocol, RuleRef } from './ir.ts';

export type Verdict = 'allowed' | 'denied';
export type EnforcementMode = 'default' | 'always' | 'never';

export type ReasonCode =
  /** No policy selects the endpoint for this direction, so it is not isolated. */
  | 'not-selected'
  /** Enforcement mode `never`. */
  | 'enforcement-disabled'
  /** The source is outside the cluster (egress) or the destination is (ingress): nothing to enforce there. */
  | 'outside-cluster'
  /** A pod talking to itself: a pod cannot block access to itself. */
  | 'self'
  /** The pod's own node reaches it (kubelet probes): always allowed, as Kubernetes and Cilium do. */
  | 'local-host'
  | 'allowed-by-rule'
  | 'denied-by-rule'
  /** Selected (or enforcement mode `always`) and no rule allows it. */
  | 'default-deny'
  /** Allowed at L3/L4, but the HTTP request matches none of the port's L7 rules (HTTP 403). */
  | 'l7-denied'
  /** A fromRequires/toRequires of a selecting policy is not met by the peer. */
  | 'requires-unmet';

export interface DirectionDecision {
  direction: Direction;
  verdict: Verdict;
  reason: ReasonCode;
  /** The rule that allowed or denied the flow. */
  rule?: RuleRef;
  /** When an L7 rule allowed the request: its index in `rules.http` and its text. */
  http?: { index: number; text: string };
  /**
   * When the port carries L7 rules and the flow gave no HTTP request: the connection is allowed, and
   * each request must match one of these rules.
   */
  l7?: { rules: { rule: RuleRef; http: { index: number; text: string }[] }[] };
  /** Policies that select the endpoint for this direction (and so isolate it). */
  selectedBy: readonly PolicyRef[];
  /** Requirement that failed (reason `requires-unmet`). */
  requires?: string;
}

export interface FlowQuery {
  from: Endpoint;
  to: Endpoint;
  port: number;
  protocol: Protocol;
  http?: HttpRequest;
}

export interface Decision {
  verdict: Verdict;
  egress: DirectionDecision;
  ingress: DirectionDecision;
}
