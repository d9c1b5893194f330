// A zone in memory and the changes UpsertRecords makes to it: computed as a delta first, checked, then committed at once.
import { AppError } from './app-error.ts';
import { normalizeData, normalizeName, normalizeRecord, recordType, inZone, type DnsRecord, type RecordType } from './records.ts';

export interface ZoneData {
  readonly name: string;
  serial: number;
  count: number;
  /** Owner name → its records. Arrays are replaced, never mutated: a copy of the map's values is a consistent snapshot. */
  readonly byName: Map<string, readonly DnsRecord[]>;
}

export type Change =
  | { op: 'UPSERT' | 'REPLACE'; record: DnsRecord }
  | { op: 'DELETE'; name: string; type?: RecordType; data?: string };

/** A consistent copy of a zone that later changes do not affect. */
export interface ZoneSnapshot {
  name: string;
  serial: number;
  count: number;
  sets: readonly (readonly DnsRecord[])[];
}

export function emptyZone(name: string, serial = 0): ZoneData {
  return { name, serial, count: 0, byName: new Map() };
}

export function snapshotOf(z: ZoneData): ZoneSnapshot {
  return { name: z.name, serial: z.serial, count: z.count, sets: Array.from(z.byName.values()) };
}

export function* recordsOf(s: { sets: readonly (readonly DnsRecord[])[] } | ZoneData): Generator<DnsRecord> {
  const sets = 'sets' in s ? s.sets : s.byName.values();
  for (const set of sets) yield* set;
}

/** Validates one change from the wire. DELETE may leave data (a whole set) or type and data (the whole name) empty. */
export function normalizeChange(zone: string, op: string, r: { name: string; type: string; ttl?: number; data: string } | null | undefined): Change {
  if (!r) throw new AppError('INVALID_ARGUMENT', 'a change needs a record');
  if (op === 'UPSERT' || op === 'REPLACE') return { op, record: normalizeRecord(zone, r) };
  if (op !== 'DELETE') throw new AppError('INVALID_ARGUMENT', `change op must be UPSERT, REPLACE or DELETE, not "${op}"`);
  const name = normalizeName(r.name);
  if (!inZone(name, zone)) throw new AppError('INVALID_ARGUMENT', `record name "${name}" is not in zone ${zone}`);
  const out: Change = { op, name };
  if (r.type.trim() !== '') out.type = recordType(r.type);
  if (r.data.trim() !== '') {
    if (!out.type) throw new AppError('INVALID_ARGUMENT', 'a DELETE with data needs a type');
    out.data = normalizeData(out.type, r.data);
  }
  return out;
}

export interface Delta {
  /** The new record list of every touched name (empty: the name goes away). */
  sets: Map<string, DnsRecord[]>;
  countDelta: number;
  upserted: number;
  deleted: number;
}

/** Replaces (name, type) with `recs`, or adds/updates one record by its data (CNAME and SOA sets hold one record). */
function put(set: DnsRecord[], r: DnsRecord): DnsRecord[] {
  if (r.type === 'CNAME' || r.type === 'SOA') return [...set.filter((x) => x.type !== r.type), r];
  const i = set.findIndex((x) => x.type === r.type && x.data === r.data);
  if (i < 0) return [...set, r];
  const next = set.slice();
  next[i] = r;
  return next;
}

/** Computes what `changes` do to `zone` without touching it; throws when the result would break a DNS rule or a bound. */
export function computeDelta(zone: ZoneData, changes: readonly Change[], maxRecords: number): Delta {
  const sets = new Map<string, DnsRecord[]>();
  const replaced = new Set<string>();
  let upserted = 0;
  let deleted = 0;
  const current = (name: string): DnsRecord[] => sets.get(name) ?? (zone.byName.get(name)?.slice() ?? []);
  for (const c of changes) {
    if (c.op === 'DELETE') {
      const set = current(c.name);
      const keep = set.filter((x) => !((c.type === undefined || x.type === c.type) && (c.data === undefined || x.data === c.data)));
      deleted += set.length - keep.length;
      sets.set(c.name, keep);
      continue;
    }
    const r = c.record;
    let set = current(r.name);
    const key = `${r.name}\u0000${r.type}`;
    if (c.op === 'REPLACE' && !replaced.has(key)) {
      replaced.add(key);
      set = set.filter((x) => x.type !== r.type);
    }
    sets.set(r.name, put(set, r));
    upserted++;
  }
  let countDelta = 0;
  for (const [name, set] of sets) {
    countDelta += set.length - (zone.byName.get(name)?.length ?? 0);
    if (set.some((x) => x.type === 'CNAME') && set.some((x) => x.type !== 'CNAME')) {
      throw new AppError('INVALID_ARGUMENT', `${name} has a CNAME and other records; a CNAME must be the only record of its name`);
    }
  }
  if (zone.count + countDelta > maxRecords) throw new AppError('RESOURCE_EXHAUSTED', `zone ${zone.name} would hold ${zone.count + countDelta} records; the limit is ${maxRecords}`);
  return { sets, countDelta, upserted, deleted };
}

export function commitDelta(zone: ZoneData, delta: Delta, serial: number): void {
  for (const [name, set] of delta.sets) {
    if (set.length === 0) zone.byName.delete(name);
    else zone.byName.set(name, set);
  }
  zone.count += delta.countDelta;
  zone.serial = serial;
}

/** Adds records to a zone being built (loading a file, receiving a push); throws past `maxRecords`. */
export function addRecord(zone: ZoneData, r: DnsRecord, maxRecords: number): void {
  if (zone.count >= maxRecords) throw new AppError('RESOURCE_EXHAUSTED', `zone ${zone.name} has more than ${maxRecords} records`);
  const set = zone.byName.get(r.name);
  if (!set) zone.byName.set(r.name, [r]);
  else (set as DnsRecord[]).push(r);
  zone.count++;
}

/** The next serial: one more than the last, or the time in seconds when that is higher (survives delete and re-create). */
export function nextSerial(previous: number, nowMs = Date.now()): number {
  return Math.max(previous + 1, Math.floor(nowMs / 1000));
}
