// DNS messages on the wire (RFC 1035, EDNS0 from RFC 6891): a bounded decoder and an encoder with name compression.
import { isIP } from 'node:net';
import { formatIp, parseIp } from '../resources/net.ts';
import { RuntimeError } from './runtime-error.ts';

export const QTYPE = { A: 1, NS: 2, CNAME: 5, SOA: 6, PTR: 12, TXT: 16, AAAA: 28, SRV: 33, OPT: 41, IXFR: 251, AXFR: 252, ANY: 255 } as const;
export const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 } as const;
export const CLASS_IN = 1;
const MAX_NAME = 255;
const MAX_POINTERS = 32;
const MAX_RECORDS = 1024;

export type RecordData =
  | { type: 'A' | 'AAAA'; address: string }
  | { type: 'CNAME' | 'PTR' | 'NS'; target: string }
  | { type: 'SRV'; priority: number; weight: number; port: number; target: string }
  | { type: 'SOA'; mname: string; rname: string; serial: number; refresh: number; retry: number; expire: number; minimum: number }
  | { type: 'raw'; bytes: Uint8Array };

export interface ResourceRecord {
  /** Without the trailing dot; the root is ''. */
  name: string;
  type: number;
  class: number;
  ttl: number;
  data: RecordData;
}

export interface Question {
  name: string;
  type: number;
  class: number;
}

export interface DnsMessage {
  id: number;
  qr: boolean;
  opcode: number;
  aa: boolean;
  tc: boolean;
  rd: boolean;
  ra: boolean;
  rcode: number;
  questions: Question[];
  answers: ResourceRecord[];
  authority: ResourceRecord[];
  /** Without the OPT record, which is `edns`. */
  additional: ResourceRecord[];
  edns?: { udpSize: number };
}

function bad(message: string): RuntimeError {
  return new RuntimeError('DNS_MESSAGE', message);
}

/** Label bytes as text: `.` and `\` escaped, bytes outside printable ASCII as `\DDD` (RFC 4343). */
function labelText(b: Uint8Array): string {
  let s = '';
  for (const c of b) {
    if (c === 0x2e || c === 0x5c) s += `\\${String.fromCharCode(c)}`;
    else if (c > 0x20 && c < 0x7f) s += String.fromCharCode(c);
    else s += `\\${String(c).padStart(3, '0')}`;
  }
  return s;
}

function readName(buf: Buffer, start: number): { name: string; next: number } {
  const labels: string[] = [];
  let pos = start;
  let next = -1;
  let length = 1;
  let jumps = 0;
  for (;;) {
    const len = buf[pos];
    if (len === undefined) throw bad('name runs past the message');
    if (len === 0) {
      if (next < 0) next = pos + 1;
      break;
    }
    if ((len & 0xc0) === 0xc0) {
      const low = buf[pos + 1];
      if (low === undefined) throw bad('truncated compression pointer');
      const target = ((len & 0x3f) << 8) | low;
      // Pointers must go backwards, and not too many of them: no loops.
      if (target >= pos || ++jumps > MAX_POINTERS) throw bad('bad compression pointer');
      if (next < 0) next = pos + 2;
      pos = target;
      continue;
    }
    if ((len & 0xc0) !== 0) throw bad('unsupported label type');
    length += len + 1;
    if (length > MAX_NAME) throw bad('name longer than 255 bytes');
    if (pos + 1 + len > buf.length) throw bad('label runs past the message');
    labels.push(labelText(buf.subarray(pos + 1, pos + 1 + len)));
    pos += 1 + len;
  }
  return { name: labels.join('.'), next };
}

