// The control plane process: watches manifests, compiles them into one mesh configuration, serves it over
// ADS, runs the CA, and answers the admin API. A bad edit is refused and the last good configuration stays.
import { watch, type FSWatcher } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { CertificateAuthority, ServingCertificateProvider, TokenRegistry, type CaServer } from '../ca/index.ts';
import { admitByCertificate, CONTROL_PLANE_IDENTITY, staticCaProvider } from './xds-admission.ts';
import { formatDiagnostic, type Diagnostic } from '../resources/diagnostics.ts';
import { AdsServer } from '../xds/ads-server.ts';
import { MeshResources } from '../xds/mesh-resources.ts';
import { startAdminServer, type AdminServer } from './admin-server.ts';
import { listManifestFiles, readManifestFiles } from './manifest-files.ts';
import { compileMeshConfig, type MeshConfig } from './mesh-config.ts';
import { ControlPlaneMetrics } from './xds-metrics.ts';
import { startRelay, type ObserverRelay } from '../observe/relay.ts';
import type { ObserverServer } from '../observe/observer-server.ts';
import type { XdsNode } from '../xds/xds-node.ts';

export interface ControlPlaneOptions {
  paths: string[];
  stateDir: string;
  host?: string;
  xdsPort?: number;
  adminPort?: number;
  caPort?: number;
  trustDomain?: string;
  /**
   * Require mTLS with Trellis workload certificates on the xDS port; a node is then served only the
   * configuration of its own namespace and pod. Without it, xDS is plaintext and binds only to loopback.
   */
  xdsTls?: boolean;
  /** Quiet period before a burst of file changes is applied, in ms. */
  debounceMs?: number;
  /** Lifetime of the workload certificates the CA issues (default: the CA's, 24 h). */
  workloadTtlMs?: number;
  /**
   * Run the flow relay (Observer API over every proxy) on this port of `host` (Hubble's 4245; 0 picks one). Off when
   * absent. Proxies announce their Observer address in their xDS node metadata (OBSERVER_ADDRESS); a proxy becomes a
   * relay peer while its xDS stream is up.
   */
  relayPort?: number;
  logger: Logger;
}

export class ControlPlaneError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = 'ControlPlaneError';
    this.code = code;
  }
}

/** The outcome of the last reload, for /readyz, /debug/syncz and logs. */
export interface ReloadStatus {
  at: Date;
  applied: boolean;
  errors: Diagnostic[];
}

export class ControlPlane {
  readonly metrics = new ControlPlaneMetrics();
  readonly mesh = new MeshResources();
  readonly ads: AdsServer;
  readonly tokens = new TokenRegistry();
  config: MeshConfig | undefined;
  lastReload: ReloadStatus | undefined;
  ca: CertificateAuthority | undefined;
  xdsPort = 0;
  private grpcServer: grpc.Server | undefined;
  private admin: AdminServer | undefined;
  private caServer: CaServer | undefined;
  private servingCert: ServingCertificateProvider | undefined;
  private watchers: FSWatcher[] = [];
  private timer: NodeJS.Timeout | undefined;
  private readonly log: Logger;
  private relayServer: (ObserverServer & { relay: ObserverRelay }) | undefined;
  /** Why the relay asked for did not start. */
  relayError: string | undefined;
  /** xDS streams per relay peer (a reconnect's new stream may come up before the old one is seen to end). */
  private readonly relayStreams = new Map<string, number>();

  constructor(readonly opts: ControlPlaneOptions) {
    this.log = opts.logger;
    this.ads = new AdsServer({
      provider: this.mesh,
      ...(opts.xdsTls ? { admitNode: admitByCertificate(() => this.config, opts.trustDomain ?? 'cluster.local') } : {}),
      onEvent: (e) => {
        this.metrics.onXdsEvent(e);
        if (e.kind === 'nack') this.log.warn({ node: e.node.id, type: e.type, version: e.version, error: e.message }, 'xDS NACK: the client keeps its last good configuration');
        else if (e.kind === 'connect' || e.kind === 'disconnect') {
          this.log.info({ node: e.node.id, namespace: e.node.namespace, stream: e.stream }, `xDS client ${e.kind}ed`);
          this.trackObserver(e.node, e.kind === 'connect' ? 1 : -1);
        }
      },
    });
  }

