// Loopback checks: Trellis servers bind only to 127.0.0.0/8 or ::1.
import { isIPv4, isIPv6 } from 'node:net';
import { CaError } from './ca-error.ts';

export function isLoopback(host: string): boolean {
  if (isIPv4(host)) return host.startsWith('127.');
  if (isIPv6(host)) return host === '::1' || host === '0:0:0:0:0:0:0:1';
  return false;
}

/** Throws CaError INVALID_ARGUMENT unless host is a loopback IP address. */
export function requireLoopback(host: string): string {
  if (!isLoopback(host)) throw new CaError('INVALID_ARGUMENT', `the CA listens only on loopback (127.0.0.1 or ::1), not ${JSON.stringify(host)}`);
  return host;
}

/** host:port as gRPC target syntax, bracketing IPv6. */
export function hostPort(host: string, port: number): string {
  return isIPv6(host) ? `[${host}]:${port}` : `${host}:${port}`;
}
