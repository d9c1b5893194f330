// The compiled policy engine: every policy resolved once into per-identity views indexed by protocol and
// port, selectors into identity bitsets and CIDRs into prefix tries. A decision looks things up; it never scans.
//
// Layout (all built in the constructor; a decision allocates only its result objects):
// - Identities have dense positions (LabelIndex.position: grouped by namespace). Views and selecting units are arrays indexed
//   by position; nodes' views sit in a Map by node name.
// - Each rule's peers compile to one PeerSet: a bitset over identity positions (the union of its selector
//   peers; shared between rules with the same selectors), a bitmask of reserved names, and the rare parts
//   (selectors that read reserved labels, node selectors, CIDR tries).
// - Each view maps (protocol, port) to one pre-merged list of deny and one of allow candidates in ascending
//   rule id, wildcard and range rules included, with a per-protocol fallback for ports no rule names. The
//   first rule that matches in that order decides, exactly as in the naive evaluator.
// - Views are shared between identities selected by the same units.
// - Each candidate list also exists as flat Int32 records (port match kind, peer flags, word range and offset
//   of its peer bitset in one shared word pool), so the scan for a pod peer reads no rule or candidate object:
//   one bit probe, or none when the peer's word falls outside the rule's range (namespace-scoped selectors).
import type { Cluster } from '../model/cluster.ts';
import type { Resource } from '../resources/kinds.ts';
import type { Decision, EnforcementMode, FlowQuery } from './decision.ts';
import { fillPeerView, reservedBitsOf, type Endpoint, type PeerView } from './endpoint.ts';
import { decideFlow, newDirectionQuery, type FlowEvaluator } from './evaluate-flow.ts';
import { CidrTrie } from './cidr-trie.ts';
import type { Direction, PolicyRef, PolicyUnit, PortMatch, Protocol, ReservedName, Rule } from './ir.ts';
import { LabelIndex } from './label-index.ts';
import { buildPolicyUnits } from './policy-set.ts';
import { selectorMatches, type Selector } from './selector.ts';
import { Candidate, PORT_DYNAMIC, PORT_L4, PORT_NONE, portMatch, staticPortMatch, viewParts, type DirectionQuery, type PeerMatcher, type SubjectView } from './subject-view.ts';

/** A rule's peers in compiled form. Every instance has the same shape. */
class PeerSet {
  /** The rule names no peers: every peer matches. */
  any = false;
  allPods = false;
  /** Union of the identity bitsets of the rule's selector peers, or null when it has none. */
  bits: Uint32Array | null = null;
  /** Reserved names of its entities, as RESERVED_BITS. */
  reservedBits = 0;
  /** Selector peers that can also match non-pod peers (they read `reserved:` labels or negate). */
  reservedSelectors: Selector[] | null = null;
  nodeSelectors: Selector[] | null = null;
  k8sCidrs: CidrTrie | null = null;
  ciliumCidrs: CidrTrie | null = null;
  /** `bits` as a range of words [lo, hi] in the engine's word pool from `off` (lo > hi when empty). */
  lo = 1;
  hi = 0;
  off = 0;
}

/** What compiled views share: the label index (positions) and the pool of peer bitset words. */
interface ViewContext {
  index: LabelIndex;
  pool: Uint32Array;
}

/** Candidate record layout in PortEntry.denyRec/allowRec: REC ints per candidate. */
const REC = 5;
/** The rule names no peers: every peer matches. */
const F_ANY = 1;
/** Every pod matches. */
const F_ALL_PODS = 2;
/** A pod peer outside the bitset may still match (k8s CIDRs, or no compiled peers): ask `matches`. */
const F_SLOW_POD = 4;

function records(list: readonly Candidate[]): Int32Array {
  const out = new Int32Array(list.length * REC);
  list.forEach((c, i) => {
    const p = c.peers as PeerSet | null;
    const o = i * REC;
    out[o] = c.port;
    if (p === null) {
      out[o + 1] = F_SLOW_POD;
      out[o + 2] = 1;
      return;
    }
    out[o + 1] = (p.any ? F_ANY : 0) | (p.allPods ? F_ALL_PODS : 0) | (p.k8sCidrs !== null ? F_SLOW_POD : 0);
    out[o + 2] = p.lo;
    out[o + 3] = p.hi;
    out[o + 4] = p.off;
  });
  return out;
}

