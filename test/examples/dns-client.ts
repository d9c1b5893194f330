// Test support: a small DNS client (UDP and TCP) written from RFC 1035, independent of the edge's own encoder.
import { createSocket } from 'node:dgram';
import { connect } from 'node:net';

export const QTYPE: Record<string, number> = { A: 1, NS: 2, CNAME: 5, SOA: 6, PTR: 12, MX: 15, TXT: 16, AAAA: 28, SRV: 33, OPT: 41, AXFR: 252, ANY: 255, CAA: 257 };
const TYPE_NAME = new Map(Object.entries(QTYPE).map(([k, v]) => [v, k]));

export interface Rr {
  name: string;
  type: string;
  ttl: number;
  data: string;
}

export interface DnsAnswer {
  id: number;
  aa: boolean;
  tc: boolean;
  rd: boolean;
  rcode: number;
  question: { name: string; type: number }[];
  answers: Rr[];
  authority: Rr[];
  additional: Rr[];
  size: number;
  /** Bytes of the response spent on names: compression keeps this small. */
  raw: Buffer;
}

export function encodeQuery(name: string, type: string | number, opts: { id?: number; edns?: number; rd?: boolean } = {}): Buffer {
  const parts: Buffer[] = [];
  const h = Buffer.alloc(12);
  h.writeUInt16BE(opts.id ?? 0x1234, 0);
  h.writeUInt16BE(opts.rd === false ? 0 : 0x0100, 2);
  h.writeUInt16BE(1, 4);
  h.writeUInt16BE(opts.edns ? 1 : 0, 10);
  parts.push(h);
  for (const l of name.split('.').filter((x) => x !== '')) {
    const b = Buffer.from(l, 'latin1');
    parts.push(Buffer.from([b.length]), b);
  }
  const tail = Buffer.alloc(5);
  tail.writeUInt16BE(typeof type === 'number' ? type : (QTYPE[type] ?? 0), 1);
  tail.writeUInt16BE(1, 3);
  parts.push(tail);
  if (opts.edns) {
    const opt = Buffer.alloc(11);
    opt.writeUInt16BE(41, 1);
    opt.writeUInt16BE(opts.edns, 3);
    parts.push(opt);
  }
  return Buffer.concat(parts);
}

function name(buf: Buffer, off: number): { name: string; end: number } {
  const labels: string[] = [];
  let end = -1;
  for (let hops = 0; hops < 100; hops++) {
    const len = buf[off] as number;
    if ((len & 0xc0) === 0xc0) {
      if (end < 0) end = off + 2;
      off = buf.readUInt16BE(off) & 0x3fff;
      continue;
    }
    if (len === 0) return { name: labels.join('.'), end: end < 0 ? off + 1 : end };
    labels.push(buf.toString('latin1', off + 1, off + 1 + len));
    off += 1 + len;
  }
  throw new Error('compression loop');
}

function rdata(buf: Buffer, type: string, off: number, len: number): string {
  switch (type) {
    case 'A':
      return [...buf.subarray(off, off + 4)].join('.');
    case 'AAAA': {
      const g: string[] = [];
      for (let i = 0; i < 16; i += 2) g.push(buf.readUInt16BE(off + i).toString(16));
      return g.join(':');
    }
    case 'CNAME':
    case 'NS':
    case 'PTR':
      return name(buf, off).name;
    case 'MX':
      return `${buf.readUInt16BE(off)} ${name(buf, off + 2).name}`;
    case 'SRV':
      return `${buf.readUInt16BE(off)} ${buf.readUInt16BE(off + 2)} ${buf.readUInt16BE(off + 4)} ${name(buf, off + 6).name}`;
    case 'SOA': {
      const m = name(buf, off);
      const r = name(buf, m.end);
      const nums = [0, 4, 8, 12, 16].map((i) => buf.readUInt32BE(r.end + i));
      return [m.name, r.name, ...nums].join(' ');
    }
    case 'TXT': {
      const out: string[] = [];
      for (let i = off; i < off + len; ) {
        const l = buf[i] as number;
        out.push(buf.toString('utf8', i + 1, i + 1 + l));
        i += 1 + l;
      }
      return out.join('');
    }
    default:
      return buf.subarray(off, off + len).toString('hex');
  }
}

