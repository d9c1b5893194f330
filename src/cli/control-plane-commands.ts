// `trellis control-plane`, `trellis proxy-status` and `trellis proxy-config`: run the control plane, and read
// its admin API the way istioctl reads istiod's.
import { pino } from 'pino';
import { stringify } from 'yaml';
import { isLoopback } from '../ca/loopback.ts';
import { ControlPlane, ControlPlaneError } from '../control-plane/control-plane.ts';
import { CliError } from './cli-error.ts';
import type { Io } from './io.ts';
import { parsePort } from './policy-check.ts';

export interface ControlPlaneCliOptions {
  file: string[];
  stateDir: string;
  host: string;
  xdsPort: string;
  adminPort: string;
  caPort: string;
  trustDomain: string;
  xdsTls?: boolean;
  /** The flow relay's port, or false (--no-relay). */
  relay: string | false;
}

/** A port to listen on: 0 asks the system for a free one. */
function listenPort(v: string, what: string): number {
  return v === '0' ? 0 : parsePort(v, what);
}

function loopbackOnly(host: string): void {
  if (!isLoopback(host)) {
    throw new CliError('usage', `--host ${host}: the control plane binds only to loopback (127.0.0.0/8 or ::1)`);
  }
}

export async function runControlPlane(o: ControlPlaneCliOptions, io: Io, untilStopped: Promise<void>): Promise<number> {
  loopbackOnly(o.host);
  const logger = pino({ name: 'trellis-control-plane' }, pino.destination(2));
  const cp = new ControlPlane({
    paths: o.file,
    stateDir: o.stateDir,
    host: o.host,
    xdsPort: listenPort(o.xdsPort, '--xds-port'),
    adminPort: listenPort(o.adminPort, '--admin-port'),
    caPort: listenPort(o.caPort, '--ca-port'),
    trustDomain: o.trustDomain,
    xdsTls: o.xdsTls === true,
    ...(o.relay !== false ? { relayPort: listenPort(o.relay, '--relay-port') } : {}),
    logger,
  });
  try {
    await cp.start();
  } catch (e) {
    if (e instanceof ControlPlaneError) throw new CliError(e.code, e.message);
    throw e;
  }
  io.out(`xDS     ${o.host}:${cp.xdsPort}${o.xdsTls ? ' (mTLS: workload certificates required)' : ' (plaintext, loopback)'}`);
  io.out(`CA      ${cp.caTarget ?? ''}`);
  io.out(`admin   ${cp.adminUrl ?? ''}`);
  if (cp.relayAddress) io.out(`relay   ${cp.relayAddress} (Observer API over every proxy started with --observer-port)`);
  else if (cp.relayError) io.err(`relay   not running: ${cp.relayError}`);
  await untilStopped;
  await cp.stop();
  return 0;
}

async function getJson(url: string): Promise<unknown> {
  let res: Response;
  try {
    res = await fetch(url);
  } catch (e) {
    throw new CliError('unreachable', `cannot reach the control plane admin API at ${url}: ${(e as Error).message}`);
  }
  let body: unknown;
  try {
    body = await res.json();
  } catch {
    throw new CliError('admin-error', `${url}: the answer is not JSON (HTTP ${res.status}); is this a Trellis admin URL?`);
  }
  if (!res.ok) throw new CliError('admin-error', `${url}: ${(body as { error?: string }).error ?? res.statusText}`);
  return body;
}

interface SyncRow {
  node: string;
  namespace: string;
  stream: string;
  types: Record<string, { status: string; sent: string | null; nacked: { message: string } | null }>;
}

export async function runProxyStatus(o: { admin: string; output: string }, io: Io): Promise<number> {
  const rows = (await getJson(`${o.admin}/debug/syncz`)) as SyncRow[];
  if (o.output === 'json') {
    io.out(JSON.stringify(rows, null, 2));
    return 0;
  }
  const table = [['NAME', 'NAMESPACE', 'STREAM', 'CDS', 'LDS', 'EDS', 'RDS']];
  for (const r of rows) table.push([r.node, r.namespace, r.stream, ...['CDS', 'LDS', 'EDS', 'RDS'].map((t) => r.types[t]?.status ?? 'NOT SENT')]);
  const widths = (table[0] ?? []).map((_, i) => Math.max(...table.map((row) => (row[i] ?? '').length)));
  for (const row of table) io.out(row.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ').trimEnd());
  for (const r of rows) for (const [t, s] of Object.entries(r.types)) if (s.nacked) io.err(`${r.node} ${t} NACKED: ${s.nacked.message}`);
  return 0;
}

export async function runProxyConfig(node: string, o: { admin: string; output: string }, io: Io): Promise<number> {
  const dump = await getJson(`${o.admin}/debug/config_dump?node=${encodeURIComponent(node)}`);
  io.out(o.output === 'yaml' ? stringify(dump).trimEnd() : JSON.stringify(dump, null, 2));
  return 0;
}