const PROTOCOLS: readonly Protocol[] = ['TCP', 'UDP', 'SCTP'];
const EMPTY_CANDIDATES: readonly Candidate[] = [];
const NO_UNITS: readonly PolicyUnit[] = [];
const HOST_ONLY: ReadonlySet<string> = new Set(['host']);

function protocolIndex(p: Protocol): number {
  return p === 'TCP' ? 0 : p === 'UDP' ? 1 : 2;
}

/** Deny and allow candidates for one (protocol, port). */
class PortEntry {
  readonly deny: readonly Candidate[];
  readonly allow: readonly Candidate[];
  /** The same candidates as flat records (see REC), so that a scan reads no candidate objects. */
  readonly denyRec: Int32Array;
  readonly allowRec: Int32Array;
  constructor(deny: readonly Candidate[], allow: readonly Candidate[]) {
    this.deny = deny;
    this.allow = allow;
    this.denyRec = records(deny);
    this.allowRec = records(allow);
  }
}

const EMPTY_ENTRY = new PortEntry(EMPTY_CANDIDATES, EMPTY_CANDIDATES);

function isExact(pm: PortMatch): boolean {
  return typeof pm.port === 'number' && (pm.endPort === undefined || pm.endPort === pm.port);
}

/** Whether some non-exact port entry could match a port of `protocol` that no exact entry names. */
function mayMatchUnnamedPort(r: Rule, protocol: Protocol): boolean {
  if (!r.ports) return true;
  for (const pm of r.ports) {
    if (pm.protocol !== undefined && pm.protocol !== protocol) continue;
    if (!isExact(pm)) return true;
  }
  return false;
}

class CompiledView implements SubjectView {
  readonly direction: Direction;
  readonly units: readonly PolicyUnit[];
  readonly isolatedBy: readonly PolicyRef[];
  readonly requires: readonly Selector[];
  private readonly byPort = new Map<number, PortEntry>();
  /** For ports that no exact rule names, by protocol index. */
  private readonly fallback: PortEntry[] = [];
  /** decideDirection asks for deny and then allow candidates of the same key: remember the last lookup. */
  private lastKey = -1;
  private lastEntry: PortEntry = EMPTY_ENTRY;
  private readonly ctx: ViewContext;

  /** `peers` gives each rule's compiled peers (by rule id). */
  constructor(units: readonly PolicyUnit[], direction: Direction, peers: readonly (PeerSet | undefined)[], ctx: ViewContext) {
    this.ctx = ctx;
    const parts = viewParts(units, direction);
    this.direction = direction;
    this.units = units;
    this.isolatedBy = parts.isolatedBy;
    this.requires = parts.requires;
    // Every (protocol, port) that some exact port entry names gets its own lists; any other port can only be
    // matched by rules without ports or by their non-exact entries (ranges, named ports, protocol only).
    const keys = new Set<number>();
    for (const list of [parts.allow, parts.deny]) {
      for (const r of list) {
        for (const pm of r.ports ?? []) {
          if (!isExact(pm)) continue;
          for (const proto of pm.protocol ? [pm.protocol] : PROTOCOLS) keys.add(protocolIndex(proto) * 65536 + (pm.port as number));
        }
      }
    }
    // One Candidate per rule for the fallbacks (the port is not fixed there), shared by the three protocols.
    const loose = new Map<Rule, Candidate>();
    const looseOf = (r: Rule): Candidate => {
      let c = loose.get(r);
      if (!c) loose.set(r, (c = new Candidate(r, r.ports ? PORT_DYNAMIC : PORT_L4, peers[r.id] ?? null)));
      return c;
    };
    for (const proto of PROTOCOLS) {
      const deny = parts.deny.filter((r) => mayMatchUnnamedPort(r, proto)).map(looseOf);
      const allow = parts.allow.filter((r) => mayMatchUnnamedPort(r, proto)).map(looseOf);
      this.fallback.push(deny.length + allow.length === 0 ? EMPTY_ENTRY : new PortEntry(deny.length ? deny : EMPTY_CANDIDATES, allow.length ? allow : EMPTY_CANDIDATES));
    }
    for (const key of keys) {
      const proto = PROTOCOLS[Math.floor(key / 65536)] as Protocol;
      const port = key % 65536;
      const pick = (rules: readonly Rule[]): readonly Candidate[] => {
        const out: Candidate[] = [];
        for (const r of rules) {
          const pm = staticPortMatch(r, proto, port);
          if (pm !== PORT_NONE) out.push(pm === PORT_DYNAMIC ? looseOf(r) : new Candidate(r, pm, peers[r.id] ?? null));
        }
        return out.length ? out : EMPTY_CANDIDATES;
      };
      this.byPort.set(key, new PortEntry(pick(parts.deny), pick(parts.allow)));
    }
  }

