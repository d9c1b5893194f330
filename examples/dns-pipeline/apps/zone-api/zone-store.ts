// The zone store: every zone in memory, persisted as snapshot + write-ahead log per zone, so an acknowledged
// change survives a crash and zones survive restarts. Writes run one at a time; reads never wait.
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { AppError } from '../lib/app-error.ts';
import type { Logger } from '../lib/log.ts';
import { nameProblem } from '../lib/records.ts';
import { commitDelta, computeDelta, emptyZone, nextSerial, recordsOf, snapshotOf, type Change, type ZoneData, type ZoneSnapshot } from '../lib/zone-data.ts';
import { readZoneFile, syncDir, writeZoneFile } from '../lib/zone-file.ts';
import { encodeEntry, replayWal, WalWriter } from './zone-wal.ts';

export interface StoreOptions {
  dir: string;
  maxRecords: number;
  /** A zone's log is folded into a new snapshot once it grows past this many bytes. */
  compactBytes: number;
  log: Logger;
}

export interface ZoneInfo {
  name: string;
  serial: number;
  count: number;
}

export type StoreEvent = { zone: string; serial: number; kind: 'CREATED' | 'UPDATED' | 'DELETED' };

export interface ApplyResult {
  zone: ZoneInfo;
  upserted: number;
  deleted: number;
  created: boolean;
}

const SNAPSHOT = 'snapshot.jsonl';
const WAL = 'wal.jsonl';

export class ZoneStore {
  private readonly zones = new Map<string, ZoneData>();
  private readonly wals = new Map<string, WalWriter>();
  private readonly tombstones = new Map<string, number>();
  private readonly listeners = new Set<(e: StoreEvent) => void>();
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;

  private constructor(private readonly opts: StoreOptions) {}

  private get zonesDir(): string {
    return join(this.opts.dir, 'zones');
  }

  static async open(opts: StoreOptions): Promise<ZoneStore> {
    const s = new ZoneStore(opts);
    await s.load();
    return s;
  }

  private async load(): Promise<void> {
    const { dir, log } = this.opts;
    for (const d of ['zones', 'tombstones', 'trash']) await mkdir(join(dir, d), { recursive: true });
    await rm(join(dir, 'trash'), { recursive: true, force: true });
    await mkdir(join(dir, 'trash'));
    for (const name of await readdir(join(dir, 'tombstones'))) {
      const serial = Number((await readFile(join(dir, 'tombstones', name), 'utf8')).trim());
      if (Number.isInteger(serial) && serial > 0) this.tombstones.set(name, serial);
    }
    for (const name of await readdir(this.zonesDir)) {
      const zdir = join(this.zonesDir, name);
      if (name.startsWith('.')) {
        await rm(zdir, { recursive: true, force: true }); // a zone whose creation did not finish
        continue;
      }
      const zone = await readZoneFile(join(zdir, SNAPSHOT), this.opts.maxRecords);
      if (zone.name !== name) throw new AppError('CORRUPT_DATA', `${zdir}: the snapshot is of zone ${zone.name}`);
      const r = await replayWal(join(zdir, WAL), zone, this.opts.maxRecords);
      const wal = await WalWriter.open(join(zdir, WAL));
      if (r.torn) {
        log.warn('cut an unacknowledged, partly written change off the zone log', { zone: name, keptBytes: r.validBytes });
        await wal.truncate(r.validBytes);
      }
      this.wals.set(name, wal);
      this.zones.set(name, zone);
      log.info('loaded zone', { zone: name, serial: zone.serial, records: zone.count, replayed: r.replayed });
    }
  }

