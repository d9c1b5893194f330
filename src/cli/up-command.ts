// `trellis up`, `trellis status` and `trellis down`: run the mesh locally, show it, stop it. Printing only; the
// runtime (src/runtime/up.ts) does the work.
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { pino } from 'pino';
import { formatDiagnostic } from '../resources/diagnostics.ts';
import { cleanupLeftovers } from '../runtime/pid-registry.ts';
import { RuntimeError } from '../runtime/runtime-error.ts';
import { LocalRuntime } from '../runtime/up.ts';
import type { UpLog } from '../runtime/up-pod.ts';
import { PID_FILE, readUpState, upIsRunning, type UpState } from '../runtime/up-state.ts';
import { CliError } from './cli-error.ts';
import type { Io } from './io.ts';

export interface UpCliOptions {
  file: string[];
  stateDir: string;
  isolation: string;
  dnsPort: string;
  relayPort: string;
  timeScale?: string;
  podRange?: string;
  serviceRange?: string;
}

const COLOURS = [36, 32, 33, 35, 34, 96, 92, 93, 95, 94];

function colourFor(pod: string): number {
  let h = 0;
  for (let i = 0; i < pod.length; i++) h = (h * 31 + pod.charCodeAt(i)) >>> 0;
  return COLOURS[h % COLOURS.length] ?? 36;
}

function logPrinter(io: Io, tty: boolean): (l: UpLog) => void {
  return (l) => {
    const prefix = `${l.pod}/${l.container}`;
    io.out(tty ? `\x1b[${colourFor(l.pod)}m${prefix}\x1b[0m | ${l.text}` : `${prefix} | ${l.text}`);
  };
}

export function describeUp(s: UpState): string[] {
  const lines = [
    `control plane  xDS ${s.controlPlane.xds}  CA ${s.controlPlane.ca}  admin ${s.controlPlane.admin}`,
    `cluster DNS    ${s.dns} (UDP and TCP; e.g. dig @${s.dns.split(':')[0]} -p ${s.dns.split(':')[1]} <svc>.<ns>.svc.cluster.local)`,
    'UI             (not yet: the observability issue adds it here)',
  ];
  if (s.controlPlane.relay) lines.push(`flows          ${s.controlPlane.relay} (trellis observe --server ${s.controlPlane.relay} --follow)`);
  for (const e of s.exposed) lines.push(`exposed        ${e}`);
  lines.push(...podTable(s));
  return lines;
}

function podTable(s: UpState): string[] {
  const out = ['POD                                        READY  RESTARTS  POD IP          APP IP (POD_IP)  OUTBOUND IP     PROXY ADMIN'];
  for (const p of s.pods) {
    const n = p.containers.length + 1;
    const ready = (p.proxy.ready ? 1 : 0) + p.containers.filter((c) => c.ready).length;
    const restarts = p.proxy.restarts + p.containers.reduce((a, c) => a + c.restarts, 0);
    out.push(`${p.key.padEnd(42)} ${`${ready}/${n}`.padEnd(6)} ${String(restarts).padEnd(9)} ${p.podIp.padEnd(15)} ${p.appIp.padEnd(16)} ${p.outboundIp.padEnd(15)} ${p.proxy.admin}`);
    for (const c of p.containers) if (c.phase === 'not-run' || c.message) out.push(`  ${c.name}: ${c.phase}${c.message ? ` (${c.message})` : ''}`);
  }
  return out;
}

