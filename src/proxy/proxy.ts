// The Trellis proxy: one process that learns everything from the control plane over xDS and carries a pod's (or a
// node's) traffic. It wires the parts together: workload certificates, the config source, the policy runtime, the
// cluster manager, the HTTP engine, the listener manager, flows, metrics, the audit log and the admin server.
// Before the first configuration nothing listens; while the control plane is away the last good one stays.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { CertificateRotator, WorkloadCertificateClient } from '../ca/index.ts';
import { AuditLog } from '../observe/audit-log.ts';
import { FlowRing } from '../observe/flow-ring.ts';
import { startObserver, type ObserverServer } from '../observe/observer-server.ts';
import type { ConnectionInfo, PolicyEnforcer, RequestFacts } from './contracts.ts';
import { TrellisHttpEngine } from './http/http-engine.ts';
import { ListenerManager } from './listener-manager.ts';
import { MeshTls } from './mesh-tls.ts';
import { PolicyRuntime, UnconfiguredPolicy } from './policy-runtime.ts';
import type { ProxyConfig } from './proxy-config.ts';
import { ProxyError } from './proxy-error.ts';
import { ProxyMetrics } from './proxy-metrics.ts';
import { xdsNodeFor, type ProxyIdentity } from './proxy-node.ts';
import { startProxyAdmin, type ProxyAdmin } from './proxy-admin.ts';
import { ProxyTelemetry } from './proxy-telemetry.ts';
import { UpstreamClusterManager } from './upstream/cluster-manager.ts';
import { XdsConfigSource } from './xds-config-source.ts';

/** Fetches a workload certificate with a bootstrap token into `dir`, and keeps renewing it at half-life. */
async function startRotator(c: { ca: string; caBundleFile: string; trustDomain: string }, dir: string, token: string, log: Logger): Promise<CertificateRotator> {
  const client = new WorkloadCertificateClient({ target: c.ca, caTrustBundle: await readFile(c.caBundleFile, 'utf8'), token, trustDomain: c.trustDomain });
  const rotator = new CertificateRotator({ source: client, dir, onError: (e) => log.error({ error: (e as Error).message }, 'certificate renewal failed; the current certificate stays') });
  try {
    await rotator.start();
  } catch (e) {
    throw new ProxyError('no-certificate', `cannot get a workload certificate from the CA at ${c.ca}: ${(e as Error).message}`);
  }
  return rotator;
}

function meshTlsLogging(log: Logger): { onUpdate: (u: { spiffeId: string; serial: string; notAfter: Date }) => void; onError: (e: unknown) => void } {
  return {
    onUpdate: (u) => log.info({ spiffeId: u.spiffeId, serial: u.serial, notAfter: u.notAfter.toISOString() }, 'workload certificate loaded'),
    onError: (e) => log.error({ error: (e as Error).message }, 'new certificate refused; the previous one stays in force'),
  };
}

export type CertificateSourceOptions =
  /** Files kept fresh by someone else (a CertificateRotator directory: cert-chain.pem, key.pem, root-cert.pem). */
  | { dir: string }
  /** Ask the Trellis CA with a bootstrap token; the certificate is kept in `dir` and renewed at half-life. */
  | { dir: string; ca: string; caBundleFile: string; token: string; trustDomain: string };

export interface ProxyOptions {
  xds: string;
  identity: ProxyIdentity;
  xdsProtocol?: 'delta' | 'sotw';
  certificates: CertificateSourceOptions;
  /**
   * Node mode: a bootstrap token per service account of the pods this proxy serves. Each gets its own certificate,
   * and each connection presents the one of the pod it belongs to (as Istio's ztunnel does), so identities stay
   * per workload. Needs the CA form of `certificates`.
   */
  workloadTokens?: { namespace: string; serviceAccount: string; token: string }[];
  /** Audit log of denied and AUDIT calls (JSON lines); none when absent. */
  auditLog?: string;
  ringCapacity?: number;
  /** Serve the Observer API (Hubble's GetFlows, …) over the flow ring on this loopback address; port 0 picks one. */
  observer?: { host: string; port: number };
  logger: Logger;
  xdsBackoff?: { baseMs?: number; maxMs?: number };
}

