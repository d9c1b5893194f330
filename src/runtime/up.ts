// `trellis up` in loopback isolation: loads the manifests, cleans what a crashed run left, expands workloads into
// local pods with plan addresses, then starts the control plane and CA (in process), the cluster DNS server, one
// `trellis proxy` per pod and every container's command; keeps readiness flowing into endpoints and DNS; stops
// everything in order (proxies drain, then pods, then the control plane).
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { ControlPlane } from '../control-plane/control-plane.ts';
import { listManifestFiles, readManifestFiles } from '../control-plane/manifest-files.ts';
import { compileMeshConfig } from '../control-plane/mesh-config.ts';
import { buildCluster, type Cluster } from '../model/cluster.ts';
import { hasErrors, type Diagnostic } from '../resources/diagnostics.ts';
import type { Resource, Service } from '../resources/kinds.ts';
import { AddressPlan } from './address-plan.ts';
import { ClusterDnsServer } from './cluster-dns.ts';
import { ClusterDnsTable } from './cluster-dns-table.ts';
import { expandLocalPods, localPodsYaml, manifestsWithoutPods, type LocalPod } from './local-pods.ts';
import { cleanupLeftovers, PidRegistry } from './pid-registry.ts';
import { RuntimeError } from './runtime-error.ts';
import { hasServiceIp } from './service-env.ts';
import { PID_FILE, readUpState, upIsRunning, writeUpState, type UpState } from './up-state.ts';
import { UpPod, type UpLog } from './up-pod.ts';

export interface UpOptions {
  paths: string[];
  stateDir: string;
  /** Control-plane log. */
  logger: Logger;
  /** 0 (default) picks a free port. */
  dnsPort?: number;
  dnsHost?: string;
  /** Loopback ranges for pod blocks and Service VIPs (defaults in address-plan.ts). */
  podRange?: string;
  serviceRange?: string;
  /** Scales probe periods and restart backoff (tests); 1 is real time. */
  timeScale?: number;
  onLog?: (line: UpLog) => void;
  /** Human-readable events: a pod became ready, a container restarted. */
  onEvent?: (text: string) => void;
}

function load(paths: readonly string[]): { resources: Resource[]; sources: ReturnType<typeof readManifestFiles>; diagnostics: Diagnostic[] } {
  const { files, missing } = listManifestFiles(paths);
  if (missing.length > 0) {
    const diagnostics: Diagnostic[] = missing.map((m) => ({ severity: 'error', code: 'not-found', message: `${m}: no such file or directory` }));
    return { resources: [], sources: [], diagnostics };
  }
  const sources = readManifestFiles(files);
  // The control plane's own compile: what it would refuse is refused here, located in the user's files.
  const result = compileMeshConfig(sources);
  if (!result.ok) return { resources: [], sources, diagnostics: result.diagnostics };
  return { resources: result.config.resources, sources, diagnostics: result.config.warnings };
}

export class LocalRuntime {
  readonly pods: UpPod[] = [];
  readonly warnings: string[] = [];
  cp!: ControlPlane;
  dns!: ClusterDnsServer;
  private dnsTable: ClusterDnsTable | undefined;
  private readonly registry: PidRegistry;
  private readonly manifestsDir: string;
  private readonly startedAt = new Date();
  private writeTimer: NodeJS.Timeout | undefined;
  private stopped = false;
  private services: Service[] = [];
  private exposed: string[] = [];

  private constructor(
    readonly opts: UpOptions,
    private readonly resources: Resource[],
    private readonly sources: ReturnType<typeof readManifestFiles>,
    private readonly cluster: Cluster,
    private readonly plan: AddressPlan,
  ) {
    this.registry = new PidRegistry(join(opts.stateDir, PID_FILE));
    this.manifestsDir = join(opts.stateDir, 'manifests');
  }

  /**
   * Validates, cleans leftovers, starts everything. Manifest errors throw RuntimeError INVALID_ARGUMENT with the
   * located diagnostics, before anything starts.
   */
  static async start(opts: UpOptions): Promise<LocalRuntime> {
    const { resources, sources, diagnostics } = load(opts.paths);
    if (hasErrors(diagnostics)) throw new RuntimeError('INVALID_ARGUMENT', `${diagnostics.filter((d) => d.severity === 'error').length} error(s) in the manifests; nothing was started`, { diagnostics });
    mkdirSync(opts.stateDir, { recursive: true });
    const previous = readUpState(opts.stateDir);
    if (previous && previous.pid !== process.pid && upIsRunning(previous.pid)) {
      throw new RuntimeError('STATE_FILE', `trellis up (pid ${previous.pid}) already runs with state directory ${opts.stateDir}; stop it with trellis down`);
    }
    const report = await cleanupLeftovers(join(opts.stateDir, PID_FILE));
    const cluster = buildCluster(resources);
    const plan = new AddressPlan({ file: join(opts.stateDir, 'addresses.json'), ...(opts.podRange ? { podRange: opts.podRange } : {}), ...(opts.serviceRange ? { serviceRange: opts.serviceRange } : {}) });
    const rt = new LocalRuntime(opts, resources, sources, cluster, plan);
    rt.warnings.push(...plan.warnings, ...diagnostics.filter((d) => d.severity === 'warning').map((d) => d.message));
    if (report.killed.length > 0) rt.warnings.push(`stopped ${report.killed.length} process group(s) a previous run left behind`);
    await rt.boot();
    return rt;
  }

