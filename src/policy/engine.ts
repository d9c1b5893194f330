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
// - Each list also has a union bitset of its candidates' peer bitsets (up to its first candidate that a bitset
//   cannot decide): a pod peer outside it skips the list after one probe. The scan then stays exact, so the
//   deciding rule is still the first match in rule-id order.
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
  /** Union bitsets of the candidate lists (see UnionBuilder). */
  unions: Uint32Array;
  /** Every view's scan data, one block per view (see CompiledView.vo), so that a scan reads no view objects. */
  vdata: Int32Array;
  /** While views are built. */
  vb: Int32Array[];
  vlen: number;
  /** While views are built. */
  ub: UnionBuilder | null;
  /**
   * By identity − index.base, SLOT entries each: the identity's position (-1 when the index does not hold it),
   * its egress view and its ingress view. One array read gives a pod endpoint its view as a subject and its
   * position as a peer (the same cache line serves both directions of a decision).
   */
  slots: (number | CompiledView)[];
}

/** Entries per identity in ViewContext.slots: position, egress view, ingress view, padding. */
const SLOT = 4;

/**
 * Candidate record layout in PortEntry.data: REC ints per candidate (port match kind, flags, word range lo and
 * hi, word offset, reserved-name bits).
 */
const REC = 6;
/** PortEntry.data: union fields of the deny list (4 ints), of the allow list, the two lengths, then the records. */
const D_UNION = 0;
const A_UNION = 4;
const N_DENY = 8;
const N_ALLOW = 9;
const RECORDS = 10;
/** The rule names no peers: every peer matches. */
const F_ANY = 1;
/** Every pod matches. */
const F_ALL_PODS = 2;
/** A pod peer outside the bitset may still match (k8s CIDRs, or no compiled peers): ask `matches`. */
const F_SLOW_POD = 4;
/**
 * A non-pod peer (node, world) whose reserved names miss the record's reserved bits may still match (selectors
 * on reserved labels, node selectors, CIDRs, or no compiled peers): ask `matches`. Without it, the record alone
 * decides a non-pod peer, and the scan loads no candidate or PeerSet.
 */
const F_SLOW_OTHER = 8;

function writeRecords(list: readonly Candidate[], out: Int32Array, at: number): void {
  for (let i = 0; i < list.length; i++) {
    const c = list[i] as Candidate;
    const p = c.peers as PeerSet | null;
    const o = at + i * REC;
    out[o] = c.port;
    if (p === null) {
      out[o + 1] = F_SLOW_POD | F_SLOW_OTHER;
      out[o + 2] = 1;
      continue;
    }
    const slowOther = p.reservedSelectors !== null || p.nodeSelectors !== null || p.ciliumCidrs !== null || p.k8sCidrs !== null;
    out[o + 1] = (p.any ? F_ANY : 0) | (p.allPods ? F_ALL_PODS : 0) | (p.k8sCidrs !== null ? F_SLOW_POD : 0) | (slowOther ? F_SLOW_OTHER : 0);
    out[o + 2] = p.lo;
    out[o + 3] = p.hi;
    out[o + 4] = p.off;
    out[o + 5] = p.reservedBits;
  }
}

const PROTOCOLS: readonly Protocol[] = ['TCP', 'UDP', 'SCTP'];
const EMPTY_CANDIDATES: readonly Candidate[] = [];
const NO_UNITS: readonly PolicyUnit[] = [];
const HOST_ONLY: ReadonlySet<string> = new Set(['host']);

function protocolIndex(p: Protocol): number {
  return p === 'TCP' ? 0 : p === 'UDP' ? 1 : 2;
}

/** Candidates that may match a pod whatever its position (no bitset decides them). */
const F_POD_WILD = F_ANY | F_ALL_PODS | F_SLOW_POD;

/**
 * Builds the union bitsets of candidate lists: the union of the peer bitsets of the candidates before the
 * list's first pod-wildcard one (those whose peers a bitset alone decides). A pod peer outside the union
 * matches none of them, so its scan skips them all after one bit probe (most deny lists, and the allow lists
 * of default-denied flows). Each union word is followed by a mask of the candidates (the first 32) with bits in
 * that word: inside the union, the scan probes only those, in order. Lists with the same bitsets share a union.
 */
class UnionBuilder {
  private readonly chunks: Uint32Array[] = [];
  private len = 0;
  private readonly seen = new Map<string, number>();
  private readonly pool: Uint32Array;
  constructor(pool: Uint32Array) {
    this.pool = pool;
  }