/** Forwards to the policy runtime of the current snapshot; before the first one, everything is denied. */
class CurrentPolicy implements PolicyEnforcer {
  runtime: PolicyRuntime | undefined;
  private readonly none = new UnconfiguredPolicy();
  private get p(): PolicyEnforcer {
    return this.runtime ?? this.none;
  }
  endpointForIp(ip: string): ReturnType<PolicyEnforcer['endpointForIp']> {
    return this.p.endpointForIp(ip);
  }
  endpointForPod(pod: string): ReturnType<PolicyEnforcer['endpointForPod']> {
    return this.p.endpointForPod(pod);
  }
  decideConnection(q: Parameters<PolicyEnforcer['decideConnection']>[0]): ReturnType<PolicyEnforcer['decideConnection']> {
    return this.p.decideConnection(q);
  }
  decideRequest(conn: ConnectionInfo, req: RequestFacts, target?: Parameters<PolicyEnforcer['decideRequest']>[2]): ReturnType<PolicyEnforcer['decideRequest']> {
    return this.p.decideRequest(conn, req, target);
  }
  decideTcp(conn: ConnectionInfo): ReturnType<NonNullable<PolicyEnforcer['decideTcp']>> {
    return this.p.decideTcp ? this.p.decideTcp(conn) : this.p.decideConnection({ source: conn.source, destination: conn.destination, port: conn.local.port, protocol: 'TCP', direction: 'ingress', transport: conn.transport, ...(conn.peerSpiffeId ? { peerSpiffeId: conn.peerSpiffeId } : {}) });
  }
}

export class Proxy {
  readonly ring: FlowRing;
  readonly metrics = new ProxyMetrics();
  readonly policy = new CurrentPolicy();
  readonly clusters: UpstreamClusterManager;
  readonly http: TrellisHttpEngine;
  readonly listeners: ListenerManager;
  readonly source: XdsConfigSource;
  readonly telemetry: ProxyTelemetry;
  private readonly log: Logger;
  private rotators: CertificateRotator[] = [];
  /** Node mode: the certificate of each served service account, `namespace/serviceAccount`. */
  private readonly workloadTls = new Map<string, MeshTls>();
  /** The Observer API server, when ProxyOptions.observer asked for one. */
  observer: ObserverServer | undefined;
  private stopped = false;

  private constructor(
    readonly opts: ProxyOptions,
    readonly tls: MeshTls,
    readonly audit: AuditLog | undefined,
    ring?: FlowRing,
  ) {
    this.log = opts.logger;
    this.ring = ring ?? new FlowRing(opts.ringCapacity);
    this.telemetry = new ProxyTelemetry(this.ring, this.metrics, audit, () => this.policy.runtime?.trustDomain ?? tls.trustDomain);
    this.clusters = new UpstreamClusterManager((alpn, sans, local) => this.tlsOfAddress(local).clientOptions(alpn, sans));
    const nodeName = opts.identity.nodeName ?? '';
    this.http = new TrellisHttpEngine({ clusters: this.clusters, policy: this.policy, flows: this.telemetry, nodeName });
    this.listeners = new ListenerManager({
      tls,
      tlsFor: (l) => (l.pod !== undefined ? this.tlsOfPod(l.pod) : undefined),
      policy: () => this.policy,
      clusters: this.clusters,
      http: this.http,
      flows: this.telemetry,
      hooks: this.telemetry,
      logger: this.log,
      nodeName,
    });
    this.source = new XdsConfigSource({
      target: opts.xds,
      node: xdsNodeFor(opts.identity),
      protocol: opts.xdsProtocol ?? 'delta',
      logger: this.log,
      ...(opts.xdsBackoff ? { backoff: opts.xdsBackoff } : {}),
      apply: (config) => this.apply(config),
    });
  }

  /** Gets the certificate, connects to the control plane, and binds listeners once the first config arrives. */
  static async start(opts: ProxyOptions): Promise<Proxy> {
    const c = opts.certificates;
    const rotators: CertificateRotator[] = [];
    const extra = new Map<string, MeshTls>();
    let tls: MeshTls | undefined;
    try {
      if ('token' in c) rotators.push(await startRotator(c, c.dir, c.token, opts.logger));
      tls = await MeshTls.fromDirectory(c.dir, meshTlsLogging(opts.logger));
      for (const w of opts.workloadTokens ?? []) {
        if (!('token' in c)) throw new ProxyError('no-certificate', 'per-workload tokens need the CA (--token, --ca)');
        const dir = `${c.dir}-${w.namespace}-${w.serviceAccount}`;
        rotators.push(await startRotator(c, dir, w.token, opts.logger));
        extra.set(`${w.namespace}/${w.serviceAccount}`, await MeshTls.fromDirectory(dir, meshTlsLogging(opts.logger)));
      }
    } catch (e) {
      for (const r of rotators) r.stop();
      for (const t of extra.values()) t.close();
      tls?.close();
      throw e;
    }
    const audit = opts.auditLog ? await AuditLog.open({ path: opts.auditLog }) : undefined;
    let ring: FlowRing | undefined;
    let observer: ObserverServer | undefined;
    if (opts.observer) {
      ring = new FlowRing(opts.ringCapacity);
      const id = opts.identity;
      observer = await startObserver({ ring, nodeName: id.nodeName ?? (id.podName ? `${id.namespace}/${id.podName}` : id.ip), host: opts.observer.host, port: opts.observer.port });
      opts = { ...opts, identity: { ...opts.identity, observerAddress: observer.address } };
    }
    const p = new Proxy(opts, tls, audit, ring);
    p.observer = observer;
    p.rotators = rotators;
    for (const [k, v] of extra) p.workloadTls.set(k, v);
    p.source.start();
    return p;
  }

