// `trellis up` in loopback isolation: loads the manifests, cleans what a crashed run left, expands workloads into
// local pods with plan addresses, then starts the control plane and CA (in process), the cluster DNS server, one
// `trellis proxy` per pod and every container's command; keeps readiness flowing into endpoints and DNS; applies
// manifest edits live (a bad edit is refused, located, and changes nothing); stops everything in order (proxies
// drain, then pods, then the control plane).
import { mkdirSync, readdirSync, rmSync, watch, writeFileSync, type FSWatcher } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { ControlPlane } from '../control-plane/control-plane.ts';
import { buildCluster, type Cluster } from '../model/cluster.ts';
import { hasErrors, type Diagnostic } from '../resources/diagnostics.ts';
import type { Resource } from '../resources/kinds.ts';
import type { SourceText } from '../resources/source.ts';
import { AddressPlan } from './address-plan.ts';
import { ClusterDnsServer } from './cluster-dns.ts';
import type { ClusterDnsTable } from './cluster-dns-table.ts';
import { expandLocalPods, localPodsYaml, manifestsWithoutPods, type LocalPod } from './local-pods.ts';
import { cleanupLeftovers, PidRegistry } from './pid-registry.ts';
import { RuntimeError } from './runtime-error.ts';
import { hasServiceIp } from './service-env.ts';
import { exposedEntries, loadUpManifests, localDnsTable, podSignature, serviceStatuses } from './up-model.ts';
import { PID_FILE, readUpState, upIsRunning, writeUpState, type UpState } from './up-state.ts';
import { UpPod, type UpLog, type UpPodContext } from './up-pod.ts';

export interface UpOptions {
  paths: string[];
  stateDir: string;
  /** Control-plane log. */
  logger: Logger;
  /** 0 (default) picks a free port. */
  dnsPort?: number;
  /** Run the flow relay (Observer API) on this loopback port (0 picks one), with every sidecar as a peer. Off when absent. */
  relayPort?: number;
  dnsHost?: string;
  /** Loopback ranges for pod blocks and Service VIPs (defaults in address-plan.ts). */
  podRange?: string;
  serviceRange?: string;
  /** Scales probe periods and restart backoff (tests); 1 is real time. */
  timeScale?: number;
  /** Quiet period after a manifest change before it is applied, ms (default 200). */
  editDebounceMs?: number;
  onLog?: (line: UpLog) => void;
  /** Human-readable events: a pod became ready, an edit applied or refused. */
  onEvent?: (text: string) => void;
  /** The located errors of a refused edit. */
  onDiagnostics?: (diagnostics: Diagnostic[]) => void;
}

const PODS_FILE = 'zzz-local-pods.yaml';

/**
 * Writes in place with one call. Not a rename: Node 20's recursive watch on Linux follows files by inode, so the
 * control plane would not see a file replaced by rename. A reload that reads a half-written file is refused and
 * the write's own later event reloads again.
 */
function writeManifestFile(dir: string, name: string, text: string): void {
  writeFileSync(join(dir, name), text);
}

function keyOf(r: { metadata: { name: string; namespace?: string } }): string {
  return `${r.metadata.namespace ?? 'default'}/${r.metadata.name}`;
}

export class LocalRuntime {
  pods: UpPod[] = [];
  readonly warnings: string[] = [];
  cp!: ControlPlane;
  dns!: ClusterDnsServer;
  private dnsTable: ClusterDnsTable | undefined;
  private readonly registry: PidRegistry;
  private readonly manifestsDir: string;
  private readonly startedAt = new Date();
  private writeTimer: NodeJS.Timeout | undefined;
  private editTimer: NodeJS.Timeout | undefined;
  private edits: Promise<void> = Promise.resolve();
  private watchers: FSWatcher[] = [];
  private stopped = false;
  private exposed: string[] = [];

