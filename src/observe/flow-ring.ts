// The bounded ring of recent flows, as Hubble keeps one per node: push is O(1), never blocks and never allocates;
// every flow gets the next sequence number; readers ask for what came after a sequence number, for the last n
// flows, or follow new ones, and a reader the writer has lapped learns how many flows it lost (Hubble's LostEvent
// with source HUBBLE_RING_BUFFER) instead of silently skipping them.
import type { Flow, FlowSink } from './flow.ts';
import { ObserveError } from './observe-error.ts';

export const DEFAULT_RING_CAPACITY = 4096;
const MAX_RING_CAPACITY = 1 << 24;
/** Flows a follower is handed per turn of the event loop before others (and I/O) get theirs. */
const FOLLOW_BATCH = 512;

/** One read: `flows[i]` has sequence number `first + i`; pass `next` to the following `since()`. */
export interface RingRead {
  /** Flows after the requested sequence number that were overwritten before this read (0 when none). */
  lost: number;
  flows: Flow[];
  first: number;
  next: number;
}

/** What a follower receives: a flow with its sequence number, or how many flows it missed just before the next one. */
export type RingEvent = { seq: number; flow: Flow } | { lost: number };

/**
 * A follower may return a promise: it gets nothing more until it settles (and then one event per turn of the event
 * loop at most), so it may fall behind and lose flows. Return one only when there is a reason to wait (a stream's
 * backpressure); a plain return keeps the batch going.
 */
export type RingListener = (event: RingEvent) => void | Promise<void>;

export interface Follower {
  /** Sequence number of the last flow handed to the listener (or where it started). */
  readonly cursor: number;
  /** Flows this follower lost in all. */
  readonly lost: number;
  /** Set when the listener threw or rejected; the follower is closed then. */
  readonly error: unknown;
  close(): void;
}

export interface RingStatus {
  /** Flows held now (Hubble's num_flows). */
  numFlows: number;
  /** Capacity (max_flows). */
  maxFlows: number;
  /** Flows pushed since start (seen_flows); also the sequence number of the newest flow. */
  seenFlows: number;
}

class RingFollower implements Follower {
  cursor: number;
  lost = 0;
  error: unknown = undefined;
  busy = false;
  closed = false;
  constructor(
    readonly ring: FlowRing,
    readonly listener: RingListener,
    after: number,
  ) {
    this.cursor = after;
  }
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.ring.unfollow(this);
  }
}

export class FlowRing implements FlowSink {
  readonly capacity: number;
  private readonly mask: number;
  private readonly slots: (Flow | undefined)[];
  /** Sequence number of the newest flow; flows are numbered from 1. */
  private written = 0;
  private readonly followers = new Set<RingFollower>();
  private scheduled = false;

  constructor(capacity: number = DEFAULT_RING_CAPACITY) {
    if (!Number.isInteger(capacity) || capacity < 2 || capacity > MAX_RING_CAPACITY || (capacity & (capacity - 1)) !== 0) {
      throw new ObserveError('bad-option', `flow ring capacity must be a power of two between 2 and ${MAX_RING_CAPACITY}, got ${capacity}`);
    }
    this.capacity = capacity;
    this.mask = capacity - 1;
    this.slots = new Array<Flow | undefined>(capacity).fill(undefined);
  }

  /** Adds a flow, overwriting the oldest when full. Followers are served later, on their own turn of the event loop. */
  push(flow: Flow): void {
    const seq = ++this.written;
    this.slots[seq & this.mask] = flow;
    if (this.followers.size > 0 && !this.scheduled) {
      this.scheduled = true;
      setImmediate(this.serve);
    }
  }

  /** Sequence number of the newest flow (0 before the first). */
  get lastSeq(): number {
    return this.written;
  }

  /** Sequence number of the oldest flow still held (lastSeq + 1 when empty). */
  get oldestSeq(): number {
    return Math.max(1, this.written - this.capacity + 1);
  }

  status(): RingStatus {
    return { numFlows: Math.min(this.written, this.capacity), maxFlows: this.capacity, seenFlows: this.written };
  }

  /** The flow with this sequence number, if still held. */
  get(seq: number): Flow | undefined {
    return seq >= this.oldestSeq && seq <= this.written ? this.slots[seq & this.mask] : undefined;
  }

  /** Flows with a sequence number above `after` (0: from the start), at most `max`, oldest first. */
  since(after: number, max: number = this.capacity): RingRead {
    let first = Math.max(0, Math.floor(after)) + 1;
    const oldest = this.oldestSeq;
    let lost = 0;
    if (first < oldest) {
      lost = oldest - first;
      first = oldest;
    }
    const last = Math.min(this.written, first + Math.max(0, Math.floor(max)) - 1);
    return { lost, flows: this.collect(first, last), first, next: Math.max(last, Math.min(first - 1, this.written)) };
  }

  /** The newest `n` flows, oldest first. */
  last(n: number): RingRead {
    const last = this.written;
    const first = Math.max(this.oldestSeq, last - Math.max(0, Math.floor(n)) + 1);
    return { lost: 0, flows: this.collect(first, last), first, next: last };
  }

  /**
   * Calls `listener` with every flow pushed after `after` (default: from now on), in order, outside of push(). A
   * listener that has not kept up is told `{ lost: n }` before the next flow it gets. close() stops it.
   */
  follow(listener: RingListener, opts: { after?: number } = {}): Follower {
    const after = opts.after === undefined ? this.written : Math.max(0, Math.floor(opts.after));
    const f = new RingFollower(this, listener, after);
    this.followers.add(f);
    if (after < this.written) this.schedule();
    return f;
  }

  /** @internal Used by Follower.close(). */
  unfollow(f: RingFollower): void {
    this.followers.delete(f);
  }

  private collect(first: number, last: number): Flow[] {
    const out: Flow[] = [];
    for (let s = first; s <= last; s++) out.push(this.slots[s & this.mask] as Flow);
    return out;
  }

  private schedule(): void {
    if (this.scheduled || this.followers.size === 0) return;
    this.scheduled = true;
    setImmediate(this.serve);
  }

  private readonly serve = (): void => {
    this.scheduled = false;
    let more = false;
    for (const f of this.followers) {
      if (!f.busy && this.serveOne(f)) more = true;
    }
    if (more) this.schedule();
  };

  /** Hands one follower up to FOLLOW_BATCH events; true when it has more waiting. */
  private serveOne(f: RingFollower): boolean {
    let budget = FOLLOW_BATCH;
    while (budget-- > 0 && !f.closed && f.cursor < this.written) {
      const oldest = this.oldestSeq;
      let event: RingEvent;
      if (f.cursor + 1 < oldest) {
        const lost = oldest - f.cursor - 1;
        f.lost += lost;
        f.cursor = oldest - 1;
        event = { lost };
      } else {
        const seq = ++f.cursor;
        event = { seq, flow: this.slots[seq & this.mask] as Flow };
      }
      if (!this.deliver(f, event)) return false;
    }
    return !f.closed && f.cursor < this.written;
  }

  /** False when the follower is now busy (a pending promise) or closed. */
  private deliver(f: RingFollower, event: RingEvent): boolean {
    let r: void | Promise<void>;
    try {
      r = f.listener(event);
    } catch (err) {
      f.error = err;
      f.close();
      return false;
    }
    if (r === undefined || typeof (r as { then?: unknown }).then !== 'function') return true;
    f.busy = true;
    r.then(
      () => {
        f.busy = false;
        this.schedule();
      },
      (err: unknown) => {
        f.busy = false;
        f.error = err;
        f.close();
      },
    );
    return false;
  }
}
