// Upstream connections, pooled per host and source address: an HTTP/1.1 keep-alive agent (at most max_connections
// sockets; further requests wait in the agent's queue, bounded by the pending-request breaker), and HTTP/2 sessions that
// respect the peer's SETTINGS_MAX_CONCURRENT_STREAMS, open another session when full, leave on GOAWAY, and queue
// requests (bounded by the pending-request breaker) while connecting. A connection carries at most the cluster's
// max_requests_per_connection requests (HTTP/1.1) or streams (HTTP/2), then closes. Connections count against the
// cluster's connection breaker; TLS options (mesh mTLS) come from the ClusterManager for every new connection.
import http, { type ClientRequestArgs } from 'node:http';
import http2, { type ClientHttp2Session } from 'node:http2';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import type { ClusterManager, UpstreamCluster, UpstreamHost } from '../contracts.ts';
import { DEFAULT_CIRCUIT_BREAKERS } from '../upstream/circuit-breaker.ts';

export type FailureKind = 'connect-failure' | 'refused-stream' | 'reset' | 'overflow' | 'timeout';

/** Why an upstream attempt failed, with Envoy's reset-reason words for the local reply. */
export interface Failure {
  kind: FailureKind;
  message: string;
}

const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
const IDLE_TIMEOUT_MS = 60_000;
const H2_WINDOW = 1 << 20;
const H2_STREAM_WINDOW = 256 * 1024;
/** Streams assumed per session before the peer's SETTINGS arrive. */
const ASSUMED_STREAMS = 100;

/** Sockets that completed their (TLS) handshake: a failure before that is a connect failure, after it a reset. */
export const established = new WeakSet<object>();

export class OverflowError extends Error {
  readonly code = 'UO';
}

export interface H2Conn {
  readonly session: ClientHttp2Session;
  readonly pool: HostPool;
  active: number;
  max: number;
  ready: boolean;
  connected: boolean;
  draining: boolean;
  /** Streams opened on this session so far (for max_requests_per_connection). */
  served: number;
  lastError: string | undefined;
}

/** A request waiting for an HTTP/2 stream slot. `done` is called once, unless `cancelled` was set first. */
export interface H2Waiter {
  cancelled: boolean;
  done(conn: H2Conn | undefined, failure: Failure | undefined): void;
}

interface HostPool {
  cluster: UpstreamCluster;
  readonly host: UpstreamHost;
  readonly localAddress: string | undefined;
  agent: http.Agent | undefined;
  readonly h2: H2Conn[];
  readonly queue: H2Waiter[];
}

/** The cluster's TLS options for a new connection; a throw (no certificate yet) fails that connection, not the proxy. */
function tlsFor(pool: UpstreamPool, hp: HostPool, alpn: string): { opts: tls.ConnectionOptions | undefined } | Error {
  try {
    return { opts: pool.clusters.tlsOptions(hp.cluster, hp.host, [alpn], hp.localAddress) };
  } catch (e) {
    return e instanceof Error ? e : new Error(String(e));
  }
}

function connectSocket(hp: HostPool, tlsOpts: tls.ConnectionOptions | undefined, alpn: string): Duplex {
  const { host, cluster, localAddress } = hp;
  // tls.connect hands localAddress to its net.connect (the type omits it).
  const tlsConnect: tls.ConnectionOptions & { localAddress?: string } = tlsOpts ? { ...tlsOpts, host: host.address, port: host.port, localAddress, ALPNProtocols: [alpn] } : {};
  const sock = tlsOpts
    ? tls.connect(tlsConnect)
    : net.connect({ host: host.address, port: host.port, localAddress, noDelay: true });
  if (tlsOpts) sock.setNoDelay(true);
  const timer = setTimeout(() => sock.destroy(Object.assign(new Error('connect timeout'), { code: 'ETIMEDOUT' })), cluster.spec.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS);
  sock.once(tlsOpts ? 'secureConnect' : 'connect', () => {
    clearTimeout(timer);
    established.add(sock);
  });
  sock.once('close', () => clearTimeout(timer));
  return sock;
}

/** Sockets per HTTP/1.1 agent: the cluster's connection limit (Envoy's default 1024), so that further requests queue. */
function socketLimit(cluster: UpstreamCluster): number {
  return cluster.spec.circuitBreakers?.maxConnections ?? DEFAULT_CIRCUIT_BREAKERS.maxConnections;
}

/** Requests each HTTP/1.1 socket has been given, for max_requests_per_connection. */
const socketRequests = new WeakMap<object, number>();

type AddRequest = (req: http.ClientRequest, options: ClientRequestArgs) => void;
const baseAddRequest = (http.Agent.prototype as unknown as { addRequest: AddRequest }).addRequest;