  /** Writes a list's union fields into `out` at `at`: first pod-wildcard index (or n), word range lo, hi, offset. */
  build(rec: Int32Array, base: number, n: number, out: Int32Array, at: number): void {
    let wild = n;
    for (let i = 0, o = base; i < n; i++, o += REC) {
      if (((rec[o + 1] as number) & F_POD_WILD) !== 0) {
        wild = i;
        break;
      }
    }
    // One candidate before a wildcard: its own bitset probe is as cheap.
    if (wild < 2 && wild < n) wild = 0;
    out[at] = wild;
    out[at + 1] = 1;
    out[at + 2] = 0;
    out[at + 3] = 0;
    if (wild === 0) return;
    let wlo = 0x7fffffff;
    let whi = -1;
    let key = '';
    for (let i = 0, o = base; i < wild; i++, o += REC) {
      const lo = rec[o + 2] as number;
      const hi = rec[o + 3] as number;
      if (hi < lo) continue;
      if (lo < wlo) wlo = lo;
      if (hi > whi) whi = hi;
      key += `${i}:${rec[o + 4] as number}:${lo}:${hi},`;
    }
    if (whi < 0) return;
    out[at + 1] = wlo;
    out[at + 2] = whi;
    const hit = this.seen.get(key);
    if (hit !== undefined) {
      out[at + 3] = hit;
      return;
    }
    const u = new Uint32Array((whi - wlo + 1) * 2);
    const pool = this.pool;
    for (let i = 0, o = base; i < wild; i++, o += REC) {
      const lo = rec[o + 2] as number;
      const hi = rec[o + 3] as number;
      const off = (rec[o + 4] as number) - lo;
      for (let w = lo; w <= hi; w++) {
        const word = pool[off + w] as number;
        if (word === 0) continue;
        const at2 = (w - wlo) * 2;
        u[at2] = (u[at2] as number) | word;
        if (i < 32) u[at2 + 1] = (u[at2 + 1] as number) | (1 << i);
      }
    }
    out[at + 3] = this.len;
    this.seen.set(key, this.len);
    this.chunks.push(u);
    this.len += u.length;
  }

  finish(): Uint32Array {
    const all = new Uint32Array(this.len);
    let at = 0;
    for (const c of this.chunks) {
      all.set(c, at);
      at += c.length;
    }
    return all;
  }
}

/** Deny and allow candidates for one (protocol, port). */
class PortEntry {
  readonly deny: readonly Candidate[];
  readonly allow: readonly Candidate[];
  /**
   * Everything a scan reads, in one array (see D_UNION…RECORDS): per list, the first pod-wildcard candidate (or
   * the length), the word range [lo, hi] of its union bitset and the union's offset in the context's `unions`
   * (see UnionBuilder); the lengths; then the candidates as flat records (see REC), deny first, so that a scan reads
   * no candidate objects.
   */
  readonly data: Int32Array;
  constructor(deny: readonly Candidate[], allow: readonly Candidate[], ub: UnionBuilder | null) {
    this.deny = deny;
    this.allow = allow;
    const data = new Int32Array(RECORDS + (deny.length + allow.length) * REC);
    this.data = data;
    data[N_DENY] = deny.length;
    data[N_ALLOW] = allow.length;
    writeRecords(deny, data, RECORDS);
    writeRecords(allow, data, RECORDS + deny.length * REC);
    if (ub !== null) {
      ub.build(data, RECORDS, deny.length, data, D_UNION);
      ub.build(data, RECORDS + deny.length * REC, allow.length, data, A_UNION);
    } else {
      data[D_UNION + 1] = 1;
      data[A_UNION + 1] = 1;
    }
  }
}

const EMPTY_ENTRY = new PortEntry(EMPTY_CANDIDATES, EMPTY_CANDIDATES, null);

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

/** An identity's position, from the context's slots (-1 when the index does not hold it). */
function slotPosition(ctx: ViewContext, identity: number): number {
  const i = (identity - ctx.index.base) * SLOT;
  const slots = ctx.slots;
  return i >= 0 && i < slots.length ? (slots[i] as number) : -1;
}

/** The home slot of a (protocol, port) key in a view's key table of `table` slots (a power of 2). */
function keySlot(key: number, table: number): number {
  const h = Math.imul(key, 0x9e3779b1);
  return (h ^ (h >>> 15)) & (table - 1);
}

