// The DNS wire format (RFC 1035, EDNS from RFC 6891): parsing queries and writing responses with name compression.

export const TYPE = { A: 1, NS: 2, CNAME: 5, SOA: 6, PTR: 12, MX: 15, TXT: 16, AAAA: 28, SRV: 33, OPT: 41, IXFR: 251, AXFR: 252, ANY: 255 } as const;
export const TYPE_NAMES = new Map<number, string>(Object.entries(TYPE).map(([k, v]) => [v, k]));
export const CLASS_IN = 1;
export const CLASS_ANY = 255;
export const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 } as const;

export const MAX_MESSAGE = 65535;

export interface Question {
  /** Lower case, dot-joined, no trailing dot ("" is the root). */
  name: string;
  /** The labels as the client wrote them (case kept, for the echoed question). */
  rawLabels: Buffer[];
  type: number;
  class: number;
}

export interface Query {
  id: number;
  opcode: number;
  rd: boolean;
  cd: boolean;
  question?: Question;
  /** The EDNS OPT record, when the client sent one. */
  edns?: { udpSize: number; version: number; dnssecOk: boolean };
}

export class WireError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'WireError';
  }
}

/** Reads a possibly compressed name; returns its labels and the offset after it where it was written. */
export function readName(buf: Buffer, start: number): { labels: Buffer[]; end: number } {
  const labels: Buffer[] = [];
  let off = start;
  let end = -1;
  let length = 0;
  for (let jumps = 0; ; ) {
    if (off >= buf.length) throw new WireError('name runs past the message');
    const len = buf[off] as number;
    if ((len & 0xc0) === 0xc0) {
      if (off + 1 >= buf.length) throw new WireError('truncated compression pointer');
      const target = ((len & 0x3f) << 8) | (buf[off + 1] as number);
      if (end < 0) end = off + 2;
      // Pointers go backwards only, so a name cannot loop.
      if (target >= off || ++jumps > 64) throw new WireError('bad compression pointer');
      off = target;
      continue;
    }
    if ((len & 0xc0) !== 0) throw new WireError('unknown label type');
    if (len === 0) {
      if (end < 0) end = off + 1;
      return { labels, end };
    }
    if (off + 1 + len > buf.length) throw new WireError('label runs past the message');
    length += len + 1;
    if (length > 254) throw new WireError('name longer than 255 octets');
    labels.push(buf.subarray(off + 1, off + 1 + len));
    off += 1 + len;
  }
}

/** Skips one resource record; returns its type, class, ttl and where its data is. */
function readRr(buf: Buffer, off: number): { nameLen: number; type: number; cls: number; ttl: number; end: number } {
  const n = readName(buf, off);
  if (n.end + 10 > buf.length) throw new WireError('record runs past the message');
  const type = buf.readUInt16BE(n.end);
  const cls = buf.readUInt16BE(n.end + 2);
  const ttl = buf.readUInt32BE(n.end + 4);
  const rdlen = buf.readUInt16BE(n.end + 8);
  const end = n.end + 10 + rdlen;
  if (end > buf.length) throw new WireError('record data runs past the message');
  return { nameLen: n.labels.length, type, cls, ttl, end };
}

/**
 * Parses a query. Returns undefined for what must get no answer at all (too short to carry an ID, or a response);
 * throws WireError (answered with FORMERR, when `id` could be read) for anything else malformed.
 */
export function parseQuery(buf: Buffer): Query | undefined {
  if (buf.length < 12) return undefined;
  const flags = buf.readUInt16BE(2);
  if (flags & 0x8000) return undefined;
  const q: Query = { id: buf.readUInt16BE(0), opcode: (flags >> 11) & 0xf, rd: (flags & 0x0100) !== 0, cd: (flags & 0x0010) !== 0 };
  const qd = buf.readUInt16BE(4);
  const an = buf.readUInt16BE(6);
  const ns = buf.readUInt16BE(8);
  const ar = buf.readUInt16BE(10);
  if (qd !== 1) throw new QueryError(q, `expected one question, got ${qd}`);
  try {
    const n = readName(buf, 12);
    if (n.end + 4 > buf.length) throw new WireError('question runs past the message');
    const name = n.labels.map((l) => l.toString('latin1').toLowerCase());
    if (name.some((l) => l.includes('.'))) throw new WireError('a label holds a dot');
    q.question = { name: name.join('.'), rawLabels: n.labels, type: buf.readUInt16BE(n.end), class: buf.readUInt16BE(n.end + 2) };
    let off = n.end + 4;
    for (let i = 0; i < an + ns; i++) off = readRr(buf, off).end;
    for (let i = 0; i < ar; i++) {
      const rr = readRr(buf, off);
      if (rr.type === TYPE.OPT) {
        if (q.edns || rr.nameLen !== 0) throw new WireError('bad OPT record');
        q.edns = { udpSize: Math.max(512, rr.cls), version: (rr.ttl >>> 16) & 0xff, dnssecOk: (rr.ttl & 0x8000) !== 0 };
      }
      off = rr.end;
    }
  } catch (e) {
    if (e instanceof WireError) throw new QueryError(q, e.message);
    throw e;
  }
  return q;
}