  /** Loads the first configuration (which must be good), then starts every server and the file watch. */
  async start(): Promise<void> {
    if (!this.reload()) throw new ControlPlaneError('invalid-config', 'the initial configuration has errors; nothing was started');
    try {
      await this.startServers();
    } catch (e) {
      // Whatever did start is stopped again, so a failed start leaves no port bound.
      await this.stop();
      throw e;
    }
  }

  private async startServers(): Promise<void> {
    const host = this.opts.host ?? '127.0.0.1';
    this.ca = await CertificateAuthority.loadOrCreate({
      stateDir: this.opts.stateDir,
      trustDomain: this.opts.trustDomain ?? 'cluster.local',
      ...(this.opts.workloadTtlMs !== undefined ? { workloadTtlMs: this.opts.workloadTtlMs } : {}),
    });
    this.grpcServer = new grpc.Server({ 'grpc.max_receive_message_length': 4 * 1024 * 1024 });
    this.ads.register(this.grpcServer);
    const credentials = await this.xdsCredentials();
    this.xdsPort = await new Promise<number>((resolve, reject) =>
      this.grpcServer?.bindAsync(`${host}:${this.opts.xdsPort ?? 15010}`, credentials, (err, port) => (err ? reject(err) : resolve(port))),
    );
    this.caServer = await this.ca.startCaServer({ host, port: this.opts.caPort ?? 15012, authenticator: this.tokens });
    this.admin = await startAdminServer(this, host, this.opts.adminPort ?? 15014);
    if (this.opts.relayPort !== undefined) {
      // The relay only reads flows: a port already taken (another control plane) leaves xDS and the CA serving.
      try {
        this.relayServer = await startRelay({ host, port: this.opts.relayPort });
      } catch (e) {
        this.relayError = (e as Error).message;
        this.log.error({ error: this.relayError }, 'flow relay not started; everything else serves');
      }
    }
    this.watch();
    this.log.info({ xds: `${host}:${this.xdsPort}`, ca: this.caServer.target, admin: this.admin.url }, 'control plane ready');
  }

  /** Plaintext, or mTLS with a rotating control-plane certificate and client certificates checked against the root. */
  private async xdsCredentials(): Promise<grpc.ServerCredentials> {
    const ca = this.ca;
    if (!this.opts.xdsTls || !ca) return grpc.ServerCredentials.createInsecure();
    this.servingCert = await ServingCertificateProvider.start(
      (csr, id) => ca.issue(csr, id),
      (e) => this.log.error({ error: (e as Error).message }, 'control-plane certificate renewal failed'),
      CONTROL_PLANE_IDENTITY,
    );
    // grpc-js passes the first provider on as the identity provider and the second as the client CA.
    return grpc.experimental.createCertificateProviderServerCredentials(this.servingCert, staticCaProvider(ca.trustBundle()), true);
  }

  /** The relay's `host:port` when it runs. */
  get relayAddress(): string | undefined {
    return this.relayServer?.address;
  }

  get relay(): ObserverRelay | undefined {
    return this.relayServer?.relay;
  }

  /** Adds a proxy that announces a loopback Observer address as a relay peer while it has an xDS stream. */
  private trackObserver(node: XdsNode, delta: 1 | -1): void {
    const address = node.proxy?.observerAddress;
    const relay = this.relayServer?.relay;
    if (!address || !relay) return;
    if (!/^127\.\d{1,3}\.\d{1,3}\.\d{1,3}:\d{1,5}$/.test(address)) {
      this.log.warn({ node: node.id, address }, 'observer address ignored: the relay connects to loopback only');
      return;
    }
    const name = node.pod ?? node.id;
    const n = (this.relayStreams.get(name) ?? 0) + delta;
    if (n > 0) {
      this.relayStreams.set(name, n);
      relay.addPeer(name, address);
    } else {
      this.relayStreams.delete(name);
      relay.removePeer(name);
    }
  }

