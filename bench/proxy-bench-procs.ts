// Process plumbing for the proxy benchmark: starting the servers it runs (and only those), stopping them, and
// reading their CPU time and RSS from /proc, plus free loopback ports. Every process started here is remembered,
// so an interrupted run stops them all.
import { execFileSync, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { connect, createServer } from 'node:net';

export const LOOPBACK = '127.0.0.1';

const CLK_TCK = ((): number => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

const started = new Set<ChildProcess>();

/** A server process the benchmark started: its pid, its output so far (bounded), and a way to stop it. */
export interface Started {
  child: ChildProcess;
  pid: number;
  output(): string;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

/** Starts a long-running server; rejects if it exits within `settleMs` (a bad config, a port in use). */
export async function startProcess(cmd: string, args: string[], opts: SpawnOptions & { settleMs?: number } = {}): Promise<Started> {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
  started.add(child);
  let out = '';
  const keep = (b: Buffer): void => {
    out = (out + b.toString()).slice(-8192);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.once('exit', () => started.delete(child));
  const failed = await Promise.race([
    new Promise<Error | undefined>((resolve) => child.once('error', (e) => resolve(e))),
    exited.then(() => new Error(`${cmd} exited with ${child.exitCode ?? child.signalCode}: ${out.trim()}`)),
    new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), opts.settleMs ?? 300)),
  ]);
  if (failed !== undefined || child.pid === undefined) {
    child.kill('SIGKILL');
    throw failed ?? new Error(`${cmd} did not start`);
  }
  const pid = child.pid;
  return {
    child,
    pid,
    output: () => out,
    stop: async (signal: NodeJS.Signals = 'SIGTERM') => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill(signal);
      const done = await Promise.race([exited.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 5000))]);
      if (!done) {
        killTree(pid);
        await exited;
      }
    },
  };
}

/** Runs a tool to completion (wrk, h2load), bounded in time; resolves with its stdout and stderr. */
export function runTool(cmd: string, args: string[], timeoutMs: number): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    started.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => (stdout = (stdout + b.toString()).slice(-65536)));
    child.stderr.on('data', (b: Buffer) => (stderr = (stderr + b.toString()).slice(-65536)));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', (e) => {
      clearTimeout(timer);
      started.delete(child);
      reject(e);
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      started.delete(child);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Kills every process this module started and that is still running (for an interrupted run). */
export function killAllStarted(): void {
  for (const c of started) if (c.pid !== undefined) killTree(c.pid);
  started.clear();
}

/** SIGKILL to a process we started and its descendants (nginx workers outlive a killed master). */
function killTree(pid: number): void {
  for (const p of withDescendants(pid).reverse()) {
    try {
      process.kill(p, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

/** The process and its descendants (nginx's workers are children of its master). */
export function withDescendants(pid: number): number[] {
  const out = [pid];
  for (let i = 0; i < out.length; i++) {
    const p = out[i] as number;
    let kids: number[];
    try {
      kids = readFileSync(`/proc/${p}/task/${p}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
    } catch {
      kids = childrenByScan(p);
    }
    out.push(...kids);
  }
  return out;
}

function childrenByScan(ppid: number): number[] {
  const kids: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const st = readFileSync(`/proc/${d}/stat`, 'utf8');
      if (Number(st.slice(st.lastIndexOf(')') + 2).split(' ')[1]) === ppid) kids.push(Number(d));
    } catch {
      // gone meanwhile
    }
  }
  return kids;
}

/** User + system CPU seconds used so far by these processes (0 for any that is gone). */
export function cpuSeconds(pids: readonly number[]): number {
  let ticks = 0;
  for (const pid of pids) {
    try {
      const st = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const f = st.slice(st.lastIndexOf(')') + 2).split(' ');
      ticks += Number(f[11]) + Number(f[12]);
    } catch {
      // exited
    }
  }
  return ticks / CLK_TCK;
}

/** Resident set size of one process, bytes (0 when it is gone). */
export function rssBytes(pid: number): number {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** A loopback port free right now (bound and released by us). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, LOOPBACK, () => {
      const addr = s.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      s.close(() => resolve(port));
    });
  });
}

/** Waits until a TCP connect to host:port succeeds, or fails after timeoutMs. */
export async function waitForPort(port: number, timeoutMs = 5000): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect(port, LOOPBACK);
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > until) throw new Error(`nothing listens on ${LOOPBACK}:${port} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
