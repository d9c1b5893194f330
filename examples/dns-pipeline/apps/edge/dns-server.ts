// The edge's authoritative DNS server over UDP and TCP (RFC 1035 §4.2: TCP messages carry a 2-byte length).
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { createServer, isIPv6, type Server, type Socket } from 'node:net';
import type { Logger } from '../lib/log.ts';
import { respond, type ResponseStats } from './dns-response.ts';
import type { ZoneTable } from './zone-table.ts';

export interface DnsServerOptions {
  host: string;
  port: number;
  table: ZoneTable;
  log: Logger;
  maxTcpConnections: number;
  /** A TCP connection with no complete query for this long is closed. */
  tcpIdleMs: number;
}

export interface DnsServer {
  port: number;
  stats: { udp: number; tcp: number; byRcode: Record<number, number>; truncated: number };
  close(): Promise<void>;
}

/** UDP queries larger than this are dropped (EDNS clients rarely send more than a few hundred bytes). */
const MAX_UDP_QUERY = 4096;

export async function startDnsServer(o: DnsServerOptions): Promise<DnsServer> {
  const stats: DnsServer['stats'] = { udp: 0, tcp: 0, byRcode: {}, truncated: 0 };
  const count = (s: ResponseStats): void => {
    stats.byRcode[s.rcode] = (stats.byRcode[s.rcode] ?? 0) + 1;
    if (s.truncated) stats.truncated++;
  };
  const answer = (msg: Buffer, transport: 'udp' | 'tcp'): Buffer | undefined => {
    try {
      return respond(msg, transport, o.table, count);
    } catch (e) {
      o.log.error('cannot answer a query', { transport, error: (e as Error).message });
      return undefined;
    }
  };

  const tcp: Server = createServer((sock) => serveTcp(sock, o, answer, stats));
  tcp.maxConnections = o.maxTcpConnections;
  await new Promise<void>((resolve, reject) => {
    tcp.once('error', reject);
    tcp.listen(o.port, o.host, () => {
      tcp.off('error', reject);
      resolve();
    });
  });
  const port = (tcp.address() as { port: number }).port;

  const udp: UdpSocket = createSocket({ type: isIPv6(o.host) ? 'udp6' : 'udp4' });
  udp.on('message', (msg, rinfo) => {
    if (msg.length > MAX_UDP_QUERY) return;
    stats.udp++;
    const out = answer(msg, 'udp');
    if (out) udp.send(out, rinfo.port, rinfo.address);
  });
  udp.on('error', (e) => o.log.error('UDP socket error', { error: e.message }));
  try {
    await new Promise<void>((resolve, reject) => {
      udp.once('error', reject);
      udp.bind(port, o.host, () => {
        udp.off('error', reject);
        resolve();
      });
    });
  } catch (e) {
    tcp.close();
    throw e;
  }
  const sockets = new Set<Socket>();
  tcp.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  return {
    port,
    stats,
    close: async () => {
      await new Promise<void>((resolve) => udp.close(() => resolve()));
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => tcp.close(() => resolve()));
    },
  };
}

/** Reads length-prefixed queries one after another. While the client does not read its answers, reading stops. */
function serveTcp(sock: Socket, o: DnsServerOptions, answer: (msg: Buffer, t: 'tcp') => Buffer | undefined, stats: DnsServer['stats']): void {
  let pending: Buffer = Buffer.alloc(0);
  let blocked = false;
  sock.setTimeout(o.tcpIdleMs, () => sock.destroy());
  sock.on('error', () => sock.destroy());
  const work = (): void => {
    while (!blocked && pending.length >= 2) {
      const len = pending.readUInt16BE(0);
      if (pending.length < 2 + len) return;
      const msg = pending.subarray(2, 2 + len);
      pending = pending.subarray(2 + len);
      stats.tcp++;
      const out = answer(msg, 'tcp');
      if (!out) {
        sock.destroy();
        return;
      }
      const frame = Buffer.alloc(2 + out.length);
      frame.writeUInt16BE(out.length, 0);
      out.copy(frame, 2);
      if (!sock.write(frame)) {
        blocked = true;
        sock.pause();
        sock.once('drain', () => {
          blocked = false;
          sock.resume();
          work();
        });
      }
    }
  };
  sock.on('data', (chunk: Buffer) => {
    // At most one partial message (and the rest of one read) is ever held.
    pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
    work();
  });
}
