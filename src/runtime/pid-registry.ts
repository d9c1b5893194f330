// The record of every process group the runtime started (a JSON state file), so that a later run can kill what a
// crashed one left behind. Linux: identities come from /proc (pid + start time are unique within one boot).
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { readJson, writeJsonAtomic } from './state-file.ts';

export interface ProcessRecord {
  /** `namespace/pod/container` (or any label the caller chooses). */
  id: string;
  pid: number;
  /** The process group (the child leads its own: pgid = pid). */
  pgid: number;
  /** What was started: compared with /proc/<pid>/cmdline when no start time was recorded. */
  argv: string[];
  /** Clock ticks after boot (field 22 of /proc/<pid>/stat). */
  startTime?: number;
  bootId?: string;
}

interface RegistryFile {
  version: 1;
  processes: ProcessRecord[];
}

export interface ProcStat {
  /** R, S, D, Z (zombie: exited, not yet reaped), … */
  state: string;
  pgrp: number;
  session: number;
  startTime: number;
}

/** Reads /proc/<pid>/stat; undefined when the process does not exist (or there is no /proc). */
export function readProcStat(pid: number): ProcStat | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // The command name (field 2) is in parentheses and may hold spaces or parentheses itself.
  const close = text.lastIndexOf(')');
  const rest = text.slice(close + 2).split(' ');
  // rest[0] is field 3 (state): pgrp is field 5, session field 6, starttime field 22.
  const pgrp = Number(rest[2]);
  const session = Number(rest[3]);
  const startTime = Number(rest[19]);
  if (!Number.isFinite(pgrp) || !Number.isFinite(startTime)) return undefined;
  return { state: rest[0] ?? '?', pgrp, session, startTime };
}

export function readCmdline(pid: number): string[] | undefined {
  try {
    const raw = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    const parts = raw.split('\0');
    if (parts[parts.length - 1] === '') parts.pop();
    return parts;
  } catch {
    return undefined;
  }
}

export function bootId(): string | undefined {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    return undefined;
  }
}

/** The processes in use now, as the file records them. Writes go straight to disk (a crash must not lose one). */
export class PidRegistry {
  private readonly records = new Map<number, ProcessRecord>();

  constructor(readonly file: string) {}

  /** Records a child just spawned (its start time is read from /proc now; it is fixed at fork). */
  add(id: string, pid: number, argv: readonly string[]): ProcessRecord {
    const rec: ProcessRecord = { id, pid, pgid: pid, argv: [...argv] };
    const st = readProcStat(pid);
    if (st) rec.startTime = st.startTime;
    const boot = bootId();
    if (boot) rec.bootId = boot;
    this.records.set(pid, rec);
    this.write();
    return rec;
  }

  remove(pid: number): void {
    if (this.records.delete(pid)) this.write();
  }

  list(): ProcessRecord[] {
    return [...this.records.values()];
  }

  private write(): void {
    const body: RegistryFile = { version: 1, processes: this.list() };
    writeJsonAtomic(this.file, body);
  }
}

function sameArgv(a: readonly string[] | undefined, b: readonly string[]): boolean {
  return a !== undefined && a.length === b.length && a.every((x, i) => x === b[i]);
}

/** Pids of the live processes in the recorded group and session that started no earlier than its leader. */
function groupMembers(rec: ProcessRecord): number[] {
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return [];
  }
  const out: number[] = [];
  for (const e of entries) {
    if (!/^[0-9]+$/.test(e)) continue;
    const st = readProcStat(Number(e));
    if (st && st.state !== 'Z' && st.pgrp === rec.pgid && st.session === rec.pgid && (rec.startTime === undefined || st.startTime >= rec.startTime)) out.push(Number(e));
  }
  return out;
}

/** Whether the recorded leader is still the process we started (not a reused pid). */
function leaderIsOurs(rec: ProcessRecord): boolean {
  const st = readProcStat(rec.pid);
  if (!st || st.state === 'Z') return false;
  if (rec.startTime !== undefined) return st.startTime === rec.startTime;
  return sameArgv(readCmdline(rec.pid), rec.argv);
}

export interface CleanupReport {
  killed: ProcessRecord[];
  /** Records whose processes were gone or not ours (pid reused, another boot). */
  skipped: { record: ProcessRecord; reason: string }[];
}

function signalGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch {
    // the group is gone
  }
}

/**
 * Kills the process groups a previous run recorded that still exist, then removes the file. A group counts as
 * ours when this is the same boot and its leader has the recorded start time (or, without one, the recorded
 * command line), or when, its leader gone (no process has its pid), members of its own session remain that
 * started after it.
 * SIGTERM first, SIGKILL after `graceMs`.
 */
export async function cleanupLeftovers(file: string, opts: { graceMs?: number } = {}): Promise<CleanupReport> {
  const report: CleanupReport = { killed: [], skipped: [] };
  let data: unknown;
  try {
    data = readJson(file);
  } catch {
    rmSync(file, { force: true });
    return report;
  }
  const records = (data as Partial<RegistryFile> | undefined)?.processes;
  if (!Array.isArray(records)) {
    rmSync(file, { force: true });
    return report;
  }
  const boot = bootId();
  const targets: ProcessRecord[] = [];
  for (const rec of records) {
    if (typeof rec?.pid !== 'number' || typeof rec.pgid !== 'number' || rec.pid <= 1 || rec.pgid <= 1 || !Array.isArray(rec.argv)) {
      report.skipped.push({ record: rec, reason: 'malformed record' });
      continue;
    }
    if (rec.bootId !== undefined && boot !== undefined && rec.bootId !== boot) {
      report.skipped.push({ record: rec, reason: 'recorded in an earlier boot' });
      continue;
    }
    // Linux does not hand out a pid while a group or session still uses it as its id: a live process with the
    // leader's pid that is not ours means our group is gone entirely.
    const leader = readProcStat(rec.pid);
    if (leaderIsOurs(rec)) targets.push(rec);
    else if (leader && leader.state !== 'Z') report.skipped.push({ record: rec, reason: 'pid reused by another process' });
    else if (groupMembers(rec).length > 0) targets.push(rec);
    else report.skipped.push({ record: rec, reason: 'already gone' });
  }
  for (const rec of targets) signalGroup(rec.pgid, 'SIGTERM');
  const deadline = Date.now() + (opts.graceMs ?? 5000);
  const alive = (rec: ProcessRecord): boolean => groupMembers(rec).length > 0 || leaderIsOurs(rec);
  while (targets.some(alive) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
  for (const rec of targets) if (alive(rec)) signalGroup(rec.pgid, 'SIGKILL');
  report.killed.push(...targets);
  rmSync(file, { force: true });
  return report;
}
