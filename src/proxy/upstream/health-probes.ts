// One active health probe each: TCP (or TLS) connect, HTTP/1.1 GET, HTTP/2 GET and grpc.health.v1.Health/Check.
// Every probe is bounded by its timeout and by a small response size, and can be aborted; none keeps a socket.
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import tls, { type ConnectionOptions } from 'node:tls';

export interface ProbeTarget {
  address: string;
  port: number;
  timeoutMs: number;
}

/** `result` resolves to undefined when the host is healthy, else to the reason it is not. */
export interface Probe {
  result: Promise<string | undefined>;
  abort: () => void;
}

/** The most a gRPC health response may carry (the real one is a few bytes). */
export const MAX_GRPC_HEALTH_RESPONSE_BYTES = 1024;
const SERVING = 1;

function connect(t: ProbeTarget, options: ConnectionOptions | undefined): net.Socket {
  return options ? tls.connect({ ...options, host: t.address, port: t.port }) : net.connect({ host: t.address, port: t.port });
}

/** Runs `start` with a settle-once callback, a timeout and an abort, and cleans up with `cleanup` either way. */
function bounded(t: ProbeTarget, start: (settle: (failure: string | undefined) => void) => () => void): Probe {
  let settle!: (failure: string | undefined) => void;
  const result = new Promise<string | undefined>((resolve) => {
    let done = false;
    let cleanup: (() => void) | undefined;
    const timer = setTimeout(() => settle(`timeout after ${t.timeoutMs} ms`), t.timeoutMs);
    timer.unref();
    settle = (failure) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      cleanup?.();
      resolve(failure);
    };
    try {
      cleanup = start((f) => settle(f));
    } catch (err) {
      settle((err as Error).message);
    }
    if (done) cleanup?.();
  });
  return { result, abort: () => settle('aborted') };
}

/**
 * Healthy when the TCP connection completes. Over TLS, when the server has also accepted our certificate. In TLS 1.2
 * the handshake says so. In TLS 1.3 the client's handshake ends before the server has checked our certificate, and a
 * server that refuses it may just close (Node does, without an alert). So we wait: a session ticket, or the
 * connection still open after TLS13_GRACE_MS (or half the timeout), means accepted; an alert or a close means refused.
 * A mesh peer never closes a fresh connection on its own: it waits for the first bytes.
 */
export function probeTcp(t: ProbeTarget, options: ConnectionOptions | undefined): Probe {
  return bounded(t, (settle) => {
    const socket = connect(t, options);
    let grace: NodeJS.Timeout | undefined;
    socket.once('error', (err) => settle(err.message));
    if (!options) socket.once('connect', () => settle(undefined));
    else {
      let secured = false;
      const closed = (): void => settle(secured ? 'the peer closed the connection after the TLS handshake (certificate refused?)' : 'connection closed during the TLS handshake');
      (socket as tls.TLSSocket).once('secureConnect', () => {
        secured = true;
        if ((socket as tls.TLSSocket).getProtocol() !== 'TLSv1.3') return settle(undefined);
        grace = setTimeout(() => settle(undefined), Math.min(TLS13_GRACE_MS, t.timeoutMs / 2));
        grace.unref();
      });
      socket.once('session', () => settle(undefined));
      socket.once('end', closed);
      socket.once('close', closed);
      socket.resume();
    }
    return () => {
      if (grace) clearTimeout(grace);
      socket.destroy();
    };
  });
}

/** How long a TLS 1.3 check waits after its handshake for the server to refuse our certificate. */
export const TLS13_GRACE_MS = 250;

/** Healthy on a 2xx answer to `GET path` over HTTP/1.1; the body is not read. */
export function probeHttp1(t: ProbeTarget, options: ConnectionOptions | undefined, authority: string, path: string): Probe {
  return bounded(t, (settle) => {
    const req = http.request({
      method: 'GET',
      path,
      headers: { host: authority, 'user-agent': 'Trellis-HealthChecker/1', connection: 'close' },
      // No agent: the request runs on its own connection, made by createConnection.
      createConnection: () => connect(t, options),
    });
    req.once('response', (res) => {
      const code = res.statusCode ?? 0;
      res.resume();
      settle(code >= 200 && code < 300 ? undefined : `HTTP ${code}`);
    });
    req.once('error', (err) => settle(err.message));
    req.end();
    return () => req.destroy();
  });
}

function h2Session(t: ProbeTarget, options: ConnectionOptions | undefined, authority: string): http2.ClientHttp2Session {
  return http2.connect(`${options ? 'https' : 'http'}://${authority}`, {
    createConnection: () => connect(t, options),
    maxSessionMemory: 1,
    settings: { enablePush: false },
  });
}

