// The TCP proxy: one downstream connection to one upstream host of a cluster, bytes both ways. Connects with a
// timeout, retrying other hosts on connect failure (up to 3 attempts), originates mesh mTLS when the cluster asks
// for it, respects half-close (a FIN goes one way while the other direction keeps flowing) and backpressure (never
// more than a socket's own buffers in memory), ends idle connections, and resets the other side on errors.
import net from 'node:net';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import type { ClusterManager, PolicyVerdict, UpstreamCluster, UpstreamHost } from './contracts.ts';
import { TCP_ALPN } from './mesh-tls.ts';

export const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
export const MAX_CONNECT_ATTEMPTS = 3;

export interface TcpProxyOptions {
  downstream: Duplex;
  /** Aborts the downstream connection with a TCP RST. */
  resetDownstream: () => void;
  cluster: UpstreamCluster;
  clusters: ClusterManager;
  /** Local address upstream connections bind to (the listener's sourceAddress). */
  sourceAddress?: string;
  /** Ends the connection after this long with no byte either way (the listener's limits.idleTimeoutMs). */
  idleTimeoutMs: number;
  /** Egress policy for a picked host, before connecting to it; a denial resets the downstream (no other host is tried). */
  admit?: (host: UpstreamHost) => PolicyVerdict;
  /** Once an upstream connection is up (for flows and metrics). */
  onConnected?: (host: UpstreamHost) => void;
  maxAttempts?: number;
}

export type TcpProxyOutcome =
  /** Both sides finished (FIN both ways) or one side closed cleanly. */
  | 'closed'
  /** The cluster had no available host. */
  | 'no-host'
  /** Every host tried refused by circuit breakers (connection or request limits). */
  | 'overflow'
  | 'connect-failed'
  | 'denied'
  | 'idle-timeout'
  /** A side failed (reset, TLS error) after connecting; the other side was reset. */
  | 'reset'
  /** The downstream went away before an upstream connection was up. */
  | 'aborted';

export interface TcpProxyResult {
  outcome: TcpProxyOutcome;
  host?: UpstreamHost;
  /** The egress verdict, when `admit` ran for the host finally used or denied. */
  verdict?: PolicyVerdict;
  /** Upstream to downstream (Istio's istio_tcp_sent_bytes_total: bytes sent in response). */
  bytesSent: number;
  /** Downstream to upstream (istio_tcp_received_bytes_total: bytes received in the request). */
  bytesReceived: number;
  attempts: number;
  error?: string;
}

interface Upstream {
  stream: Duplex;
  raw: net.Socket;
}

/** Proxies until both sides are closed; resolves with what happened (never rejects). */
export async function proxyTcp(o: TcpProxyOptions): Promise<TcpProxyResult> {
  const result: TcpProxyResult = { outcome: 'closed', bytesSent: 0, bytesReceived: 0, attempts: 0 };
  const down = o.downstream;
  const gone = new AbortController();
  const onDownEarlyClose = (): void => gone.abort();
  if (down.destroyed) gone.abort();
  else down.once('close', onDownEarlyClose);
  down.on('error', noop);

  const exclude = new Set<UpstreamHost>();
  let up: Upstream | undefined;
  let overflowOnly = true;
  const max = o.maxAttempts ?? MAX_CONNECT_ATTEMPTS;
  while (up === undefined && result.attempts < max && !gone.signal.aborted) {
    const h = o.cluster.pick({ exclude });
    if (h === undefined) {
      result.outcome = exclude.size === 0 ? 'no-host' : overflowOnly ? 'overflow' : 'connect-failed';
      break;
    }
    exclude.add(h);
    result.host = h;
    if (o.admit !== undefined) {
      const v = o.admit(h);
      result.verdict = v;
      if (!v.allowed) {
        result.outcome = 'denied';
        break;
      }
    }
    if (!o.cluster.tryBeginConnection(h)) continue;
    if (!o.cluster.tryBeginRequest(h)) {
      o.cluster.endConnection(h);
      continue;
    }
    overflowOnly = false;
    result.attempts++;
    try {
      up = await connectUpstream(o, h, gone.signal);
      o.cluster.endRequest(h, 'success');
    } catch (err) {
      o.cluster.endRequest(h, 'connect-failure');
      o.cluster.endConnection(h);
      result.error = (err as Error).message;
      result.outcome = 'connect-failed';
    }
  }
  down.removeListener('close', onDownEarlyClose);
  const host = result.host;
  if (gone.signal.aborted) {
    result.outcome = 'aborted';
    if (up !== undefined && host !== undefined) {
      up.raw.destroy();
      o.cluster.endConnection(host);
    }
    return result;
  }
  if (up === undefined || host === undefined) {
    if (result.outcome === 'closed') result.outcome = overflowOnly ? 'overflow' : 'connect-failed';
    o.resetDownstream();
    return result;
  }
  result.outcome = 'closed';
  o.onConnected?.(host);
  return relay(o, up, host, result);
}