  /** The certificate a pod's connections present: its service account's in a node proxy, else the proxy's own. */
  private tlsOfPod(pod: string): MeshTls {
    if (this.workloadTls.size === 0) return this.tls;
    const p = this.policy.runtime?.cluster.pods.get(pod);
    return (p && this.workloadTls.get(`${p.namespace}/${p.serviceAccount}`)) ?? this.tls;
  }

  /** The certificate for a connection from a local source address (a pod IP in a node proxy). */
  private tlsOfAddress(local: string | undefined): MeshTls {
    if (this.workloadTls.size === 0 || local === undefined) return this.tls;
    const p = this.policy.runtime?.cluster.podsByIp.get(local);
    return (p && this.workloadTls.get(`${p.namespace}/${p.serviceAccount}`)) ?? this.tls;
  }

  /** True once a config with listeners is applied and every listener is bound (the admin `/ready`). */
  get ready(): boolean {
    return this.listeners.ready && this.source.complete && this.policy.runtime !== undefined;
  }

  get config(): ProxyConfig | undefined {
    return this.source.config;
  }

  /**
   * Applies a translated config. Everything that can fail is built before anything live changes: the policy
   * runtime, then the HTTP engine's route tables and filters (extension modules load here). Then clusters, policy
   * and listeners switch over in one go.
   */
  private async apply(config: ProxyConfig): Promise<string[]> {
    if (this.stopped) return ['the proxy is stopping'];
    let runtime = this.policy.runtime;
    try {
      if (config.policy) runtime = PolicyRuntime.forSnapshot(this.policy.runtime, config.policy);
      await this.http.applyConfig(config);
    } catch (e) {
      return [`${(e as Error).message}`];
    }
    this.clusters.update(config);
    this.policy.runtime = runtime;
    const failed = await this.listeners.apply(config);
    for (const f of failed) this.log.error({ code: f.code }, f.message);
    this.log.info({ listeners: config.listeners.length, clusters: config.clusters.size, policy: config.policy?.version ?? 'none', failed: failed.length }, 'configuration applied');
    return [];
  }

  /** The admin server (/ready, /stats, /config_dump, /flows, POST /drain) on a loopback address. */
  startAdmin(host: string, port: number, drainMs: number): Promise<ProxyAdmin> {
    const l = this.listeners;
    const ready = (): boolean => this.ready;
    return startProxyAdmin({
      host,
      port,
      listeners: {
        get ready() {
          return ready();
        },
        get draining() {
          return l.draining;
        },
        get config() {
          return l.config;
        },
        get bindErrors() {
          return l.bindErrors;
        },
        status: () => l.status(),
      },
      drain: () => this.drain(drainMs),
      clusterStats: () => this.clusters.stats(),
      metrics: { text: () => this.metrics.metrics(), contentType: this.metrics.contentType },
      xdsStatus: () => ({ connected: this.source.client.connected, types: this.source.client.status() }),
      extra: () => ({ identity: this.opts.identity, certificate: { spiffeId: this.tls.spiffeId, serial: this.tls.serial }, policyVersion: this.policy.runtime?.version }),
      flows: (n) => this.ring.last(n).flows,
    });
  }

  /** Graceful drain: listeners stop accepting, HTTP/2 peers get GOAWAY, requests in flight finish until the deadline. */
  async drain(deadlineMs = 5000): Promise<void> {
    await this.listeners.drain(deadlineMs);
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.source.close();
    for (const r of this.rotators) r.stop();
    for (const t of this.workloadTls.values()) t.close();
    await this.listeners.close();
    this.http.close();
    this.clusters.close();
    this.tls.close();
    await this.observer?.close();
    await this.audit?.close();
  }

  /** Where the proxy keeps state under a directory: certificates and the audit log. */
  static paths(stateDir: string): { certs: string; audit: string } {
    return { certs: join(stateDir, 'certs'), audit: join(stateDir, 'audit.jsonl') };
  }
}