  private entry(protocol: Protocol, port: number): PortEntry {
    const pi = protocolIndex(protocol);
    const key = pi * 65536 + port;
    if (key === this.lastKey) return this.lastEntry;
    const e = this.byPort.get(key) ?? this.fallback[pi] ?? EMPTY_ENTRY;
    this.lastKey = key;
    this.lastEntry = e;
    return e;
  }

  denyCandidates(protocol: Protocol, port: number): readonly Candidate[] {
    return this.entry(protocol, port).deny;
  }

  allowCandidates(protocol: Protocol, port: number): readonly Candidate[] {
    return this.entry(protocol, port).allow;
  }

  /** The scan of decideDirection over flat records: a pod peer is one bit probe in the word pool, or none. */
  firstMatch(deny: boolean, start: number, q: DirectionQuery, m: PeerMatcher): number {
    const e = this.entry(q.protocol, q.port);
    const list = deny ? e.deny : e.allow;
    const rec = deny ? e.denyRec : e.allowRec;
    const peer = q.peer;
    const pos = peer.endpoint.type === 'pod' ? this.ctx.index.position(peer.identity) : -1;
    const pool = this.ctx.pool;
    const w = pos >>> 5;
    const bit = 1 << (pos & 31);
    for (let i = start, o = start * REC; i < list.length; i++, o += REC) {
      const pk = rec[o] as number;
      if (pk === PORT_DYNAMIC ? portMatch((list[i] as Candidate).rule, q) === PORT_NONE : pk === PORT_NONE) continue;
      const flags = rec[o + 1] as number;
      if ((flags & F_ANY) !== 0) return i;
      if (pos >= 0) {
        if ((flags & F_ALL_PODS) !== 0) return i;
        const lo = rec[o + 2] as number;
        if (w >= lo && w <= (rec[o + 3] as number) && ((pool[(rec[o + 4] as number) + w - lo] as number) & bit) !== 0) return i;
        if ((flags & F_SLOW_POD) !== 0 && m.matches(list[i] as Candidate, peer)) return i;
      } else if (m.matches(list[i] as Candidate, peer)) return i;
    }
    return -1;
  }
}

export interface EngineStats {
  units: number;
  rules: number;
  identities: number;
  views: number;
}

export class PolicyEngine implements FlowEvaluator {
  readonly cluster: Cluster;
  readonly units: readonly PolicyUnit[];
  /** Resolves selectors to the pod identities they match (shared, cached results). */
  readonly labelIndex: LabelIndex;
  /** Compiled peers by rule id. */
  private readonly peers: (PeerSet | undefined)[] = [];
  private ruleCount = 0;
  /** By identity position. */
  private readonly unitsByPos: (PolicyUnit[] | undefined)[];
  private readonly ingressByPos: (CompiledView | undefined)[];
  private readonly egressByPos: (CompiledView | undefined)[];
  private readonly unitsByNode = new Map<string, PolicyUnit[]>();
  private readonly nodeViews = new Map<string, [CompiledView, CompiledView]>();
  private readonly emptyIngress: CompiledView;
  private readonly emptyEgress: CompiledView;
  private distinctViews = 0;
  /** Reused for every decision (decide is synchronous and not re-entered). */
  private readonly ingressPeer: PeerView;
  private readonly egressPeer: PeerView;
  private readonly ingressQuery: DirectionQuery = newDirectionQuery();
  private readonly egressQuery: DirectionQuery = newDirectionQuery();

  static fromResources(cluster: Cluster, resources: readonly Resource[]): PolicyEngine {
    return new PolicyEngine(cluster, buildPolicyUnits(resources));
  }