  private constructor(
    readonly opts: UpOptions,
    private resources: Resource[],
    private sources: SourceText[],
    private cluster: Cluster,
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
    const { resources, sources, diagnostics } = loadUpManifests(opts.paths);
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
    const problems: Diagnostic[] = [];
    const ctx = this.podContext(this.resources, this.cluster);
    const ups = pods.map((lp) => new UpPod(lp, ctx, problems));
    if (hasErrors(problems)) throw new RuntimeError('CONTAINER_CONFIG', `${problems.filter((d) => d.severity === 'error').length} container configuration error(s); nothing was started`, { diagnostics: problems });
    this.pods = ups;
    this.savePlan();
    this.exposed = exposedEntries(this.resources);

    rmSync(this.manifestsDir, { recursive: true, force: true });
    mkdirSync(this.manifestsDir, { recursive: true });
    this.writeManifests();
    this.cp = new ControlPlane({
      paths: [this.manifestsDir],
      stateDir: join(this.opts.stateDir, 'cp'),
      xdsPort: 0,
      caPort: 0,
      adminPort: 0,
      debounceMs: 50,
      logger: this.opts.logger,
      ...(this.opts.relayPort !== undefined ? { relayPort: this.opts.relayPort } : {}),
    });
    try {
      await this.cp.start();
    } catch (e) {
      throw new RuntimeError('INVALID_ARGUMENT', `the control plane did not start: ${(e as Error).message}`, { cause: e });
    }
    try {
      this.rebuildDns();
      this.dns = await ClusterDnsServer.start({ host: this.opts.dnsHost ?? '127.0.0.1', port: this.opts.dnsPort ?? 0, resolver: (name, qtype, ip) => this.resolveDns(name, qtype, ip) });
      for (const p of this.pods) this.startPod(p);
      this.watchManifests();
    } catch (e) {
      await this.stop();
      throw e;
    }
    this.writeState();
  }

  private startPod(p: UpPod): void {
    p.startProxy(this.cp, join(this.opts.stateDir, 'cp', 'root-cert.pem'), join(this.opts.stateDir, 'proxies'));
    p.startContainers();
  }

  private async stopPod(p: UpPod): Promise<void> {
    await p.stopProxy();
    await p.stopContainers();
  }

  private podContext(resources: readonly Resource[], cluster: Cluster): UpPodContext {
    return {
      resources,
      services: cluster.services,
      serviceAddress: (svc, lp) => (hasServiceIp(svc) ? lp.addresses.outboundIp : undefined),
      registry: this.registry,
      timeScale: this.opts.timeScale ?? 1,
      observer: this.opts.relayPort !== undefined,
      onLog: (l) => this.opts.onLog?.(l),
      onChange: (pod, readyChanged) => this.onPodChange(pod, readyChanged),
    };
  }

  /** Service VIPs for every Service with an address; forgets pods and Services that are gone. */
  private savePlan(): void {
    const serviceKeys = this.cluster.services.filter(hasServiceIp).map(keyOf);
    for (const k of serviceKeys) this.plan.service(k);
    this.plan.retain(this.pods.map((p) => p.lp.key), serviceKeys);
    this.plan.save();
  }

  private watchManifests(): void {
    for (const p of this.opts.paths) {
      try {
        const w = watch(p, { recursive: true }, () => this.scheduleEdit());
        w.on('error', () => this.scheduleEdit());
        this.watchers.push(w);
      } catch (e) {
        this.warnings.push(`cannot watch ${p} (${(e as Error).message}): edits there need a restart`);
      }
    }
  }

  private scheduleEdit(): void {
    if (this.stopped) return;
    if (this.editTimer) clearTimeout(this.editTimer);
    this.editTimer = setTimeout(() => {
      this.editTimer = undefined;
      this.edits = this.edits.then(() => this.applyEdit()).catch((e: unknown) => this.opts.onEvent?.(`edit failed: ${(e as Error).message}`));
    }, this.opts.editDebounceMs ?? 200);
  }

