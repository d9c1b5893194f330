// What the benchmarks share: a seeded PRNG (mulberry32), so generated clusters are the same in every run,
// and a description of the machine a result was measured on.
import os from 'node:os';

export interface Prng {
  rand: () => number;
  randInt: (n: number) => number;
  pick: <T>(xs: readonly T[]) => T;
  chance: (p: number) => boolean;
  shuffled: <T>(xs: readonly T[]) => T[];
}

export function createPrng(seed: number): Prng {
  let state = seed >>> 0;
  const rand = (): number => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const randInt = (n: number): number => Math.floor(rand() * n);
  return {
    rand,
    randInt,
    pick: <T>(xs: readonly T[]): T => xs[randInt(xs.length)] as T,
    chance: (p: number): boolean => rand() < p,
    shuffled: <T>(xs: readonly T[]): T[] => {
      const out = [...xs];
      for (let i = out.length - 1; i > 0; i--) {
        const j = randInt(i + 1);
        [out[i], out[j]] = [out[j] as T, out[i] as T];
      }
      return out;
    },
  };
}

export function machineInfo(): { node: string; v8: string; cpuModel: string; cores: number; availableParallelism: number; platform: string; arch: string; totalMemoryGB: number } {
  return {
    node: process.version,
    v8: process.versions.v8,
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    cores: os.cpus().length,
    availableParallelism: os.availableParallelism(),
    platform: `${os.platform()} ${os.release()}`,
    arch: os.arch(),
    totalMemoryGB: Math.round(os.totalmem() / 1024 ** 3),
  };
}

/** One Markdown table row. */
export function mdRow(cells: readonly (string | number)[]): string {
  return `| ${cells.join(' | ')} |`;
}

/** The "Targets" table every benchmark report opens with. */
export function targetsTable(targets: readonly { name: string; target: string; value: string; pass: boolean }[]): string[] {
  return [
    '## Targets',
    '',
    mdRow(['Metric', 'Target', 'Result', '']),
    mdRow(['---', '---', '---', '---']),
    ...targets.map((x) => mdRow([x.name, x.target, x.value, x.pass ? 'pass' : '**FAIL**'])),
  ];
}
