// Label selectors as the policy engine evaluates them: Kubernetes semantics, with Cilium's label sources.
import type { LabelSelector, SelectorOperator } from '../resources/kinds.ts';
import { splitLabelSource } from '../resources/validate-common.ts';

/**
 * Which labels a requirement looks at. Pod labels all come from the `k8s` source, so `k8s:`, `any:` and
 * unprefixed keys read them; `reserved:` keys read the reserved labels of hosts, world and the like.
 * Other sources (`cidr:`, `container:`, …) name labels that Trellis endpoints never carry.
 */
export type LabelSpace = 'k8s' | 'reserved' | 'none';

export interface Requirement {
  space: LabelSpace;
  key: string;
  op: SelectorOperator;
  values: readonly string[];
}

/** A selector in normal form: every requirement must hold. No requirements selects everything. */
export interface Selector {
  reqs: Requirement[];
  /** Canonical text; equal selectors have equal keys, which lets compiled results be shared. */
  key: string;
}

/** The labels of one peer or subject: `k8s` for pods, `reserved` (e.g. `host`, `world`) for the rest. */
export interface LabelView {
  k8s: Readonly<Record<string, string>>;
  reserved: ReadonlySet<string>;
}

export function makeSelector(reqs: Requirement[]): Selector {
  const norm = reqs
    .map((r) => ({ ...r, values: [...new Set(r.values)].sort() }))
    .sort((a, b) => cmp(reqText(a), reqText(b)));
  const dedup = norm.filter((r, i) => i === 0 || reqText(r) !== reqText(norm[i - 1] as Requirement));
  return { reqs: dedup, key: dedup.map(reqText).join(',') };
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function reqText(r: Requirement): string {
  return `${r.space}:${r.key} ${r.op} (${r.values.join('|')})`;
}

/** Converts a LabelSelector. With `cilium`, keys may carry a source prefix. */
export function fromLabelSelector(sel: LabelSelector, cilium = false): Requirement[] {
  const reqs: Requirement[] = [];
  const space = (key: string): { space: LabelSpace; key: string } => {
    if (!cilium) return { space: 'k8s', key };
    const s = splitLabelSource(key);
    if (s.source === undefined || s.source === 'k8s' || s.source === 'any') return { space: 'k8s', key: s.key };
    if (s.source === 'reserved') return { space: 'reserved', key: s.key };
    return { space: 'none', key: s.key };
  };
  for (const [k, v] of Object.entries(sel.matchLabels)) reqs.push({ ...space(k), op: 'In', values: [v] });
  for (const e of sel.matchExpressions) reqs.push({ ...space(e.key), op: e.operator, values: e.values });
  return reqs;
}

export function requirementHolds(r: Requirement, labels: LabelView): boolean {
  if (r.space === 'reserved') {
    const has = labels.reserved.has(r.key);
    switch (r.op) {
      case 'In':
        // Reserved labels have empty values: `reserved:host: ""` in matchLabels.
        return has && r.values.includes('');
      case 'NotIn':
        return !has || !r.values.includes('');
      case 'Exists':
        return has;
      case 'DoesNotExist':
        return !has;
    }
  }
  const v = r.space === 'k8s' ? labels.k8s[r.key] : undefined;
  switch (r.op) {
    case 'In':
      return v !== undefined && r.values.includes(v);
    case 'NotIn':
      return v === undefined || !r.values.includes(v);
    case 'Exists':
      return v !== undefined;
    case 'DoesNotExist':
      return v === undefined;
  }
}

export function selectorMatches(s: Selector, labels: LabelView): boolean {
  for (const r of s.reqs) if (!requirementHolds(r, labels)) return false;
  return true;
}

/** True when the selector reads a key (in any space other than `none`). */
export function selectorHasKey(s: Selector, key: string, space: LabelSpace = 'k8s'): boolean {
  return s.reqs.some((r) => r.key === key && r.space === space);
}

export function selectorUsesReserved(s: Selector): boolean {
  return s.reqs.some((r) => r.space === 'reserved');
}

/** A readable form, e.g. `app=db,tier in (a,b)`; `{}` for the empty selector. */
export function formatSelector(s: Selector): string {
  if (s.reqs.length === 0) return '{}';
  return s.reqs
    .map((r) => {
      const k = r.space === 'reserved' ? `reserved:${r.key}` : r.key;
      switch (r.op) {
        case 'In':
          return r.values.length === 1 ? `${k}=${r.values[0]}` : `${k} in (${r.values.join(',')})`;
        case 'NotIn':
          return `${k} notin (${r.values.join(',')})`;
        case 'Exists':
          return k;
        case 'DoesNotExist':
          return `!${k}`;
      }
    })
    .join(',');
}
