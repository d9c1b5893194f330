// The audit log of denied and AUDIT-marked calls: one JSON object per line in a file, written off the request
// path. push() only queues (bounded: when the disk is slow the newest records are dropped and counted); a pump
// on a later turn of the event loop serializes batches and writes them one at a time (so the stream never buffers
// more than one batch), rotates by size keeping N old files (`audit.log.1` is the newest), and survives write errors.
import { createWriteStream, type WriteStream } from 'node:fs';
import { mkdir, rename, stat, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Flow, FlowPolicy } from './flow.ts';
import { ObserveError } from './observe-error.ts';
import { SERVICE_ACCOUNT_LABEL } from '../model/labels.ts';

export interface AuditPeer {
  namespace: string;
  pod: string;
  identity: number;
  /** SPIFFE ID: for a source only when it was authenticated by mTLS. */
  principal?: string;
  ip: string;
  port?: number;
}

/** One line of the audit log. */
export interface AuditRecord {
  time: string;
  uuid?: string;
  verdict: 'DENIED' | 'AUDIT';
  direction?: 'ingress' | 'egress';
  source: AuditPeer;
  destination: AuditPeer;
  /** `TCP`, `HTTP/1.1`, `HTTP/2`. */
  protocol: string;
  method?: string;
  path?: string;
  /** HTTP status sent (403, 401); absent for TCP. */
  code?: number;
  grpcStatus?: number;
  policy?: { kind: string; namespace: string; name: string };
  rule?: string;
  dropReason?: string;
  message: string;
}

export interface AuditLogOptions {
  path: string;
  /** Rotate when the file would grow past this many bytes (default 10 MiB). */
  maxBytes?: number;
  /** Rotated files kept beside the live one (default 5; 0 keeps none). */
  keep?: number;
  /** Records waiting for the disk before new ones are dropped (default 10,000). */
  maxQueue?: number;
  /** Lets source and destination principals be derived from service-account labels (`spiffe://TD/ns/N/sa/S`). */
  trustDomain?: string;
}

export interface AuditLogStats {
  written: number;
  dropped: number;
  errors: number;
  rotations: number;
  queued: number;
  /** The last write or rotation error, if any. */
  lastError?: string;
}

/** Lines per write; the file may pass maxBytes by at most one line. */
const MAX_CHUNK_BYTES = 64 * 1024;

type Item = Flow | AuditRecord;

export class AuditLog {
  private queue: Item[] = [];
  private stream: WriteStream | undefined;
  private bytes: number;
  private pumping: Promise<void> | undefined;
  private scheduled = false;
  private closed = false;
  private readonly st: AuditLogStats = { written: 0, dropped: 0, errors: 0, rotations: 0, queued: 0 };
  private readonly maxBytes: number;
  private readonly keep: number;
  private readonly maxQueue: number;

  private constructor(
    private readonly opts: AuditLogOptions,
    size: number,
    stream: WriteStream,
  ) {
    this.bytes = size;
    this.stream = stream;
    this.maxBytes = opts.maxBytes ?? 10 * 1024 * 1024;
    this.keep = opts.keep ?? 5;
    this.maxQueue = opts.maxQueue ?? 10_000;
  }

  static async open(opts: AuditLogOptions): Promise<AuditLog> {
    for (const [k, v, min] of [
      ['maxBytes', opts.maxBytes, 1024],
      ['keep', opts.keep, 0],
      ['maxQueue', opts.maxQueue, 1],
    ] as const) {
      if (v !== undefined && (!Number.isInteger(v) || v < min)) throw new ObserveError('bad-option', `audit log ${k} must be an integer ≥ ${min}, got ${v}`);
    }
    try {
      await mkdir(dirname(opts.path), { recursive: true, mode: 0o700 });
      const size = await stat(opts.path).then(
        (s) => s.size,
        () => 0,
      );
      return new AuditLog(opts, size, await openStream(opts.path));
    } catch (err) {
      throw new ObserveError('open-failed', `cannot open audit log ${opts.path}: ${(err as Error).message}`, { cause: err });
    }
  }

