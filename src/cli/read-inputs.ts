// Reads `-f` inputs: files, directories (recursively: .yaml, .yml, .json) and `-` for standard input.
import { readFileSync } from 'node:fs';
import { listManifestFiles, readManifestFiles } from '../control-plane/manifest-files.ts';
import type { SourceText } from '../resources/source.ts';
import { CliError } from './cli-error.ts';

export function readInputs(paths: readonly string[], stdin: () => string = () => readFileSync(0, 'utf8')): SourceText[] {
  if (paths.length === 0) throw new CliError('usage', 'no input: give manifests with -f FILE|DIR|- (repeatable)');
  const out: SourceText[] = [];
  const missing: string[] = [];
  for (const p of paths) {
    if (p === '-') {
      out.push({ name: '<stdin>', text: stdin() });
      continue;
    }
    const found = listManifestFiles([p]);
    missing.push(...found.missing);
    try {
      out.push(...readManifestFiles(found.files));
    } catch (e) {
      throw new CliError('unreadable', `${p}: ${(e as Error).message}`);
    }
  }
  if (missing.length > 0) throw new CliError('not-found', missing.map((m) => `${m}: no such file or directory`).join('\n'));
  return out;
}