  private async boot(): Promise<void> {
    const { pods, skipped } = expandLocalPods(this.resources, this.cluster, this.plan);
    this.warnings.push(...skipped);
    this.services = this.cluster.services;
    const serviceKeys = this.services.filter(hasServiceIp).map((s) => `${s.metadata.namespace ?? 'default'}/${s.metadata.name}`);
    for (const k of serviceKeys) this.plan.service(k);
    this.plan.retain(pods.map((p) => p.key), serviceKeys);
    this.plan.save();
    this.exposed = exposedEntries(this.resources);

    const problems: Diagnostic[] = [];
    const ups = pods.map((lp) => new UpPod(lp, this.podContext(), problems));
    if (hasErrors(problems)) throw new RuntimeError('CONTAINER_CONFIG', `${problems.filter((d) => d.severity === 'error').length} container configuration error(s); nothing was started`, { diagnostics: problems });
    this.pods.push(...ups);

    rmSync(this.manifestsDir, { recursive: true, force: true });
    mkdirSync(this.manifestsDir, { recursive: true });
    for (const f of manifestsWithoutPods(this.sources)) writeFileSync(join(this.manifestsDir, f.name), f.text);
    this.writePodsFile();
    this.cp = new ControlPlane({ paths: [this.manifestsDir], stateDir: join(this.opts.stateDir, 'cp'), xdsPort: 0, caPort: 0, adminPort: 0, debounceMs: 50, logger: this.opts.logger });
    try {
      await this.cp.start();
    } catch (e) {
      throw new RuntimeError('INVALID_ARGUMENT', `the control plane did not start: ${(e as Error).message}`, { cause: e });
    }
    try {
      this.rebuildDns();
      this.dns = await ClusterDnsServer.start({ host: this.opts.dnsHost ?? '127.0.0.1', port: this.opts.dnsPort ?? 0, resolver: (name, qtype, ip) => this.resolveDns(name, qtype, ip) });
      for (const p of this.pods) p.startProxy(this.cp, join(this.opts.stateDir, 'cp', 'root-cert.pem'), join(this.opts.stateDir, 'proxies'));
      for (const p of this.pods) p.startContainers();
    } catch (e) {
      await this.stop();
      throw e;
    }
    this.writeState();
  }

  private podContext(): ConstructorParameters<typeof UpPod>[1] {
    return {
      resources: this.resources,
      services: this.cluster.services,
      serviceAddress: (svc, lp) => (hasServiceIp(svc) ? lp.addresses.outboundIp : undefined),
      registry: this.registry,
      timeScale: this.opts.timeScale ?? 1,
      onLog: (l) => this.opts.onLog?.(l),
      onChange: (pod, readyChanged) => this.onPodChange(pod, readyChanged),
    };
  }

  private onPodChange(pod: UpPod, readyChanged: boolean): void {
    if (this.stopped) return;
    if (readyChanged) {
      this.opts.onEvent?.(`pod ${pod.lp.key} ${pod.ready ? 'ready' : 'not ready'}`);
      this.writePodsFile();
      this.rebuildDns();
    }
    this.scheduleState();
  }

  /** The generated pods file: the control plane reloads it and only ready pods are healthy endpoints. */
  private writePodsFile(): void {
    const ready = new Map(this.pods.map((p) => [p.lp.key, p.ready] as const));
    writeFileSync(join(this.manifestsDir, 'zzz-local-pods.yaml'), localPodsYaml(this.pods.length > 0 ? this.pods.map((p) => p.lp) : [], (k) => ready.get(k) ?? false));
  }