  /** Runs write operations one at a time. */
  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(() => {
      if (this.closed) throw new AppError('FAILED_PRECONDITION', 'the zone store is closed');
      return fn();
    });
    this.queue = run.catch(() => undefined);
    return run;
  }

  onChange(listener: (e: StoreEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private emit(e: StoreEvent): void {
    for (const l of this.listeners) l(e);
  }

  list(): ZoneInfo[] {
    return [...this.zones.values()].map((z) => ({ name: z.name, serial: z.serial, count: z.count })).sort((a, b) => (a.name < b.name ? -1 : 1));
  }

  has(zone: string): boolean {
    return this.zones.has(zone);
  }

  snapshot(zone: string): ZoneSnapshot | undefined {
    const z = this.zones.get(zone);
    return z ? snapshotOf(z) : undefined;
  }

  /** Applies one call's changes atomically; creates the zone when it does not exist. */
  apply(zone: string, changes: readonly Change[]): Promise<ApplyResult> {
    const p = nameProblem(zone);
    if (p) return Promise.reject(new AppError('INVALID_ARGUMENT', `zone "${zone}" ${p}`));
    return this.exclusive(async () => {
      const existing = this.zones.get(zone);
      const base = existing ?? emptyZone(zone, this.tombstones.get(zone) ?? 0);
      const delta = computeDelta(base, changes, this.opts.maxRecords);
      if (existing && changes.length === 0) return { zone: info(existing), upserted: 0, deleted: 0, created: false };
      const serial = nextSerial(base.serial);
      if (!existing) await this.createOnDisk(base);
      const wal = this.wals.get(zone);
      if (!wal) throw new AppError('STORAGE_FAILED', `zone ${zone} has no log`);
      await wal.append(encodeEntry(serial, changes));
      commitDelta(base, delta, serial);
      if (!existing) this.zones.set(zone, base);
      this.emit({ zone, serial, kind: existing ? 'UPDATED' : 'CREATED' });
      if (wal.bytes > this.opts.compactBytes) await this.compact(base, wal);
      return { zone: info(base), upserted: delta.upserted, deleted: delta.deleted, created: !existing };
    });
  }

  /** A new zone's directory appears whole (an empty snapshot and log), by a rename. */
  private async createOnDisk(zone: ZoneData): Promise<void> {
    const tmp = join(this.zonesDir, `.${zone.name}.${randomBytes(4).toString('hex')}`);
    await mkdir(tmp);
    await writeZoneFile(join(tmp, SNAPSHOT), { zone: zone.name, serial: zone.serial, count: 0 }, []);
    await writeFile(join(tmp, WAL), '');
    await rename(tmp, join(this.zonesDir, zone.name));
    await syncDir(this.zonesDir);
    this.wals.set(zone.name, await WalWriter.open(join(this.zonesDir, zone.name, WAL)));
  }

  /** Folds the log into a new snapshot. A crash between the two steps is safe: replay skips what the snapshot has. */
  private async compact(zone: ZoneData, wal: WalWriter): Promise<void> {
    const started = Date.now();
    await writeZoneFile(join(this.zonesDir, zone.name, SNAPSHOT), info2header(zone), recordsOf(zone));
    await wal.truncate(0);
    this.opts.log.info('compacted zone log into a snapshot', { zone: zone.name, serial: zone.serial, records: zone.count, ms: Date.now() - started });
  }

  deleteZone(zone: string): Promise<{ serial: number }> {
    return this.exclusive(async () => {
      const z = this.zones.get(zone);
      if (!z) throw new AppError('NOT_FOUND', `zone ${zone} does not exist`);
      const serial = nextSerial(z.serial);
      // The tombstone keeps the serial, so a re-created zone continues above it.
      const tomb = join(this.opts.dir, 'tombstones', zone);
      await writeFile(`${tomb}.tmp`, `${serial}\n`);
      await rename(`${tomb}.tmp`, tomb);
      await syncDir(join(this.opts.dir, 'tombstones'));
      this.tombstones.set(zone, serial);
      await this.wals.get(zone)?.close();
      this.wals.delete(zone);
      const trash = join(this.opts.dir, 'trash', `${zone}.${randomBytes(4).toString('hex')}`);
      await rename(join(this.zonesDir, zone), trash);
      await syncDir(this.zonesDir);
      this.zones.delete(zone);
      this.emit({ zone, serial, kind: 'DELETED' });
      await rm(trash, { recursive: true, force: true });
      return { serial };
    });
  }

  /** Waits for the write in progress, then closes the logs. */
  async close(): Promise<void> {
    await this.exclusive(async () => {
      this.closed = true;
      for (const w of this.wals.values()) await w.close();
      this.wals.clear();
    }).catch(() => undefined);
    this.listeners.clear();
  }
}

function info(z: ZoneData): ZoneInfo {
  return { name: z.name, serial: z.serial, count: z.count };
}

function info2header(z: ZoneData): { zone: string; serial: number; count: number } {
  return { zone: z.name, serial: z.serial, count: z.count };
}