  /**
   * Applies the manifests as they are now: a bad edit is refused (located errors) and nothing changes; otherwise the
   * control plane gets the new objects, new and changed pods start, and removed ones stop (a replaced Deployment
   * replica starts before the old one stops; a pod that keeps its name stops first, as its addresses are reused).
   */
  async applyEdit(): Promise<void> {
    if (this.stopped) return;
    const next = loadUpManifests(this.opts.paths);
    if (hasErrors(next.diagnostics)) {
      this.opts.onDiagnostics?.(next.diagnostics.filter((d) => d.severity === 'error'));
      this.opts.onEvent?.(`edit refused: ${next.diagnostics.filter((d) => d.severity === 'error').length} error(s); the running system is unchanged`);
      return;
    }
    if (JSON.stringify(next.sources) === JSON.stringify(this.sources)) return;
    const cluster = buildCluster(next.resources);
    const { pods } = expandLocalPods(next.resources, cluster, this.plan);
    const old = new Map(this.pods.map((p) => [p.lp.key, p] as const));
    const kept: UpPod[] = [];
    const fresh: LocalPod[] = [];
    for (const lp of pods) {
      const o = old.get(lp.key);
      if (o && podSignature(o.lp) === podSignature(lp)) {
        kept.push(o);
        old.delete(lp.key);
      } else fresh.push(lp);
    }
    const problems: Diagnostic[] = [];
    const ctx = this.podContext(next.resources, cluster);
    const added = fresh.map((lp) => new UpPod(lp, ctx, problems));
    if (hasErrors(problems)) {
      this.plan.retain(this.pods.map((p) => p.lp.key), this.cluster.services.filter(hasServiceIp).map(keyOf));
      this.opts.onDiagnostics?.(problems.filter((d) => d.severity === 'error'));
      this.opts.onEvent?.('edit refused: container configuration errors; the running system is unchanged');
      return;
    }
    const replacedInPlace = [...old.values()].filter((p) => fresh.some((lp) => lp.key === p.lp.key));
    const removed = [...old.values()].filter((p) => !replacedInPlace.includes(p));
    this.resources = next.resources;
    this.sources = next.sources;
    this.cluster = cluster;
    this.exposed = exposedEntries(next.resources);
    this.pods = [...kept, ...added].sort((a, b) => (a.lp.key < b.lp.key ? -1 : 1));
    this.savePlan();
    this.writeManifests();
    this.rebuildDns();
    this.opts.onEvent?.(`edit applied: ${added.length} pod(s) started, ${removed.length + replacedInPlace.length} stopped`);
    await Promise.all(replacedInPlace.map((p) => this.stopPod(p)));
    for (const p of added) this.startPod(p);
    await Promise.all(removed.map((p) => this.stopPod(p)));
    this.writeState();
  }

  /** The user's objects without Pods and workloads, and the generated pods file; stale files are removed. */
  private writeManifests(): void {
    const files = manifestsWithoutPods(this.sources);
    const names = new Set([...files.map((f) => f.name), PODS_FILE]);
    for (const f of readdirSync(this.manifestsDir)) if (!names.has(f)) rmSync(join(this.manifestsDir, f), { force: true });
    for (const f of files) writeManifestFile(this.manifestsDir, f.name, f.text);
    this.writePodsFile();
  }

  private onPodChange(pod: UpPod, readyChanged: boolean): void {
    if (this.stopped || !this.pods.includes(pod)) return;
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
    writeManifestFile(this.manifestsDir, PODS_FILE, localPodsYaml(this.pods.map((p) => p.lp), (k) => ready.get(k) ?? false));
  }

  private rebuildDns(): void {
    this.dnsTable = localDnsTable(this.cluster, this.resources, this.pods, this.plan);
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
      controlPlane: { xds: `127.0.0.1:${this.cp.xdsPort}`, ca: this.cp.caTarget ?? '', admin: this.cp.adminUrl ?? '', ...(this.cp.relayAddress ? { relay: this.cp.relayAddress } : {}) },
      dns: `${this.dns.host}:${this.dns.port}`,
      pods: this.pods.map((p) => p.status()),
      services: serviceStatuses(this.cluster.services, this.pods),
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
    if (this.editTimer) clearTimeout(this.editTimer);
    for (const w of this.watchers) w.close();
    await this.edits;
    await Promise.all(this.pods.map((p) => p.stopProxy()));
    await Promise.all(this.pods.map((p) => p.stopContainers()));
    await this.cp?.stop();
    await this.dns?.close();
    rmSync(join(this.opts.stateDir, 'up.json'), { force: true });
  }
}