  private rebuildDns(): void {
    const byKey = new Map<string, LocalPod>(this.pods.map((p) => [p.lp.key, p.lp]));
    const ready = new Map(this.pods.map((p) => [p.lp.key, p.ready] as const));
    const pods = new Map([...this.cluster.pods].map(([k, p]) => [k, { ...p, ready: ready.get(k) ?? false, ips: byKey.has(k) ? [byKey.get(k)!.addresses.podIp] : p.ips }] as const));
    const cluster: Cluster = { ...this.cluster, pods, podsByIp: new Map([...pods.values()].flatMap((p) => p.ips.map((ip) => [ip, p] as const))) };
    this.dnsTable = new ClusterDnsTable({
      cluster,
      resources: this.resources,
      serviceAddress: (svc, client) => {
        const lp = client ? byKey.get(client.key) : undefined;
        return lp ? lp.addresses.outboundIp : this.plan.service(`${svc.metadata.namespace ?? 'default'}/${svc.metadata.name}`);
      },
      clientPod: (ip) => {
        const key = this.plan.podAt(ip);
        return key ? pods.get(key) : undefined;
      },
    });
  }

  private resolveDns(name: string, qtype: number, ip: string): ReturnType<ClusterDnsTable['resolve']> {
    const t = this.dnsTable;
    if (!t) return { rcode: 2, authoritative: false, answers: [], authority: [], additional: [] };
    return t.resolve(name, qtype, ip);
  }

  private scheduleState(): void {
    if (this.writeTimer || this.stopped) return;
    this.writeTimer = setTimeout(() => {
      this.writeTimer = undefined;
      if (!this.stopped) this.writeState();
    }, 100);
  }

  state(): UpState {
    const now = new Date().toISOString();
    return {
      version: 1,
      pid: process.pid,
      startedAt: this.startedAt.toISOString(),
      isolation: 'loopback',
      manifests: this.opts.paths,
      controlPlane: { xds: `127.0.0.1:${this.cp.xdsPort}`, ca: this.cp.caTarget ?? '', admin: this.cp.adminUrl ?? '' },
      dns: `${this.dns.host}:${this.dns.port}`,
      pods: this.pods.map((p) => p.status()),
      services: serviceStatuses(this.services, this.pods),
      exposed: this.exposed,
      updatedAt: now,
    };
  }

  private writeState(): void {
    try {
      writeUpState(this.opts.stateDir, this.state());
    } catch (e) {
      this.opts.onEvent?.(`cannot write the state file: ${(e as Error).message}`);
    }
  }

  /** Drains proxies, stops pods, then the control plane and DNS; removes the state file. Idempotent. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.writeTimer) clearTimeout(this.writeTimer);
    await Promise.all(this.pods.map((p) => p.stopProxy()));
    await Promise.all(this.pods.map((p) => p.stopContainers()));
    await this.cp?.stop();
    await this.dns?.close();
    rmSync(join(this.opts.stateDir, 'up.json'), { force: true });
  }
}

function serviceStatuses(services: readonly Service[], pods: readonly UpPod[]): UpState['services'] {
  return services.map((svc) => {
    const ns = svc.metadata.namespace ?? 'default';
    const sel = svc.spec.selector;
    const endpoints: UpState['services'][number]['endpoints'] = [];
    if (sel && Object.keys(sel).length > 0) {
      for (const p of pods) {
        const m = p.lp.model;
        if (m.namespace !== ns || !Object.entries(sel).every(([k, v]) => m.labels[k] === v)) continue;
        for (const sp of svc.spec.ports) {
          const port = typeof sp.targetPort === 'number' ? sp.targetPort : m.ports.find((c) => c.name === sp.targetPort)?.containerPort;
          if (port !== undefined && !endpoints.some((e) => e.address === `${p.lp.addresses.podIp}:${port}`)) endpoints.push({ pod: m.key, address: `${p.lp.addresses.podIp}:${port}`, ready: p.ready });
        }
      }
    }
    return { key: `${ns}/${svc.metadata.name}`, type: svc.spec.type, ports: svc.spec.ports.map((p) => `${p.port}/${p.protocol}`), endpoints };
  });
}

/** NodePort/LoadBalancer Services and Ingresses: listed honestly, as nothing exposes them in loopback mode yet. */
function exposedEntries(resources: readonly Resource[]): string[] {
  const out: string[] = [];
  for (const r of resources) {
    const name = `${r.metadata.namespace ?? 'default'}/${r.metadata.name}`;
    if (r.kind === 'Service' && (r.spec.type === 'NodePort' || r.spec.type === 'LoadBalancer')) {
      const ports = r.spec.ports.map((p) => `${p.nodePort ?? p.port}/${p.protocol}`).join(', ');
      out.push(`${r.spec.type} ${name} ${ports}: not exposed on the host yet (no NodePort gateway in this version)`);
    } else if (r.kind === 'Ingress') out.push(`Ingress ${name}: not served yet (no Trellis gateway proxy in this version)`);
  }
  return out;
}
