// Where a proxy's CPU time goes, from a V8 .cpuprofile (node --cpu-prof): self time per function and per area
// (Trellis' own modules by directory, each dependency by package, Node's internals, native code, GC), for the
// proxy benchmark's "where the time goes" section and for bench runs with BENCH_CPU_PROF.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
}
interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileEntry {
  name: string;
  /** Share of all samples, percent. */
  pct: number;
  ms: number;
}

export interface ProfileSummary {
  file: string;
  totalMs: number;
  /** Samples in which the process ran JavaScript or native code (not idle), percent. */
  busyPct: number;
  areas: ProfileEntry[];
  functions: ProfileEntry[];
}

const ROOT = fileURLToPath(new URL('..', import.meta.url));

/** The area a frame belongs to: `trellis src/proxy/http`, `@grpc/grpc-js`, `node:internal/http2`, `(gc)`, … */
export function areaOf(f: CallFrame): string {
  const url = f.url;
  if (url === '') return f.functionName.startsWith('(') ? f.functionName : '(native)';
  if (url.startsWith('node:')) return url.replace(/^node:internal\/(?:deps\/)?/, 'node:').split('/').slice(0, 2).join('/');
  const path = url.startsWith('file://') ? fileURLToPath(url) : url;
  const nm = path.lastIndexOf('/node_modules/');
  if (nm >= 0) {
    const rest = path.slice(nm + 14).split('/');
    return rest[0]?.startsWith('@') ? `${rest[0]}/${rest[1]}` : (rest[0] ?? path);
  }
  if (path.startsWith(ROOT)) {
    const rel = path.slice(ROOT.length).split('/');
    return `trellis ${rel.slice(0, Math.max(1, rel.length - 1)).join('/').replace(/^dist\//, 'src/')}`;
  }
  return path;
}

function frameName(f: CallFrame): string {
  const url = f.url.startsWith('file://') ? fileURLToPath(f.url) : f.url;
  const where = url === '' ? '' : ` ${url.replace(ROOT, '').replace(/^.*\/node_modules\//, '')}:${f.lineNumber + 1}`;
  return `${f.functionName || '(anonymous)'}${where}`;
}

/**
 * Self time per function and area. `window` (monotonic µs, the clock of process.hrtime.bigint() / 1000, which V8's
 * profile timestamps share on Linux) keeps only the samples taken within it, e.g. the measured run without startup.
 */
export function summarizeProfile(file: string, top = 25, window?: { fromUs: number; toUs: number }): ProfileSummary {
  const p = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  let t = p.startTime;
  for (let i = 0; i < p.samples.length; i++) {
    t += p.timeDeltas[i] ?? 0;
    if (window && (t < window.fromUs || t > window.toUs)) continue;
    const id = p.samples[i] as number;
    // timeDeltas[i] is the time since the previous sample: the interval this sample stands for, roughly.
    selfUs.set(id, (selfUs.get(id) ?? 0) + (p.timeDeltas[i + 1] ?? p.timeDeltas[i] ?? 0));
  }
  const totalUs = [...selfUs.values()].reduce((s, x) => s + x, 0) || 1;
  const areas = new Map<string, number>();
  const fns = new Map<string, number>();
  let idle = 0;
  for (const [id, us] of selfUs) {
    const f = (byId.get(id) as ProfileNode).callFrame;
    if (f.functionName === '(idle)') idle += us;
    const a = areaOf(f);
    areas.set(a, (areas.get(a) ?? 0) + us);
    const n = frameName(f);
    fns.set(n, (fns.get(n) ?? 0) + us);
  }
  const entries = (m: Map<string, number>): ProfileEntry[] =>
    [...m]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([name, us]) => ({ name, pct: Math.round((us / totalUs) * 1000) / 10, ms: Math.round(us / 1000) }));
  return { file, totalMs: Math.round(totalUs / 1000), busyPct: Math.round((1 - idle / totalUs) * 1000) / 10, areas: entries(areas), functions: entries(fns) };
}

/** Text lines of a summary (for the console and the report). */
export function profileLines(s: ProfileSummary, top = 15): string[] {
  const row = (e: ProfileEntry): string => `${String(e.pct).padStart(5)}%  ${e.name}`;
  return [`${s.totalMs} ms sampled, busy ${s.busyPct}%`, 'by area (self time):', ...s.areas.slice(0, top).map(row), 'top functions (self time):', ...s.functions.slice(0, top).map(row)];
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  for (const f of process.argv.slice(2)) console.log([`== ${f}`, ...profileLines(summarizeProfile(f, 40), 40)].join('\n'));
}
