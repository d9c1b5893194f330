// Answers one DNS message: parse, look up, encode. Over UDP a response larger than the client can take
// (512 bytes without EDNS) is cut to the question with the TC bit, so the client retries over TCP.
import { isIPv4 } from 'node:net';
import type { DnsRecord } from '../lib/records.ts';
import { CLASS_ANY, CLASS_IN, ipv6Bytes, MAX_MESSAGE, MessageWriter, Overflow, parseQuery, QueryError, RCODE, TYPE, type Query } from './dns-wire.ts';
import type { LookupResult, ZoneTable } from './zone-table.ts';

/** The UDP payload size this server offers in its own OPT record. */
export const EDNS_UDP_SIZE = 1232;

export type Transport = 'udp' | 'tcp';

export interface ResponseStats {
  rcode: number;
  truncated: boolean;
}

const labelsOf = (name: string): string[] => (name === '' ? [] : name.split('.'));

function writeRdata(w: MessageWriter, r: DnsRecord): void {
  const p = r.data.split(' ');
  switch (r.type) {
    case 'A':
      if (!isIPv4(r.data)) throw new Error(`bad A data ${r.data}`);
      w.bytes(Uint8Array.from(r.data.split('.').map(Number)));
      return;
    case 'AAAA':
      w.bytes(ipv6Bytes(r.data));
      return;
    case 'CNAME':
    case 'NS':
    case 'PTR':
      w.name(labelsOf(r.data));
      return;
    case 'MX':
      w.u16(Number(p[0]));
      w.name(labelsOf(p[1] ?? ''));
      return;
    case 'SRV':
      w.u16(Number(p[0]));
      w.u16(Number(p[1]));
      w.u16(Number(p[2]));
      w.name(labelsOf(p[3] ?? ''), false); // RFC 2782: the target is not compressed
      return;
    case 'SOA':
      w.name(labelsOf(p[0] ?? ''));
      w.name(labelsOf(p[1] ?? ''));
      for (let i = 2; i < 7; i++) w.u32(Number(p[i]));
      return;
    case 'TXT': {
      const bytes = Buffer.from(r.data, 'utf8');
      for (let i = 0; i < bytes.length; i += 255) {
        const chunk = bytes.subarray(i, i + 255);
        w.u8(chunk.length);
        w.bytes(chunk);
      }
      return;
    }
  }
}

function writeRr(w: MessageWriter, r: DnsRecord): void {
  w.name(labelsOf(r.name));
  w.u16(TYPE[r.type]);
  w.u16(CLASS_IN);
  w.u32(r.ttl);
  const at = w.length;
  w.u16(0);
  writeRdata(w, r);
  w.setU16(at, w.length - at - 2);
}

function encode(q: Query, rcode: number, result: LookupResult | undefined, limit: number, truncate: boolean): Buffer {
  const w = new MessageWriter(limit);
  w.u16(q.id);
  const aa = result?.authoritative ?? false;
  w.u16(0x8000 | (q.opcode << 11) | (aa ? 0x0400 : 0) | (truncate ? 0x0200 : 0) | (q.rd ? 0x0100 : 0) | (q.cd ? 0x0010 : 0) | (rcode & 0xf));
  const answers = truncate ? [] : (result?.answers ?? []);
  const authority = truncate ? [] : (result?.authority ?? []);
  w.u16(q.question ? 1 : 0);
  w.u16(answers.length);
  w.u16(authority.length);
  w.u16(q.edns ? 1 : 0);
  if (q.question) {
    w.name(labelsOf(q.question.name), true, q.question.rawLabels);
    w.u16(q.question.type);
    w.u16(q.question.class);
  }
  for (const r of answers) writeRr(w, r);
  for (const r of authority) writeRr(w, r);
  if (q.edns) {
    w.u8(0); // root
    w.u16(TYPE.OPT);
    w.u16(EDNS_UDP_SIZE);
    w.u32(0); // extended rcode 0, version 0, no flags
    w.u16(0);
  }
  return w.done();
}

/** The response to one message, or undefined when it gets none. */
export function respond(msg: Buffer, transport: Transport, table: ZoneTable, stats?: (s: ResponseStats) => void): Buffer | undefined {
  let q: Query | undefined;
  try {
    q = parseQuery(msg);
  } catch (e) {
    if (!(e instanceof QueryError)) return undefined;
    const out = encode({ ...e.query, question: undefined, edns: undefined }, RCODE.FORMERR, undefined, 512, false);
    stats?.({ rcode: RCODE.FORMERR, truncated: false });
    return out;
  }
  if (!q) return undefined;
  let rcode: number = RCODE.NOERROR;
  let result: LookupResult | undefined;
  const qq = q.question;
  if (q.opcode !== 0) rcode = RCODE.NOTIMP;
  else if (!qq || (qq.class !== CLASS_IN && qq.class !== CLASS_ANY)) rcode = RCODE.REFUSED;
  else if (qq.type === TYPE.AXFR || qq.type === TYPE.IXFR || qq.type === TYPE.OPT) rcode = RCODE.REFUSED; // zones arrive by PushZone
  else {
    result = table.lookup(qq.name, qq.type);
    rcode = result.rcode;
  }
  const limit = transport === 'tcp' ? MAX_MESSAGE : q.edns ? Math.min(q.edns.udpSize, EDNS_UDP_SIZE) : 512;
  let out: Buffer;
  let truncated = false;
  try {
    out = encode(q, rcode, result, limit, false);
  } catch (e) {
    if (!(e instanceof Overflow)) throw e;
    truncated = true;
    out = encode(q, rcode, result, limit, true);
  }
  stats?.({ rcode, truncated });
  return out;
}
