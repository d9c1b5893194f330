// Runs one container's command as a local process, as the kubelet runs a container: its own process group (so the
// whole tree stops together), output as prefixed lines, SIGTERM then SIGKILL after the grace period, restarts by
// restartPolicy with CrashLoopBackOff, and a kill-and-restart when a liveness or startup probe fails.
import { spawn, type ChildProcess } from 'node:child_process';
import type { Probe, RestartPolicy } from '../resources/kinds-container.ts';
import { DEFAULT_MAX_LINE_BYTES, LineSplitter, type LogLine } from './log-lines.ts';
import type { PidRegistry } from './pid-registry.ts';
import { ProbeRunner } from './probe-runner.ts';
import type { ProbeTarget } from './probes.ts';
import { RestartBackoff, shouldRestart, type ExitReason } from './restart-backoff.ts';

export type ContainerPhase = 'waiting' | 'running' | 'backoff' | 'terminated' | 'stopping' | 'stopped';

export interface ContainerExit {
  code: number | null;
  signal: string | null;
  reason: ExitReason | 'stopped' | 'spawn-error';
  at: number;
  message?: string;
}

export interface ContainerState {
  phase: ContainerPhase;
  pid?: number;
  /** Running and past its startup probe. */
  started: boolean;
  ready: boolean;
  restarts: number;
  lastExit?: ContainerExit;
  /** In backoff: when the next start is due (ms since the epoch). */
  nextStartAt?: number;
}

export interface SupervisorOptions {
  /** `namespace/pod/container`: the log prefix and the registry label. */
  id: string;
  /** The program and its arguments, already expanded (command + args). */
  argv: readonly string[];
  env: Readonly<Record<string, string>>;
  cwd?: string;
  restartPolicy?: RestartPolicy;
  /** terminationGracePeriodSeconds in ms; default 30 s. */
  gracePeriodMs?: number;
  /** Scales backoff and probe durations (tests); 1 is real time. */
  timeScale?: number;
  registry?: PidRegistry;
  probes?: { startupProbe?: Probe; livenessProbe?: Probe; readinessProbe?: Probe };
  /** Where probes go (the app's address); exec probes get the container's env and cwd. */
  probeTarget?: Omit<ProbeTarget, 'env' | 'cwd'>;
  maxLineBytes?: number;
  onLog?: (line: LogLine) => void;
  onState?: (state: ContainerState) => void;
}

export class ProcessSupervisor {
  private child: ChildProcess | undefined;
  private readonly backoff: RestartBackoff;
  private readonly probes: ProbeRunner | undefined;
  private st: ContainerState = { phase: 'waiting', started: false, ready: false, restarts: 0 };
  private startTimer: NodeJS.Timeout | undefined;
  private killTimer: NodeJS.Timeout | undefined;
  /** Why the current instance is being killed, when we kill it. */
  private killReason: ExitReason | 'stopped' | undefined;
  private stopping = false;
  private exitWaiters: (() => void)[] = [];
  private everStarted = false;
  private spawned = false;

  constructor(private readonly opts: SupervisorOptions) {
    if (opts.argv.length === 0) throw new RangeError(`${opts.id}: nothing to run (empty argv)`);
    this.backoff = new RestartBackoff({ timeScale: opts.timeScale ?? 1 });
    const p = opts.probes;
    if (p && (p.startupProbe || p.livenessProbe || p.readinessProbe)) {
      this.probes = new ProbeRunner({
        probes: p,
        target: { host: opts.probeTarget?.host ?? '127.0.0.1', ports: opts.probeTarget?.ports ?? [], env: { ...opts.env }, ...(opts.cwd ? { cwd: opts.cwd } : {}) },
        timeScale: opts.timeScale ?? 1,
        onReadyChange: () => this.emit(),
        onKill: (type) => this.kill(type),
      });
    }
  }

  get state(): ContainerState {
    const ready = this.st.phase === 'running' && (this.probes ? this.probes.ready : true);
    const started = this.st.phase === 'running' && (this.probes ? this.probes.health.started : true);
    return { ...this.st, ready, started };
  }

  /** Starts the container (once; later starts come from restarts). */
  start(): void {
    if (this.everStarted || this.stopping) return;
    this.everStarted = true;
    this.spawnChild();
  }

  /** SIGTERM to the group, SIGKILL after the grace period; no restart. Resolves when the process has exited. */
  async stop(): Promise<void> {
    this.stopping = true;
    if (this.startTimer) clearTimeout(this.startTimer);
    this.startTimer = undefined;
    if (!this.child) {
      if (this.st.phase !== 'terminated') this.setPhase('stopped');
      return;
    }
    const exited = new Promise<void>((resolve) => this.exitWaiters.push(resolve));
    this.kill('stopped');
    await exited;
  }