/** A malformed query whose header could be read: it gets FORMERR. */
export class QueryError extends WireError {
  constructor(
    readonly query: Query,
    message: string,
  ) {
    super(message);
  }
}

/** Writes a message into a buffer of at most `limit` bytes; writing past it throws Overflow. */
export class MessageWriter {
  private buf: Buffer;
  private len = 0;
  private readonly names = new Map<string, number>();

  constructor(private readonly limit: number = MAX_MESSAGE) {
    this.buf = Buffer.alloc(Math.min(512, limit));
  }

  get length(): number {
    return this.len;
  }

  private room(n: number): void {
    if (this.len + n > this.limit) throw new Overflow();
    if (this.len + n <= this.buf.length) return;
    const next = Buffer.alloc(Math.min(this.limit, Math.max(this.buf.length * 2, this.len + n)));
    this.buf.copy(next, 0, 0, this.len);
    this.buf = next;
  }

  u8(v: number): void {
    this.room(1);
    this.buf[this.len++] = v;
  }

  u16(v: number): void {
    this.room(2);
    this.buf.writeUInt16BE(v, this.len);
    this.len += 2;
  }

  u32(v: number): void {
    this.room(4);
    this.buf.writeUInt32BE(v >>> 0, this.len);
    this.len += 4;
  }

  bytes(b: Uint8Array): void {
    this.room(b.length);
    this.buf.set(b, this.len);
    this.len += b.length;
  }

  setU16(at: number, v: number): void {
    this.buf.writeUInt16BE(v, at);
  }

  /**
   * Writes a name given as labels (`raw` keeps the client's case); with `compress`, reuses a suffix written
   * before (a pointer), and offers its own suffixes to later names.
   */
  name(labels: readonly string[], compress = true, raw?: readonly Buffer[]): void {
    for (let i = 0; i < labels.length; i++) {
      const key = labels.slice(i).join('.');
      const at = compress ? this.names.get(key) : undefined;
      if (at !== undefined) {
        this.u16(0xc000 | at);
        return;
      }
      if (this.len < 0x3fff && !this.names.has(key)) this.names.set(key, this.len);
      const label = raw?.[i] ?? Buffer.from(labels[i] ?? '', 'latin1');
      this.u8(label.length);
      this.bytes(label);
    }
    this.u8(0);
  }

  done(): Buffer {
    return Buffer.from(this.buf.subarray(0, this.len));
  }
}

export class Overflow extends Error {
  constructor() {
    super('message too large');
    this.name = 'Overflow';
  }
}

/** Parses an IPv6 address (with "::" and a trailing dotted IPv4) into 16 bytes. */
export function ipv6Bytes(text: string): Buffer {
  const out = Buffer.alloc(16);
  let s = text;
  const tail: number[] = [];
  const dot = s.lastIndexOf(':');
  if (s.includes('.')) {
    for (const p of s.slice(dot + 1).split('.')) tail.push(Number(p));
    s = `${s.slice(0, dot + 1)}0:0`;
  }
  const [head, rest] = s.includes('::') ? (s.split('::') as [string, string]) : [s, undefined];
  const a = head === '' ? [] : head.split(':');
  const b = rest === undefined || rest === '' ? [] : rest.split(':');
  const groups = rest === undefined ? a : [...a, ...Array<string>(8 - a.length - b.length).fill('0'), ...b];
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2));
  if (tail.length === 4) Buffer.from(tail).copy(out, 12);
  return out;
}