  /** FlowSink: queues DROPPED and AUDIT flows; ignores the rest. Never throws, never waits. */
  push(flow: Flow): void {
    if (flow.verdict === 'DROPPED' || flow.verdict === 'AUDIT') this.enqueue(flow);
  }

  /** Queues a record built by the caller; false when it was dropped (queue full or log closed). */
  record(rec: AuditRecord): boolean {
    return this.enqueue(rec);
  }

  stats(): AuditLogStats {
    return { ...this.st, queued: this.queue.length };
  }

  /** Resolves once everything queued before the call is written (or failed). */
  async flush(): Promise<void> {
    while (this.queue.length > 0 || this.pumping !== undefined) {
      if (this.pumping === undefined) this.startPump();
      await this.pumping;
    }
  }

  /** Writes what is queued, then closes the file. Later records are dropped. */
  async close(): Promise<void> {
    if (this.closed) return this.flush();
    this.closed = true;
    await this.flush();
    const s = this.stream;
    this.stream = undefined;
    if (s !== undefined) await endStream(s);
  }

  private enqueue(item: Item): boolean {
    if (this.closed || this.queue.length >= this.maxQueue) {
      this.st.dropped++;
      return false;
    }
    this.queue.push(item);
    if (!this.scheduled && this.pumping === undefined) {
      this.scheduled = true;
      setImmediate(() => {
        this.scheduled = false;
        if (this.pumping === undefined) this.startPump();
      });
    }
    return true;
  }

  private startPump(): void {
    this.pumping = this.pump().finally(() => {
      this.pumping = undefined;
    });
  }

  private async pump(): Promise<void> {
    while (this.queue.length > 0) {
      const batch = this.queue;
      this.queue = [];
      let chunk = '';
      let chunkBytes = 0;
      let lines = 0;
      for (const item of batch) {
        const line = `${JSON.stringify('Summary' in item ? auditRecordOf(item, this.opts.trustDomain) : item)}\n`;
        const n = Buffer.byteLength(line);
        if (chunkBytes > 0 && (chunkBytes + n > MAX_CHUNK_BYTES || this.bytes + chunkBytes + n > this.maxBytes)) {
          await this.write(chunk, chunkBytes, lines);
          chunk = '';
          chunkBytes = 0;
          lines = 0;
        }
        if (this.bytes > 0 && this.bytes + n > this.maxBytes) await this.rotate();
        chunk += line;
        chunkBytes += n;
        lines++;
      }
      if (chunkBytes > 0) await this.write(chunk, chunkBytes, lines);
    }
  }

  private async write(chunk: string, n: number, lines: number): Promise<void> {
    try {
      this.stream ??= await openStream(this.opts.path);
      const s = this.stream;
      await new Promise<void>((resolve, reject) => s.write(chunk, (err) => (err ? reject(err) : resolve())));
      this.bytes += n;
      this.st.written += lines;
    } catch (err) {
      this.fail(err);
      this.st.dropped += lines;
      const s = this.stream;
      this.stream = undefined;
      s?.destroy();
    }
  }

  private async rotate(): Promise<void> {
    const p = this.opts.path;
    try {
      const s = this.stream;
      this.stream = undefined;
      if (s !== undefined) await endStream(s);
      if (this.keep === 0) await unlink(p).catch(ignoreMissing);
      else {
        for (let i = this.keep - 1; i >= 1; i--) await rename(`${p}.${i}`, `${p}.${i + 1}`).catch(ignoreMissing);
        await rename(p, `${p}.1`).catch(ignoreMissing);
      }
      this.bytes = 0;
      this.st.rotations++;
    } catch (err) {
      this.fail(err);
    }
  }

  private fail(err: unknown): void {
    this.st.errors++;
    this.st.lastError = err instanceof Error ? err.message : String(err);
  }
}