/** Healthy on a 2xx answer to `GET path` over HTTP/2 (prior knowledge in plaintext, ALPN h2 over TLS). */
export function probeHttp2(t: ProbeTarget, options: ConnectionOptions | undefined, authority: string, path: string): Probe {
  return bounded(t, (settle) => {
    const session = h2Session(t, options, authority);
    session.on('error', (err: Error) => settle(err.message));
    const stream = session.request({ ':method': 'GET', ':path': path, 'user-agent': 'Trellis-HealthChecker/1' }, { endStream: true });
    stream.on('error', (err: Error) => settle(err.message));
    stream.once('response', (headers) => {
      const code = Number(headers[':status'] ?? 0);
      settle(code >= 200 && code < 300 ? undefined : `HTTP ${code}`);
    });
    return () => session.destroy();
  });
}

/** grpc.health.v1.HealthCheckRequest { string service = 1; } in a gRPC frame. */
export function grpcHealthRequest(service: string): Buffer {
  const name = Buffer.from(service, 'utf8');
  const body: number[] = [];
  if (name.length > 0) {
    body.push(0x0a);
    let n = name.length;
    while (n > 0x7f) {
      body.push((n & 0x7f) | 0x80);
      n >>>= 7;
    }
    body.push(n);
  }
  const msg = Buffer.concat([Buffer.from(body), name]);
  const frame = Buffer.alloc(5 + msg.length);
  frame.writeUInt32BE(msg.length, 1);
  msg.copy(frame, 5);
  return frame;
}

/** The `status` of a framed grpc.health.v1.HealthCheckResponse, or undefined when malformed. */
export function grpcHealthStatus(frame: Buffer): number | undefined {
  if (frame.length < 5 || frame[0] !== 0) return undefined;
  const len = frame.readUInt32BE(1);
  if (len !== frame.length - 5) return undefined;
  let pos = 5;
  let status = 0; // proto3 default: UNKNOWN
  const varint = (): number | undefined => {
    let v = 0;
    for (let shift = 0; shift < 35; shift += 7) {
      const b = frame[pos++];
      if (b === undefined) return undefined;
      v += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) return v;
    }
    return undefined;
  };
  while (pos < frame.length) {
    const tag = varint();
    if (tag === undefined) return undefined;
    const wire = tag & 7;
    if (wire === 0) {
      const v = varint();
      if (v === undefined) return undefined;
      if (tag >>> 3 === 1) status = v;
    } else if (wire === 2) {
      const l = varint();
      if (l === undefined || pos + l > frame.length) return undefined;
      pos += l;
    } else if (wire === 1 || wire === 5) {
      pos += wire === 1 ? 8 : 4;
      if (pos > frame.length) return undefined;
    } else return undefined;
  }
  return status;
}

/** Healthy when grpc.health.v1.Health/Check answers OK with status SERVING. */
export function probeGrpc(t: ProbeTarget, options: ConnectionOptions | undefined, authority: string, service: string): Probe {
  return bounded(t, (settle) => {
    const session = h2Session(t, options, authority);
    session.on('error', (err: Error) => settle(err.message));
    const stream = session.request({
      ':method': 'POST',
      ':path': '/grpc.health.v1.Health/Check',
      'content-type': 'application/grpc',
      te: 'trailers',
      'user-agent': 'Trellis-HealthChecker/1',
    });
    const chunks: Buffer[] = [];
    let size = 0;
    let grpcStatus: string | undefined;
    stream.on('error', (err: Error) => settle(err.message));
    stream.once('response', (headers) => {
      if (headers[':status'] !== 200) settle(`HTTP ${String(headers[':status'])}`);
      else if (headers['grpc-status'] !== undefined) grpcStatus = String(headers['grpc-status']);
    });
    stream.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_GRPC_HEALTH_RESPONSE_BYTES) settle('gRPC health response too large');
      else chunks.push(chunk);
    });
    stream.once('trailers', (trailers: http2.IncomingHttpHeaders) => {
      grpcStatus = String(trailers['grpc-status'] ?? '');
    });
    stream.once('end', () => {
      if (grpcStatus !== '0') return settle(`grpc-status ${grpcStatus ?? 'missing'}`);
      const status = grpcHealthStatus(Buffer.concat(chunks));
      settle(status === SERVING ? undefined : status === undefined ? 'malformed gRPC health response' : `serving status ${status}`);
    });
    stream.end(grpcHealthRequest(service));
    return () => session.destroy();
  });
}