  private setPhase(phase: ContainerPhase): void {
    this.st.phase = phase;
    this.emit();
  }

  private emit(): void {
    this.opts.onState?.(this.state);
  }

  private spawnChild(): void {
    this.startTimer = undefined;
    delete this.st.nextStartAt;
    // The restart count goes up when a new instance starts, as the kubelet counts it.
    if (this.spawned) this.st.restarts++;
    this.spawned = true;
    const [file, ...args] = this.opts.argv as [string, ...string[]];
    let child: ChildProcess;
    try {
      child = spawn(file, args, { env: { ...this.opts.env }, cwd: this.opts.cwd, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    } catch (err) {
      // Bad arguments (a NUL byte, a bad cwd type) throw synchronously; treat like a failed start.
      this.onExit(null, null, 'spawn-error', (err as Error).message);
      return;
    }
    this.child = child;
    this.killReason = undefined;
    const pid = child.pid;
    let failed: string | undefined;
    child.once('error', (err) => {
      failed = err.message;
      // A child that never started emits no 'exit'.
      if (pid === undefined) this.onExit(null, null, 'spawn-error', failed);
    });
    if (pid === undefined) return;
    this.opts.registry?.add(this.opts.id, pid, this.opts.argv);
    this.st.pid = pid;
    this.pipe(child, 'stdout');
    this.pipe(child, 'stderr');
    child.once('exit', (code, signal) => {
      // Whatever the leader left behind in its group goes with it, as a container's processes do.
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {
        // the group is empty
      }
      this.opts.registry?.remove(pid);
      this.onExit(code, signal, this.killReason ?? (failed !== undefined ? 'spawn-error' : 'exit'), failed);
    });
    this.backoff.started();
    this.setPhase('running');
    this.probes?.start();
  }

  private pipe(child: ChildProcess, stream: 'stdout' | 'stderr'): void {
    const src = child[stream];
    if (!src) return;
    const splitter = new LineSplitter((text, truncated) => this.opts.onLog?.({ source: this.opts.id, stream, text, truncated }), this.opts.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES);
    src.on('data', (d: Buffer) => splitter.push(d));
    src.on('end', () => splitter.end());
    src.on('error', () => splitter.end());
  }

  /** Kills the current instance: SIGTERM to its group, SIGKILL after the grace period. */
  private kill(reason: ExitReason | 'stopped'): void {
    const child = this.child;
    if (!child?.pid || this.killReason !== undefined) {
      if (reason === 'stopped') this.killReason = 'stopped';
      return;
    }
    this.killReason = reason;
    if (reason === 'stopped') this.setPhase('stopping');
    const pid = child.pid;
    try {
      process.kill(-pid, 'SIGTERM');
    } catch {
      // already exiting
    }
    const grace = this.opts.gracePeriodMs ?? 30_000;
    this.killTimer = setTimeout(() => {
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {
        // gone
      }
    }, grace);
  }

  private onExit(code: number | null, signal: string | null, reason: ContainerExit['reason'], message?: string): void {
    if (this.killTimer) clearTimeout(this.killTimer);
    this.killTimer = undefined;
    this.child = undefined;
    delete this.st.pid;
    this.probes?.stop();
    const exitReason = this.stopping ? 'stopped' : reason;
    const exitedAt = Date.now();
    this.st.lastExit = { code, signal, reason: exitReason, at: exitedAt, ...(message !== undefined ? { message } : {}) };
    const waiters = this.exitWaiters;
    this.exitWaiters = [];
    if (this.stopping) {
      this.setPhase('stopped');
      waiters.forEach((w) => w());
      return;
    }
    const policyReason: ExitReason = reason === 'liveness' || reason === 'startup' ? reason : 'exit';
    // A process that could not start counts as a failure (the kubelet's StartError).
    const effectiveCode = reason === 'spawn-error' ? 128 : code;
    if (!shouldRestart(this.opts.restartPolicy ?? 'Always', effectiveCode, policyReason)) {
      this.setPhase('terminated');
      waiters.forEach((w) => w());
      return;
    }
    const wait = this.backoff.exited();
    this.st.nextStartAt = exitedAt + wait;
    this.setPhase('backoff');
    this.startTimer = setTimeout(() => this.spawnChild(), wait);
    waiters.forEach((w) => w());
  }
}
