// Makes sure the compiled code the benchmark runs Trellis proxies from (dist/) is at least as new as src/: when a
// source file has no compiled counterpart or is newer than it, runs the build (tsc -p tsconfig.build.json) once.
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('..', import.meta.url));

/** Source files (not tests) whose compiled .js in dist/ is missing or older than they are. */
export function staleSources(): string[] {
  const stale: string[] = [];
  const walk = (dir: string): void => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.ts') && !e.name.endsWith('.test.ts') && !e.name.endsWith('.d.ts')) {
        const out = join(ROOT, 'dist', relative(join(ROOT, 'src'), p)).replace(/\.ts$/, '.js');
        if (!existsSync(out) || statSync(out).mtimeMs < statSync(p).mtimeMs) stale.push(relative(ROOT, p));
      }
    }
  };
  walk(join(ROOT, 'src'));
  return stale;
}

let built: Promise<void> | undefined;

/** Builds dist/ when it is stale (once per run). Type errors elsewhere do not stop it as long as the CLI was emitted. */
export function ensureBuilt(log: (msg: string) => void = (m) => console.log(`[proxy-bench] ${m}`)): Promise<void> {
  built ??= (async () => {
    const stale = staleSources();
    if (stale.length === 0) return;
    log(`dist/ is older than ${stale.length} source file(s) (${stale.slice(0, 3).join(', ')}${stale.length > 3 ? ', …' : ''}): building`);
    const tsc = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
    const r = await new Promise<{ code: number | null; out: string }>((resolve, reject) => {
      const child = spawn(process.execPath, [tsc, '-p', 'tsconfig.build.json'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      const keep = (b: Buffer): void => {
        out = (out + b.toString()).slice(-8192);
      };
      child.stdout.on('data', keep);
      child.stderr.on('data', keep);
      child.once('error', reject);
      child.once('exit', (code) => resolve({ code, out }));
    });
    if (!existsSync(join(ROOT, 'dist', 'cli', 'trellis.js'))) throw new Error(`the build emitted no dist/cli/trellis.js:\n${r.out}`);
    if (r.code !== 0) log(`the build reported errors (code ${r.code}); running what it emitted:\n${r.out.trim().split('\n').slice(0, 10).join('\n')}`);
  })();
  return built;
}
