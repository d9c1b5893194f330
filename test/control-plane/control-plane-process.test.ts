// `trellis control-plane` as a real process: it prints where it listens, answers /healthz, stops cleanly on
// SIGTERM, and refuses to start on a bad configuration with located errors and exit code 2.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';

function start(dir: string): ReturnType<typeof spawn> {
  return spawn(process.execPath, ['--import', 'tsx', 'src/cli/trellis.ts', 'control-plane', '-f', dir, '--state-dir', join(dir, '.state'), '--xds-port', '0', '--admin-port', '0', '--ca-port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
}

function waitExit(p: ReturnType<typeof spawn>): Promise<number | null> {
  return new Promise((resolve) => p.once('exit', (code) => resolve(code)));
}

describe('trellis control-plane (process)', () => {
  it('starts, serves /healthz, and exits 0 on SIGTERM', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'trellis-cpp-'));
    writeFileSync(join(dir, 'svc.yaml'), 'apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  selector: {app: web}\n  ports: [{name: http, port: 80}]\n');
    const p = start(dir);
    let out = '';
    const admin = await new Promise<string>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no admin URL in: ${out}`)), 20_000);
      p.stdout?.on('data', (b: Buffer) => {
        out += b.toString();
        const m = /admin\s+(http:\/\/\S+)/.exec(out);
        if (m?.[1]) {
          clearTimeout(t);
          resolve(m[1]);
        }
      });
    });
    assert.match(out, /xDS\s+127\.0\.0\.1:\d+/);
    const health = await fetch(`${admin}/healthz`);
    assert.equal(health.status, 200);
    const exited = waitExit(p);
    p.kill('SIGTERM');
    assert.equal(await exited, 0);
  });

  it('refuses to start on a bad configuration, with located errors and exit code 2', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'trellis-cpp-'));
    writeFileSync(join(dir, 'svc.yaml'), 'apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  ports: [{name: http, port: 0}]\n');
    const p = start(dir);
    let err = '';
    p.stderr?.on('data', (b: Buffer) => (err += b.toString()));
    assert.equal(await waitExit(p), 2);
    assert.match(err, /svc\.yaml:5:\d+: Service default\/web: spec\.ports\[0\]\.port: must be an integer 1-65535/);
  });
});