  constructor(cluster: Cluster, units: readonly PolicyUnit[]) {
    this.cluster = cluster;
    this.units = units;
    this.ingressPeer = this.ingressQuery.peer;
    this.egressPeer = this.egressQuery.peer;
    const identityLabels = new Map<number, Readonly<Record<string, string>>>();
    for (const p of cluster.pods.values()) if (!p.hostNetwork && !identityLabels.has(p.identity)) identityLabels.set(p.identity, p.endpointLabels);
    const index = new LabelIndex(identityLabels);
    this.labelIndex = index;
    this.unitsByPos = new Array<PolicyUnit[] | undefined>(index.size).fill(undefined);
    this.ingressByPos = new Array<CompiledView | undefined>(index.size).fill(undefined);
    this.egressByPos = new Array<CompiledView | undefined>(index.size).fill(undefined);
    const ctx: ViewContext = { index, pool: new Uint32Array(0) };
    this.emptyIngress = new CompiledView([], 'ingress', [], ctx);
    this.emptyEgress = new CompiledView([], 'egress', [], ctx);
    const unionCache = new Map<string, Uint32Array>();
    for (const u of units) {
      if (u.subject.type === 'pods') {
        const bits = index.resolveBits(u.subject.selector);
        for (let w = 0; w < bits.length; w++) {
          let word = bits[w] as number;
          while (word !== 0) {
            const low = word & -word;
            const pos = w * 32 + (31 - Math.clz32(low));
            word ^= low;
            const list = this.unitsByPos[pos];
            if (list) list.push(u);
            else this.unitsByPos[pos] = [u];
          }
        }
      } else {
        for (const n of cluster.nodes.values()) {
          if (selectorMatches(u.subject.selector, { k8s: n.labels, reserved: HOST_ONLY })) push(this.unitsByNode, n.name, u);
        }
      }
      for (const d of ['ingress', 'egress'] as const) {
        for (const r of u.allow[d]) this.compileRule(r, index, unionCache);
        for (const r of u.deny[d]) this.compileRule(r, index, unionCache);
      }
    }
    ctx.pool = packBits(this.peers);
    // Identities selected by the same units share their views.
    const shared = new Map<string, [CompiledView, CompiledView]>();
    for (let pos = 0; pos < index.size; pos++) {
      const list = this.unitsByPos[pos];
      if (!list) continue;
      let key = '';
      for (const u of list) key += `${u.id},`;
      let pair = shared.get(key);
      if (!pair) {
        pair = [new CompiledView(list, 'ingress', this.peers, ctx), new CompiledView(list, 'egress', this.peers, ctx)];
        shared.set(key, pair);
      }
      this.ingressByPos[pos] = pair[0];
      this.egressByPos[pos] = pair[1];
    }
    for (const [n, list] of this.unitsByNode) this.nodeViews.set(n, [new CompiledView(list, 'ingress', this.peers, ctx), new CompiledView(list, 'egress', this.peers, ctx)]);
    this.distinctViews = shared.size + this.nodeViews.size;
  }

  decide(q: FlowQuery, mode: EnforcementMode = 'default'): Decision {
    return decideFlow(q, mode, this);
  }

  /** The policy units that select an endpoint (pods by identity, nodes by host policies). */
  unitsSelecting(e: Endpoint): readonly PolicyUnit[] {
    if (e.type === 'pod') {
      const pos = this.labelIndex.position(e.pod.identity);
      return (pos >= 0 ? this.unitsByPos[pos] : undefined) ?? NO_UNITS;
    }
    if (e.type === 'node') return this.unitsByNode.get(e.node.name) ?? NO_UNITS;
    return NO_UNITS;
  }

  stats(): EngineStats {
    let identities = 0;
    for (const l of this.unitsByPos) if (l) identities++;
    return { units: this.units.length, rules: this.ruleCount, identities, views: identities + this.nodeViews.size };
  }

  /** Distinct compiled view pairs (identities selected by the same units share one). */
  get sharedViews(): number {
    return this.distinctViews;
  }

  view(subject: Endpoint, d: Direction): SubjectView {
    if (subject.type === 'pod') {
      const pos = this.labelIndex.position(subject.pod.identity);
      if (pos >= 0) {
        const v = d === 'ingress' ? this.ingressByPos[pos] : this.egressByPos[pos];
        if (v !== undefined) return v;
      }
    } else if (subject.type === 'node') {
      const pair = this.nodeViews.get(subject.node.name);
      if (pair !== undefined) return d === 'ingress' ? pair[0] : pair[1];
    }
    return d === 'ingress' ? this.emptyIngress : this.emptyEgress;
  }

  peer(peer: Endpoint, subject: Endpoint, d: Direction): PeerView {
    return fillPeerView(d === 'ingress' ? this.ingressPeer : this.egressPeer, peer, subject);
  }

  query(d: Direction): DirectionQuery {
    return d === 'ingress' ? this.ingressQuery : this.egressQuery;
  }

  matchesSelector(sel: Selector, peer: PeerView): boolean {
    return selectorMatches(sel, peer.labels);
  }

