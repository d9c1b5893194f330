// One local pod under `trellis up`: its sidecar (a `trellis proxy` process) and its containers (their commands),
// each under a ProcessSupervisor, with the pod's environment; a pod is ready when its proxy and every container are.
import { resolve } from 'node:path';
import { cpus, totalmem } from 'node:os';
import type { ControlPlane } from '../control-plane/control-plane.ts';
import type { Diagnostic } from '../resources/diagnostics.ts';
import type { Resource, Service } from '../resources/kinds.ts';
import type { Probe } from '../resources/kinds-container.ts';
import type { LocalPod } from './local-pods.ts';
import type { PidRegistry } from './pid-registry.ts';
import { indexConfig, podEnv } from './pod-env.ts';
import { ProcessSupervisor, type ContainerState } from './process-supervisor.ts';
import type { UpPodStatus } from './up-state.ts';

/** Where each sidecar's admin server listens: the pod IP, on Istio's admin port. */
export const PROXY_ADMIN_PORT = 15000;
const CLI = new URL('../cli/trellis.ts', import.meta.url).pathname;
const ROOT = new URL('../..', import.meta.url).pathname;
/** Host variables a local process needs to find its programs (the image would give them in a cluster). */
const HOST_ENV = ['PATH', 'HOME', 'USER', 'LANG', 'TZ', 'TMPDIR', 'NODE_OPTIONS'];

export interface UpLog {
  pod: string;
  /** The container name, or `proxy`. */
  container: string;
  stream: 'stdout' | 'stderr';
  text: string;
}

export interface UpPodContext {
  resources: readonly Resource[];
  services: readonly Service[];
  serviceAddress: (svc: Service, lp: LocalPod) => string | undefined;
  registry: PidRegistry;
  timeScale: number;
  /** Sidecars serve the Observer API to the control plane's flow relay. */
  observer: boolean;
  onLog: (line: UpLog) => void;
  onChange: (pod: UpPod, readyChanged: boolean) => void;
}

interface ContainerRun {
  name: string;
  supervisor?: ProcessSupervisor;
  /** Why it does not run (an image without a command). */
  notRun?: string;
}

const proxyReadiness: Probe = {
  handler: { type: 'httpGet', path: '/ready', port: PROXY_ADMIN_PORT, scheme: 'HTTP', httpHeaders: [] },
  initialDelaySeconds: 0,
  timeoutSeconds: 1,
  periodSeconds: 1,
  successThreshold: 1,
  failureThreshold: 1,
};

export class UpPod {
  readonly containers: ContainerRun[] = [];
  proxy: ProcessSupervisor | undefined;
  private lastReady = false;

  /** Builds every container's environment; manifest problems go to `problems` (nothing starts then). */
  constructor(
    readonly lp: LocalPod,
    private readonly ctx: UpPodContext,
    problems: Diagnostic[],
  ) {
    const config = indexConfig(ctx.resources);
    const host: Record<string, string> = {};
    for (const k of HOST_ENV) if (process.env[k] !== undefined) host[k] = process.env[k];
    lp.source.spec.containers.forEach((c, i) => {
      const built = podEnv({
        pod: lp.model,
        source: lp.source,
        containerIndex: i,
        // POD_IP is where the app must listen: the address its sidecar forwards inbound traffic to.
        podIps: [lp.addresses.appIp],
        config,
        services: ctx.services,
        serviceAddress: (svc) => ctx.serviceAddress(svc, lp),
        node: { cpus: cpus().length, memoryBytes: totalmem(), ephemeralStorageBytes: 0 },
      });
      problems.push(...built.diagnostics);
      const env = { ...host, HOSTNAME: lp.model.name, ...Object.fromEntries(built.env) };
      const argv = [...(built.command ?? []), ...built.args];
      if (!built.command) {
        this.containers.push({ name: c.name, notRun: `image ${c.image ?? '(none)'} is not pulled and the container has no command: it does not run` });
        return;
      }
      const sup = new ProcessSupervisor({
        id: `${lp.key}/${c.name}`,
        argv,
        env,
        cwd: resolve(lp.manifestDir, c.workingDir ?? '.'),
        restartPolicy: lp.source.spec.restartPolicy ?? 'Always',
        gracePeriodMs: (lp.source.spec.terminationGracePeriodSeconds ?? 30) * 1000,
        timeScale: ctx.timeScale,
        registry: ctx.registry,
        probes: { ...(c.startupProbe ? { startupProbe: c.startupProbe } : {}), ...(c.livenessProbe ? { livenessProbe: c.livenessProbe } : {}), ...(c.readinessProbe ? { readinessProbe: c.readinessProbe } : {}) },
        probeTarget: { host: lp.addresses.appIp, ports: c.ports },
        onLog: (l) => ctx.onLog({ pod: lp.key, container: c.name, stream: l.stream, text: l.text }),
        onState: () => this.changed(),
      });
      this.containers.push({ name: c.name, supervisor: sup });
    });
  }

