// One try of a request against one upstream host, over a pooled HTTP/1.1 socket or an HTTP/2 stream. It tells its
// owner when it can take the body, when response headers arrive, when the body ends, and why it failed.
import http, { type IncomingMessage } from 'node:http';
import { constants as h2c, type ClientHttp2Stream, type IncomingHttpHeaders } from 'node:http2';
import type { Readable, Writable } from 'node:stream';
import type { UpstreamCluster, UpstreamHost } from '../contracts.ts';
import type { HeaderRecord } from './headers.ts';
import { OverflowError, established, type Failure, type H2Conn, type H2Waiter, type UpstreamPool } from './upstream-pool.ts';

export interface AttemptOwner {
  /** The request is open upstream: the body may be written to `a.sink`. */
  onAttemptReady(a: Attempt): void;
  onAttemptHeaders(a: Attempt, status: number, headers: Readonly<Record<string, string | string[] | number | undefined>>, endStream: boolean): void;
  /** The response body ended; `a.trailers` holds the trailers if any. */
  onAttemptEnd(a: Attempt): void;
  /** The try failed, before (`a.gotHeaders` false) or after the response headers. */
  onAttemptError(a: Attempt, f: Failure): void;
}

export interface Attempt {
  readonly host: UpstreamHost;
  readonly gotHeaders: boolean;
  readonly finished: boolean;
  /** The request body goes here once ready. */
  readonly sink: Writable | undefined;
  /** The response body, once headers arrived. */
  readonly body: Readable | undefined;
  readonly trailers: HeaderRecord | undefined;
  start(): void;
  /** Cancels the try (no more callbacks). */
  abort(): void;
}

const END_STREAM = 0x1;

export class H2Attempt implements Attempt, H2Waiter {
  cancelled = false;
  gotHeaders = false;
  finished = false;
  trailers: HeaderRecord | undefined;
  private conn: H2Conn | undefined;
  private stream: ClientHttp2Stream | undefined;

  constructor(
    private readonly owner: AttemptOwner,
    private readonly pool: UpstreamPool,
    private readonly cluster: UpstreamCluster,
    readonly host: UpstreamHost,
    private readonly localAddress: string | undefined,
    private readonly headers: HeaderRecord,
    private readonly endStream: boolean,
  ) {}

  get sink(): Writable | undefined {
    return this.stream;
  }
  get body(): Readable | undefined {
    return this.stream;
  }

  start(): void {
    this.pool.acquireH2(this.cluster, this.host, this.localAddress, this);
  }

  done(conn: H2Conn | undefined, failure: Failure | undefined): void {
    if (this.cancelled) {
      if (conn) this.pool.releaseH2(conn);
      return;
    }
    if (!conn) return this.owner.onAttemptError(this, failure ?? { kind: 'connect-failure', message: 'connection failure' });
    this.conn = conn;
    let s: ClientHttp2Stream;
    try {
      s = conn.session.request(this.headers, { endStream: this.endStream });
    } catch (e) {
      // The session went away between the pick and the request: nothing was sent.
      this.pool.releaseH2(conn);
      return this.owner.onAttemptError(this, { kind: 'refused-stream', message: (e as Error).message });
    }
    this.stream = s;
    s.on('response', this.onResponse);
    s.on('trailers', this.onTrailers);
    s.once('end', this.onEnd);
    s.once('close', this.onClose);
    s.on('error', noop);
    this.owner.onAttemptReady(this);
  }

  private readonly onResponse = (headers: IncomingHttpHeaders, flags: number): void => {
    if (this.cancelled) return;
    this.gotHeaders = true;
    const end = (flags & END_STREAM) !== 0;
    if (end) this.finished = true;
    this.owner.onAttemptHeaders(this, Number(headers[':status']), headers, end);
  };

  private readonly onTrailers = (t: IncomingHttpHeaders): void => {
    this.trailers = t;
  };

  private readonly onEnd = (): void => {
    if (this.cancelled || this.finished) return;
    this.finished = true;
    this.owner.onAttemptEnd(this);
  };

  private readonly onClose = (): void => {
    if (this.conn) this.pool.releaseH2(this.conn);
    if (this.cancelled || this.finished) return;
    const code = this.stream?.rstCode;
    const conn = this.conn!;
    let f: Failure;
    if (code === h2c.NGHTTP2_REFUSED_STREAM) f = { kind: 'refused-stream', message: 'remote refused stream reset' };
    else if (!conn.connected) f = { kind: 'connect-failure', message: `connection failure${conn.lastError ? `, ${conn.lastError}` : ''}` };
    else f = { kind: 'reset', message: code ? `remote reset (HTTP/2 error ${code})` : 'connection termination' };
    this.finished = true;
    this.owner.onAttemptError(this, f);
  };

  abort(): void {
    this.cancelled = true;
    const s = this.stream;
    if (s && !s.closed) s.close(h2c.NGHTTP2_CANCEL);
  }
}

export class H1Attempt implements Attempt {
  gotHeaders = false;
  finished = false;
  trailers: HeaderRecord | undefined;
  private cancelled = false;
  private req: http.ClientRequest | undefined;
  private res: IncomingMessage | undefined;

  constructor(
    private readonly owner: AttemptOwner,
    private readonly agent: http.Agent,
    readonly host: UpstreamHost,
    private readonly method: string,
    private readonly path: string,
    private readonly headers: HeaderRecord,
    private readonly hasBody: boolean,
  ) {}

  get sink(): Writable | undefined {
    return this.req;
  }
  get body(): Readable | undefined {
    return this.res;
  }

  start(): void {
    const req = http.request({
      agent: this.agent,
      host: this.host.address,
      port: this.host.port,
      method: this.method,
      path: this.path,
      headers: this.headers as http.OutgoingHttpHeaders,
      setHost: false,
    });
    this.req = req;
    req.on('response', this.onResponse);
    req.on('error', this.onError);
    if (!this.hasBody) req.end();
    else this.owner.onAttemptReady(this);
  }

  private readonly onResponse = (res: IncomingMessage): void => {
    if (this.cancelled) return;
    this.res = res;
    this.gotHeaders = true;
    res.once('end', this.onEnd);
    res.once('close', this.onResClose);
    res.on('error', noop);
    this.owner.onAttemptHeaders(this, res.statusCode ?? 502, res.headers, false);
  };

  private readonly onEnd = (): void => {
    if (this.cancelled || this.finished) return;
    this.finished = true;
    const t = this.res!.trailers;
    for (const _ in t) {
      this.trailers = t;
      break;
    }
    this.owner.onAttemptEnd(this);
  };

  private readonly onResClose = (): void => {
    if (this.cancelled || this.finished) return;
    this.finished = true;
    this.owner.onAttemptError(this, { kind: 'reset', message: 'connection termination' });
  };

  private readonly onError = (e: NodeJS.ErrnoException): void => {
    if (this.cancelled || this.finished || this.gotHeaders) return;
    this.finished = true;
    let f: Failure;
    if (e instanceof OverflowError) f = { kind: 'overflow', message: e.message };
    else if (this.req?.socket && established.has(this.req.socket)) f = { kind: 'reset', message: e.code === 'ECONNRESET' ? 'connection termination' : e.message };
    else f = { kind: 'connect-failure', message: `connection failure, ${e.code ?? e.message}` };
    this.owner.onAttemptError(this, f);
  };

  /** The try used a kept-alive connection (a reset then may be the server closing an idle socket). */
  get reusedConnection(): boolean {
    return this.req?.reusedSocket === true;
  }

  abort(): void {
    this.cancelled = true;
    this.req?.destroy();
  }
}

function noop(): void {}
