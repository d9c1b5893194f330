// The CLI's window on the world, injectable so tests can run commands in process.
import { readFileSync } from 'node:fs';
import { CliError } from './cli-error.ts';

export interface Io {
  out(line: string): void;
  err(line: string): void;
  readStdin(): string;
}

export const processIo: Io = {
  out: (line) => process.stdout.write(`${line}\n`),
  err: (line) => process.stderr.write(`${line}\n`),
  readStdin: () => readFileSync(0, 'utf8'),
};

/** Standard input may be read once; a second `-` gets an error instead of an empty read. */
export function onceStdin(io: Io): Io {
  let used = false;
  return {
    ...io,
    readStdin: () => {
      if (used) throw new CliError('usage', 'standard input (-) can be read only once');
      used = true;
      return io.readStdin();
    },
  };
}
