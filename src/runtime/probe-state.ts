// The kubelet's probe bookkeeping for one container, without timers: initial delays, startup gating liveness and
// readiness, success/failure thresholds, and the hold after a failure that kills the container.
import type { Probe } from '../resources/kinds-container.ts';

export type ProbeType = 'startup' | 'liveness' | 'readiness';
export type ProbeResult = 'success' | 'failure' | 'unknown';

/** One probe of one container (the kubelet's worker). */
export class ProbeWorker {
  /** What is reported: readiness starts as failure, liveness as success, startup as unknown. */
  result: ProbeResult;
  private last: ProbeResult = 'unknown';
  private run = 0;
  private onHold = false;
  private startedAt: number | undefined;

  constructor(
    readonly type: ProbeType,
    readonly probe: Probe,
  ) {
    this.result = this.initial();
  }

  private initial(): ProbeResult {
    return this.type === 'readiness' ? 'failure' : this.type === 'liveness' ? 'success' : 'unknown';
  }

  /** A new container instance: counters reset, the hold ends, the result goes back to its initial value. */
  containerStarted(at: number): void {
    this.startedAt = at;
    this.result = this.initial();
    this.last = 'unknown';
    this.run = 0;
    this.onHold = false;
  }

  containerStopped(): void {
    this.startedAt = undefined;
    if (this.type === 'readiness') this.result = 'failure';
  }

  /**
   * Whether the probe runs at `now` (ms): the container runs, the initial delay (whole seconds, as the kubelet
   * counts them, times `scale`) has passed, it is not on hold, and startup gating allows it.
   */
  shouldRun(now: number, started: boolean, scale = 1): boolean {
    if (this.startedAt === undefined || this.onHold) return false;
    if (Math.floor((now - this.startedAt) / (1000 * scale)) < this.probe.initialDelaySeconds) return false;
    return this.type === 'startup' ? !started : started;
  }

  /** Records an outcome; returns true when the reported result changed. */
  record(outcome: 'success' | 'failure'): boolean {
    if (this.last === outcome) this.run++;
    else {
      this.last = outcome;
      this.run = 1;
    }
    const threshold = outcome === 'failure' ? this.probe.failureThreshold : this.probe.successThreshold;
    if (this.run < threshold) return false;
    const changed = this.result !== outcome;
    this.result = outcome;
    if (outcome === 'failure' && this.type !== 'readiness') {
      // The container is about to be killed: no more probing until a new instance starts.
      this.onHold = true;
      this.run = 0;
    }
    return changed;
  }
}

export type HealthAction = 'kill' | undefined;

/** A container's probes together: whether it has started, whether it is ready, and when it must be killed. */
export class ContainerHealth {
  readonly workers: ProbeWorker[] = [];
  private running = false;

  constructor(probes: { startupProbe?: Probe; livenessProbe?: Probe; readinessProbe?: Probe }) {
    if (probes.startupProbe) this.workers.push(new ProbeWorker('startup', probes.startupProbe));
    if (probes.livenessProbe) this.workers.push(new ProbeWorker('liveness', probes.livenessProbe));
    if (probes.readinessProbe) this.workers.push(new ProbeWorker('readiness', probes.readinessProbe));
  }

  worker(type: ProbeType): ProbeWorker | undefined {
    return this.workers.find((w) => w.type === type);
  }

  containerStarted(at: number): void {
    this.running = true;
    for (const w of this.workers) w.containerStarted(at);
  }

  containerStopped(): void {
    this.running = false;
    for (const w of this.workers) w.containerStopped();
  }

  /** Started: running, and the startup probe (if any) has succeeded. */
  get started(): boolean {
    if (!this.running) return false;
    const s = this.worker('startup');
    return s === undefined || s.result === 'success';
  }

  /** Ready: started, and the readiness probe (if any) reports success. */
  get ready(): boolean {
    if (!this.started) return false;
    const r = this.worker('readiness');
    return r === undefined || r.result === 'success';
  }

  /** Records an outcome of one probe; `kill` when a liveness or startup failure crossed its threshold. */
  record(type: ProbeType, outcome: 'success' | 'failure'): HealthAction {
    const w = this.worker(type);
    if (!w) return undefined;
    const changed = w.record(outcome);
    return changed && type !== 'readiness' && w.result === 'failure' ? 'kill' : undefined;
  }
}