function ignoreMissing(err: unknown): void {
  if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
}

function openStream(path: string): Promise<WriteStream> {
  return new Promise((resolve, reject) => {
    const s = createWriteStream(path, { flags: 'a', mode: 0o600 });
    // Later errors reach the write callbacks; this listener only keeps them from being unhandled.
    s.on('error', () => undefined);
    s.once('open', () => resolve(s));
    s.once('error', reject);
  });
}

function endStream(s: WriteStream): Promise<void> {
  return new Promise((resolve) => {
    if (s.destroyed) return resolve();
    s.once('close', () => resolve());
    s.end();
  });
}

/** The audit record a DROPPED or AUDIT flow stands for. */
export function auditRecordOf(flow: Flow, trustDomain?: string): AuditRecord {
  const tcp = flow.l4.TCP ?? flow.l4.UDP;
  const http = flow.l7?.http;
  const policy = firstPolicy(flow);
  // A reply flow (a completed request, as Hubble shows it) runs from the server back to the client; the record's
  // source is always the caller.
  const reply = flow.is_reply;
  const client = reply ? flow.destination : flow.source;
  const server = reply ? flow.source : flow.destination;
  const rec: AuditRecord = {
    time: flow.time,
    uuid: flow.uuid,
    verdict: flow.verdict === 'AUDIT' ? 'AUDIT' : 'DENIED',
    source: {
      namespace: client.namespace,
      pod: client.pod_name,
      identity: client.identity,
      principal: flow.trellis?.transport === 'mtls' ? principalOf(client.labels, client.namespace, trustDomain) : undefined,
      ip: reply ? flow.IP.destination : flow.IP.source,
      port: reply ? tcp?.destination_port : tcp?.source_port,
    },
    destination: {
      namespace: server.namespace,
      pod: server.pod_name,
      identity: server.identity,
      principal: principalOf(server.labels, server.namespace, trustDomain),
      ip: reply ? flow.IP.source : flow.IP.destination,
      port: reply ? tcp?.source_port : tcp?.destination_port,
    },
    protocol: http?.protocol ?? (flow.l4.UDP ? 'UDP' : 'TCP'),
    message: flow.Summary,
  };
  if (flow.traffic_direction !== 'TRAFFIC_DIRECTION_UNKNOWN') rec.direction = flow.traffic_direction === 'INGRESS' ? 'ingress' : 'egress';
  if (http !== undefined) {
    rec.method = http.method;
    rec.path = http.url;
    if (http.code > 0) rec.code = http.code;
  }
  if (flow.trellis?.grpc_status !== undefined) rec.grpcStatus = flow.trellis.grpc_status;
  if (policy !== undefined) rec.policy = { kind: policy.kind, namespace: policy.namespace, name: policy.name };
  if (flow.trellis?.rule !== undefined) rec.rule = flow.trellis.rule;
  if (flow.drop_reason_desc !== undefined) rec.dropReason = flow.drop_reason_desc;
  return rec;
}

function firstPolicy(flow: Flow): FlowPolicy | undefined {
  const lists = flow.verdict === 'AUDIT' ? [flow.ingress_allowed_by, flow.egress_allowed_by, flow.ingress_denied_by, flow.egress_denied_by] : [flow.ingress_denied_by, flow.egress_denied_by];
  for (const l of lists) if (l !== undefined && l.length > 0) return l[0];
  return undefined;
}

const SA_PREFIX = `k8s:${SERVICE_ACCOUNT_LABEL}=`;

function principalOf(labels: readonly string[], namespace: string, trustDomain: string | undefined): string | undefined {
  if (trustDomain === undefined || namespace === '') return undefined;
  const l = labels.find((x) => x.startsWith(SA_PREFIX));
  return l === undefined ? undefined : `spiffe://${trustDomain}/ns/${namespace}/sa/${l.slice(SA_PREFIX.length)}`;
}