  get ready(): boolean {
    if (!this.proxy?.state.ready) return false;
    return this.containers.every((c) => c.supervisor?.state.ready === true);
  }

  get proxyAdmin(): string {
    return `http://${this.lp.addresses.podIp}:${PROXY_ADMIN_PORT}`;
  }

  startProxy(cp: ControlPlane, caBundle: string, proxiesDir: string): void {
    const { lp } = this;
    const token = cp.tokens.issue({ namespace: lp.model.namespace, serviceAccount: lp.model.serviceAccount });
    const a = lp.addresses;
    const argv = [
      process.execPath, '--import', 'tsx', CLI, 'proxy',
      '--xds', `127.0.0.1:${cp.xdsPort}`, '--node', lp.key, '--ip', a.podIp, '--app-ip', a.appIp, '--outbound-ip', a.outboundIp,
      '--token', token, '--ca', cp.caTarget ?? '', '--ca-bundle', caBundle,
      '--state-dir', resolve(proxiesDir, `${lp.model.namespace}-${lp.model.name}`),
      '--admin-host', a.podIp, '--admin-port', String(PROXY_ADMIN_PORT), '--drain-seconds', '1',
      ...(this.ctx.observer ? ['--observer-port', '0'] : []),
    ];
    const env: Record<string, string> = {};
    for (const [k, v] of Object.entries(process.env)) if (v !== undefined) env[k] = v;
    env.NODE_NO_WARNINGS = '1';
    this.proxy = new ProcessSupervisor({
      id: `${lp.key}/proxy`,
      argv,
      env,
      cwd: ROOT,
      restartPolicy: 'Always',
      gracePeriodMs: 5000,
      timeScale: this.ctx.timeScale,
      registry: this.ctx.registry,
      probes: { readinessProbe: proxyReadiness },
      probeTarget: { host: a.podIp, ports: [] },
      onLog: (l) => {
        // The proxy logs JSON (pino) on stderr: only warnings and errors are shown.
        if (l.stream === 'stderr') {
          const level = Number(/"level":(\d+)/.exec(l.text)?.[1] ?? 50);
          if (level < 40) return;
        }
        this.ctx.onLog({ pod: lp.key, container: 'proxy', stream: l.stream, text: l.text });
      },
      onState: () => this.changed(),
    });
    this.proxy.start();
  }

  startContainers(): void {
    for (const c of this.containers) {
      if (c.supervisor) c.supervisor.start();
      else this.ctx.onLog({ pod: this.lp.key, container: c.name, stream: 'stderr', text: c.notRun ?? '' });
    }
  }

  async stopProxy(): Promise<void> {
    await this.proxy?.stop();
  }

  async stopContainers(): Promise<void> {
    await Promise.all(this.containers.map((c) => (c.supervisor ? c.supervisor.stop() : Promise.resolve())));
  }

  status(): UpPodStatus {
    const a = this.lp.addresses;
    const ps = this.proxy?.state;
    return {
      key: this.lp.key,
      owner: `${this.lp.model.owner.kind}/${this.lp.model.owner.name}`,
      podIp: a.podIp,
      appIp: a.appIp,
      outboundIp: a.outboundIp,
      ready: this.ready,
      proxy: { admin: this.proxyAdmin, phase: ps?.phase ?? 'waiting', ready: ps?.ready ?? false, restarts: ps?.restarts ?? 0, ...(ps?.pid !== undefined ? { pid: ps.pid } : {}) },
      containers: this.containers.map((c) => containerStatus(c)),
    };
  }

  private changed(): void {
    const ready = this.ready;
    const readyChanged = ready !== this.lastReady;
    this.lastReady = ready;
    this.ctx.onChange(this, readyChanged);
  }
}

function containerStatus(c: ContainerRun): UpPodStatus['containers'][number] {
  if (!c.supervisor) return { name: c.name, phase: 'not-run', ready: false, restarts: 0, ...(c.notRun ? { message: c.notRun } : {}) };
  const s: ContainerState = c.supervisor.state;
  const out: UpPodStatus['containers'][number] = { name: c.name, phase: s.phase, ready: s.ready, restarts: s.restarts };
  if (s.pid !== undefined) out.pid = s.pid;
  if (s.lastExit?.message) out.message = s.lastExit.message;
  return out;
}
