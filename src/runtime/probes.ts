// One prober per probe kind, as the kubelet runs them: httpGet (2xx/3xx), tcpSocket (connect), grpc
// (grpc.health.v1.Health/Check over plaintext HTTP/2) and exec (exit 0), each bounded by the probe's timeout.
// Probes only go to loopback addresses: a probe that names another host fails without sending anything.
import { spawn } from 'node:child_process';
import * as http from 'node:http';
import * as https from 'node:https';
import { connect, isIP } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import type { ContainerPort } from '../resources/kinds.ts';
import type { ProbeHandler } from '../resources/kinds-container.ts';
import { isLoopback } from './loopback.ts';

export interface ProbeOutcome {
  result: 'success' | 'failure';
  message: string;
}

export interface ProbeTarget {
  /** Where the app listens (the pod's app address in loopback mode). */
  host: string;
  /** The container's ports, for probes that name a port. */
  ports: readonly ContainerPort[];
  /** exec: the container's environment and working directory. */
  env?: Readonly<Record<string, string>>;
  cwd?: string;
}

export const PROBE_USER_AGENT = 'kube-probe/1.31';
/** The kubelet reads at most this much of a probe's HTTP body or exec output. */
export const MAX_PROBE_OUTPUT = 10 * 1024;
const MAX_REDIRECTS = 10;

const ok = (message: string): ProbeOutcome => ({ result: 'success', message });
const fail = (message: string): ProbeOutcome => ({ result: 'failure', message });

function resolvePort(port: number | string, target: ProbeTarget): number | undefined {
  if (typeof port === 'number') return port;
  return target.ports.find((p) => p.name === port && p.protocol === 'TCP')?.containerPort;
}

function probeHost(host: string | undefined, target: ProbeTarget): string | undefined {
  const h = host === undefined || host === '' ? target.host : host === 'localhost' ? '127.0.0.1' : host;
  return isIP(h) !== 0 && isLoopback(h) ? h : undefined;
}

export async function runProbe(handler: ProbeHandler, target: ProbeTarget, timeoutMs: number): Promise<ProbeOutcome> {
  if (handler.type === 'exec') return execProbe(handler.command, target, timeoutMs);
  const port = resolvePort(handler.port, target);
  if (port === undefined) return fail(`no TCP port named "${String(handler.port)}" in the container`);
  const host = probeHost(handler.type === 'grpc' ? undefined : handler.host, target);
  if (host === undefined) return fail(`probe host ${handler.type !== 'grpc' ? (handler.host ?? '') : ''} is not a loopback address: not probed`);
  switch (handler.type) {
    case 'tcpSocket':
      return tcpProbe(host, port, timeoutMs);
    case 'grpc':
      return grpcProbe(host, port, handler.service ?? '', timeoutMs);
    default:
      return httpProbe(handler, host, port, timeoutMs);
  }
}

function tcpProbe(host: string, port: number, timeoutMs: number): Promise<ProbeOutcome> {
  return new Promise((resolve) => {
    const s = connect({ host, port });
    const timer = setTimeout(() => {
      s.destroy();
      resolve(fail(`dial tcp ${host}:${port}: i/o timeout`));
    }, timeoutMs);
    s.once('connect', () => {
      clearTimeout(timer);
      s.destroy();
      resolve(ok(''));
    });
    s.once('error', (e) => {
      clearTimeout(timer);
      resolve(fail(`dial tcp ${host}:${port}: ${e.message}`));
    });
  });
}

function httpProbe(h: Extract<ProbeHandler, { type: 'httpGet' }>, host: string, port: number, timeoutMs: number): Promise<ProbeOutcome> {
  const headers: Record<string, string> = { 'user-agent': PROBE_USER_AGENT, accept: '*/*', connection: 'close' };
  for (const { name, value } of h.httpHeaders) headers[name.toLowerCase()] = value;
  const deadline = Date.now() + timeoutMs;
  const hostPort = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
  const start = new URL(`${h.scheme.toLowerCase()}://${hostPort}${h.path.startsWith('/') ? h.path : `/${h.path}`}`);
  const attempt = (url: URL, redirects: number): Promise<ProbeOutcome> =>
    new Promise((resolve) => {
      const left = deadline - Date.now();
      if (left <= 0) return resolve(fail(`Get "${url.href}": timeout`));
      const mod = url.protocol === 'https:' ? https : http;
      const req = mod.request(url, { method: 'GET', headers, agent: false, timeout: left, rejectUnauthorized: false }, (res) => {
        let body = '';
        let finished = false;
        // Judged on the status once the body ends or reaches the read limit (the rest is not read).
        const finish = (): void => {
          if (finished) return;
          finished = true;
          clearTimeout(timer);
          req.destroy();
          const code = res.statusCode ?? 0;
          const location = res.headers.location;
          if (code >= 300 && code < 400 && location !== undefined) {
            let next: URL;
            try {
              next = new URL(location, url);
            } catch {
              return resolve(ok(`probe got a redirect it cannot follow: ${location}`));
            }
            // The kubelet follows redirects on the same host only; another host ends the probe as a success.
            if (next.hostname !== url.hostname || (next.protocol !== 'http:' && next.protocol !== 'https:')) return resolve(ok(`probe terminated redirects to ${next.href}`));
            if (redirects >= MAX_REDIRECTS) return resolve(fail(`Get "${url.href}": stopped after ${MAX_REDIRECTS} redirects`));
            return resolve(attempt(next, redirects + 1));
          }
          if (code >= 200 && code < 400) resolve(ok(body));
          else resolve(fail(`HTTP probe failed with statuscode: ${code}`));
        };
        res.setEncoding('utf8');
        res.on('data', (d: string) => {
          body += d.slice(0, MAX_PROBE_OUTPUT - body.length);
          if (body.length >= MAX_PROBE_OUTPUT) finish();
        });
        res.on('error', () => {
          if (!finished) resolve(fail(`Get "${url.href}": response aborted`));
        });
        res.on('end', finish);
      });
      // The socket timeout covers idle time; this covers the whole exchange.
      const timer = setTimeout(() => req.destroy(new Error('timeout')), left);
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', (e) => {
        clearTimeout(timer);
        resolve(fail(`Get "${url.href}": ${e.message}`));
      });
      req.end();
    });
  return attempt(start, 0);
}

