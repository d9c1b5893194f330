// A request body on its way upstream: streamed with backpressure to the current attempt, kept in a retry buffer
// only while it fits `limit` (beyond that the request can no longer be retried), checked frame by frame for gRPC,
// and optionally copied to a mirror that is dropped as soon as it lags.
import type { Readable, Writable } from 'node:stream';
import type { GrpcFrameChecker } from './grpc.ts';

export interface BodyOwner {
  /** The gRPC frame checker refused the body with this gRPC status. */
  onBodyError(grpcStatus: number): void;
}

export class RequestBody {
  /** Every byte read so far, while they fit the retry buffer; undefined once they did not (or retries are off). */
  private chunks: Buffer[] | undefined;
  private size = 0;
  bytes = 0;
  private ended = false;
  private started = false;
  private failed = false;
  private sink: Writable | undefined;
  private mirror: Writable | undefined;

  constructor(
    private readonly source: Readable,
    private readonly limit: number,
    private readonly checker: GrpcFrameChecker | undefined,
    private readonly owner: BodyOwner,
  ) {
    if (limit > 0) this.chunks = [];
  }

  /** The whole body read so far is held, so another attempt can replay it. */
  get replayable(): boolean {
    return this.chunks !== undefined && !this.failed;
  }

  /** Sends the body to a new attempt's request: the retained bytes first, then the rest as it arrives. */
  attach(sink: Writable): void {
    this.sink = sink;
    if (this.chunks) for (const c of this.chunks) sink.write(c);
    if (this.ended) {
      sink.end();
      return;
    }
    if (!this.started) {
      this.started = true;
      this.source.on('data', this.onData);
      this.source.once('end', this.onEnd);
    }
    this.source.resume();
  }

  /** The attempt is abandoned: hold the body until the next one (the buffer bounds what is read meanwhile). */
  detach(): void {
    this.sink = undefined;
    if (!this.ended) this.source.pause();
  }

  /** Copies the body to a mirror request, which is dropped once it holds more than `limit` unsent bytes. */
  tee(mirror: Writable): void {
    if (!this.chunks && this.bytes > 0) {
      mirror.destroy();
      return;
    }
    this.mirror = mirror;
    if (this.chunks) for (const c of this.chunks) mirror.write(c);
    if (this.ended) mirror.end();
  }

  private readonly onData = (chunk: Buffer): void => {
    if (this.failed) return;
    this.bytes += chunk.length;
    if (this.checker) {
      const code = this.checker.push(chunk);
      if (code !== 0) return this.fail(code);
    }
    if (this.chunks) {
      this.size += chunk.length;
      if (this.size > this.limit) this.chunks = undefined;
      else this.chunks.push(chunk);
    }
    const m = this.mirror;
    if (m) {
      if (m.writableLength > this.limit || m.destroyed) {
        m.destroy();
        this.mirror = undefined;
      } else m.write(chunk);
    }
    const sink = this.sink;
    if (sink && !sink.write(chunk)) {
      this.source.pause();
      sink.once('drain', this.onDrain);
    } else if (!sink) this.source.pause();
  };

  private readonly onDrain = (): void => {
    if (this.sink && !this.ended) this.source.resume();
  };

  private readonly onEnd = (): void => {
    this.ended = true;
    if (this.checker && !this.failed) {
      const code = this.checker.finish();
      if (code !== 0) return this.fail(code);
    }
    this.sink?.end();
    this.mirror?.end();
  };

  private fail(code: number): void {
    this.failed = true;
    this.chunks = undefined;
    this.source.pause();
    this.mirror?.destroy();
    this.mirror = undefined;
    this.owner.onBodyError(code);
  }

  /** The exchange is over: stop reading and drop what is held. */
  dispose(): void {
    this.chunks = undefined;
    this.sink = undefined;
    if (this.started) this.source.off('data', this.onData);
    this.mirror = undefined;
  }
}
