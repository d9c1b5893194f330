// The HTTP engine: takes over connections the listener manager detected as HTTP/1.1 (a node:http Server fed with
// emit('connection')) or HTTP/2 (a server session per socket, h2c or inside TLS), enforces the listener's limits,
// runs one Exchange per request, and reports a flow (and the metrics hook) for each. Config arrives through
// applyConfig; drain() sends GOAWAY / `connection: close` and waits for requests in flight.
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import http2, { constants as h2c, type IncomingHttpHeaders, type ServerHttp2Session, type ServerHttp2Stream } from 'node:http2';
import type { Duplex } from 'node:stream';
import { TLSSocket } from 'node:tls';
import type { ClusterManager, ConnectionInfo, FlowReporter, HttpEngine, PolicyEnforcer } from '../contracts.ts';
import type { ListenerLimits, ProxyConfig } from '../proxy-config.ts';
import { H1Downstream, H2Downstream } from './downstream.ts';
import type { ConnState, EngineContext, ListenerState, RequestRecord } from './engine-context.ts';
import { buildListenerStates, closeFilters } from './filter-chain.ts';
import { requestFlow, type FlowSite } from './flow-record.ts';
import { Exchange } from './forwarder.ts';
import { isGrpcContentType } from './grpc.ts';
import { requestHeadersFrom } from './headers.ts';
import { sendLocalReply } from './local-reply.ts';
import { ResetGuard } from './rapid-reset.ts';
import { handleUpgrade } from './upgrade.ts';
import { UpstreamPool } from './upstream-pool.ts';

/** Called once per finished request (the metrics module plugs in here). Must not throw or block. */
export type RequestMetricsHook = (rec: RequestRecord, durationMs: number) => void;

export interface HttpEngineOptions {
  clusters: ClusterManager;
  policy: PolicyEnforcer;
  flows: FlowReporter;
  /** Hubble's node_name in flows (also tells this node's endpoints from remote ones). */
  nodeName?: string;
  /** Hubble's cluster_name of endpoints in flows. */
  clusterName?: string;
  onRequestComplete?: RequestMetricsHook;
}

interface H2ConnState extends ConnState {
  readonly guard: ResetGuard;
  readonly session: ServerHttp2Session;
}

const H2_STREAM_WINDOW = 256 * 1024;
const H2_SESSION_WINDOW = 1 << 20;
const END_STREAM = 0x1;
const noop = (): void => {};

export class TrellisHttpEngine implements HttpEngine, EngineContext {
  readonly clusters: ClusterManager;
  readonly policy: PolicyEnforcer;
  readonly pool: UpstreamPool;
  draining = false;
  private states = new Map<string, ListenerState>();
  private readonly h1ByLimits = new WeakMap<ListenerLimits, http.Server>();
  private readonly h1Servers = new Map<string, http.Server>();
  private readonly h2ByLimits = new WeakMap<ListenerLimits, http2.ServerOptions>();
  private readonly h1Conns = new WeakMap<object, ConnState>();
  private readonly h1Sockets = new Set<Duplex>();
  private readonly h2Sessions = new Set<ServerHttp2Session>();
  private drainWaiters: (() => void)[] = [];

  private readonly site: FlowSite;

  constructor(private readonly opts: HttpEngineOptions) {
    this.site = { nodeName: opts.nodeName ?? '', clusterName: opts.clusterName };
    this.clusters = opts.clusters;
    this.policy = opts.policy;
    this.pool = new UpstreamPool(opts.clusters);
  }

  /** Applies a config: compiles routes and builds every HTTP listener's filters; on error nothing changes. */
  async applyConfig(config: ProxyConfig): Promise<void> {
    const next = await buildListenerStates(config, this.opts.policy);
    const old = this.states;
    this.states = next;
    for (const s of old.values()) closeFilters(s.filters);
  }

  listenerState(name: string): ListenerState | undefined {
    return this.states.get(name);
  }

  handleConnection(socket: Duplex, info: ConnectionInfo, protocol: 'http1' | 'http2'): void {
    const tls = socket instanceof TLSSocket;
    if (protocol === 'http2') return this.handleH2(socket, info, tls);
    const server = this.h1Server(info.listener.limits);
    this.h1Conns.set(socket, { info, tls });
    this.h1Sockets.add(socket);
    socket.once('close', () => this.h1Sockets.delete(socket) && this.checkDrained());
    server.emit('connection', socket);
  }

