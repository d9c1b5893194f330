// Runs a container's probes on their periods (scaled for tests) and reports readiness changes and kills.
import { runProbe, type ProbeOutcome, type ProbeTarget } from './probes.ts';
import { ContainerHealth, type ProbeType, type ProbeWorker } from './probe-state.ts';
import type { Probe } from '../resources/kinds-container.ts';

export interface ProbeRunnerOptions {
  probes: { startupProbe?: Probe; livenessProbe?: Probe; readinessProbe?: Probe };
  target: ProbeTarget;
  /** Multiplies every probe duration (initial delay, period, timeout); 1 is real time. */
  timeScale?: number;
  onReadyChange?: (ready: boolean) => void;
  /** A liveness or startup probe failed past its threshold: the container must be killed. */
  onKill?: (type: 'liveness' | 'startup', message: string) => void;
  onOutcome?: (type: ProbeType, outcome: ProbeOutcome) => void;
}

export class ProbeRunner {
  readonly health: ContainerHealth;
  private readonly scale: number;
  private timers: NodeJS.Timeout[] = [];
  private readonly inFlight = new Set<ProbeType>();
  /** Bumped on every start and stop, so outcomes of an earlier instance are dropped. */
  private generation = 0;
  private lastReady = false;

  constructor(private readonly opts: ProbeRunnerOptions) {
    this.health = new ContainerHealth(opts.probes);
    this.scale = opts.timeScale ?? 1;
  }

  get ready(): boolean {
    return this.health.ready;
  }

  /** The container (a new instance) is running. */
  start(): void {
    this.stopTimers();
    this.generation++;
    this.health.containerStarted(Date.now());
    for (const w of this.health.workers) {
      const period = Math.max(1, w.probe.periodSeconds * 1000 * this.scale);
      this.timers.push(setInterval(() => this.tick(w), period));
      this.tick(w);
    }
    // Initial delays are counted in whole seconds; re-check when the shortest one ends rather than a period later.
    for (const w of this.health.workers) {
      if (w.probe.initialDelaySeconds > 0) this.timers.push(setTimeout(() => this.tick(w), w.probe.initialDelaySeconds * 1000 * this.scale + 1));
    }
    this.notifyReady();
  }

  /** The container stopped: no more probes, not ready. */
  stop(): void {
    this.stopTimers();
    this.generation++;
    this.health.containerStopped();
    this.notifyReady();
  }

  private stopTimers(): void {
    for (const t of this.timers) clearTimeout(t);
    this.timers = [];
    this.inFlight.clear();
  }

  private tick(w: ProbeWorker): void {
    if (this.inFlight.has(w.type) || !w.shouldRun(Date.now(), this.health.started, this.scale)) return;
    this.inFlight.add(w.type);
    const gen = this.generation;
    const timeout = Math.max(1, w.probe.timeoutSeconds * 1000 * this.scale);
    void runProbe(w.probe.handler, this.opts.target, timeout).then((outcome) => {
      if (gen !== this.generation) return;
      this.inFlight.delete(w.type);
      this.opts.onOutcome?.(w.type, outcome);
      const wasStarted = this.health.started;
      const action = this.health.record(w.type, outcome.result);
      if (action === 'kill' && w.type !== 'readiness') this.opts.onKill?.(w.type, outcome.message);
      // Once started, readiness and liveness run at once, as the kubelet triggers readiness on the status update.
      if (!wasStarted && this.health.started) for (const other of this.health.workers) if (other.type !== 'startup') this.tick(other);
      this.notifyReady();
    });
  }

  private notifyReady(): void {
    const ready = this.health.ready;
    if (ready === this.lastReady) return;
    this.lastReady = ready;
    this.opts.onReadyChange?.(ready);
  }
}