function readRecord(buf: Buffer, start: number): { rr: ResourceRecord; next: number; optSize?: number } {
  const { name, next } = readName(buf, start);
  if (next + 10 > buf.length) throw bad('truncated record header');
  const type = buf.readUInt16BE(next);
  const cls = buf.readUInt16BE(next + 2);
  const ttl = buf.readUInt32BE(next + 4);
  const rdlen = buf.readUInt16BE(next + 8);
  const rd = next + 10;
  if (rd + rdlen > buf.length) throw bad('record data runs past the message');
  const raw = buf.subarray(rd, rd + rdlen);
  let data: RecordData = { type: 'raw', bytes: new Uint8Array(raw) };
  const nameAt = (o: number): string => readName(buf, o).name;
  if (type === QTYPE.A && rdlen === 4) data = { type: 'A', address: formatIp(raw) };
  else if (type === QTYPE.AAAA && rdlen === 16) data = { type: 'AAAA', address: formatIp(raw) };
  else if (type === QTYPE.CNAME || type === QTYPE.PTR || type === QTYPE.NS) data = { type: type === QTYPE.CNAME ? 'CNAME' : type === QTYPE.PTR ? 'PTR' : 'NS', target: nameAt(rd) };
  else if (type === QTYPE.SRV && rdlen >= 7) data = { type: 'SRV', priority: raw.readUInt16BE(0), weight: raw.readUInt16BE(2), port: raw.readUInt16BE(4), target: nameAt(rd + 6) };
  else if (type === QTYPE.SOA) {
    const m = readName(buf, rd);
    const r = readName(buf, m.next);
    if (r.next + 20 > rd + rdlen) throw bad('truncated SOA');
    const n = (i: number): number => buf.readUInt32BE(r.next + i * 4);
    data = { type: 'SOA', mname: m.name, rname: r.name, serial: n(0), refresh: n(1), retry: n(2), expire: n(3), minimum: n(4) };
  }
  const out: { rr: ResourceRecord; next: number; optSize?: number } = { rr: { name, type, class: cls, ttl, data }, next: rd + rdlen };
  if (type === QTYPE.OPT) out.optSize = cls;
  return out;
}

/** Decodes a whole message; throws RuntimeError DNS_MESSAGE on anything malformed. */
export function decodeMessage(buf: Buffer): DnsMessage {
  if (buf.length < 12) throw bad('shorter than a DNS header');
  const flags = buf.readUInt16BE(2);
  const counts = [4, 6, 8, 10].map((o) => buf.readUInt16BE(o)) as [number, number, number, number];
  if (counts[0] + counts[1] + counts[2] + counts[3] > MAX_RECORDS) throw bad('too many records');
  const msg: DnsMessage = {
    id: buf.readUInt16BE(0),
    qr: (flags & 0x8000) !== 0,
    opcode: (flags >> 11) & 0xf,
    aa: (flags & 0x0400) !== 0,
    tc: (flags & 0x0200) !== 0,
    rd: (flags & 0x0100) !== 0,
    ra: (flags & 0x0080) !== 0,
    rcode: flags & 0xf,
    questions: [],
    answers: [],
    authority: [],
    additional: [],
  };
  let pos = 12;
  for (let i = 0; i < counts[0]; i++) {
    const { name, next } = readName(buf, pos);
    if (next + 4 > buf.length) throw bad('truncated question');
    msg.questions.push({ name, type: buf.readUInt16BE(next), class: buf.readUInt16BE(next + 2) });
    pos = next + 4;
  }
  const sections = [msg.answers, msg.authority, msg.additional];
  for (let s = 0; s < 3; s++) {
    for (let i = 0; i < (counts[s + 1] ?? 0); i++) {
      const r = readRecord(buf, pos);
      pos = r.next;
      if (r.optSize !== undefined) {
        if (s !== 2 || msg.edns) throw bad('misplaced or repeated OPT record');
        msg.edns = { udpSize: r.optSize };
      } else sections[s]?.push(r.rr);
    }
  }
  return msg;
}

/** Writes names with compression against every suffix written so far. */
class Writer {
  private chunks: Buffer[] = [];
  length = 0;
  private readonly offsets = new Map<string, number>();

  bytes(b: Buffer): void {
    this.chunks.push(b);
    this.length += b.length;
  }

  u16(n: number): void {
    const b = Buffer.alloc(2);
    b.writeUInt16BE(n & 0xffff);
    this.bytes(b);
  }

  u32(n: number): void {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(n >>> 0);
    this.bytes(b);
  }

  name(name: string): void {
    const labels = splitName(name);
    for (let i = 0; i < labels.length; i++) {
      // Case-sensitive: a pointer never changes how a name is spelled.
      const key = labels.slice(i).map((l) => `${l.length}:${l.toString('latin1')}`).join('');
      const at = this.offsets.get(key);
      if (at !== undefined) {
        this.u16(0xc000 | at);
        return;
      }
      if (this.length < 0x3fff) this.offsets.set(key, this.length);
      const l = labels[i] as Buffer;
      this.bytes(Buffer.concat([Buffer.from([l.length]), l]));
    }
    this.bytes(Buffer.from([0]));
  }

