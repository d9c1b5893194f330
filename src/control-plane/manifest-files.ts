// Finds and reads manifest files: files as given, directories recursively (.yaml, .yml, .json), in a stable order.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { SourceText } from '../resources/source.ts';

const MANIFEST = /\.(ya?ml|json)$/i;

/** Every manifest file under the given paths (hidden entries skipped), or the paths that do not exist. */
export function listManifestFiles(paths: readonly string[]): { files: string[]; missing: string[] } {
  const files: string[] = [];
  const missing: string[] = [];
  for (const p of paths) {
    let st;
    try {
      st = statSync(p);
    } catch {
      missing.push(p);
      continue;
    }
    if (st.isDirectory()) files.push(...walk(p));
    else files.push(p);
  }
  return { files, missing };
}

function walk(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
    if (e.name.startsWith('.')) continue;
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...walk(p));
    else if (MANIFEST.test(e.name)) out.push(p);
  }
  return out;
}

export function readManifestFiles(files: readonly string[]): SourceText[] {
  return files.map((f) => ({ name: f, text: readFileSync(f, 'utf8') }));
}
