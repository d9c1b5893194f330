// The downstream side of one request, the same for HTTP/1.1 (node:http req/res) and HTTP/2 (a server stream):
// the request body to read, the response to write (headers, body with backpressure, trailers) and a reset.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { constants as h2c, type ServerHttp2Stream } from 'node:http2';
import type { Readable, Writable } from 'node:stream';
import type { HeaderRecord } from './headers.ts';

/** How many 20 ms checks (about 5 s) a finished response may wait for its END_STREAM to leave before the reset. */
const STOP_CHECKS = 250;

export interface Downstream {
  readonly protocol: 'HTTP/1.1' | 'HTTP/2';
  /** The request body. */
  readonly body: Readable;
  /** Where response body bytes go (write() returns false when the client is slow: wait for 'drain'). */
  readonly out: Writable;
  readonly headersSent: boolean;
  /** The client went away or the exchange is over. */
  readonly closed: boolean;
  /** Sends the response head. `withTrailers`: the body will end with trailers (HTTP/2, gRPC). */
  respond(status: number, headers: HeaderRecord, endStream: boolean, withTrailers: boolean): void;
  /** Ends the body, with trailers when the response was opened `withTrailers` (or HTTP/1.1 chunked). */
  finish(trailers: HeaderRecord | undefined): void;
  /** Asks an HTTP/1.1 client that sent `Expect: 100-continue` for its body (the request passed the filters). */
  sendContinue(): void;
  /** Aborts: HTTP/2 RST_STREAM, HTTP/1.1 socket destroyed (the only way to signal a broken body). */
  reset(): void;
  /** Called once when the exchange is over, whatever the reason. */
  onClose(cb: () => void): void;
}

export class H1Downstream implements Downstream {
  readonly protocol = 'HTTP/1.1' as const;
  /** The client waits for `100 Continue` before sending its body. */
  expectContinue = false;
  constructor(
    readonly req: IncomingMessage,
    readonly res: ServerResponse,
  ) {}

  get body(): Readable {
    return this.req;
  }
  get out(): Writable {
    return this.res;
  }
  get headersSent(): boolean {
    return this.res.headersSent;
  }
  get closed(): boolean {
    return this.res.writableEnded || this.res.destroyed;
  }

  respond(status: number, headers: HeaderRecord, endStream: boolean): void {
    // Filters may leave undefined values; node:http refuses them.
    for (const k in headers) if (headers[k] === undefined) delete headers[k];
    this.res.writeHead(status, headers as Record<string, string | string[]>);
    if (endStream) this.res.end();
  }

  finish(trailers: HeaderRecord | undefined): void {
    if (trailers && this.res.chunkedEncoding) {
      const t: Record<string, string | string[]> = {};
      for (const k in trailers) if (trailers[k] !== undefined && k.charCodeAt(0) !== 58) t[k] = trailers[k];
      this.res.addTrailers(t);
    }
    this.res.end();
  }

  sendContinue(): void {
    if (!this.expectContinue) return;
    this.expectContinue = false;
    this.res.writeContinue();
  }

  reset(): void {
    this.res.destroy();
  }

  onClose(cb: () => void): void {
    this.res.once('close', cb);
  }
}

export class H2Downstream implements Downstream {
  readonly protocol = 'HTTP/2' as const;
  private trailers: HeaderRecord | undefined;
  private awaitingTrailers = false;
  private stopChecks = 0;
  private resetByUs = false;

  constructor(readonly stream: ServerHttp2Stream) {}

  get body(): Readable {
    return this.stream;
  }
  get out(): Writable {
    return this.stream;
  }
  get headersSent(): boolean {
    return this.stream.headersSent;
  }
  get closed(): boolean {
    return this.stream.closed || this.stream.destroyed;
  }
  /** The peer reset the stream (as opposed to us): what the rapid-reset guard counts. */
  get resetByPeer(): boolean {
    return !this.resetByUs && this.stream.rstCode !== undefined && this.stream.rstCode !== h2c.NGHTTP2_NO_ERROR;
  }

  respond(status: number, headers: HeaderRecord, endStream: boolean, withTrailers: boolean): void {
    if (this.closed) return;
    headers[':status'] = String(status);
    if (withTrailers && !endStream) {
      this.awaitingTrailers = true;
      this.stream.respond(headers, { waitForTrailers: true });
      this.stream.once('wantTrailers', this.sendTrailers);
    } else {
      this.stream.respond(headers, { endStream });
      if (endStream) this.stopRequest();
    }
  }

  /**
   * The response is complete while the client may still be sending: RST_STREAM(NO_ERROR) asks it to stop
   * (RFC 9113 §8.1), so that the stream closes now and no more request bytes are taken in. The reset waits until
   * our END_STREAM has left (a reset submitted earlier would discard the queued trailers), bounded in time.
   */
  private stopRequest(): void {
    // Nothing to stop when the client has already ended its side (END_STREAM received, even if not yet read).
    if (this.stream.readableEnded || this.stream.closed || this.stream.state.remoteClose === 1 || this.stopChecks > 0) return;
    this.stopChecks = 1;
    setImmediate(this.stopWhenSent);
  }

  private readonly stopWhenSent = (): void => {
    const s = this.stream;
    if (s.closed || s.destroyed) return;
    if (s.state.localClose === 1 || this.stopChecks++ > STOP_CHECKS) s.close(h2c.NGHTTP2_NO_ERROR);
    else setTimeout(this.stopWhenSent, 20);
  };

  private readonly sendTrailers = (): void => {
    const t = this.trailers ?? {};
    for (const k in t) if (t[k] === undefined || k.charCodeAt(0) === 58) delete t[k];
    try {
      this.stream.sendTrailers(t);
    } catch {
      this.stream.close();
    }
    this.stopRequest();
  };

  finish(trailers: HeaderRecord | undefined): void {
    this.trailers = trailers;
    if (!this.stream.writableEnded) this.stream.end();
    if (!this.awaitingTrailers) this.stopRequest();
  }

  sendContinue(): void {}

  reset(): void {
    if (this.stream.closed) return;
    this.resetByUs = true;
    this.stream.close(h2c.NGHTTP2_INTERNAL_ERROR);
  }

  onClose(cb: () => void): void {
    this.stream.once('close', cb);
  }
}
