// The proxy's listeners: binds what each ProxyConfig asks for and nothing before the first one (fail closed),
// keeps a listener whose address stays (new connections get its new settings, open ones keep theirs), binds moved
// listeners before closing the old socket, drains removed ones, and enforces per-listener connection limits. Each
// accepted connection goes through ConnectionHandler (mTLS, policy, detection, HTTP engine or TCP proxy).
import net from 'node:net';
import type { Logger } from 'pino';
import { ConnectionHandler, type HandlerDeps, type ListenerCounters, type ListenerHooks } from './connection-handler.ts';
import type { ClusterManager, FlowReporter, HttpEngine, PolicyEnforcer } from './contracts.ts';
import type { MeshTls } from './mesh-tls.ts';
import { DEFAULT_DETECT_TIMEOUT_MS, DEFAULT_FIRST_BYTE_MS } from './protocol-detect.ts';
import type { ListenerConfig, ProxyConfig } from './proxy-config.ts';
import { ProxyError } from './proxy-error.ts';
import { resetSocket } from './tcp-proxy.ts';

export interface ListenerManagerOptions {
  tls: MeshTls;
  /** Per-listener certificate (node proxies serve several workload identities); default `tls`. */
  tlsFor?: (listener: ListenerConfig) => MeshTls | undefined;
  /** The current policy enforcer; undefined before the first policy snapshot (everything is then denied). */
  policy: () => PolicyEnforcer | undefined;
  clusters: ClusterManager;
  http: HttpEngine;
  flows: FlowReporter;
  hooks?: ListenerHooks;
  logger?: Logger;
  /** The node name flows carry. */
  nodeName?: string;
  /** Protocol detection bounds (defaults: 100 ms server-first fallback, 5 s overall; see protocol-detect.ts). */
  firstByteMs?: number;
  detectTimeoutMs?: number;
  /** How long connections of a removed or moved listener may keep going before they are closed (default 30 s). */
  removedDrainMs?: number;
}

export interface ListenerStatus {
  name: string;
  direction: ListenerConfig['direction'];
  protocol: ListenerConfig['protocol'];
  address: string;
  /** The bound port (differs from the configured one when that is 0). */
  port: number;
  active: number;
  counters: Readonly<ListenerCounters>;
}

interface Bound {
  key: string;
  config: ListenerConfig;
  server: net.Server;
  port: number;
  conns: Set<net.Socket>;
  counters: ListenerCounters;
}

/** Listeners at the same address are the same listener (the socket is kept); port 0 asks for a fresh one per name. */
function keyOf(l: ListenerConfig): string {
  return l.address.port === 0 ? `name:${l.name}` : `${l.address.host}|${l.address.port}`;
}

function newCounters(): ListenerCounters {
  return { accepted: 0, denied: 0, rejected: 0, tlsFailed: 0, http: 0, tcp: 0, bytesSent: 0, bytesReceived: 0 };
}

export class ListenerManager {
  readonly #o: ListenerManagerOptions;
  readonly #handler: ConnectionHandler;
  #bound = new Map<string, Bound>();
  /** Removed listeners whose connections are still draining. */
  readonly #retired = new Set<Bound>();
  readonly #timers = new Set<NodeJS.Timeout>();
  #config: ProxyConfig | undefined;
  #failed: ProxyError[] = [];
  #draining = false;
  #closed = false;
  #applying: Promise<unknown> = Promise.resolve();

  constructor(options: ListenerManagerOptions) {
    this.#o = options;
    const deps: HandlerDeps = {
      tls: options.tls,
      policy: options.policy,
      clusters: options.clusters,
      http: options.http,
      flows: options.flows,
      firstByteMs: options.firstByteMs ?? DEFAULT_FIRST_BYTE_MS,
      detectTimeoutMs: options.detectTimeoutMs ?? DEFAULT_DETECT_TIMEOUT_MS,
    };
    if (options.tlsFor !== undefined) deps.tlsFor = options.tlsFor;
    if (options.hooks !== undefined) deps.hooks = options.hooks;
    if (options.logger !== undefined) deps.logger = options.logger;
    if (options.nodeName !== undefined) deps.nodeName = options.nodeName;
    this.#handler = new ConnectionHandler(deps);
  }

  /** The config last applied (undefined before the first). */
  get config(): ProxyConfig | undefined {
    return this.#config;
  }

  /** A config has been applied, every listener in it is bound, and the proxy is not draining. */
  get ready(): boolean {
    return this.#config !== undefined && this.#failed.length === 0 && !this.#draining && !this.#closed;
  }

  get draining(): boolean {
    return this.#draining;
  }

  /**
   * Applies a config: binds new listeners, keeps listeners whose address stays (with the new settings for new
   * connections), binds a moved listener before closing the old one, and drains removed ones. Listeners that cannot
   * be bound are returned as ProxyError `bind-failed` and do not stop the others. Applies run one at a time.
   */
  apply(config: ProxyConfig): Promise<ProxyError[]> {
    const run = this.#applying.then(() => this.#apply(config));
    this.#applying = run.catch(() => undefined);
    return run;
  }

