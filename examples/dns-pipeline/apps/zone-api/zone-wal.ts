// The write-ahead log of one zone: one JSON line per acknowledged UpsertRecords call, fsynced before the reply.
import { open, readFile, type FileHandle } from 'node:fs/promises';
import { AppError } from '../lib/app-error.ts';
import { RECORD_TYPES, type RecordType } from '../lib/records.ts';
import { computeDelta, commitDelta, type Change, type ZoneData } from '../lib/zone-data.ts';

type WalChange = [op: 'U' | 'R' | 'D', name: string, type: string, ttl: number, data: string];

interface WalEntry {
  /** The serial this entry brought the zone to. */
  s: number;
  c: WalChange[];
}

export function encodeEntry(serial: number, changes: readonly Change[]): string {
  const c: WalChange[] = changes.map((x) =>
    x.op === 'DELETE' ? ['D', x.name, x.type ?? '', 0, x.data ?? ''] : [x.op === 'UPSERT' ? 'U' : 'R', x.record.name, x.record.type, x.record.ttl, x.record.data],
  );
  return `${JSON.stringify({ s: serial, c } satisfies WalEntry)}\n`;
}

const TYPES = new Set<string>(RECORD_TYPES);

function decodeChange(v: unknown): Change | undefined {
  if (!Array.isArray(v) || v.length !== 5) return undefined;
  const [op, name, type, ttl, data] = v as unknown[];
  if (typeof name !== 'string' || typeof type !== 'string' || typeof ttl !== 'number' || typeof data !== 'string') return undefined;
  if (op === 'D') {
    if (type !== '' && !TYPES.has(type)) return undefined;
    const c: Change = { op: 'DELETE', name };
    if (type !== '') c.type = type as RecordType;
    if (data !== '') c.data = data;
    return c;
  }
  if ((op !== 'U' && op !== 'R') || !TYPES.has(type)) return undefined;
  return { op: op === 'U' ? 'UPSERT' : 'REPLACE', record: { name, type: type as RecordType, ttl, data } };
}

function decodeEntry(line: string): WalEntry & { changes: Change[] } {
  const v = JSON.parse(line) as Partial<WalEntry>;
  if (typeof v.s !== 'number' || !Array.isArray(v.c)) throw new Error('not a log entry');
  const changes = v.c.map((c) => {
    const d = decodeChange(c);
    if (!d) throw new Error('not a change');
    return d;
  });
  return { s: v.s, c: v.c, changes };
}

/**
 * Replays the log over a zone loaded from its snapshot: entries at or below the snapshot's serial are already in it.
 * A last line without its newline was never acknowledged (the process died while writing it): it is cut off.
 * Any other bad line is CORRUPT_DATA. Returns the length of the valid part, and whether a torn tail was found.
 */
export async function replayWal(path: string, zone: ZoneData, maxRecords: number): Promise<{ validBytes: number; torn: boolean; replayed: number }> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { validBytes: 0, torn: false, replayed: 0 };
    throw e;
  }
  let offset = 0;
  let replayed = 0;
  let lineNo = 0;
  while (offset < text.length) {
    const nl = text.indexOf('\n', offset);
    if (nl < 0) return { validBytes: Buffer.byteLength(text.slice(0, offset)), torn: true, replayed };
    lineNo++;
    const line = text.slice(offset, nl);
    let entry: ReturnType<typeof decodeEntry>;
    try {
      entry = decodeEntry(line);
    } catch (e) {
      throw new AppError('CORRUPT_DATA', `${path}:${lineNo}: ${(e as Error).message}`);
    }
    if (entry.s > zone.serial) {
      commitDelta(zone, computeDelta(zone, entry.changes, maxRecords), entry.s);
      replayed++;
    }
    offset = nl + 1;
  }
  return { validBytes: Buffer.byteLength(text), torn: false, replayed };
}

/** An open log, appended to and fsynced per entry. */
export class WalWriter {
  private constructor(
    private readonly fh: FileHandle,
    public bytes: number,
  ) {}

  static async open(path: string): Promise<WalWriter> {
    const fh = await open(path, 'a+');
    return new WalWriter(fh, (await fh.stat()).size);
  }

  /** Cuts the file to `length` (a torn tail, or 0 after a snapshot) and syncs it. */
  async truncate(length: number): Promise<void> {
    await this.fh.truncate(length);
    await this.fh.sync();
    this.bytes = length;
  }

  async append(line: string): Promise<void> {
    try {
      await this.fh.write(line);
      await this.fh.datasync();
    } catch (e) {
      // The change is not acknowledged: take a partial line back out, so the log matches memory.
      await this.fh.truncate(this.bytes).catch(() => undefined);
      throw new AppError('STORAGE_FAILED', `cannot write the zone log: ${(e as Error).message}`, { cause: e });
    }
    this.bytes += Buffer.byteLength(line);
  }

  close(): Promise<void> {
    return this.fh.close();
  }
}
