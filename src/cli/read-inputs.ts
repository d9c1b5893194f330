// Reads `-f` inputs: files, directories (recursively: .yaml, .yml, .json) and `-` for standard input.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { SourceText } from '../resources/source.ts';
import { CliError } from './cli-error.ts';

const MANIFEST = /\.(ya?ml|json)$/i;

export function readInputs(paths: readonly string[], stdin: () => string = () => readFileSync(0, 'utf8')): SourceText[] {
  if (paths.length === 0) throw new CliError('usage', 'no input: give manifests with -f FILE|DIR|- (repeatable)');
  const out: SourceText[] = [];
  const missing: string[] = [];
  for (const p of paths) {
    if (p === '-') {
      out.push({ name: '<stdin>', text: stdin() });
      continue;
    }
    let st;
    try {
      st = statSync(p);
    } catch {
      missing.push(p);
      continue;
    }
    if (st.isDirectory()) for (const f of walk(p)) out.push({ name: f, text: readFileSync(f, 'utf8') });
    else out.push({ name: p, text: readFileSync(p, 'utf8') });
  }
  if (missing.length > 0) throw new CliError('not-found', missing.map((m) => `${m}: no such file or directory`).join('\n'));
  return out;
}

function walk(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
    if (e.name.startsWith('.')) continue;
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...walk(p));
    else if (MANIFEST.test(e.name)) out.push(p);
  }
  return out;
}