class PoolAgent extends http.Agent {
  constructor(
    private readonly pool: UpstreamPool,
    private readonly hp: HostPool,
  ) {
    super({ keepAlive: true, maxSockets: socketLimit(hp.cluster), maxFreeSockets: 256, scheduling: 'lifo', timeout: IDLE_TIMEOUT_MS });
  }

  /**
   * Node's Agent hook for every request. A request the agent queues (every socket busy, no room for another) is a
   * pending request: over the pending-request limit it fails at once with an overflow. Each socket counts the
   * requests it carries; the last one allowed closes it after its response instead of returning it to the pool.
   */
  addRequest(req: http.ClientRequest, options: ClientRequestArgs): void {
    baseAddRequest.call(this, req, options);
    const cluster = this.hp.cluster;
    const queue = this.requests[this.getName(options)];
    if (queue !== undefined && queue[queue.length - 1] === req) {
      if (!cluster.tryBeginPending()) {
        queue.pop();
        (req as unknown as { onSocket(s: undefined, e: Error): void }).onSocket(undefined, new OverflowError('pending request limit reached'));
        return;
      }
      let pending = true;
      const end = (): void => {
        if (!pending) return;
        pending = false;
        cluster.endPending();
      };
      req.once('socket', end);
      req.once('close', end);
    }
    const max = cluster.spec.maxRequestsPerConnection;
    if (max !== undefined) {
      req.once('socket', (s: net.Socket) => {
        const n = (socketRequests.get(s) ?? 0) + 1;
        socketRequests.set(s, n);
        if (n >= max) req.shouldKeepAlive = false;
      });
    }
  }

  override createConnection(_options: ClientRequestArgs, cb?: (err: Error | null, stream: Duplex) => void): Duplex | null | undefined {
    const { cluster, host } = this.hp;
    if (!cluster.tryBeginConnection(host)) {
      cb?.(new OverflowError('upstream connection limit reached'), undefined as unknown as Duplex);
      return undefined;
    }
    const t = tlsFor(this.pool, this.hp, 'http/1.1');
    if (t instanceof Error) {
      cluster.endConnection(host);
      cb?.(t, undefined as unknown as Duplex);
      return undefined;
    }
    const sock = connectSocket(this.hp, t.opts, 'http/1.1');
    sock.once('close', () => cluster.endConnection(host));
    return sock;
  }
}

export class UpstreamPool {
  private readonly pools = new WeakMap<UpstreamHost, Map<string, HostPool>>();
  private readonly agents = new Set<http.Agent>();
  private readonly sessions = new Set<ClientHttp2Session>();
  private closed = false;

  constructor(readonly clusters: ClusterManager) {}

  private hostPool(cluster: UpstreamCluster, host: UpstreamHost, localAddress: string | undefined): HostPool {
    let byLocal = this.pools.get(host);
    if (!byLocal) {
      byLocal = new Map();
      this.pools.set(host, byLocal);
    }
    const key = localAddress ?? '';
    let hp = byLocal.get(key);
    if (!hp) {
      hp = { cluster, host, localAddress, agent: undefined, h2: [], queue: [] };
      byLocal.set(key, hp);
    } else if (hp.cluster !== cluster) {
      hp.cluster = cluster; // a config update: new connections follow the new cluster's settings
      if (hp.agent) hp.agent.maxSockets = socketLimit(cluster);
    }
    return hp;
  }

  /** The keep-alive agent for HTTP/1.1 requests to `host`, binding `localAddress` when given. */
  agentFor(cluster: UpstreamCluster, host: UpstreamHost, localAddress: string | undefined): http.Agent {
    const hp = this.hostPool(cluster, host, localAddress);
    if (!hp.agent) {
      hp.agent = new PoolAgent(this, hp);
      this.agents.add(hp.agent);
    }
    return hp.agent;
  }

  /** Finds or opens an HTTP/2 session with a free stream slot; the waiter may be served now or later. */
  acquireH2(cluster: UpstreamCluster, host: UpstreamHost, localAddress: string | undefined, w: H2Waiter): void {
    const hp = this.hostPool(cluster, host, localAddress);
    if (this.closed) return w.done(undefined, { kind: 'overflow', message: 'proxy closing' });
    const conn = freeConn(hp);
    if (conn) {
      take(conn);
      return w.done(conn, undefined);
    }
    if (!cluster.tryBeginPending()) return w.done(undefined, { kind: 'overflow', message: 'pending request limit reached' });
    hp.queue.push(w);
    this.serveQueue(hp);
  }

  /** A stream on `conn` ended: its slot goes to a waiting request. */
  releaseH2(conn: H2Conn): void {
    conn.active--;
    if (conn.draining && conn.active === 0) conn.session.close();
    if (conn.pool.queue.length > 0) this.serveQueue(conn.pool);
  }

