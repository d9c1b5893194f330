// An inverted index from labels to identities: resolves a selector to the identities it matches without a full scan.
// Results are bitsets over dense identity positions (grouped by namespace, see `posOf`), so that a hot-path membership
// test is one array read and a shift.
import { requirementHolds, type Selector } from './selector.ts';

const NO_RESERVED: ReadonlySet<string> = new Set();
const NO_LABELS: Readonly<Record<string, string>> = Object.freeze({});

/** The label that names a pod's namespace (model/labels.ts NAMESPACE_LABEL); positions are grouped by it. */
const NAMESPACE_KEY = 'io.kubernetes.pod.namespace';
const NO_POSITIONS: number[] = [];

export class LabelIndex {
  /** The lowest identity the index holds. */
  readonly base: number;
  /** Number of positions (one per identity held; dense, no holes). */
  readonly size: number;
  /** Length of every bitset, in 32-bit words. */
  readonly words: number;
  /**
   * Position by identity − base (-1 where the index holds no identity). Positions are ordered by namespace,
   * then identity, so that a namespace's identities share a few bitset words: namespace-scoped selectors give
   * bitsets with a short range of non-zero words.
   */
  private readonly posOf: Int32Array;
  /** Identity by position. */
  private readonly idOf: Int32Array;
  /** Labels by position. */
  private readonly labels: Readonly<Record<string, string>>[];
  /** Positions that hold an identity, ascending. */
  private readonly present: number[] = [];
  /** key → value → positions. */
  private readonly postings = new Map<string, Map<string, number[]>>();
  private readonly bitsCache = new Map<string, Uint32Array>();
  private readonly keyCache = new Map<string, number[]>();
  private readonly setCache = new Map<string, ReadonlySet<number>>();
  private readonly emptyBits: Uint32Array;
  /** The one LabelView requirementHolds reads, refilled per candidate. */
  private readonly view: { k8s: Readonly<Record<string, string>>; reserved: ReadonlySet<string> } = { k8s: NO_LABELS, reserved: NO_RESERVED };

  /** `identities` maps each identity number to the k8s-source labels every endpoint of it carries. */
  constructor(identities: ReadonlyMap<number, Readonly<Record<string, string>>>) {
    let lo = Infinity;
    let hi = -Infinity;
    for (const id of identities.keys()) {
      if (id < lo) lo = id;
      if (id > hi) hi = id;
    }
    this.base = identities.size > 0 ? lo : 0;
    this.size = identities.size;
    this.words = (this.size + 31) >>> 5;
    this.emptyBits = new Uint32Array(this.words);
    this.posOf = new Int32Array(identities.size > 0 ? hi - lo + 1 : 0).fill(-1);
    const order = [...identities.keys()].map((id) => ({ id, ns: identities.get(id)?.[NAMESPACE_KEY] ?? '' }));
    order.sort((a, b) => (a.ns < b.ns ? -1 : a.ns > b.ns ? 1 : a.id - b.id));
    this.idOf = new Int32Array(order.length);
    this.labels = new Array<Readonly<Record<string, string>>>(order.length);
    order.forEach((x, pos) => {
      this.idOf[pos] = x.id;
      this.posOf[x.id - this.base] = pos;
      this.labels[pos] = identities.get(x.id) as Readonly<Record<string, string>>;
    });
    for (let pos = 0; pos < this.size; pos++) {
      const labels = this.labels[pos] as Readonly<Record<string, string>>;
      this.present.push(pos);
      for (const k in labels) {
        const v = labels[k] as string;
        let byValue = this.postings.get(k);
        if (!byValue) this.postings.set(k, (byValue = new Map<string, number[]>()));
        const list = byValue.get(v);
        if (list) list.push(pos);
        else byValue.set(v, [pos]);
      }
    }
  }

  /** The identities a selector matches; results are shared between equal selectors. */
  resolve(sel: Selector): ReadonlySet<number> {
    const hit = this.setCache.get(sel.key);
    if (hit) return hit;
    const bits = this.resolveBits(sel);
    const out = new Set<number>();
    for (let w = 0; w < bits.length; w++) {
      let word = bits[w] as number;
      while (word !== 0) {
        const low = word & -word;
        out.add(this.idOf[w * 32 + (31 - Math.clz32(low))] as number);
        word ^= low;
      }
    }
    this.setCache.set(sel.key, out);
    return out;
  }

  /** The identities a selector matches, as a bitset over positions; shared between equal selectors (do not modify). */
  resolveBits(sel: Selector): Uint32Array {
    const hit = this.bitsCache.get(sel.key);
    if (hit) return hit;
    const out = this.compute(sel);
    this.bitsCache.set(sel.key, out);
    return out;
  }

  /** The position of an identity, or -1 when the index does not hold it. */
  position(identity: number): number {
    const i = identity - this.base;
    return i >= 0 && i < this.posOf.length ? (this.posOf[i] as number) : -1;
  }

  /** The identity at a position. */
  identityAt(pos: number): number {
    return this.idOf[pos] as number;
  }

  /** A new all-zero bitset of this index's size. */
  newBits(): Uint32Array {
    return new Uint32Array(this.words);
  }

  /** Every position whose labels have `key` (built once per key: concatenating per selector was quadratic). */
  private withKey(key: string, byValue: Map<string, number[]>): number[] {
    let all = this.keyCache.get(key);
    if (all === undefined) {
      all = [];
      for (const l of byValue.values()) for (let i = 0; i < l.length; i++) all.push(l[i] as number);
      this.keyCache.set(key, all);
    }
    return all;
  }

  private compute(sel: Selector): Uint32Array {
    const reqs = sel.reqs;
    if (reqs.length === 0) {
      const all = this.newBits();
      for (const pos of this.present) all[pos >>> 5] = (all[pos >>> 5] as number) | (1 << (pos & 31));
      return all;
    }
    // Start from the smallest candidate list a positive requirement gives, then check every requirement.
    let best: number[] | undefined;
    for (const r of reqs) {
      if (r.space === 'none' && (r.op === 'In' || r.op === 'Exists')) return this.emptyBits;
      if (r.space !== 'k8s' || (r.op !== 'In' && r.op !== 'Exists')) continue;
      const byValue = this.postings.get(r.key);
      if (!byValue) return this.emptyBits;
      let cand: number[];
      if (r.op === 'In') {
        cand = NO_POSITIONS;
        let copied = false;
        for (const v of r.values) {
          const l = byValue.get(v);
          if (!l) continue;
          if (cand.length === 0) cand = l;
          else {
            if (!copied) {
              cand = cand.slice();
              copied = true;
            }
            for (let i = 0; i < l.length; i++) cand.push(l[i] as number);
          }
        }
      } else cand = this.withKey(r.key, byValue);
      if (!best || cand.length < best.length) best = cand;
      if (best.length === 0) return this.emptyBits;
    }
    const out = this.newBits();
    const list = best ?? this.present;
    const view = this.view;
    for (let i = 0; i < list.length; i++) {
      const pos = list[i] as number;
      view.k8s = this.labels[pos] as Readonly<Record<string, string>>;
      let ok = true;
      for (let j = 0; j < reqs.length; j++) {
        if (!requirementHolds(reqs[j] as Selector['reqs'][number], view)) {
          ok = false;
          break;
        }
      }
      if (ok) out[pos >>> 5] = (out[pos >>> 5] as number) | (1 << (pos & 31));
    }
    view.k8s = NO_LABELS;
    return out;
  }
}
