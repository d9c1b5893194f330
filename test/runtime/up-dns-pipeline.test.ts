// examples/dns-pipeline under `trellis up` (loopback isolation), with real processes: every pod becomes ready,
// a record change travels zone-web → zone-api → zone-publisher → edge through the sidecars, intruder's calls are
// denied, and `trellis down` leaves no process. Addresses: 127.79.0.0/16 (pods), 127.80.0.0/16 (Service VIPs).
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { UpState } from '../../src/runtime/up-state.ts';

const ROOT = new URL('../..', import.meta.url).pathname;
const CLI = join(ROOT, 'src/cli/trellis.ts');
const MANIFESTS = join(ROOT, 'examples/dns-pipeline/manifests');

function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

describe('examples/dns-pipeline under trellis up (loopback)', { timeout: 180_000 }, () => {
  const stateDir = mkdtempSync(join(tmpdir(), 'trellis-up-dns-'));
  let up: ChildProcess | undefined;

  after(async () => {
    if (up && up.exitCode === null && up.signalCode === null) {
      const exited = once(up, 'exit');
      up.kill('SIGTERM');
      await Promise.race([exited, sleep(30_000)]);
    }
    spawnSync(process.execPath, ['--import', 'tsx', CLI, 'down', '--state-dir', stateDir], { cwd: ROOT, timeout: 60_000 });
    rmSync(stateDir, { recursive: true, force: true });
  });

  it('all pods ready, a change reaches the edge through the mesh, intruder denied, down leaves nothing', async () => {
    let out = '';
    up = spawn(process.execPath, ['--import', 'tsx', CLI, 'up', '-f', MANIFESTS, '--state-dir', stateDir, '--pod-range', '127.79.0.0/16', '--service-range', '127.80.0.0/16'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    up.stdout?.setEncoding('utf8').on('data', (d: string) => (out = (out + d).slice(-400_000)));
    up.stderr?.setEncoding('utf8').on('data', (d: string) => (out = (out + d).slice(-400_000)));

    let state: UpState | undefined;
    const deadline = Date.now() + 120_000;
    for (;;) {
      try {
        state = JSON.parse(readFileSync(join(stateDir, 'up.json'), 'utf8')) as UpState;
      } catch {
        state = undefined;
      }
      if (state && state.pods.length === 7 && state.pods.every((p) => p.ready)) break;
      assert.ok(Date.now() < deadline, `pods not ready in 120 s:\n${JSON.stringify(state?.pods.map((p) => [p.key, p.ready, p.containers]))}\n${out.slice(-4000)}`);
      assert.equal(up.exitCode, null, out.slice(-4000));
      await sleep(500);
    }
    assert.ok(state.pods.some((p) => p.key === 'dns/zone-api-0' && p.ready));
    assert.match(out, /NodePort dns\/edge-dns .*not exposed/);

    // loadgen edits records through zone-web (REST → gRPC with a JWT → zone-api); the publisher pushes to the edge.
    const until = Date.now() + 45_000;
    while (!/zone-publisher: pushed zone to edge/.test(out) || !/intruder: denied, as it should be/.test(out)) {
      assert.ok(Date.now() < until, `no push or no denied intruder call in 45 s:\n${out.slice(-6000)}`);
      await sleep(500);
    }
    assert.doesNotMatch(out, /NOT DENIED/);

    const pids = [state.pid, ...state.pods.flatMap((p) => [p.proxy.pid, ...p.containers.map((c) => c.pid)])].filter((p): p is number => typeof p === 'number');
    assert.equal(pids.length, 15);
    const exited = once(up, 'exit');
    const down = spawnSync(process.execPath, ['--import', 'tsx', CLI, 'down', '--state-dir', stateDir], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
    assert.equal(down.status, 0, down.stderr);
    await exited;
    await sleep(200);
    for (const pid of pids) assert.equal(alive(pid), false, `pid ${pid} still runs`);
  });
});