class CompiledView implements SubjectView {
  // Fields in the order a decision reads them (class fields are defined in declaration order): the hot ones
  // share the object's first cache line.
  private readonly ctx: ViewContext;
  /**
   * Where this view's block starts in the context's `vdata`: the size T of its key table (0 or a power of 2),
   * the offsets (relative to the block) of the three protocols' fallback entries, then the key table (T
   * (key, offset) slots, open addressing with linear probing, key -1 when empty, at most half full: a lookup
   * reads one or two cache lines however many ports the view names), then each entry's data (see PortEntry.data).
   */
  private readonly vo: number;
  /** The last key's entry offset in `vdata` (as lastKey/lastEntry, for firstMatch). */
  private lastOffKey = -1;
  private lastOff = 0;
  readonly direction: Direction;
  readonly isolated: boolean;
  readonly isolatedBy: readonly PolicyRef[];
  readonly requires: readonly Selector[];
  readonly units: readonly PolicyUnit[];
  private readonly byPort = new Map<number, PortEntry>();
  /** For ports that no exact rule names, by protocol index. */
  private readonly fallback: PortEntry[] = [];
  /** decideDirection asks for deny and then allow candidates of the same key: remember the last lookup. */
  private lastKey = -1;
  private lastEntry: PortEntry = EMPTY_ENTRY;

