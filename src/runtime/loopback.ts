// Loopback checks: the local runtime only ever sends traffic to 127.0.0.0/8 and ::1.
import { isIP } from 'node:net';

export function isLoopback(ip: string): boolean {
  const v = isIP(ip);
  if (v === 4) return ip.startsWith('127.');
  if (v === 6) {
    const low = ip.toLowerCase();
    if (low === '::1' || low === '0:0:0:0:0:0:0:1') return true;
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(low);
    return mapped !== null && (mapped[1] ?? '').startsWith('127.');
  }
  return false;
}
