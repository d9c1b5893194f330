// Load balancers over one set of hosts, built once per change of that set: weighted round robin, least request
// (power of two choices), random and ring hash. A pick is O(1) (O(log n) for ring hash); only retries that exclude
// hosts already tried may walk further.
import type { LbPolicy } from '../../routing/model.ts';
import { HashRing, type RingHashOptions } from './ring-hash.ts';

export interface LbHost {
  readonly weight: number;
  readonly activeRequests: number;
}

export interface LoadBalancer<H extends LbHost> {
  /** `hash` is used by RING_HASH only (a missing hash picks a random ring point, as Envoy does). */
  pick(hash: number | undefined, exclude: ReadonlySet<H> | undefined): H | undefined;
}

/** Envoy's least_request choice_count default. */
export const LEAST_REQUEST_CHOICES = 2;
/** Weighted schedules are scaled down to about this many slots (every host keeps at least one). */
export const SCHEDULE_BOUND = 4096;

export interface LoadBalancerOptions {
  ringHash?: RingHashOptions;
  /** Ring entry keys per host (default `String(index)`); the cluster passes `address:port`. */
  keys?: readonly string[];
  /** [0, 1) random source; tests may seed it. */
  random?: () => number;
}

function gcd(a: number, b: number): number {
  while (b) [a, b] = [b, a % b];
  return a;
}

/**
 * A weighted schedule by earliest deadline first, as Envoy's EDF scheduler orders weighted round robin: a host of
 * weight w appears w times per cycle, spread evenly. Equal weights give the hosts themselves.
 */
export function weightedSchedule<H extends LbHost>(hosts: readonly H[]): H[] {
  if (hosts.length <= 1) return [...hosts];
  let weights = hosts.map((h) => Math.max(1, Math.floor(h.weight) || 1));
  if (weights.every((w) => w === weights[0])) return [...hosts];
  const g = weights.reduce(gcd);
  weights = weights.map((w) => w / g);
  let total = weights.reduce((s, w) => s + w, 0);
  const bound = Math.max(SCHEDULE_BOUND, 2 * hosts.length);
  if (total > bound) {
    weights = weights.map((w) => Math.max(1, Math.round((w * bound) / total)));
    total = weights.reduce((s, w) => s + w, 0);
  }
  // Binary heap of [deadline, index]; ties go to the lower index so the order is stable.
  const heap: [number, number][] = weights.map((w, i) => [1 / w, i]);
  const less = (a: [number, number], b: [number, number]): boolean => a[0] < b[0] || (a[0] === b[0] && a[1] < b[1]);
  const down = (i: number): void => {
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < heap.length && less(heap[l]!, heap[m]!)) m = l;
      if (r < heap.length && less(heap[r]!, heap[m]!)) m = r;
      if (m === i) return;
      [heap[i], heap[m]] = [heap[m]!, heap[i]!];
      i = m;
    }
  };
  for (let i = (heap.length >> 1) - 1; i >= 0; i--) down(i);
  const out: H[] = new Array<H>(total);
  for (let k = 0; k < total; k++) {
    const top = heap[0]!;
    out[k] = hosts[top[1]]!;
    top[0] += 1 / weights[top[1]]!;
    down(0);
  }
  return out;
}

/** The first entry of `list` from `start` on (cyclically) not in `exclude`; `list[start]` when all are excluded. */
function firstNotExcluded<H>(list: readonly H[], start: number, exclude: ReadonlySet<H> | undefined): H | undefined {
  const first = list[start];
  if (first === undefined || !exclude || exclude.size === 0 || !exclude.has(first)) return first;
  for (let k = 1; k < list.length; k++) {
    const h = list[(start + k) % list.length]!;
    if (!exclude.has(h)) return h;
  }
  return first;
}