function relay(o: TcpProxyOptions, up: Upstream, host: UpstreamHost, result: TcpProxyResult): Promise<TcpProxyResult> {
  const down = o.downstream;
  return new Promise<TcpProxyResult>((resolve) => {
    let closed = 0;
    const onClose = (): void => {
      if (++closed < 2) return;
      o.cluster.endConnection(host);
      resolve(result);
    };
    const failed = (side: 'down' | 'up', e: Error): void => {
      result.error ??= e.message;
      if (result.outcome === 'closed') result.outcome = 'reset';
      if (side === 'down') resetSocket(up.raw);
      else if (!down.destroyed) o.resetDownstream();
    };
    up.stream.on('error', (e: Error) => failed('up', e));
    down.on('error', (e: Error) => failed('down', e));
    // One side gone for good: the other has nothing left to talk to.
    down.once('close', () => {
      if (!up.stream.destroyed) up.stream.destroy();
      onClose();
    });
    up.stream.once('close', () => {
      if (!down.destroyed) down.destroy();
      onClose();
    });
    const idle = (): void => {
      if (result.outcome === 'closed') result.outcome = 'idle-timeout';
      up.stream.destroy();
      down.destroy();
    };
    if (typeof (down as net.Socket).setTimeout === 'function') (down as net.Socket).setTimeout(o.idleTimeoutMs, idle);
    up.raw.setTimeout(o.idleTimeoutMs, idle);
    pump(down, up.stream, (n) => (result.bytesReceived += n));
    pump(up.stream, down, (n) => (result.bytesSent += n));
  });
}

function noop(): void {}

/** Aborts a TCP socket with a RST (SO_LINGER 0); a socket already closed is left alone. */
export function resetSocket(raw: net.Socket): void {
  raw.on('error', noop);
  if (raw.destroyed) return;
  try {
    raw.resetAndDestroy();
  } catch {
    raw.destroy();
  }
}

/** Copies src to dst with backpressure; src's end becomes dst's end (half-close), the other direction untouched. */
function pump(src: Duplex, dst: Duplex, count: (n: number) => void): void {
  src.on('data', (chunk: Buffer) => {
    count(chunk.length);
    if (!dst.write(chunk)) src.pause();
  });
  dst.on('drain', () => src.resume());
  src.on('end', () => dst.end());
  src.resume();
}

/** A connected upstream: plain TCP, or mesh mTLS over it when the cluster asks for TLS. */
function connectUpstream(o: TcpProxyOptions, host: UpstreamHost, cancel: AbortSignal): Promise<Upstream> {
  const timeoutMs = o.cluster.spec.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
  return new Promise<Upstream>((resolve, reject) => {
    let tlsOptions: tls.ConnectionOptions | undefined;
    try {
      tlsOptions = o.clusters.tlsOptions(o.cluster, host, [TCP_ALPN], o.sourceAddress);
    } catch (err) {
      reject(err instanceof Error ? err : new Error(String(err))); // e.g. no workload certificate yet
      return;
    }
    const opts: net.NetConnectOpts = { host: host.address, port: host.port, allowHalfOpen: true, noDelay: true, keepAlive: true };
    if (o.sourceAddress !== undefined) opts.localAddress = o.sourceAddress;
    const raw = net.connect(opts);
    raw.on('error', noop);
    let stream: Duplex = raw;
    const fail = (err: Error): void => {
      clearTimeout(timer);
      cancel.removeEventListener('abort', onAbort);
      stream.destroy();
      raw.destroy();
      reject(err);
    };
    const onAbort = (): void => fail(new Error('the downstream closed while connecting'));
    const timer = setTimeout(() => fail(new Error(`connect to ${host.address}:${host.port} timed out after ${timeoutMs} ms`)), timeoutMs);
    cancel.addEventListener('abort', onAbort, { once: true });
    const done = (): void => {
      clearTimeout(timer);
      cancel.removeEventListener('abort', onAbort);
      stream.removeListener('error', fail);
      resolve({ stream, raw });
    };
    raw.once('error', fail);
    raw.once('connect', () => {
      raw.removeListener('error', fail);
      if (tlsOptions === undefined) return done();
      const t = tls.connect({ ...tlsOptions, socket: raw });
      stream = t;
      t.once('error', fail);
      t.once('secureConnect', done);
    });
  });
}
