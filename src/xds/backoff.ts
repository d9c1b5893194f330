// Jittered exponential backoff for reconnect loops: each delay doubles up to a ceiling, and is drawn from the
// upper half of its range so that many clients losing the same server do not come back in lockstep.

export interface BackoffOptions {
  /** The first delay's ceiling (default 500 ms). */
  baseMs?: number;
  /** The largest delay (default 30 s). */
  maxMs?: number;
  /** A source of numbers in [0, 1) (default Math.random); tests pass a fixed one. */
  random?: () => number;
}

export class Backoff {
  readonly baseMs: number;
  readonly maxMs: number;
  private readonly random: () => number;
  private ceiling: number;

  constructor(opts: BackoffOptions = {}) {
    // Out-of-range settings are clamped rather than refused: a reconnect loop must never spin or stall.
    this.baseMs = Math.max(1, Math.floor(opts.baseMs ?? 500));
    this.maxMs = Math.max(this.baseMs, Math.floor(opts.maxMs ?? 30_000));
    this.random = opts.random ?? Math.random;
    this.ceiling = this.baseMs;
  }

  /** The next delay in ms, in [ceiling/2, ceiling]; the ceiling then doubles, up to maxMs. */
  next(): number {
    const c = this.ceiling;
    this.ceiling = Math.min(this.maxMs, c * 2);
    const r = Math.min(Math.max(this.random(), 0), 1);
    return Math.max(1, Math.round(c / 2 + (r * c) / 2));
  }

  /** Back to the base delay (after a connection stayed up). */
  reset(): void {
    this.ceiling = this.baseMs;
  }
}