/** grpc.health.v1.HealthCheckRequest { string service = 1; }, encoded by hand. */
function encodeHealthRequest(service: string): Buffer {
  const s = Buffer.from(service, 'utf8');
  if (s.length === 0) return Buffer.alloc(0);
  const len: number[] = [];
  let n = s.length;
  while (n > 0x7f) {
    len.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  len.push(n);
  return Buffer.concat([Buffer.from([0x0a, ...len]), s]);
}

const SERVING_STATUS = ['UNKNOWN', 'SERVING', 'NOT_SERVING', 'SERVICE_UNKNOWN'];

/** The `status` (field 1, varint) of a HealthCheckResponse; other fields are skipped. */
export function decodeHealthStatus(b: Buffer): number {
  let i = 0;
  let status = 0;
  const varint = (): number => {
    let v = 0;
    for (let shift = 0; shift < 35; shift += 7) {
      const byte = b[i++];
      if (byte === undefined) throw new Error('truncated varint');
      v += (byte & 0x7f) * 2 ** shift;
      if ((byte & 0x80) === 0) return v;
    }
    throw new Error('varint too long');
  };
  while (i < b.length) {
    const tag = varint();
    const wire = tag & 7;
    if (tag >>> 3 === 1 && wire === 0) status = varint();
    else if (wire === 0) varint();
    else if (wire === 2) {
      const n = varint(); // read before adding: `i += varint()` would add to the old i
      i += n;
    }
    else if (wire === 1) i += 8;
    else if (wire === 5) i += 4;
    else throw new Error(`unsupported wire type ${wire}`);
  }
  if (i > b.length) throw new Error('truncated message');
  return status;
}

function grpcProbe(host: string, port: number, service: string, timeoutMs: number): Promise<ProbeOutcome> {
  const target = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
  const client = new grpc.Client(target, grpc.credentials.createInsecure(), { 'grpc.primary_user_agent': PROBE_USER_AGENT, 'grpc.enable_retries': 0 });
  return new Promise((resolve) => {
    client.makeUnaryRequest(
      '/grpc.health.v1.Health/Check',
      (s: string) => encodeHealthRequest(s),
      (b: Buffer) => b,
      service,
      new grpc.Metadata(),
      { deadline: Date.now() + timeoutMs },
      (err, res) => {
        client.close();
        if (err) {
          if (err.code === grpc.status.UNIMPLEMENTED) return resolve(fail('this server does not implement the grpc health protocol (grpc.health.v1.Health)'));
          if (err.code === grpc.status.DEADLINE_EXCEEDED) return resolve(fail(`timeout: health rpc did not complete within ${timeoutMs}ms`));
          return resolve(fail(`rpc error: code = ${grpc.status[err.code]} desc = ${err.details}`));
        }
        let status: number;
        try {
          status = decodeHealthStatus(res ?? Buffer.alloc(0));
        } catch (e) {
          return resolve(fail(`bad health response: ${(e as Error).message}`));
        }
        resolve(status === 1 ? ok('') : fail(`service unhealthy (responded with "${SERVING_STATUS[status] ?? String(status)}")`));
      },
    );
  });
}

function execProbe(command: readonly string[], target: ProbeTarget, timeoutMs: number): Promise<ProbeOutcome> {
  const [file, ...args] = command;
  if (file === undefined) return Promise.resolve(fail('exec probe has no command'));
  return new Promise((resolve) => {
    let out = '';
    let settled = false;
    const done = (o: ProbeOutcome): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(o);
    };
    // Its own process group, so a timeout kills whatever the command started too.
    const child = spawn(file, args, { env: target.env ?? {}, cwd: target.cwd, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    const collect = (d: Buffer): void => {
      if (out.length < MAX_PROBE_OUTPUT) out += d.toString('utf8').slice(0, MAX_PROBE_OUTPUT - out.length);
    };
    child.stdout.on('data', collect);
    child.stderr.on('data', collect);
    const timer = setTimeout(() => {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
      done(fail(`command timed out after ${timeoutMs}ms`));
    }, timeoutMs);
    child.once('error', (e) => done(fail(`exec ${file}: ${e.message}`)));
    child.once('close', (code, signal) => done(code === 0 ? ok(out) : fail(`command exited with ${code === null ? `signal ${String(signal)}` : `code ${code}`}: ${out.trim()}`)));
  });
}
