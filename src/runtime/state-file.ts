// Small JSON state files in the state directory, replaced atomically (temp file, fsync, rename) and read back tolerantly.
import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { RuntimeError } from './runtime-error.ts';

/** State files stay small; a bigger one is not ours (or is damaged) and is not read. */
export const MAX_STATE_FILE_BYTES = 16 * 1024 * 1024;

/** Writes synchronously, so that the state is on disk before the caller goes on (a crash right after still finds it). */
export function writeJsonAtomic(path: string, value: unknown): void {
  const text = `${JSON.stringify(value, null, 2)}\n`;
  mkdirSync(dirname(path), { recursive: true });
  const tmp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    const fd = openSync(tmp, 'wx', 0o600);
    try {
      writeSync(fd, text);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw new RuntimeError('STATE_FILE', `cannot write ${path}: ${(err as Error).message}`, { cause: err });
  }
}

/** The parsed file, or undefined when it does not exist. A damaged file is an error the caller may choose to survive. */
export function readJson(path: string): unknown {
  let text: string;
  try {
    const buf = readFileSync(path);
    if (buf.length > MAX_STATE_FILE_BYTES) throw new RuntimeError('STATE_FILE', `${path} is larger than ${MAX_STATE_FILE_BYTES} bytes`);
    text = buf.toString('utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    if (err instanceof RuntimeError) throw err;
    throw new RuntimeError('STATE_FILE', `cannot read ${path}: ${(err as Error).message}`, { cause: err });
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new RuntimeError('STATE_FILE', `${path} is not valid JSON: ${(err as Error).message}`, { cause: err });
  }
}
