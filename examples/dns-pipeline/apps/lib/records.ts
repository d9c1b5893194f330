// DNS names and records: normalization and validation of the presentation format every app exchanges.
import { isIPv4, isIPv6 } from 'node:net';
import { AppError } from './app-error.ts';

export const RECORD_TYPES = ['A', 'AAAA', 'CNAME', 'TXT', 'MX', 'NS', 'SOA', 'PTR', 'SRV'] as const;
export type RecordType = (typeof RECORD_TYPES)[number];

/** A record as stored and served. Objects are never mutated once built: zones share them between versions. */
export interface DnsRecord {
  readonly name: string;
  readonly type: RecordType;
  readonly ttl: number;
  readonly data: string;
}

export const DEFAULT_TTL = 300;
export const MAX_TTL = 2_147_483_647;
/** TXT data longer than this is refused (it is sent as several 255-byte strings). */
export const MAX_TXT_BYTES = 4000;

const LABEL = /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/;

/** Why a name is not a valid absolute DNS name (lower case, no trailing dot), or undefined. */
export function nameProblem(name: string): string | undefined {
  if (name === '') return 'is empty';
  if (name.length > 253) return 'is longer than 253 characters';
  for (const label of name.split('.')) {
    if (!LABEL.test(label)) return `has an invalid label "${label}" (letters, digits, "-" and "_", 1-63 characters)`;
  }
  return undefined;
}

/** Lower case, without the trailing dot; throws INVALID_ARGUMENT when invalid. */
export function normalizeName(raw: string, what = 'name'): string {
  const name = raw.trim().toLowerCase().replace(/\.$/, '');
  const p = nameProblem(name);
  if (p) throw new AppError('INVALID_ARGUMENT', `${what} "${raw}" ${p}`);
  return name;
}

export function inZone(name: string, zone: string): boolean {
  return name === zone || name.endsWith(`.${zone}`);
}

function u16(v: string | undefined, what: string): number {
  const n = v !== undefined && /^[0-9]+$/.test(v) ? Number(v) : NaN;
  if (!(n >= 0 && n <= 65535)) throw new AppError('INVALID_ARGUMENT', `${what} must be 0-65535, not "${v ?? ''}"`);
  return n;
}

function u32(v: string | undefined, what: string): number {
  const n = v !== undefined && /^[0-9]+$/.test(v) ? Number(v) : NaN;
  if (!(n >= 0 && n <= 0xffffffff)) throw new AppError('INVALID_ARGUMENT', `${what} must be 0-4294967295, not "${v ?? ''}"`);
  return n;
}

/** The data of a record in canonical presentation form; throws INVALID_ARGUMENT when it does not fit the type. */
export function normalizeData(type: RecordType, raw: string): string {
  const data = raw.trim();
  const parts = data.split(/\s+/);
  switch (type) {
    case 'A':
      if (!isIPv4(data)) throw new AppError('INVALID_ARGUMENT', `A data must be an IPv4 address, not "${raw}"`);
      return data;
    case 'AAAA':
      if (!isIPv6(data)) throw new AppError('INVALID_ARGUMENT', `AAAA data must be an IPv6 address, not "${raw}"`);
      return data.toLowerCase();
    case 'CNAME':
    case 'NS':
    case 'PTR':
      return normalizeName(data, `${type} target`);
    case 'MX':
      if (parts.length !== 2) throw new AppError('INVALID_ARGUMENT', `MX data must be "preference exchange", not "${raw}"`);
      return `${u16(parts[0], 'MX preference')} ${normalizeName(parts[1] ?? '', 'MX exchange')}`;
    case 'SRV':
      if (parts.length !== 4) throw new AppError('INVALID_ARGUMENT', `SRV data must be "priority weight port target", not "${raw}"`);
      return `${u16(parts[0], 'SRV priority')} ${u16(parts[1], 'SRV weight')} ${u16(parts[2], 'SRV port')} ${normalizeName(parts[3] ?? '', 'SRV target')}`;
    case 'SOA': {
      if (parts.length !== 7) throw new AppError('INVALID_ARGUMENT', `SOA data must be "mname rname serial refresh retry expire minimum", not "${raw}"`);
      const [mname, rname, , ...times] = parts;
      // The serial is the zone's own: it is stored as 0 and filled in when the record is served.
      return [normalizeName(mname ?? '', 'SOA mname'), normalizeName(rname ?? '', 'SOA rname'), '0', ...times.map((t, i) => u32(t, `SOA field ${i + 4}`))].join(' ');
    }
    case 'TXT':
      if (Buffer.byteLength(data) > MAX_TXT_BYTES) throw new AppError('INVALID_ARGUMENT', `TXT data is longer than ${MAX_TXT_BYTES} bytes`);
      if (data === '') throw new AppError('INVALID_ARGUMENT', 'TXT data is empty');
      return data;
  }
}

export function recordType(raw: string): RecordType {
  const t = raw.trim().toUpperCase();
  if (!(RECORD_TYPES as readonly string[]).includes(t)) throw new AppError('INVALID_ARGUMENT', `record type "${raw}" is not one of ${RECORD_TYPES.join(', ')}`);
  return t as RecordType;
}

/** Validates a record of `zone` and returns it in canonical form (ttl 0 means the default, 300). */
export function normalizeRecord(zone: string, r: { name: string; type: string; ttl?: number; data: string }): DnsRecord {
  const name = normalizeName(r.name);
  if (!inZone(name, zone)) throw new AppError('INVALID_ARGUMENT', `record name "${name}" is not in zone ${zone}`);
  const type = recordType(r.type);
  const ttl = r.ttl === undefined || r.ttl === 0 ? DEFAULT_TTL : r.ttl;
  if (!Number.isInteger(ttl) || ttl < 0 || ttl > MAX_TTL) throw new AppError('INVALID_ARGUMENT', `ttl must be 0-${MAX_TTL}, not ${r.ttl}`);
  if (type === 'SOA' && name !== zone) throw new AppError('INVALID_ARGUMENT', `an SOA record belongs at the zone apex ${zone}, not at ${name}`);
  return { name, type, ttl, data: normalizeData(type, r.data) };
}