  private serveQueue(hp: HostPool): void {
    const q = hp.queue;
    while (q.length > 0) {
      const w = q[0]!;
      if (w.cancelled) {
        q.shift();
        hp.cluster.endPending();
        continue;
      }
      const conn = freeConn(hp);
      if (!conn) break;
      q.shift();
      hp.cluster.endPending();
      take(conn);
      w.done(conn, undefined);
    }
    if (q.length === 0) return;
    // Room promised by sessions still connecting; open another when the queue outgrows it.
    let promised = 0;
    const max = hp.cluster.spec.maxRequestsPerConnection ?? ASSUMED_STREAMS;
    for (const c of hp.h2) if (!c.ready && !c.draining) promised += Math.min(ASSUMED_STREAMS, max - c.served);
    if (q.length > promised) {
      if (hp.cluster.tryBeginConnection(hp.host)) this.connectH2(hp);
      else if (promised === 0 && hp.h2.length === 0) this.failQueue(hp, { kind: 'overflow', message: 'upstream connection limit reached' });
    }
  }

  private failQueue(hp: HostPool, failure: Failure): void {
    const waiting = hp.queue.splice(0);
    for (const w of waiting) {
      hp.cluster.endPending();
      if (!w.cancelled) w.done(undefined, failure);
    }
  }

  private connectH2(hp: HostPool): void {
    const { host } = hp;
    const t = tlsFor(this, hp, 'h2');
    if (t instanceof Error) {
      hp.cluster.endConnection(host);
      if (!hp.h2.some((c) => !c.draining)) this.failQueue(hp, { kind: 'connect-failure', message: `connection failure, ${t.message}` });
      return;
    }
    const h = host.address.includes(':') ? `[${host.address}]` : host.address;
    const session = http2.connect(`http://${h}:${host.port}`, {
      createConnection: () => connectSocket(hp, t.opts, 'h2'),
      settings: { enablePush: false, initialWindowSize: H2_STREAM_WINDOW },
    });
    const conn: H2Conn = { session, pool: hp, active: 0, max: ASSUMED_STREAMS, ready: false, connected: false, draining: false, served: 0, lastError: undefined };
    hp.h2.push(conn);
    this.sessions.add(session);
    session.on('connect', () => {
      conn.connected = true;
      try {
        session.setLocalWindowSize(H2_WINDOW);
      } catch {
        // the session closed meanwhile
      }
    });
    session.on('remoteSettings', (s: http2.Settings) => {
      conn.max = Math.min(s.maxConcurrentStreams ?? ASSUMED_STREAMS, 10_000);
      conn.ready = true;
      this.serveQueue(hp);
    });
    session.on('goaway', () => {
      conn.draining = true;
      if (hp.queue.length > 0) this.serveQueue(hp);
    });
    session.on('error', (e: Error) => {
      conn.lastError = e.message;
    });
    session.setTimeout(IDLE_TIMEOUT_MS, () => {
      if (conn.active === 0) session.close();
    });
    session.once('close', () => {
      this.sessions.delete(session);
      const i = hp.h2.indexOf(conn);
      if (i >= 0) hp.h2.splice(i, 1);
      hp.cluster.endConnection(host);
      if (hp.queue.length === 0) return;
      // A session that closed before the peer's SETTINGS served nothing: its waiters fail (a reset after the
      // handshake, e.g. a policy denial at the peer, is not retried here in a loop of new connections).
      if (!conn.ready && !hp.h2.some((c) => c.connected && !c.draining)) {
        const why = conn.lastError ? `, ${conn.lastError}` : '';
        this.failQueue(hp, conn.connected ? { kind: 'reset', message: `connection termination${why}` } : { kind: 'connect-failure', message: `connection failure${why}` });
      } else this.serveQueue(hp);
    });
  }

  /** Closes every upstream connection (engine shutdown). */
  close(): void {
    this.closed = true;
    for (const a of this.agents) a.destroy();
    this.agents.clear();
    for (const s of this.sessions) s.destroy();
    this.sessions.clear();
  }
}

/** A stream slot on `conn` is taken; the session's last allowed stream (max_requests_per_connection) drains it. */
function take(conn: H2Conn): void {
  conn.active++;
  conn.served++;
  const max = conn.pool.cluster.spec.maxRequestsPerConnection;
  if (max !== undefined && conn.served >= max) conn.draining = true;
}

function freeConn(hp: HostPool): H2Conn | undefined {
  let best: H2Conn | undefined;
  for (const c of hp.h2) {
    if (!c.ready || c.draining || c.session.closed || c.session.destroyed || c.active >= c.max) continue;
    if (!best || c.active < best.active) best = c;
  }
  return best;
}
