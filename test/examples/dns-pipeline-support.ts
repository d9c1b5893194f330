// Test support for examples/dns-pipeline: its apps as real processes (as `trellis up` runs a container's command)
// and promise wrappers over its gRPC clients.
import * as grpc from '@grpc/grpc-js';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { DeleteZoneResponse, GetZoneResponse, ListZonesResponse, RecordChangeMsg, RecordMsg, UpsertRecordsResponse, ZoneServiceApi } from '../../examples/dns-pipeline/apps/lib/protos.ts';

export const EXAMPLE_DIR = fileURLToPath(new URL('../../examples/dns-pipeline/', import.meta.url));

export function tempDir(prefix: string): { path: string; remove(): void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

/** One app of the example as a child process: `node --import tsx apps/<app>/main.ts` in the example's folder. */
export class AppProcess {
  readonly lines: string[] = [];
  private readonly child: ChildProcess;
  private readonly exited: Promise<number | null>;
  private waiters: { re: RegExp; resolve: (line: string) => void }[] = [];

  constructor(
    readonly app: string,
    env: Record<string, string>,
  ) {
    this.child = spawn(process.execPath, ['--import', 'tsx', `apps/${app}/main.ts`], {
      cwd: EXAMPLE_DIR,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let partial = '';
    const onData = (d: Buffer): void => {
      const parts = (partial + d.toString('utf8')).split('\n');
      partial = parts.pop() ?? '';
      for (const line of parts) {
        this.lines.push(line);
        this.waiters = this.waiters.filter((w) => (w.re.test(line) ? (w.resolve(line), false) : true));
      }
    };
    this.child.stdout?.on('data', onData);
    this.child.stderr?.on('data', onData);
    this.exited = new Promise((resolve) => this.child.on('exit', (code) => resolve(code)));
  }

  /** The first line (already seen or still to come) that matches; rejects after `timeoutMs`. */
  waitFor(re: RegExp, timeoutMs = 60_000): Promise<string> {
    const seen = this.lines.find((l) => re.test(l));
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`${this.app}: no line matching ${re} in ${timeoutMs} ms; output:\n${this.lines.join('\n')}`)), timeoutMs);
      this.waiters.push({
        re,
        resolve: (l) => {
          clearTimeout(t);
          resolve(l);
        },
      });
    });
  }

  /** Stops the process (SIGKILL: a crash) and waits until it is gone. Returns its exit code. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
    const t = setTimeout(() => this.child.kill('SIGKILL'), 5000);
    const code = await this.exited;
    clearTimeout(t);
    return code;
  }
}

const md = (): grpc.Metadata => new grpc.Metadata();
const opts = (): grpc.CallOptions => ({ deadline: Date.now() + 10_000 });

export function listZones(c: ZoneServiceApi): Promise<ListZonesResponse> {
  return new Promise((resolve, reject) => c.ListZones({}, md(), opts(), (e, r) => (e || !r ? reject(e ?? new Error('no reply')) : resolve(r))));
}

export async function getZone(c: ZoneServiceApi, zone: string, batchSize = 0): Promise<{ messages: GetZoneResponse[]; records: RecordMsg[] }> {
  const messages: GetZoneResponse[] = [];
  for await (const m of c.GetZone({ zone, batchSize }, md(), opts()) as AsyncIterable<GetZoneResponse>) messages.push(m);
  return { messages, records: messages.flatMap((m) => m.records) };
}

export function upsert(c: ZoneServiceApi, zone: string, batches: RecordChangeMsg[][], metadata: grpc.Metadata = md()): Promise<UpsertRecordsResponse> {
  return new Promise((resolve, reject) => {
    const call = c.UpsertRecords(metadata, opts(), (e, r) => (e || !r ? reject(e ?? new Error('no reply')) : resolve(r)));
    batches.forEach((changes, i) => call.write({ zone: i === 0 ? zone : '', changes }));
    call.end();
  });
}

export function deleteZone(c: ZoneServiceApi, zone: string): Promise<DeleteZoneResponse> {
  return new Promise((resolve, reject) => c.DeleteZone({ zone }, md(), opts(), (e, r) => (e || !r ? reject(e ?? new Error('no reply')) : resolve(r))));
}

export const rec = (name: string, type: string, data: string, ttl = 300): RecordMsg => ({ name, type, ttl, data });
export const up = (r: RecordMsg, op: RecordChangeMsg['op'] = 'UPSERT'): RecordChangeMsg => ({ op, record: r });

/** Polls `fn` until it returns a value other than undefined; rejects after `timeoutMs`. */
export async function eventually<T>(fn: () => Promise<T | undefined> | T | undefined, timeoutMs: number, what: string): Promise<T> {
  const end = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) throw new Error(`${what}: not within ${timeoutMs} ms${last ? ` (last error: ${(last as Error).message})` : ''}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
