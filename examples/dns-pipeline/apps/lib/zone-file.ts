// Zone snapshot files: a JSON header line, then one JSON array per record; written atomically (temp file, fsync, rename).
import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, rename, rm, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { AppError } from './app-error.ts';
import { RECORD_TYPES, type DnsRecord, type RecordType } from './records.ts';
import { addRecord, emptyZone, type ZoneData } from './zone-data.ts';

export interface ZoneFileHeader {
  zone: string;
  serial: number;
  count: number;
}

const WRITE_CHUNK = 256 * 1024;

/** Flushes a directory's entries (a rename or unlink in it) to disk. */
export async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

export function recordLine(r: DnsRecord): string {
  return JSON.stringify([r.name, r.type, r.ttl, r.data]);
}

/** Writes header and records so a reader sees the old file or the new one, never part of one. */
export async function writeZoneFile(path: string, header: ZoneFileHeader, records: Iterable<DnsRecord>): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  let fh: FileHandle | undefined = await open(tmp, 'wx', 0o644);
  try {
    let buf = `${JSON.stringify(header)}\n`;
    for (const r of records) {
      buf += `${recordLine(r)}\n`;
      if (buf.length >= WRITE_CHUNK) {
        await fh.write(buf);
        buf = '';
      }
    }
    await fh.write(buf);
    await fh.sync();
    await fh.close();
    fh = undefined;
    await rename(tmp, path);
    await syncDir(dirname(path));
  } catch (e) {
    await fh?.close().catch(() => undefined);
    await rm(tmp, { force: true });
    throw new AppError('STORAGE_FAILED', `cannot write ${path}: ${(e as Error).message}`, { cause: e });
  }
}

const TYPES = new Set<string>(RECORD_TYPES);

/** Parses one record line; undefined when it is not a record of this file's shape. */
export function parseRecordLine(line: string): DnsRecord | undefined {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    return undefined;
  }
  if (!Array.isArray(v) || v.length !== 4) return undefined;
  const [name, type, ttl, data] = v as unknown[];
  if (typeof name !== 'string' || typeof type !== 'string' || !TYPES.has(type) || typeof data !== 'string') return undefined;
  if (typeof ttl !== 'number' || !Number.isInteger(ttl) || ttl < 0) return undefined;
  return { name, type: type as RecordType, ttl, data };
}

/** Reads a zone file written by writeZoneFile; a file that is not exactly that is CORRUPT_DATA. */
export async function readZoneFile(path: string, maxRecords: number): Promise<ZoneData> {
  const input = createReadStream(path, { encoding: 'utf8' });
  const lines = createInterface({ input, crlfDelay: Infinity });
  let zone: ZoneData | undefined;
  let expected = 0;
  let n = 0;
  const corrupt = (why: string): AppError => new AppError('CORRUPT_DATA', `${path}:${n}: ${why}`);
  try {
    for await (const line of lines) {
      n++;
      if (!zone) {
        let h: Partial<ZoneFileHeader>;
        try {
          h = JSON.parse(line) as Partial<ZoneFileHeader>;
        } catch {
          throw corrupt('the header is not JSON');
        }
        if (typeof h.zone !== 'string' || typeof h.serial !== 'number' || typeof h.count !== 'number') throw corrupt('the header lacks zone, serial or count');
        zone = emptyZone(h.zone, h.serial);
        expected = h.count;
        continue;
      }
      const r = parseRecordLine(line);
      if (!r) throw corrupt('not a record');
      addRecord(zone, r, maxRecords);
    }
  } finally {
    lines.close();
    input.destroy();
  }
  if (!zone) throw corrupt('the file is empty');
  if (zone.count !== expected) throw corrupt(`the header says ${expected} records, the file holds ${zone.count}`);
  return zone;
}