  private h1Server(limits: ListenerLimits): http.Server {
    let s = this.h1ByLimits.get(limits);
    if (s) return s;
    const key = `${limits.maxHeaderBytes}|${limits.maxHeaders}|${limits.headerTimeoutMs}|${limits.idleTimeoutMs}`;
    s = this.h1Servers.get(key);
    if (!s) {
      s = http.createServer({
        maxHeaderSize: limits.maxHeaderBytes,
        headersTimeout: limits.headerTimeoutMs,
        requestTimeout: 0,
        keepAliveTimeout: limits.idleTimeoutMs,
        connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(limits.headerTimeoutMs / 4))),
        noDelay: true,
      });
      s.maxHeadersCount = limits.maxHeaders + 1;
      s.timeout = 0;
      s.on('request', this.onH1Request);
      s.on('checkContinue', this.onH1Request);
      s.on('upgrade', this.onH1Upgrade);
      s.on('clientError', onClientError);
      // Node checks header and request timeouts (slowloris) only for servers that listen; ours never binds a
      // port, so start its connection tracking the way 'listening' does.
      s.emit('listening');
      this.h1Servers.set(key, s);
    }
    this.h1ByLimits.set(limits, s);
    return s;
  }

  private readonly onH1Request = (req: IncomingMessage, res: ServerResponse): void => {
    const conn = this.h1Conns.get(req.socket);
    if (!conn) return void res.destroy();
    const ds = new H1Downstream(req, res);
    const limits = conn.info.listener.limits;
    const grpc = isGrpcContentType(req.headers['content-type']);
    if (req.rawHeaders.length > limits.maxHeaders * 2) {
      return sendLocalReply(ds, { status: 431, body: 'too many request headers', reason: 'DPE' }, grpc, true);
    }
    let path = req.url ?? '/';
    let authority = req.headers.host ?? '';
    if (path.charCodeAt(0) !== 47 /* / */ && path !== '*') {
      // Absolute form (`GET http://host/path`), as proxies receive it.
      try {
        const u = new URL(path);
        authority = u.host;
        path = u.pathname + u.search;
      } catch {
        return sendLocalReply(ds, { status: 400, body: 'bad request target', reason: 'DPE' }, grpc, true);
      }
    }
    const te = req.headers['transfer-encoding'];
    const cl = req.headers['content-length'];
    const hasBody = te !== undefined || (cl !== undefined && cl !== '0');
    if (req.headers.expect !== undefined && hasBody) ds.expectContinue = true;
    const ex = new Exchange(this, conn, ds, req.method ?? 'GET', path, authority, requestHeadersFrom(req.headers), hasBody, grpc);
    ex.run();
  };

  private readonly onH1Upgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    const conn = this.h1Conns.get(req.socket);
    if (!conn) return void socket.destroy();
    handleUpgrade(this, conn, req, socket, head);
  };

  private h2Options(limits: ListenerLimits): http2.ServerOptions {
    let o = this.h2ByLimits.get(limits);
    if (!o) {
      o = {
        settings: { maxConcurrentStreams: limits.maxConcurrentStreams, maxHeaderListSize: limits.maxHeaderBytes, initialWindowSize: H2_STREAM_WINDOW },
        // A hard bound well above the configured count, which is checked per stream with a 431.
        maxHeaderListPairs: limits.maxHeaders * 2 + 8,
        maxSessionMemory: 32,
      };
      this.h2ByLimits.set(limits, o);
    }
    return o;
  }

  private handleH2(socket: Duplex, info: ConnectionInfo, tls: boolean): void {
    const limits = info.listener.limits;
    const session = http2.performServerHandshake(socket, this.h2Options(limits));
    const conn: H2ConnState = { info, tls, guard: new ResetGuard(), session };
    this.h2Sessions.add(session);
    session.on('error', noop);
    session.on('stream', (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, flags: number, raw: string[]) => this.onH2Stream(conn, stream, headers, flags, raw));
    // Slowloris on HTTP/2: a session must open its first stream within the header timeout.
    const headerTimer = setTimeout(() => {
      if (session.closed || session.destroyed) return;
      session.destroy();
    }, limits.headerTimeoutMs);
    session.once('stream', () => clearTimeout(headerTimer));
    session.setTimeout(limits.idleTimeoutMs, () => session.close());
    session.once('connect', () => {
      try {
        session.setLocalWindowSize(H2_SESSION_WINDOW);
      } catch {
        // closed meanwhile
      }
    });
    session.once('close', () => {
      clearTimeout(headerTimer);
      this.h2Sessions.delete(session);
      this.checkDrained();
    });
    if (this.draining) session.close();
  }

  private onH2Stream(conn: H2ConnState, stream: ServerHttp2Stream, headers: IncomingHttpHeaders, flags: number, raw: string[]): void {
    stream.on('error', noop);
    if (stream.destroyed || stream.closed) {
      // Reset before we could even look at it.
      if (conn.guard.peerReset()) this.calm(conn.session);
      return;
    }
    const ds = new H2Downstream(stream);
    const grpc = isGrpcContentType(headers['content-type']);
    const method = headers[':method'];
    const path = headers[':path'];
    if (!method || !path || method === 'CONNECT') {
      return sendLocalReply(ds, { status: method === 'CONNECT' ? 501 : 400, body: 'unsupported request', reason: 'DPE' }, grpc, false);
    }
    let pseudo = 0;
    for (let i = 0; i < raw.length; i += 2) if (raw[i]!.charCodeAt(0) === 58) pseudo++;
    if (raw.length / 2 - pseudo > conn.info.listener.limits.maxHeaders) {
      return sendLocalReply(ds, { status: 431, body: 'too many request headers', reason: 'DPE' }, grpc, false);
    }
    const authority = headers[':authority'] ?? headers.host ?? '';
    const ex = new Exchange(this, conn, ds, method, path, authority, requestHeadersFrom(headers), (flags & END_STREAM) === 0, grpc);
    ex.run();
  }

  private calm(session: ServerHttp2Session): void {
    // With an error and a code, GOAWAY carries the code (destroy(undefined, code) would default both and send 0).
    if (!session.destroyed) session.destroy(new Error('HTTP/2 rapid reset: too many streams reset by the client'), h2c.NGHTTP2_ENHANCE_YOUR_CALM);
  }

  complete(rec: RequestRecord): void {
    const now = process.hrtime.bigint();
    const h2 = rec.conn as Partial<H2ConnState>;
    if (h2.guard) {
      if (rec.peerReset) {
        if (h2.guard.peerReset()) this.calm(h2.session!);
      } else h2.guard.completedStream();
    }
    try {
      this.opts.flows.report(requestFlow(rec, this.site, now), rec.route);
    } catch {
      // a flow sink must not break the data path
    }
    const hook = this.opts.onRequestComplete;
    if (hook) {
      try {
        hook(rec, Number(now - rec.startNs) / 1e6);
      } catch {
        // nor may metrics
      }
    }
  }

  /** Stops taking requests: GOAWAY on HTTP/2, `connection: close` on HTTP/1.1; resolves when all is done or at the deadline. */
  async drain(deadlineMs: number): Promise<void> {
    this.draining = true;
    for (const s of this.h2Sessions) s.close();
    for (const s of this.h1Servers.values()) s.closeIdleConnections();
    const wait = deadlineMs > 1e12 ? deadlineMs - Date.now() : deadlineMs;
    if (this.h1Sockets.size > 0 || this.h2Sessions.size > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.max(0, wait));
        this.drainWaiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    for (const s of this.h2Sessions) s.destroy();
    for (const s of this.h1Sockets) s.destroy();
  }

  private checkDrained(): void {
    if (!this.draining || this.h1Sockets.size > 0 || this.h2Sessions.size > 0) return;
    const w = this.drainWaiters;
    this.drainWaiters = [];
    for (const f of w) f();
  }

  /** Closes everything: downstream connections, upstream pools, filters. */
  close(): void {
    this.draining = true;
    for (const s of this.h2Sessions) s.destroy();
    for (const s of this.h1Sockets) s.destroy();
    for (const s of this.h1Servers.values()) s.close();
    this.h1Servers.clear();
    this.pool.close();
    for (const st of this.states.values()) closeFilters(st.filters);
    this.states = new Map();
  }
}

function onClientError(err: NodeJS.ErrnoException, socket: Duplex): void {
  if (socket.writable && !(socket as { _httpMessage?: unknown })._httpMessage) {
    const status = err.code === 'HPE_HEADER_OVERFLOW' ? '431 Request Header Fields Too Large' : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? '408 Request Timeout' : '400 Bad Request';
    socket.end(`HTTP/1.1 ${status}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`, () => socket.destroy());
    return;
  }
  socket.destroy();
}