  matches(candidate: Candidate, peer: PeerView): boolean {
    const c = candidate.peers as PeerSet | null;
    if (c === null) return candidate.rule.peers === undefined;
    if (c.any) return true;
    const e = peer.endpoint;
    if (e.type === 'pod') {
      if (c.allPods) return true;
      const bits = c.bits;
      if (bits !== null) {
        const pos = this.labelIndex.position(peer.identity);
        if (pos >= 0 && (((bits[pos >>> 5] as number) >>> (pos & 31)) & 1) !== 0) return true;
      }
    } else {
      if ((c.reservedBits & peer.reservedBits) !== 0) return true;
      const rs = c.reservedSelectors;
      if (rs !== null) for (let i = 0; i < rs.length; i++) if (selectorMatches(rs[i] as Selector, peer.labels)) return true;
      const ns = c.nodeSelectors;
      if (e.type === 'node' && ns !== null) {
        const view = { k8s: e.node.labels, reserved: peer.reserved };
        for (let i = 0; i < ns.length; i++) if (selectorMatches(ns[i] as Selector, view)) return true;
      }
      if (e.type === 'world' && c.ciliumCidrs !== null && c.ciliumCidrs.contains(e.bytes)) return true;
    }
    return c.k8sCidrs !== null && c.k8sCidrs.contains(e.bytes);
  }

  private compileRule(r: Rule, index: LabelIndex, unionCache: Map<string, Uint32Array>): void {
    this.ruleCount++;
    this.peers[r.id] = compilePeers(r, index, unionCache);
  }
}

/** Copies every distinct peer bitset's range of non-zero words into one pool, and records where in the PeerSets. */
function packBits(peers: readonly (PeerSet | undefined)[]): Uint32Array {
  const placed = new Map<Uint32Array, [number, number, number]>();
  let total = 0;
  for (const p of peers) {
    const bits = p?.bits;
    if (!p || !bits) continue;
    let at = placed.get(bits);
    if (!at) {
      let lo = 0;
      while (lo < bits.length && bits[lo] === 0) lo++;
      let hi = bits.length - 1;
      while (hi >= lo && bits[hi] === 0) hi--;
      at = [lo, hi, total];
      if (hi >= lo) total += hi - lo + 1;
      placed.set(bits, at);
    }
    p.lo = at[0];
    p.hi = at[1];
    p.off = at[2];
  }
  const pool = new Uint32Array(total);
  for (const [bits, [lo, hi, off]] of placed) if (hi >= lo) pool.set(bits.subarray(lo, hi + 1), off);
  return pool;
}

function push<K, V>(m: Map<K, V[]>, k: K, v: V): void {
  const l = m.get(k);
  if (l) l.push(v);
  else m.set(k, [v]);
}

function compilePeers(r: Rule, index: LabelIndex, unionCache: Map<string, Uint32Array>): PeerSet {
  const c = new PeerSet();
  c.any = r.peers === undefined;
  const selectors: Selector[] = [];
  const reserved: ReservedName[] = [];
  for (const p of r.peers ?? []) {
    switch (p.type) {
      case 'selector':
        selectors.push(p.selector);
        if (p.selector.reqs.some((q) => q.space !== 'k8s' || q.op === 'NotIn' || q.op === 'DoesNotExist')) (c.reservedSelectors ??= []).push(p.selector);
        break;
      case 'entities':
        c.allPods ||= p.allPods;
        for (const x of p.reserved) reserved.push(x);
        break;
      case 'cidr':
        if (p.semantics === 'k8s') (c.k8sCidrs ??= new CidrTrie()).add(p.cidr, p.except);
        else (c.ciliumCidrs ??= new CidrTrie()).add(p.cidr, p.except);
        break;
      case 'nodes':
        (c.nodeSelectors ??= []).push(p.selector);
        break;
    }
  }
  c.reservedBits = reservedBitsOf(reserved);
  if (selectors.length === 1) c.bits = index.resolveBits(selectors[0] as Selector);
  else if (selectors.length > 1) {
    const key = [...new Set(selectors.map((s) => s.key))].sort().join('\n');
    let bits = unionCache.get(key);
    if (!bits) {
      bits = index.newBits();
      for (const s of selectors) {
        const b = index.resolveBits(s);
        for (let w = 0; w < bits.length; w++) bits[w] = (bits[w] as number) | (b[w] as number);
      }
      unionCache.set(key, bits);
    }
    c.bits = bits;
  }
  return c;
}
