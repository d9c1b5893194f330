// The policy engine's intermediate form: every NetworkPolicy and Cilium rule as units of subject, peers, ports and L7.
import type { FieldPath, Origin } from '../resources/kinds.ts';
import type { HttpMatcher } from './http.ts';
import type { Selector } from './selector.ts';

export type Direction = 'ingress' | 'egress';
export type PolicyKind = 'NetworkPolicy' | 'CiliumNetworkPolicy' | 'CiliumClusterwideNetworkPolicy';
export type Protocol = 'TCP' | 'UDP' | 'SCTP';

/** Names one policy object (and, for Cilium objects with `specs`, which rule of it). */
export interface PolicyRef {
  kind: PolicyKind;
  namespace?: string;
  name: string;
  origin: Origin;
  /** Field path of the unit inside its object: `spec` or `specs[i]`. */
  path: FieldPath;
}

/** Names the exact rule that decided a flow. */
export interface RuleRef {
  policy: PolicyRef;
  direction: Direction;
  deny: boolean;
  /** Index in `ingress`, `egress`, `ingressDeny` or `egressDeny`. */
  index: number;
  /** Field path of the rule, e.g. `spec.ingress[0]`. */
  path: FieldPath;
}

/** Identities that Cilium reserves for what is not a pod. */
export type ReservedName = 'host' | 'remote-node' | 'world' | 'world-ipv4' | 'world-ipv6' | 'kube-apiserver' | 'health' | 'init' | 'unmanaged' | 'ingress';

export type Peer =
  /** Pods (and reserved identities via `reserved:` keys) selected by labels. */
  | { type: 'selector'; selector: Selector }
  /** Cilium entities, resolved to reserved identities plus, for `cluster` and `all`, every pod. */
  | { type: 'entities'; reserved: ReadonlySet<ReservedName>; allPods: boolean; entities: readonly string[] }
  /**
   * An address block. `k8s` semantics (NetworkPolicy ipBlock) match any address, pod IPs included, as
   * upstream's e2e suite expects. `cilium` semantics (fromCIDR/toCIDR/…CIDRSet) match only addresses
   * outside the cluster: Cilium documents that CIDR rules never select pods or nodes.
   */
  | { type: 'cidr'; cidr: string; except: readonly string[]; semantics: 'k8s' | 'cilium' }
  /** Nodes selected by their labels (Cilium fromNodes/toNodes). */
  | { type: 'nodes'; selector: Selector };

export interface PortMatch {
  /** Undefined matches TCP, UDP and SCTP (Cilium's ANY). */
  protocol?: Protocol;
  /** A number, a named port resolved on the destination pod, or undefined for every port. */
  port?: number | string;
  endPort?: number;
  /** L7 HTTP rules for this port; undefined means no L7 restriction. */
  http?: HttpMatcher[];
}

export interface Rule {
  /** Dense number, unique in one compiled set. */
  id: number;
  ref: RuleRef;
  /** Undefined means every peer. */
  peers?: Peer[];
  /** Undefined means every port and protocol. */
  ports?: PortMatch[];
}

/** One NetworkPolicy, or one rule (spec or specs[i]) of a Cilium policy. */
export interface PolicyUnit {
  id: number;
  ref: PolicyRef;
  subject: { type: 'pods' | 'nodes'; selector: Selector };
  /** Whether selecting an endpoint puts that direction into default deny. */
  defaultDeny: Record<Direction, boolean>;
  allow: Record<Direction, Rule[]>;
  deny: Record<Direction, Rule[]>;
  /** Cilium fromRequires/toRequires: every peer must also match these (deprecated upstream, still honoured). */
  requires: Record<Direction, Selector[]>;
}

export function policyName(p: PolicyRef): string {
  return p.namespace === undefined ? `${p.kind} ${p.name}` : `${p.kind} ${p.namespace}/${p.name}`;
}
