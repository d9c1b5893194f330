import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { Probe } from '../resources/kinds-container.ts';
import type { LogLine } from './log-lines.ts';
import { cleanupLeftovers, PidRegistry, readProcStat } from './pid-registry.ts';
import { ProcessSupervisor, type ContainerState, type SupervisorOptions } from './process-supervisor.ts';

const dir = mkdtempSync(join(tmpdir(), 'trellis-sup-'));
const live: ProcessSupervisor[] = [];
after(async () => {
  await Promise.all(live.map((s) => s.stop()));
  rmSync(dir, { recursive: true, force: true });
});

const NODE = process.execPath;
const env = { PATH: process.env.PATH ?? '/usr/bin:/bin' };

function supervise(opts: Omit<SupervisorOptions, 'env'> & { env?: Record<string, string> }): { sup: ProcessSupervisor; states: ContainerState[]; logs: LogLine[] } {
  const states: ContainerState[] = [];
  const logs: LogLine[] = [];
  const sup = new ProcessSupervisor({ env, ...opts, onState: (s) => states.push(s), onLog: (l) => logs.push(l) });
  live.push(sup);
  return { sup, states, logs };
}

async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

function alive(pid: number): boolean {
  const st = readProcStat(pid);
  return st !== undefined && st.state !== 'Z';
}

describe('ProcessSupervisor', () => {
  it('restarts a crashing container with CrashLoopBackOff: at once, then 10 s, 20 s, 40 s (scaled)', async () => {
    const { sup, states } = supervise({ id: 'ns/crash/main', argv: ['sh', '-c', 'echo up; exit 3'], timeScale: 0.005 });
    sup.start();
    await until(() => states.filter((s) => s.phase === 'running').length >= 4);
    await sup.stop();
    const backoffs = states.filter((s) => s.phase === 'backoff');
    assert.ok(backoffs.length >= 3);
    const waits = backoffs.slice(0, 3).map((s) => (s.nextStartAt ?? 0) - (s.lastExit?.at ?? 0));
    assert.deepEqual(waits, [0, 50, 100], 'immediate, then 10 s and 20 s at scale 0.005');
    assert.deepEqual(backoffs[0]?.lastExit && { code: backoffs[0].lastExit.code, reason: backoffs[0].lastExit.reason }, { code: 3, reason: 'exit' });
    assert.equal(sup.state.restarts, 3);
    assert.equal(sup.state.phase, 'stopped');
  });

  it('follows restartPolicy: OnFailure leaves a clean exit alone, Never leaves a failure alone', async () => {
    const a = supervise({ id: 'ns/job/a', argv: ['sh', '-c', 'exit 0'], restartPolicy: 'OnFailure' });
    const b = supervise({ id: 'ns/job/b', argv: ['sh', '-c', 'exit 1'], restartPolicy: 'Never' });
    const c = supervise({ id: 'ns/job/c', argv: [join(dir, 'no-such-program')], restartPolicy: 'Never' });
    a.sup.start();
    b.sup.start();
    c.sup.start();
    await until(() => [a, b, c].every((x) => x.sup.state.phase === 'terminated'));
    assert.deepEqual([a, b].map((x) => [x.sup.state.restarts, x.sup.state.lastExit?.code]), [[0, 0], [0, 1]]);
    assert.equal(c.sup.state.lastExit?.reason, 'spawn-error');
    assert.match(c.sup.state.lastExit?.message ?? '', /ENOENT/);
  });

  it('splits output into prefixed, bounded lines with the container env and cwd', async () => {
    const { sup, logs } = supervise({
      id: 'dns/web/app',
      argv: [NODE, '-e', 'console.log("hello " + process.env.ZONE + " " + process.cwd()); console.error("oops"); process.stdout.write("x".repeat(100) + "\\npartial")'],
      env: { ZONE: 'example.com' },
      cwd: dir,
      restartPolicy: 'Never',
      maxLineBytes: 64,
    });
    sup.start();
    await until(() => sup.state.phase === 'terminated' && logs.length >= 4);
    await new Promise((r) => setTimeout(r, 50));
    const out = logs.filter((l) => l.stream === 'stdout').map((l) => [l.text, l.truncated]);
    assert.deepEqual(out, [[`hello example.com ${dir}`, false], ['x'.repeat(64), true], ['partial', false]]);
    assert.deepEqual(logs.filter((l) => l.stream === 'stderr').map((l) => `${l.source} ${l.text}`), ['dns/web/app oops']);
  });

  it('stops the whole process group: SIGTERM, SIGKILL after the grace period, no orphan grandchild', async () => {
    const pidFile = join(dir, 'grandchild.pid');
    const script = `
      const c = require('child_process').spawn('sleep', ['30'], { stdio: 'ignore' });
      require('fs').writeFileSync(${JSON.stringify(pidFile)}, String(c.pid));
      process.on('SIGTERM', () => {}); // ignores SIGTERM: only SIGKILL ends it
      console.log('ready');
      setInterval(() => {}, 1000);`;
    const registryFile = join(dir, 'procs.json');
    const registry = new PidRegistry(registryFile);
    const { sup, logs } = supervise({ id: 'ns/stubborn/main', argv: [NODE, '-e', script], gracePeriodMs: 300, registry });
    sup.start();
    await until(() => logs.some((l) => l.text === 'ready'));
    const grandchild = Number(readFileSync(pidFile, 'utf8'));
    const leader = sup.state.pid ?? 0;
    assert.ok(alive(grandchild) && alive(leader));
    const recorded = JSON.parse(readFileSync(registryFile, 'utf8')) as { processes: { pid: number; pgid: number }[] };
    assert.deepEqual(recorded.processes.map((p) => [p.pid, p.pgid]), [[leader, leader]]);
    const t0 = Date.now();
    await sup.stop();
    assert.ok(Date.now() - t0 >= 280, 'waited for the grace period');
    assert.equal(sup.state.lastExit?.signal, 'SIGKILL');
    await until(() => !alive(grandchild) && !alive(leader), 2000);
    assert.deepEqual((JSON.parse(readFileSync(registryFile, 'utf8')) as { processes: unknown[] }).processes, []);
  });

  it('kills the group when the leader exits on its own, so nothing outlives the container', async () => {
    const pidFile = join(dir, 'left.pid');
    const script = `const c = require('child_process').spawn('sleep', ['30'], { stdio: 'ignore' }); require('fs').writeFileSync(${JSON.stringify(pidFile)}, String(c.pid)); setTimeout(() => process.exit(0), 100);`;
    const { sup } = supervise({ id: 'ns/leaver/main', argv: [NODE, '-e', script], restartPolicy: 'Never' });
    sup.start();
    await until(() => sup.state.phase === 'terminated');
    const grandchild = Number(readFileSync(pidFile, 'utf8'));
    await until(() => !alive(grandchild), 2000);
  });

  it('kills and restarts a container whose liveness probe fails', async () => {
    const flag = join(dir, 'healthy');
    writeFileSync(flag, '');
    const liveness: Probe = { handler: { type: 'exec', command: ['test', '-f', flag] }, initialDelaySeconds: 0, timeoutSeconds: 10, periodSeconds: 1, successThreshold: 1, failureThreshold: 2 };
    const { sup } = supervise({ id: 'ns/sick/main', argv: ['sleep', '30'], probes: { livenessProbe: liveness }, timeScale: 0.05, gracePeriodMs: 1000 });
    sup.start();
    await until(() => sup.state.phase === 'running' && sup.state.ready);
    const first = sup.state.pid;
    await new Promise((r) => setTimeout(r, 150));
    assert.equal(sup.state.pid, first, 'healthy: left alone');
    rmSync(flag);
    await until(() => sup.state.restarts === 1 && sup.state.phase === 'running');
    assert.notEqual(sup.state.pid, first);
    assert.equal(sup.state.lastExit?.reason, 'liveness');
    assert.equal(sup.state.lastExit?.signal, 'SIGTERM');
  });
});