  get adminUrl(): string | undefined {
    return this.admin?.url;
  }

  get caTarget(): string | undefined {
    return this.caServer?.target;
  }

  /** Reads and compiles the manifests. Applies only a fully valid configuration; returns whether it applied. */
  reload(): boolean {
    const { files, missing } = listManifestFiles(this.opts.paths);
    let result;
    if (missing.length > 0) {
      const errors: Diagnostic[] = missing.map((m) => ({ severity: 'error', code: 'not-found', message: `${m}: no such file or directory` }));
      result = { ok: false as const, diagnostics: errors };
    } else {
      const compileOpts = this.opts.trustDomain ? { trustDomain: this.opts.trustDomain } : {};
      result = compileMeshConfig(readManifestFiles(files), compileOpts);
    }
    if (!result.ok) {
      const errors = result.diagnostics.filter((d) => d.severity === 'error');
      this.lastReload = { at: new Date(), applied: false, errors };
      this.metrics.reloads.inc({ result: 'refused' });
      this.metrics.configErrors.set(errors.length);
      for (const d of errors) this.log.error(formatDiagnostic(d));
      this.log.error({ errors: errors.length }, this.config ? 'configuration refused; the last good configuration stays in force' : 'configuration refused');
      return false;
    }
    for (const d of result.config.warnings) this.log.warn(formatDiagnostic(d));
    this.config = result.config;
    const serviceAccounts = new Map([...result.config.cluster.pods.values()].map((p) => [p.key, p.serviceAccount] as const));
    this.mesh.update(result.config.routing, { authz: result.config.authz, serviceAccounts }, { cluster: result.config.cluster, resources: result.config.resources });
    this.ads.push();
    this.lastReload = { at: new Date(), applied: true, errors: [] };
    this.metrics.reloads.inc({ result: 'applied' });
    this.metrics.configErrors.set(0);
    this.log.info({ files: files.length, objects: result.config.resources.length, listeners: result.config.routing.listeners.length, clusters: result.config.routing.clusters.length }, 'configuration applied');
    return true;
  }

  private watch(): void {
    const schedule = (): void => {
      if (this.timer) clearTimeout(this.timer);
      this.timer = setTimeout(() => {
        this.timer = undefined;
        try {
          this.reload();
        } catch (e) {
          // An unreadable file or an internal failure refuses this reload; the last good configuration stays.
          this.metrics.reloads.inc({ result: 'refused' });
          this.log.error({ error: (e as Error).message }, 'reload failed; the last good configuration stays in force');
        }
      }, this.opts.debounceMs ?? 100);
    };
    for (const p of this.opts.paths) {
      try {
        const w = watch(p, { recursive: true }, schedule);
        // A watched directory that disappears must not take the control plane down; the next reload reports it.
        w.on('error', (e) => {
          this.log.warn({ path: p, error: e.message }, 'watch failed; reloading to report the state of the files');
          schedule();
        });
        this.watchers.push(w);
      } catch (e) {
        this.log.warn({ path: p, error: (e as Error).message }, 'cannot watch path; changes there need a restart');
      }
    }
  }

  async stop(): Promise<void> {
    for (const w of this.watchers) w.close();
    this.watchers = [];
    if (this.timer) clearTimeout(this.timer);
    await this.admin?.close();
    await this.relayServer?.close();
    await this.caServer?.close();
    this.servingCert?.close();
    // ADS streams never end by themselves: give calls a moment to finish, then cut the rest (clients reconnect).
    const server = this.grpcServer;
    if (server) {
      await Promise.race([new Promise<void>((resolve) => server.tryShutdown(() => resolve())), new Promise((r) => setTimeout(r, 500).unref())]);
      server.forceShutdown();
    }
  }
}
