// The kubelet's restart rules: restartPolicy decides whether a container restarts, CrashLoopBackOff decides when.
//
// The first restart is immediate; each later one waits 10 s, then 20 s, 40 s … up to 5 min, counted from the
// exit. A container that ran for 10 minutes before it exited starts again from the beginning (no wait).
// `timeScale` shrinks every duration (0.001 turns 10 s into 10 ms) so tests can run the real sequence quickly.
import type { RestartPolicy } from '../resources/kinds-container.ts';

export const INITIAL_BACKOFF_MS = 10_000;
export const MAX_BACKOFF_MS = 300_000;
/** The kubelet forgets a container's backoff after twice the maximum: 10 minutes. */
export const RESET_AFTER_MS = 2 * MAX_BACKOFF_MS;

export interface BackoffOptions {
  timeScale?: number;
  now?: () => number;
}

export class RestartBackoff {
  private readonly initial: number;
  private readonly max: number;
  private readonly resetAfter: number;
  private readonly now: () => number;
  /** The wait before the next restart after this one; undefined until the first exit (or after a reset). */
  private next: number | undefined;
  private startedAt: number | undefined;

  constructor(opts: BackoffOptions = {}) {
    const scale = opts.timeScale ?? 1;
    if (!(scale > 0)) throw new RangeError('timeScale must be positive');
    this.initial = INITIAL_BACKOFF_MS * scale;
    this.max = MAX_BACKOFF_MS * scale;
    this.resetAfter = RESET_AFTER_MS * scale;
    this.now = opts.now ?? Date.now;
  }

  /** The container started. */
  started(at = this.now()): void {
    this.startedAt = at;
  }

  /** The container exited: how long to wait (ms) before it starts again. */
  exited(at = this.now()): number {
    if (this.startedAt !== undefined && at - this.startedAt >= this.resetAfter) this.next = undefined;
    this.startedAt = undefined;
    if (this.next === undefined) {
      this.next = this.initial;
      return 0;
    }
    const wait = this.next;
    this.next = Math.min(this.next * 2, this.max);
    return wait;
  }

  /** The wait the next exit would get (0 before the first one): for status lines such as "back-off 40s". */
  get pendingMs(): number {
    return this.next ?? 0;
  }
}

export type ExitReason = 'exit' | 'liveness' | 'startup';

/**
 * Whether the kubelet starts the container again. A container killed for a failed liveness or startup probe
 * restarts unless the policy is Never, whatever its exit code; one that exits on its own follows the policy.
 */
export function shouldRestart(policy: RestartPolicy, exitCode: number | null, reason: ExitReason = 'exit'): boolean {
  if (policy === 'Never') return false;
  if (policy === 'Always' || reason !== 'exit') return true;
  return exitCode !== 0;
}