export function decodeResponse(buf: Buffer): DnsAnswer {
  const flags = buf.readUInt16BE(2);
  const counts = [4, 6, 8, 10].map((o) => buf.readUInt16BE(o));
  let off = 12;
  const question: DnsAnswer['question'] = [];
  for (let i = 0; i < (counts[0] ?? 0); i++) {
    const n = name(buf, off);
    question.push({ name: n.name, type: buf.readUInt16BE(n.end) });
    off = n.end + 4;
  }
  const section = (count: number): Rr[] => {
    const out: Rr[] = [];
    for (let i = 0; i < count; i++) {
      const n = name(buf, off);
      const type = TYPE_NAME.get(buf.readUInt16BE(n.end)) ?? String(buf.readUInt16BE(n.end));
      const ttl = buf.readUInt32BE(n.end + 4);
      const len = buf.readUInt16BE(n.end + 8);
      out.push({ name: n.name, type, ttl, data: rdata(buf, type, n.end + 10, len) });
      off = n.end + 10 + len;
    }
    return out;
  };
  const answers = section(counts[1] ?? 0);
  const authority = section(counts[2] ?? 0);
  const additional = section(counts[3] ?? 0);
  return { id: buf.readUInt16BE(0), aa: (flags & 0x0400) !== 0, tc: (flags & 0x0200) !== 0, rd: (flags & 0x0100) !== 0, rcode: flags & 0xf, question, answers, authority, additional, size: buf.length, raw: buf };
}

/** Sends one raw message over UDP and returns the raw response (rejects after `timeoutMs`). */
export function udpExchange(host: string, port: number, msg: Buffer, timeoutMs = 2000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const s = createSocket('udp4');
    const t = setTimeout(() => {
      s.close();
      reject(new Error(`no UDP answer from ${host}:${port} in ${timeoutMs} ms`));
    }, timeoutMs);
    s.on('message', (m) => {
      clearTimeout(t);
      s.close();
      resolve(m);
    });
    s.on('error', (e) => {
      clearTimeout(t);
      s.close();
      reject(e);
    });
    s.send(msg, port, host);
  });
}

/** Sends length-prefixed messages over one TCP connection and returns the responses in order. */
export function tcpExchange(host: string, port: number, msgs: Buffer[], timeoutMs = 2000): Promise<Buffer[]> {
  return new Promise((resolve, reject) => {
    const sock = connect(port, host);
    const out: Buffer[] = [];
    let buf = Buffer.alloc(0);
    const t = setTimeout(() => {
      sock.destroy();
      reject(new Error(`no TCP answer from ${host}:${port} in ${timeoutMs} ms`));
    }, timeoutMs);
    sock.on('connect', () => {
      for (const m of msgs) {
        const len = Buffer.alloc(2);
        len.writeUInt16BE(m.length);
        sock.write(Buffer.concat([len, m]));
      }
    });
    sock.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        const l = buf.readUInt16BE(0);
        out.push(buf.subarray(2, 2 + l));
        buf = buf.subarray(2 + l);
      }
      if (out.length === msgs.length) {
        clearTimeout(t);
        sock.end();
        sock.destroy();
        resolve(out);
      }
    });
    sock.on('error', (e) => {
      clearTimeout(t);
      reject(e);
    });
  });
}

export async function queryUdp(host: string, port: number, qname: string, type: string, opts: { edns?: number } = {}): Promise<DnsAnswer> {
  return decodeResponse(await udpExchange(host, port, encodeQuery(qname, type, opts)));
}

export async function queryTcp(host: string, port: number, qname: string, type: string): Promise<DnsAnswer> {
  const [r] = await tcpExchange(host, port, [encodeQuery(qname, type)]);
  if (!r) throw new Error('no TCP answer');
  return decodeResponse(r);
}
