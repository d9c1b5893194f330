// The cluster DNS server: UDP and TCP on one loopback address and port, answering from a resolver (ClusterDnsTable).
// It only does I/O and protocol rules (opcodes, EDNS sizes, truncation, TCP framing); every answer is the
// resolver's. It never sends a query anywhere: it answers, or refuses. Every input is bounded.
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { createServer, type Server, type Socket } from 'node:net';
import type { DnsAnswer } from './cluster-dns-table.ts';
import { decodeMessage, encodeMessage, QTYPE, RCODE, type DnsMessage } from './dns-wire.ts';
import { isLoopback } from './loopback.ts';
import { RuntimeError } from './runtime-error.ts';

export type DnsResolver = (name: string, qtype: number, clientIp: string) => DnsAnswer;

export interface ClusterDnsOptions {
  /** A loopback address (the server refuses any other). */
  host: string;
  /** 0 picks a free port (the same one for UDP and TCP). */
  port: number;
  resolver: DnsResolver;
  maxTcpConnections?: number;
  tcpIdleTimeoutMs?: number;
  /** The largest UDP answer offered to EDNS clients (RFC 9715 suggests 1232). */
  udpPayloadSize?: number;
}

const MAX_UDP_QUERY = 4096;
const CLASS_ANY = 255;

export class ClusterDnsServer {
  readonly host: string;
  port = 0;
  readonly stats = { udpQueries: 0, tcpQueries: 0, malformed: 0, refused: 0, tcpRejected: 0 };
  private udp: UdpSocket | undefined;
  private tcp: Server | undefined;
  private readonly conns = new Set<Socket>();

  private constructor(private readonly opts: ClusterDnsOptions) {
    this.host = opts.host;
  }

  static async start(opts: ClusterDnsOptions): Promise<ClusterDnsServer> {
    if (!isLoopback(opts.host)) throw new RuntimeError('DNS_BIND', `cluster DNS binds loopback addresses only, not ${opts.host}`);
    const s = new ClusterDnsServer(opts);
    // With port 0, UDP picks the port and TCP takes the same one; a clash (rare) retries with a new port.
    for (let attempt = 0; ; attempt++) {
      try {
        await s.bindUdp(opts.port);
        await s.bindTcp(s.port);
        return s;
      } catch (err) {
        await s.close();
        if (opts.port !== 0 || attempt >= 4 || (err as NodeJS.ErrnoException).code !== 'EADDRINUSE') {
          throw new RuntimeError('DNS_BIND', `cannot bind cluster DNS on ${opts.host}:${opts.port}: ${(err as Error).message}`, { cause: err });
        }
      }
    }
  }

  private bindUdp(port: number): Promise<void> {
    const sock = createSocket({ type: this.opts.host.includes(':') ? 'udp6' : 'udp4' });
    this.udp = sock;
    sock.on('message', (msg, rinfo) => {
      if (msg.length > MAX_UDP_QUERY) return;
      this.stats.udpQueries++;
      const reply = this.handle(msg, rinfo.address, 'udp');
      if (reply) sock.send(reply, rinfo.port, rinfo.address);
    });
    return new Promise((resolve, reject) => {
      sock.once('error', reject);
      sock.bind(port, this.opts.host, () => {
        sock.off('error', reject);
        sock.on('error', () => undefined);
        this.port = sock.address().port;
        resolve();
      });
    });
  }

  private bindTcp(port: number): Promise<void> {
    const server = createServer((c) => this.onConnection(c));
    this.tcp = server;
    server.maxConnections = this.opts.maxTcpConnections ?? 128;
    server.on('drop', () => this.stats.tcpRejected++);
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, this.opts.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
  }

  private onConnection(c: Socket): void {
    this.conns.add(c);
    c.setTimeout(this.opts.tcpIdleTimeoutMs ?? 10_000, () => c.destroy());
    c.on('close', () => this.conns.delete(c));
    c.on('error', () => c.destroy());
    // At most one length prefix and one message (≤ 64 KiB) are held at a time.
    let buf: Buffer = Buffer.alloc(0);
    c.on('data', (d: Buffer) => {
      buf = buf.length === 0 ? d : Buffer.concat([buf, d]);
      while (buf.length >= 2) {
        const len = buf.readUInt16BE(0);
        if (buf.length < 2 + len) break;
        const msg = buf.subarray(2, 2 + len);
        buf = buf.subarray(2 + len);
        this.stats.tcpQueries++;
        const reply = this.handle(msg, c.remoteAddress ?? '', 'tcp');
        if (!reply) {
          c.destroy();
          return;
        }
        const framed = Buffer.alloc(2 + reply.length);
        framed.writeUInt16BE(reply.length);
        reply.copy(framed, 2);
        c.write(framed);
      }
      if (buf.length > 2 + 0xffff) c.destroy();
    });
  }

  /** One query in, one reply out (undefined: drop it, as for garbage or stray responses). */
  private handle(raw: Buffer, clientIp: string, transport: 'udp' | 'tcp'): Buffer | undefined {
    let q: DnsMessage;
    try {
      q = decodeMessage(raw);
    } catch {
      this.stats.malformed++;
      if (raw.length < 12 || (raw[2] ?? 0) & 0x80) return undefined;
      return encodeMessage(this.reply({ id: raw.readUInt16BE(0), rd: ((raw[2] ?? 0) & 1) !== 0 }, RCODE.FORMERR));
    }
    if (q.qr) return undefined;
    const base = { id: q.id, rd: q.rd, questions: q.questions, ...(q.edns ? { edns: true } : {}) };
    if (q.opcode !== 0) return encodeMessage(this.reply(base, RCODE.NOTIMP));
    const question = q.questions[0];
    if (q.questions.length !== 1 || !question) return encodeMessage(this.reply(base, RCODE.FORMERR));
    if ((question.class !== 1 && question.class !== CLASS_ANY) || question.type === QTYPE.AXFR || question.type === QTYPE.IXFR) {
      this.stats.refused++;
      return encodeMessage(this.reply(base, RCODE.REFUSED));
    }
    const limit = transport === 'tcp' ? 0xffff : q.edns ? Math.min(Math.max(q.edns.udpSize, 512), this.opts.udpPayloadSize ?? 1232) : 512;
    try {
      const a = this.opts.resolver(question.name, question.type, clientIp);
      if (a.rcode === RCODE.REFUSED) this.stats.refused++;
      const msg = this.reply(base, a.rcode);
      msg.aa = a.authoritative;
      msg.answers = a.answers;
      msg.authority = a.authority;
      msg.additional = a.additional;
      return encodeMessage(msg, limit);
    } catch {
      // An answer that cannot be written (say, an ExternalName no wire name can carry) fails this query only.
      return encodeMessage(this.reply(base, RCODE.SERVFAIL), limit);
    }
  }

  private reply(q: { id: number; rd: boolean; questions?: DnsMessage['questions']; edns?: boolean }, rcode: number): DnsMessage {
    const m: DnsMessage = { id: q.id, qr: true, opcode: 0, aa: false, tc: false, rd: q.rd, ra: false, rcode, questions: q.questions ?? [], answers: [], authority: [], additional: [] };
    if (q.edns) m.edns = { udpSize: this.opts.udpPayloadSize ?? 1232 };
    return m;
  }

  async close(): Promise<void> {
    for (const c of this.conns) c.destroy();
    const udp = this.udp;
    const tcp = this.tcp;
    this.udp = undefined;
    this.tcp = undefined;
    if (udp) await new Promise<void>((r) => udp.close(() => r())).catch(() => undefined);
    if (tcp?.listening) await new Promise<void>((r) => tcp.close(() => r()));
  }
}
