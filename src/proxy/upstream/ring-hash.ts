// Consistent hashing for RING_HASH clusters: a ketama-style ring over the hosts, sized and weighted as Envoy's ring
// hash load balancer sizes it, built once per change of the host set, searched by binary search per pick.

/** Envoy's defaults: at least 1024 entries, at most 8M. We bound the ring at 1M entries (12 bytes each). */
export const DEFAULT_MIN_RING_SIZE = 1024;
export const DEFAULT_MAX_RING_SIZE = 8 * 1024 * 1024;
export const RING_SIZE_BOUND = 1024 * 1024;

const TWO_32 = 4294967296;

function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Two 32-bit halves into one integer below 2^52 (exact in a double). */
function combine(h1: number, h2: number): number {
  return (h1 >>> 0) * 1048576 + (h2 >>> 12);
}

/**
 * A stable 52-bit hash of a string (the same on every run and machine): two independently seeded 32-bit streams,
 * each finished with murmur3's fmix32. Callers hash request keys (a header, the source IP, a cookie) with it.
 */
export function hashKey(key: string): number {
  let h1 = 0x811c9dc5;
  let h2 = 0x9747b28c ^ key.length;
  for (let i = 0; i < key.length; i++) {
    const c = key.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 0x01000193);
    h2 = Math.imul(h2 ^ c, 0x5bd1e995);
    h2 ^= h2 >>> 13;
  }
  return combine(fmix32(h1 ^ Math.imul(h2, 0x9e3779b1)), fmix32(h2 ^ h1));
}

/** Spreads any caller-supplied hash (32-bit, 52-bit, or a small integer) over the ring's whole 52-bit range. */
export function mixHash(n: number): number {
  const v = Number.isFinite(n) ? Math.abs(Math.trunc(n)) : 0;
  const lo = v >>> 0;
  const hi = Math.floor(v / TWO_32) >>> 0;
  const a = fmix32(lo ^ Math.imul(hi ^ 0x27d4eb2f, 0x9e3779b1));
  const b = fmix32(hi ^ Math.imul(a ^ 0x165667b1, 0x85ebca77));
  return combine(a, b);
}

export interface RingHashOptions {
  minimumRingSize?: number;
  maximumRingSize?: number;
}

/** A hash ring over `hosts`, each weighted by `weight` (as Envoy: entries proportional to normalized weight). */
export class HashRing<H extends { readonly weight: number }> {
  private readonly positions: Float64Array;
  private readonly owners: Uint32Array;
  readonly size: number;

  constructor(
    private readonly hosts: readonly H[],
    keys: readonly string[],
    opts: RingHashOptions = {},
  ) {
    const n = hosts.length;
    if (n === 0) {
      this.positions = new Float64Array(0);
      this.owners = new Uint32Array(0);
      this.size = 0;
      return;
    }
    const maxRing = Math.min(Math.max(1, opts.maximumRingSize ?? DEFAULT_MAX_RING_SIZE), RING_SIZE_BOUND);
    const minRing = Math.min(Math.max(1, opts.minimumRingSize ?? DEFAULT_MIN_RING_SIZE), maxRing);
    const weights = hosts.map((h) => Math.max(1, Math.floor(h.weight) || 1));
    const total = weights.reduce((s, w) => s + w, 0);
    const counts = this.entryCounts(weights, total, minRing, maxRing);
    const capacity = counts.reduce((s, c) => s + c, 0);
    const pos = new Float64Array(capacity);
    const own = new Uint32Array(capacity);
    let count = 0;
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < counts[i]!; j++) {
        pos[count] = hashKey(`${keys[i]!}_${j}`);
        own[count] = i;
        count++;
      }
    }
    const order = new Uint32Array(count);
    for (let i = 0; i < count; i++) order[i] = i;
    order.sort((a, b) => pos[a]! - pos[b]! || own[a]! - own[b]!);
    this.positions = new Float64Array(count);
    this.owners = new Uint32Array(count);
    for (let i = 0; i < count; i++) {
      this.positions[i] = pos[order[i]!]!;
      this.owners[i] = own[order[i]!]!;
    }
    this.size = count;
  }

  /**
   * Entries per host: `r × weight`, with `r` the entries per unit of weight that reach the minimum ring size, rounded
   * up to a power of two. Envoy scales entries to the host count exactly; rounding `r` keeps it, and so every
   * staying host's ring points, unchanged when a host joins or leaves (until the count crosses a power of two), so a
   * removed host's keys are the only ones that move. Over the maximum, entries shrink in proportion (at least one).
   */
  private entryCounts(weights: number[], total: number, minRing: number, maxRing: number): number[] {
    let r = 1;
    while (r * total < minRing) r *= 2;
    if (r * total <= maxRing) return weights.map((w) => w * r);
    if (total <= maxRing) return weights.map((w) => w * Math.max(1, Math.floor(maxRing / total)));
    return weights.map((w) => Math.max(1, Math.floor((w * maxRing) / total)));
  }

  /** The host owning the first ring entry at or after `hash` (mixed); skips excluded hosts when another exists. */
  pick(hash: number, exclude?: ReadonlySet<H>): H | undefined {
    if (this.size === 0) return undefined;
    const h = mixHash(hash);
    let lo = 0;
    let hi = this.size;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.positions[mid]! < h) lo = mid + 1;
      else hi = mid;
    }
    const start = lo === this.size ? 0 : lo;
    const first = this.hosts[this.owners[start]!]!;
    if (!exclude || exclude.size === 0 || !exclude.has(first)) return first;
    // A retry: walk the ring to the next host not tried yet (bounded by the ring; retries only).
    if (exclude.size >= this.hosts.length && this.hosts.every((x) => exclude.has(x))) return first;
    for (let k = 1; k < this.size; k++) {
      const host = this.hosts[this.owners[(start + k) % this.size]!]!;
      if (!exclude.has(host)) return host;
    }
    return first;
  }
}