/** Runs until `untilStopped`; returns the exit code. */
export async function runUp(o: UpCliOptions, io: Io, untilStopped: Promise<void>, tty = process.stdout.isTTY === true): Promise<number> {
  if (o.isolation !== 'loopback') throw new CliError('usage', `--isolation ${o.isolation}: only loopback is available in this version (netns comes later)`);
  if (o.file.includes('-')) throw new CliError('usage', 'trellis up reads files and directories, not standard input');
  const dnsPort = Number(o.dnsPort);
  if (!Number.isInteger(dnsPort) || dnsPort < 0 || dnsPort > 65535) throw new CliError('usage', `--dns-port ${o.dnsPort}: expected 0-65535`);
  const relayPort = Number(o.relayPort);
  if (o.relayPort !== 'off' && (!Number.isInteger(relayPort) || relayPort < 0 || relayPort > 65535)) throw new CliError('usage', `--relay-port ${o.relayPort}: expected 0-65535 or off`);
  const timeScale = o.timeScale === undefined ? 1 : Number(o.timeScale);
  if (!(timeScale > 0 && timeScale <= 1)) throw new CliError('usage', `--time-scale ${o.timeScale ?? ''}: expected a number in (0, 1]`);
  // Warnings are printed once, below; the control plane logs only errors (it reloads as readiness changes).
  const logger = pino({ name: 'trellis-control-plane', level: 'error' }, pino.destination(2));
  let rt: LocalRuntime;
  try {
    rt = await LocalRuntime.start({
      paths: o.file,
      stateDir: o.stateDir,
      logger,
      dnsPort,
      ...(o.relayPort !== 'off' ? { relayPort } : {}),
      timeScale,
      ...(o.podRange ? { podRange: o.podRange } : {}),
      ...(o.serviceRange ? { serviceRange: o.serviceRange } : {}),
      onLog: logPrinter(io, tty),
      onEvent: (t) => io.out(`trellis | ${t}`),
      onDiagnostics: (ds) => ds.forEach((d) => io.err(formatDiagnostic(d))),
    });
  } catch (e) {
    if (e instanceof RuntimeError) {
      for (const d of e.diagnostics) io.err(formatDiagnostic(d));
      throw new CliError(e.code, e.message);
    }
    throw e;
  }
  for (const w of rt.warnings) io.err(`warning: ${w}`);
  for (const l of describeUp(rt.state())) io.out(l);
  io.out(`state          ${o.stateDir} (trellis status / trellis down --state-dir ${o.stateDir})`);
  await untilStopped;
  io.out('trellis | stopping: draining proxies, then pods, then the control plane');
  await rt.stop();
  io.out('trellis | stopped');
  return 0;
}

export async function runStatus(o: { stateDir: string; output: string }, io: Io): Promise<number> {
  const s = readUpState(o.stateDir);
  if (!s || !upIsRunning(s.pid)) {
    io.out(`trellis up is not running (state directory ${o.stateDir})`);
    return 1;
  }
  // The proxies' own /ready, live (the state file may be up to a moment old).
  await Promise.all(
    s.pods.map(async (p) => {
      try {
        p.proxy.ready = (await fetch(`${p.proxy.admin}/ready`, { signal: AbortSignal.timeout(1000) })).status === 200;
      } catch {
        p.proxy.ready = false;
      }
    }),
  );
  if (o.output === 'json') {
    io.out(JSON.stringify(s, null, 2));
    return 0;
  }
  io.out(`trellis up (pid ${s.pid}) since ${s.startedAt}, ${s.isolation} isolation`);
  for (const l of describeUp(s)) io.out(l);
  io.out('SERVICE                                    TYPE          ENDPOINTS');
  for (const svc of s.services) {
    const eps = svc.endpoints.map((e) => `${e.address}${e.ready ? '' : ' (not ready)'}`).join(', ') || '<none>';
    io.out(`${svc.key.padEnd(42)} ${svc.type.padEnd(13)} ${eps}`);
  }
  return 0;
}

/** Signals the running `up` (SIGTERM), waits for it, then kills whatever its pid file still lists. */
export async function runDown(o: { stateDir: string; timeoutSeconds?: number }, io: Io): Promise<number> {
  const s = readUpState(o.stateDir);
  if (s && upIsRunning(s.pid)) {
    process.kill(s.pid, 'SIGTERM');
    const deadline = Date.now() + (o.timeoutSeconds ?? 60) * 1000;
    while (upIsRunning(s.pid) && Date.now() < deadline) await sleep(100);
    if (upIsRunning(s.pid)) {
      io.err(`trellis up (pid ${s.pid}) did not stop in time: killing it`);
      process.kill(s.pid, 'SIGKILL');
    } else io.out(`stopped trellis up (pid ${s.pid})`);
  }
  const report = await cleanupLeftovers(join(o.stateDir, PID_FILE), { graceMs: 5000 });
  for (const r of report.killed) io.out(`killed leftover ${r.id} (pid ${r.pid})`);
  if (!s && report.killed.length === 0) io.out(`nothing to stop (state directory ${o.stateDir})`);
  rmSync(join(o.stateDir, 'up.json'), { force: true });
  return 0;
}