  /** `peers` gives each rule's compiled peers (by rule id). */
  constructor(units: readonly PolicyUnit[], direction: Direction, peers: readonly (PeerSet | undefined)[], ctx: ViewContext) {
    this.ctx = ctx;
    const parts = viewParts(units, direction);
    this.direction = direction;
    this.units = units;
    this.isolatedBy = parts.isolatedBy;
    this.isolated = parts.isolatedBy.length > 0;
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
      this.fallback.push(deny.length + allow.length === 0 ? EMPTY_ENTRY : new PortEntry(deny.length ? deny : EMPTY_CANDIDATES, allow.length ? allow : EMPTY_CANDIDATES, ctx.ub));
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
      this.byPort.set(key, new PortEntry(pick(parts.deny), pick(parts.allow), ctx.ub));
    }
    const sorted = [...this.byPort.keys()].sort((a, b) => a - b);
    let table = 0;
    if (sorted.length > 0) {
      table = 2;
      while (table < sorted.length * 2) table *= 2;
    }
    let size = 4 + table * 2;
    for (const e of this.fallback) size += e.data.length;
    for (const e of this.byPort.values()) size += e.data.length;
    const block = new Int32Array(size);
    block[0] = table;
    for (let k = 0; k < table; k++) block[4 + k * 2] = -1;
    let at = 4 + table * 2;
    this.fallback.forEach((e, pi) => {
      block[1 + pi] = at;
      block.set(e.data, at);
      at += e.data.length;
    });
    sorted.forEach((key) => {
      const e = this.byPort.get(key) as PortEntry;
      let k = keySlot(key, table);
      while ((block[4 + k * 2] as number) !== -1) k = (k + 1) & (table - 1);
      block[4 + k * 2] = key;
      block[5 + k * 2] = at;
      block.set(e.data, at);
      at += e.data.length;
    });
    this.vo = ctx.vlen;
    ctx.vb.push(block);
    ctx.vlen += size;
  }

  /** The absolute offset in `vdata` of the entry data for a protocol and port. */
  private offsetOf(protocol: Protocol, port: number): number {
    const pi = protocolIndex(protocol);
    const key = pi * 65536 + port;
    if (key === this.lastOffKey) return this.lastOff;
    const d = this.ctx.vdata;
    const vo = this.vo;
    let rel = d[vo + 1 + pi] as number;
    const table = d[vo] as number;
    if (table !== 0) {
      for (let k = keySlot(key, table); ; k = (k + 1) & (table - 1)) {
        const kk = d[vo + 4 + k * 2] as number;
        if (kk === key) {
          rel = d[vo + 5 + k * 2] as number;
          break;
        }
        if (kk === -1) break;
      }
    }
    this.lastOffKey = key;
    this.lastOff = vo + rel;
    return vo + rel;
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

  private candidate(deny: boolean, i: number, q: DirectionQuery): Candidate {
    const e = this.entry(q.protocol, q.port);
    return (deny ? e.deny : e.allow)[i] as Candidate;
  }

  /**
   * The scan of decideDirection over flat records (this view's block in `vdata`): a pod peer is one bit probe in the word pool per candidate,
   * or none when the peer's word falls outside the rule's range (namespace-scoped selectors). From the start
   * of a list, a pod outside the list's union bitset skips every candidate before the first pod-wildcard one.
   */
  firstMatch(deny: boolean, start: number, q: DirectionQuery, m: PeerMatcher): number {
    const d = this.ctx.vdata;
    const eo = this.offsetOf(q.protocol, q.port);
    const n = deny ? (d[eo + N_DENY] as number) : (d[eo + N_ALLOW] as number);
    if (start >= n) return -1;
    const base = eo + (deny ? RECORDS : RECORDS + (d[eo + N_DENY] as number) * REC);
    const peer = q.peer;
    const pos = peer.endpoint.type === 'pod' ? slotPosition(this.ctx, peer.identity) : -1;
    const w = pos >>> 5;
    const bit = 1 << (pos & 31);
    let i = start;
    if (pos >= 0 && start === 0) {
      const u0 = eo + (deny ? D_UNION : A_UNION);
      const wild = d[u0] as number;
      if (wild > 0) {
        const lo = d[u0 + 1] as number;
        // Outside the union, no candidate before the first pod-wildcard one can match; inside, only those
        // with bits in the peer's word can.
        if (w >= lo && w <= (d[u0 + 2] as number)) {
          const unions = this.ctx.unions;
          const at = (d[u0 + 3] as number) + (w - lo) * 2;
          if (((unions[at] as number) & bit) !== 0) {
            const pool = this.ctx.pool;
            let mask = unions[at + 1] as number;
            while (mask !== 0) {
              const c = 31 - Math.clz32(mask & -mask);
              mask &= mask - 1;
              const o = base + c * REC;
              const pk = d[o] as number;
              if (pk === PORT_NONE || ((pool[(d[o + 4] as number) + w - (d[o + 2] as number)] as number) & bit) === 0) continue;
              if (pk !== PORT_DYNAMIC || portMatch(this.candidate(deny, c, q).rule, q) !== PORT_NONE) return c;
            }
            i = wild < 32 ? wild : 32;
          } else i = wild;
        } else i = wild;
        if (i >= n) return -1;
      }
    }
    const pool = this.ctx.pool;
    // Peers are checked before a named port: a bit probe costs less than resolving the port on the pod.
    for (let o = base + i * REC; i < n; i++, o += REC) {
      const pk = d[o] as number;
      if (pk === PORT_NONE) continue;
      const flags = d[o + 1] as number;
      if ((flags & F_ANY) === 0) {
        if (pos >= 0) {
          if ((flags & F_ALL_PODS) === 0) {
            const lo = d[o + 2] as number;
            const inBits = w >= lo && w <= (d[o + 3] as number) && ((pool[(d[o + 4] as number) + w - lo] as number) & bit) !== 0;
            if (!inBits && ((flags & F_SLOW_POD) === 0 || !m.matches(this.candidate(deny, i, q), peer))) continue;
          }
        } else if (((d[o + 5] as number) & peer.reservedBits) === 0 && ((flags & F_SLOW_OTHER) === 0 || !m.matches(this.candidate(deny, i, q), peer))) continue;
      }
      if (pk !== PORT_DYNAMIC || portMatch(this.candidate(deny, i, q).rule, q) !== PORT_NONE) return i;
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
  private readonly ctx: ViewContext;
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
    const ctx: ViewContext = { index, pool: new Uint32Array(0), unions: new Uint32Array(0), ub: null, vdata: new Int32Array(0), vb: [], vlen: 0, slots: [] };
    this.ctx = ctx;
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
    const ub = new UnionBuilder(ctx.pool);
    ctx.ub = ub;
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
    ctx.unions = ub.finish();
    const vdata = new Int32Array(ctx.vlen);
    let at = 0;
    for (const c of ctx.vb) {
      vdata.set(c, at);
      at += c.length;
    }
    ctx.vdata = vdata;
    ctx.vb = [];
    ctx.ub = null;
    let maxId = index.base - 1;
    for (let pos = 0; pos < index.size; pos++) maxId = Math.max(maxId, index.identityAt(pos));
    const slots: (number | CompiledView)[] = [];
    for (let id = index.base; id <= maxId; id++) slots.push(-1, this.emptyEgress, this.emptyIngress, 0);
    for (let pos = 0; pos < index.size; pos++) {
      const at = (index.identityAt(pos) - index.base) * SLOT;
      slots[at] = pos;
      slots[at + 1] = this.egressByPos[pos] ?? this.emptyEgress;
      slots[at + 2] = this.ingressByPos[pos] ?? this.emptyIngress;
    }
    ctx.slots = slots;
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
      const i = (subject.identity - this.labelIndex.base) * SLOT;
      const slots = this.ctx.slots;
      if (i >= 0 && i < slots.length) return slots[i + (d === 'ingress' ? 2 : 1)] as CompiledView;
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
