// An inverted index from labels to identities: resolves a selector to the identities it matches without a full scan.
import { requirementHolds, type LabelView, type Selector } from './selector.ts';

const NO_RESERVED: ReadonlySet<string> = new Set();

export class LabelIndex {
  private readonly ids: number[];
  private readonly views: LabelView[];
  /** key → value → positions in `ids`. */
  private readonly postings = new Map<string, Map<string, number[]>>();
  private readonly cache = new Map<string, ReadonlySet<number>>();
  private all: ReadonlySet<number> | undefined;

  /** `identities` maps each identity number to the k8s-source labels every endpoint of it carries. */
  constructor(identities: ReadonlyMap<number, Readonly<Record<string, string>>>) {
    this.ids = [];
    this.views = [];
    for (const [id, labels] of identities) {
      const pos = this.ids.length;
      this.ids.push(id);
      this.views.push({ k8s: labels, reserved: NO_RESERVED });
      for (const [k, v] of Object.entries(labels)) {
        let byValue = this.postings.get(k);
        if (!byValue) this.postings.set(k, (byValue = new Map<string, number[]>()));
        let list = byValue.get(v);
        if (!list) byValue.set(v, (list = []));
        list.push(pos);
      }
    }
  }

  /** The identities a selector matches; results are shared between equal selectors. */
  resolve(sel: Selector): ReadonlySet<number> {
    const hit = this.cache.get(sel.key);
    if (hit) return hit;
    const out = this.compute(sel);
    this.cache.set(sel.key, out);
    return out;
  }

  private compute(sel: Selector): ReadonlySet<number> {
    if (sel.reqs.length === 0) return (this.all ??= new Set(this.ids));
    // Start from the smallest candidate list a positive requirement gives, then check every requirement.
    let best: number[] | undefined;
    for (const r of sel.reqs) {
      if (r.space === 'none' && (r.op === 'In' || r.op === 'Exists')) return EMPTY;
      if (r.space !== 'k8s' || (r.op !== 'In' && r.op !== 'Exists')) continue;
      const byValue = this.postings.get(r.key);
      if (!byValue) return EMPTY;
      let cand: number[];
      if (r.op === 'In') {
        cand = [];
        for (const v of r.values) {
          const l = byValue.get(v);
          if (l) cand = cand.length === 0 ? l : cand.concat(l);
        }
      } else {
        cand = [];
        for (const l of byValue.values()) cand = cand.length === 0 ? l : cand.concat(l);
      }
      if (!best || cand.length < best.length) best = cand;
      if (best.length === 0) return EMPTY;
    }
    const out = new Set<number>();
    const check = (pos: number): void => {
      const view = this.views[pos];
      if (!view) return;
      for (const r of sel.reqs) if (!requirementHolds(r, view)) return;
      out.add(this.ids[pos] ?? 0);
    };
    if (best) for (const pos of best) check(pos);
    else for (let pos = 0; pos < this.ids.length; pos++) check(pos);
    return out;
  }
}

const EMPTY: ReadonlySet<number> = new Set();