  toBuffer(): Buffer {
    return Buffer.concat(this.chunks, this.length);
  }
}

/** Text name to label bytes (undoing labelText's escapes); throws on names the wire cannot carry. */
function splitName(name: string): Buffer[] {
  if (name === '' || name === '.') return [];
  const out: Buffer[] = [];
  let cur: number[] = [];
  let total = 1;
  const end = (): void => {
    if (cur.length === 0 || cur.length > 63) throw bad(`bad label in ${name}`);
    total += cur.length + 1;
    out.push(Buffer.from(cur));
    cur = [];
  };
  for (let i = 0; i < name.length; i++) {
    const ch = name[i] as string;
    if (ch === '.') end();
    else if (ch === '\\') {
      const dec = /^[0-9]{3}/.exec(name.slice(i + 1));
      if (dec) {
        cur.push(Number(dec[0]) & 0xff);
        i += 3;
      } else cur.push(name.charCodeAt(++i) & 0xff);
    } else cur.push(name.charCodeAt(i) & 0xff);
  }
  if (cur.length > 0 || !name.endsWith('.')) end();
  if (total > MAX_NAME) throw bad(`name longer than 255 bytes: ${name.slice(0, 40)}…`);
  return out;
}

function writeRecord(w: Writer, rr: ResourceRecord): void {
  w.name(rr.name);
  w.u16(rr.type);
  w.u16(rr.class);
  w.u32(rr.ttl);
  const lenBuf = Buffer.alloc(2); // filled in once the data is written
  w.bytes(lenBuf);
  const before = w.length;
  const d = rr.data;
  switch (d.type) {
    case 'A':
    case 'AAAA': {
      const ip = isIP(d.address) ? parseIp(d.address) : undefined;
      if (!ip || ip.length !== (d.type === 'A' ? 4 : 16)) throw bad(`bad ${d.type} address ${d.address}`);
      w.bytes(Buffer.from(ip));
      break;
    }
    case 'CNAME':
    case 'PTR':
    case 'NS':
      w.name(d.target);
      break;
    case 'SRV':
      w.u16(d.priority);
      w.u16(d.weight);
      w.u16(d.port);
      w.name(d.target);
      break;
    case 'SOA':
      w.name(d.mname);
      w.name(d.rname);
      for (const n of [d.serial, d.refresh, d.retry, d.expire, d.minimum]) w.u32(n);
      break;
    default:
      w.bytes(Buffer.from(d.bytes));
  }
  const len = w.length - before;
  if (len > 0xffff) throw bad('record data too long');
  lenBuf.writeUInt16BE(len);
}

/** A message too big for `maxSize` goes out as its header and questions with TC set (RFC 2181 §9). */
export function encodeMessage(msg: DnsMessage, maxSize = 65535): Buffer {
  const full = encode(msg, false);
  if (full.length <= maxSize) return full;
  return encode(msg, true);
}

function encode(msg: DnsMessage, truncate: boolean): Buffer {
  const w = new Writer();
  w.u16(msg.id);
  const tc = msg.tc || truncate;
  w.u16((msg.qr ? 0x8000 : 0) | ((msg.opcode & 0xf) << 11) | (msg.aa ? 0x0400 : 0) | (tc ? 0x0200 : 0) | (msg.rd ? 0x0100 : 0) | (msg.ra ? 0x0080 : 0) | (msg.rcode & 0xf));
  const answers = truncate ? [] : msg.answers;
  const authority = truncate ? [] : msg.authority;
  const additional = truncate ? [] : msg.additional;
  w.u16(msg.questions.length);
  w.u16(answers.length);
  w.u16(authority.length);
  w.u16(additional.length + (msg.edns ? 1 : 0));
  for (const q of msg.questions) {
    w.name(q.name);
    w.u16(q.type);
    w.u16(q.class);
  }
  for (const rr of [...answers, ...authority, ...additional]) writeRecord(w, rr);
  if (msg.edns) {
    w.bytes(Buffer.from([0]));
    w.u16(QTYPE.OPT);
    w.u16(msg.edns.udpSize);
    w.u32(0);
    w.u16(0);
  }
  return w.toBuffer();
}
