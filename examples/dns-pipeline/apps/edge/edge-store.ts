// The zones an edge has been pushed, kept on disk (one snapshot file per zone) so a restarted edge answers at once.
import { mkdir, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../lib/log.ts';
import { recordsOf, type ZoneData } from '../lib/zone-data.ts';
import { readZoneFile, syncDir, writeZoneFile } from '../lib/zone-file.ts';
import { serve, ZoneTable } from './zone-table.ts';

export type InstallResult = { applied: boolean; serial: number };

export class EdgeStore {
  readonly table = new ZoneTable();
  private queue: Promise<unknown> = Promise.resolve();

  private constructor(private readonly dir: string) {}

  static async open(dir: string, maxRecords: number, log: Logger): Promise<EdgeStore> {
    const s = new EdgeStore(join(dir, 'zones'));
    await mkdir(s.dir, { recursive: true });
    for (const f of await readdir(s.dir)) {
      const path = join(s.dir, f);
      if (f.startsWith('.')) {
        await rm(path, { force: true }); // a write that did not finish
        continue;
      }
      if (!f.endsWith('.jsonl')) continue;
      try {
        const z = await readZoneFile(path, maxRecords);
        s.table.set(serve(z));
        log.info('loaded zone', { zone: z.name, serial: z.serial, records: z.count });
      } catch (e) {
        // A cache: a bad file is dropped, and the next push brings the zone back.
        log.warn('dropped an unreadable zone file', { file: path, error: (e as Error).message });
        await rm(path, { force: true });
      }
    }
    return s;
  }

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** Serves the zone from now on, unless a newer serial is already served. Written to disk first. */
  install(z: ZoneData): Promise<InstallResult> {
    return this.exclusive(async () => {
      const cur = this.table.get(z.name);
      if (cur && cur.data.serial > z.serial) return { applied: false, serial: cur.data.serial };
      await writeZoneFile(join(this.dir, `${z.name}.jsonl`), { zone: z.name, serial: z.serial, count: z.count }, recordsOf(z));
      this.table.set(serve(z));
      return { applied: true, serial: z.serial };
    });
  }

  /** Stops serving the zone, unless a newer serial is served (the zone was re-created since). */
  remove(zone: string, serial: number): Promise<InstallResult> {
    return this.exclusive(async () => {
      const cur = this.table.get(zone);
      if (cur && cur.data.serial > serial) return { applied: false, serial: cur.data.serial };
      await rm(join(this.dir, `${zone}.jsonl`), { force: true });
      await syncDir(this.dir);
      this.table.delete(zone);
      return { applied: true, serial };
    });
  }

  async close(): Promise<void> {
    await this.queue;
  }
}