  async #apply(config: ProxyConfig): Promise<ProxyError[]> {
    if (this.#draining || this.#closed) return [new ProxyError('bad-config', 'the proxy is draining: configuration changes are not applied')];
    const errors: ProxyError[] = [];
    const next = new Map<string, Bound>();
    const binds: Promise<void>[] = [];
    for (const l of config.listeners) {
      const key = keyOf(l);
      if (next.has(key)) {
        errors.push(new ProxyError('bind-failed', `listener ${l.name}: ${l.address.host}:${l.address.port} is already used by listener ${next.get(key)!.config.name}`));
        continue;
      }
      const kept = this.#bound.get(key);
      if (kept !== undefined) {
        kept.config = l;
        next.set(key, kept);
        continue;
      }
      const b: Bound = { key, config: l, server: net.createServer({ allowHalfOpen: true, pauseOnConnect: false }), port: 0, conns: new Set(), counters: newCounters() };
      next.set(key, b);
      binds.push(
        this.#listen(b).catch((err: Error) => {
          next.delete(key);
          errors.push(new ProxyError('bind-failed', `listener ${l.name}: cannot bind ${l.address.host}:${l.address.port}: ${err.message}`));
        }),
      );
    }
    await Promise.all(binds);
    // Make before break: the new sockets are listening before the old ones stop.
    for (const [key, b] of this.#bound) if (next.get(key) !== b) this.#retire(b);
    this.#bound = next;
    this.#config = config;
    this.#failed = errors;
    for (const e of errors) this.#o.logger?.warn({ err: e }, e.message);
    return errors;
  }

  #listen(b: Bound): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const s = b.server;
      s.once('error', reject);
      s.listen({ host: b.config.address.host, port: b.config.address.port, backlog: 1024 }, () => {
        s.removeListener('error', reject);
        s.on('error', (err) => this.#o.logger?.error({ err, listener: b.config.name }, 'listener error'));
        b.port = (s.address() as net.AddressInfo).port;
        s.on('connection', (raw: net.Socket) => this.#accept(b, raw));
        resolve();
      });
    });
  }

  #accept(b: Bound, raw: net.Socket): void {
    const l = b.config;
    b.counters.accepted++;
    if (this.#draining || this.#closed) {
      b.counters.rejected++;
      this.#o.hooks?.connectionRejected?.(l, 'draining');
      return resetSocket(raw);
    }
    if (b.conns.size >= l.limits.maxConnections) {
      b.counters.rejected++;
      this.#o.hooks?.connectionRejected?.(l, 'max-connections');
      return resetSocket(raw);
    }
    b.conns.add(raw);
    raw.once('close', () => b.conns.delete(raw));
    this.#handler.handle(raw, l, b.counters);
  }

  /** Stops accepting on a removed listener; its connections get removedDrainMs to finish. */
  #retire(b: Bound): void {
    b.server.close();
    if (b.conns.size === 0) return;
    this.#retired.add(b);
    const t = setTimeout(() => {
      this.#timers.delete(t);
      this.#retired.delete(b);
      for (const c of b.conns) c.destroy();
    }, this.#o.removedDrainMs ?? 30_000);
    t.unref();
    this.#timers.add(t);
  }

  /**
   * Graceful shutdown: stop accepting, ask the HTTP engine to drain (GOAWAY / connection: close), let TCP
   * connections finish, and close whatever is left after `deadlineMs` (a duration, from now).
   */
  async drain(deadlineMs: number): Promise<void> {
    if (this.#draining) return;
    this.#draining = true;
    for (const b of this.#bound.values()) b.server.close();
    const end = Date.now() + deadlineMs;
    const httpDone = this.#o.http.drain(deadlineMs).catch((err: unknown) => this.#o.logger?.warn({ err }, 'HTTP drain failed'));
    while (Date.now() < end && this.#openConnections() > 0) await new Promise((r) => setTimeout(r, Math.min(50, Math.max(1, end - Date.now()))));
    await Promise.race([httpDone, new Promise((r) => setTimeout(r, Math.max(0, end - Date.now())))]);
    this.#destroyAll();
  }

  /** Closes every listener and connection at once. */
  async close(): Promise<void> {
    this.#closed = true;
    const closing = [...this.#bound.values()].map((b) => new Promise<void>((r) => b.server.close(() => r())));
    this.#destroyAll();
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
    await Promise.all(closing);
  }

  #openConnections(): number {
    let n = 0;
    for (const b of this.#bound.values()) n += b.conns.size;
    for (const b of this.#retired) n += b.conns.size;
    return n;
  }

  #destroyAll(): void {
    for (const b of [...this.#bound.values(), ...this.#retired]) for (const c of b.conns) c.destroy();
  }

  /** One line per bound listener, for /stats and tests. */
  status(): ListenerStatus[] {
    return [...this.#bound.values()].map((b) => ({
      name: b.config.name,
      direction: b.config.direction,
      protocol: b.config.protocol,
      address: b.config.address.host,
      port: b.port,
      active: b.conns.size,
      counters: { ...b.counters },
    }));
  }

  /** Listeners that could not be bound by the last apply. */
  get bindErrors(): readonly ProxyError[] {
    return this.#failed;
  }

  /** The bound port of a listener by name (useful when the config asked for port 0). */
  portOf(name: string): number | undefined {
    for (const b of this.#bound.values()) if (b.config.name === name) return b.port;
    return undefined;
  }
}