class RoundRobin<H extends LbHost> implements LoadBalancer<H> {
  private next: number;
  constructor(
    private readonly schedule: readonly H[],
    random: () => number,
  ) {
    // A random start, so that proxies restarted together do not all begin with the same host.
    this.next = Math.floor(random() * schedule.length);
  }
  pick(_hash: number | undefined, exclude: ReadonlySet<H> | undefined): H | undefined {
    if (this.schedule.length === 0) return undefined;
    const i = this.next;
    this.next = (i + 1) % this.schedule.length;
    return firstNotExcluded(this.schedule, i, exclude);
  }
}

class Random<H extends LbHost> implements LoadBalancer<H> {
  constructor(
    private readonly schedule: readonly H[],
    private readonly random: () => number,
  ) {}
  pick(_hash: number | undefined, exclude: ReadonlySet<H> | undefined): H | undefined {
    if (this.schedule.length === 0) return undefined;
    return firstNotExcluded(this.schedule, Math.floor(this.random() * this.schedule.length), exclude);
  }
}

/**
 * Least request as Envoy's default N_CHOICES method: draw `choice_count` (2) random hosts and take the one with the
 * fewest active requests. With unequal weights the draws are weighted and hosts compare by
 * `(active + 1) / weight` (Envoy's dynamic weight with active_request_bias 1), instead of Envoy's EDF over
 * dynamic weights; the effect, more traffic to heavier and idler hosts, is the same.
 */
class LeastRequest<H extends LbHost> implements LoadBalancer<H> {
  private readonly weighted: boolean;
  constructor(
    private readonly schedule: readonly H[],
    private readonly random: () => number,
  ) {
    this.weighted = schedule.some((h) => h.weight !== schedule[0]!.weight);
  }
  private load(h: H): number {
    return this.weighted ? (h.activeRequests + 1) / Math.max(1, h.weight) : h.activeRequests;
  }
  pick(_hash: number | undefined, exclude: ReadonlySet<H> | undefined): H | undefined {
    const n = this.schedule.length;
    if (n === 0) return undefined;
    if (n === 1) return this.schedule[0];
    let best: H | undefined;
    let drawn = 0;
    // A few extra draws make room for excluded hosts on retries.
    const maxDraws = exclude && exclude.size > 0 ? LEAST_REQUEST_CHOICES + 6 : LEAST_REQUEST_CHOICES;
    for (let d = 0; d < maxDraws && drawn < LEAST_REQUEST_CHOICES; d++) {
      const h = this.schedule[Math.floor(this.random() * n)]!;
      if (exclude?.has(h)) continue;
      drawn++;
      if (best === undefined || this.load(h) < this.load(best)) best = h;
    }
    return best ?? firstNotExcluded(this.schedule, Math.floor(this.random() * n), exclude);
  }
}

class RingHashLb<H extends LbHost> implements LoadBalancer<H> {
  private readonly ring: HashRing<H>;
  constructor(
    hosts: readonly H[],
    keys: readonly string[],
    opts: RingHashOptions | undefined,
    private readonly random: () => number,
  ) {
    this.ring = new HashRing(hosts, keys, opts);
  }
  pick(hash: number | undefined, exclude: ReadonlySet<H> | undefined): H | undefined {
    return this.ring.pick(hash ?? Math.floor(this.random() * 4294967296), exclude);
  }
}

/** Builds the balancer for `policy` over `hosts` (already filtered to the hosts that may be picked). */
export function createLoadBalancer<H extends LbHost>(policy: LbPolicy, hosts: readonly H[], opts: LoadBalancerOptions = {}): LoadBalancer<H> {
  const random = opts.random ?? Math.random;
  switch (policy) {
    case 'RING_HASH':
      return new RingHashLb(hosts, opts.keys ?? hosts.map((_, i) => String(i)), opts.ringHash, random);
    case 'LEAST_REQUEST':
      return new LeastRequest(weightedSchedule(hosts), random);
    case 'RANDOM':
      return new Random(weightedSchedule(hosts), random);
    default:
      return new RoundRobin(weightedSchedule(hosts), random);
  }
}