describe('cleanupLeftovers', () => {
  it('kills the recorded groups a crashed run left behind, skips reused pids, and removes the file', async () => {
    const file = join(dir, 'crashed.json');
    const registry = new PidRegistry(file);
    const pidFile = join(dir, 'orphan-grandchild.pid');
    // What a crashed `up` leaves: detached groups whose leaders ignore SIGTERM, with grandchildren.
    const script = `process.on('SIGTERM', () => {}); const c = require('child_process').spawn('sleep', ['30'], { stdio: 'ignore' }); require('fs').writeFileSync(${JSON.stringify(pidFile)}, String(c.pid)); setInterval(() => {}, 1000);`;
    const argv = [NODE, '-e', script];
    const leftover = spawn(argv[0] as string, argv.slice(1), { detached: true, stdio: 'ignore' });
    registry.add('ns/left/main', leftover.pid ?? 0, argv);
    await until(() => existsSync(pidFile));
    const grandchild = Number(readFileSync(pidFile, 'utf8'));
    // An innocent process whose pid a record names, with another start time: a reused pid.
    const innocent = spawn('sleep', ['30'], { detached: true, stdio: 'ignore' });
    after(() => innocent.kill('SIGKILL'));
    const rec = registry.add('ns/old/main', innocent.pid ?? 0, ['sleep', '30']);
    const body = JSON.parse(readFileSync(file, 'utf8')) as { processes: { pid: number; startTime?: number }[] };
    for (const p of body.processes) if (p.pid === rec.pid) p.startTime = (p.startTime ?? 0) - 1;
    writeFileSync(file, JSON.stringify(body));

    const report = await cleanupLeftovers(file, { graceMs: 300 });
    assert.deepEqual(report.killed.map((r) => r.id), ['ns/left/main']);
    assert.deepEqual(report.skipped.map((s) => [s.record.id, s.reason]), [['ns/old/main', 'pid reused by another process']]);
    await until(() => !alive(leftover.pid ?? 0) && !alive(grandchild), 2000);
    assert.equal(alive(innocent.pid ?? 0), true, 'the innocent process lives');
    assert.equal(existsSync(file), false);
    assert.deepEqual(await cleanupLeftovers(file), { killed: [], skipped: [] }, 'no file: nothing to do');
  });
});
