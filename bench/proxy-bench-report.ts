// The proxy benchmark's results: the record each target × protocol run leaves, the figures derived from them
// (latency added over direct, ratios to HAProxy and to direct), the targets from issue 4 and the Markdown report.
import { mdRow, targetsTable, type machineInfo } from './bench-common.ts';
import type { FixedRateResult, SaturationResult } from './proxy-bench-load.ts';
import type { BenchProtocol } from './proxy-bench-types.ts';
import { whereMarkdown, type WhereResult } from './proxy-bench-where.ts';

export type TargetName = 'direct' | 'haproxy' | 'nginx' | 'trellis-one-hop' | 'trellis-two-hop';

export interface Cell {
  target: TargetName;
  protocol: BenchProtocol;
  status: 'ok' | 'missing' | 'error';
  error?: string;
  /** Proxies a request passes through. */
  hops: number;
  processes?: number;
  fixed?: FixedRateResult & { pairedDirect?: FixedRateResult; proxyCpuSeconds: number; proxyCoresPer1000Rps?: number; rssBytes: number[]; rssTotalBytes: number; rssMaxProcessBytes: number };
  saturation?: SaturationResult & { proxyCpuSeconds: number; upstreamCpuSeconds: number; rpsPerProxyCore?: number; rpsPerHopCore?: number };
}

export interface BenchResult {
  benchmark: 'proxy';
  date: string;
  judged: boolean;
  machine: ReturnType<typeof machineInfo>;
  config: { seconds: number; latencySeconds: number; rate: number; warmupSeconds: number; targets: TargetName[]; protocols: BenchProtocol[]; wrk: string; h2load: string; bodyBytes: number; trellisNodeFlags?: string[] };
  cells: Cell[];
  /** The profiled Trellis run: where the proxies' CPU time and memory go. */
  where?: WhereResult;
  comparisons?: Comparison[];
}

/** What one cell adds over direct, and how it compares with HAProxy and direct for the same protocol. */
export interface Comparison {
  target: TargetName;
  protocol: BenchProtocol;
  addedMs?: { p50: number; p90: number; p99: number };
  addedVsHaproxy?: { p50: number; p90: number; p99: number };
  latencyVsDirect?: { p50: number; p90: number; p99: number };
  rpsVsDirect?: number;
  rpsPerCoreVsHaproxy?: number;
  rssVsHaproxy?: number;
}

export const TARGETS = { rpsPerCore: 5000, addedP90Ms: 0.25, addedP99Ms: 0.35, rssBytes: 60 * 2 ** 20 };

const NAMES: Record<TargetName, string> = { direct: 'direct', haproxy: 'HAProxy', nginx: 'nginx', 'trellis-one-hop': 'Trellis one-hop', 'trellis-two-hop': 'Trellis two-hop' };
const PROTOCOL_TITLES: Record<BenchProtocol, string> = { http1: 'HTTP/1.1', h2c: 'HTTP/2 (h2c)', grpc: 'gRPC unary' };
const r3 = (x: number): number => Math.round(x * 1000) / 1000;
const ratio = (a: number | undefined, b: number | undefined): number | undefined => (a === undefined || b === undefined || !Number.isFinite(a) || !Number.isFinite(b) || b === 0 ? undefined : Math.round((a / b) * 100) / 100);
const fmt = (x: number | undefined, suffix = ''): string => (x === undefined || !Number.isFinite(x) ? '–' : `${x.toLocaleString('en')}${suffix}`);
const mb = (b: number): number => Math.round((b / 2 ** 20) * 10) / 10;
/** A cell's failure on one table line: the last line of its message, pipes escaped. */
const why = (c: Cell): string => `${c.status}: ${(c.error ?? '').trim().split('\n').at(-1)?.replace(/\|/g, '\\|') ?? ''}`;

export function compare(cells: readonly Cell[]): Comparison[] {
  const find = (t: TargetName, p: BenchProtocol): Cell | undefined => cells.find((c) => c.target === t && c.protocol === p && c.status === 'ok');
  return cells
    .filter((c) => c.status === 'ok')
    .map((c) => {
      const d = find('direct', c.protocol);
      const h = find('haproxy', c.protocol);
      const cmp: Comparison = { target: c.target, protocol: c.protocol };
      // "Added" compares with the direct slices interleaved with this target's run (same background load);
      // without them (the direct row itself), with the direct run.
      const lat = c.fixed?.latencyMs;
      const dl = c.fixed?.pairedDirect?.latencyMs ?? d?.fixed?.latencyMs;
      const hl = h?.fixed?.latencyMs;
      const hdl = h?.fixed?.pairedDirect?.latencyMs ?? d?.fixed?.latencyMs;
      if (lat && dl) {
        cmp.addedMs = { p50: r3(lat.p50 - dl.p50), p90: r3(lat.p90 - dl.p90), p99: r3(lat.p99 - dl.p99) };
        cmp.latencyVsDirect = { p50: ratio(lat.p50, dl.p50) ?? NaN, p90: ratio(lat.p90, dl.p90) ?? NaN, p99: ratio(lat.p99, dl.p99) ?? NaN };
        if (hl && hdl && c.target !== 'direct') {
          const ha = { p50: hl.p50 - hdl.p50, p90: hl.p90 - hdl.p90, p99: hl.p99 - hdl.p99 };
          cmp.addedVsHaproxy = { p50: ratio(cmp.addedMs.p50, ha.p50) ?? NaN, p90: ratio(cmp.addedMs.p90, ha.p90) ?? NaN, p99: ratio(cmp.addedMs.p99, ha.p99) ?? NaN };
        }
      }
      cmp.rpsVsDirect = ratio(c.saturation?.rps, d?.saturation?.rps);
      cmp.rpsPerCoreVsHaproxy = ratio(c.saturation?.rpsPerProxyCore, h?.saturation?.rpsPerProxyCore);
      cmp.rssVsHaproxy = c.target === 'direct' ? undefined : ratio(c.fixed?.rssTotalBytes, h?.fixed?.rssTotalBytes);
      return cmp;
    });
}

function targetRows(r: BenchResult, cmps: readonly Comparison[]): { name: string; target: string; value: string; pass: boolean }[] {
  const two = r.cells.find((c) => c.target === 'trellis-two-hop' && c.protocol === 'http1');
  const cmp = cmps.find((c) => c.target === 'trellis-two-hop' && c.protocol === 'http1');
  const missing = two === undefined || two.status !== 'ok' ? `not measured (${two?.status ?? 'not run'})` : undefined;
  const perHop = two?.saturation?.rpsPerHopCore;
  const rss = two?.fixed?.rssMaxProcessBytes;
  return [
    { name: 'Trellis two-hop, HTTP/1.1: rps per proxy core (per hop: rps × 2 ÷ CPU of both proxies)', target: `≥ ${TARGETS.rpsPerCore.toLocaleString('en')}`, value: missing ?? fmt(perHop), pass: perHop !== undefined && perHop >= TARGETS.rpsPerCore },
    { name: `Trellis two-hop, HTTP/1.1: added latency p90 at ${r.config.rate.toLocaleString('en')} rps`, target: `≤ ${TARGETS.addedP90Ms} ms`, value: missing ?? fmt(cmp?.addedMs?.p90, ' ms'), pass: cmp?.addedMs !== undefined && cmp.addedMs.p90 <= TARGETS.addedP90Ms },
    { name: `Trellis two-hop, HTTP/1.1: added latency p99 at ${r.config.rate.toLocaleString('en')} rps`, target: `≤ ${TARGETS.addedP99Ms} ms`, value: missing ?? fmt(cmp?.addedMs?.p99, ' ms'), pass: cmp?.addedMs !== undefined && cmp.addedMs.p99 <= TARGETS.addedP99Ms },
    { name: 'Trellis two-hop: RSS of each proxy process at that rate', target: '≤ 60 MB', value: missing ?? `${fmt(rss === undefined ? undefined : mb(rss))} MB`, pass: rss !== undefined && rss <= TARGETS.rssBytes },
  ];
}

export function renderMarkdown(r: BenchResult): string {
  const cmps = compare(r.cells);
  r.comparisons = cmps;
  const m = r.machine;
  const cmpOf = (c: Cell): Comparison | undefined => cmps.find((x) => x.target === c.target && x.protocol === c.protocol);
  const out: string[] = [
    '# Proxy benchmark',
    '',
    `${r.date} — node ${m.node}, ${m.cpuModel} × ${m.cores} cores, ${m.totalMemoryGB} GB, ${m.platform}. ${r.judged ? 'Full settings' : 'Reduced settings (not judged)'}: ${r.config.seconds} s per maximum-rate run, ${r.config.latencySeconds} s at ${r.config.rate.toLocaleString('en')} rps, ${r.config.warmupSeconds} s warm-up before each. Generated by \`npm run bench:proxy\` (bench/proxy-bench.ts); load generators, upstreams and proxies share the machine's ${m.cores} cores.`,
    '',
    ...targetsTable(targetRows(r, cmps)),
    '',
    '## Maximum rate',
    '',
  ];
  for (const p of r.config.protocols) {
    const tool = p === 'http1' ? `wrk ${r.config.wrk}` : `h2load ${r.config.h2load}${p === 'grpc' ? ', a 1 KB gRPC frame POSTed' : ''}`;
    out.push(`### ${PROTOCOL_TITLES[p]} (${tool})`, '', mdRow(['Target', 'rps', '× direct', 'errors', 'proxy CPU (s)', 'rps per proxy core', 'per hop', '× HAProxy (per core)']), mdRow(['---', '---:', '---:', '---:', '---:', '---:', '---:', '---:']));
    for (const c of r.cells.filter((x) => x.protocol === p)) {
      const s = c.saturation;
      const cmp = cmpOf(c);
      if (c.status !== 'ok' || !s) out.push(mdRow([NAMES[c.target], why(c), '', '', '', '', '', '']));
      else out.push(mdRow([NAMES[c.target], fmt(Math.round(s.rps)), fmt(cmp?.rpsVsDirect), fmt(s.errors), c.hops ? fmt(s.proxyCpuSeconds) : '–', fmt(s.rpsPerProxyCore), c.hops > 1 ? fmt(s.rpsPerHopCore) : '', fmt(cmp?.rpsPerCoreVsHaproxy)]));
    }
    out.push('');
  }
  out.push(`## Latency at a fixed ${r.config.rate.toLocaleString('en')} rps (ms)`, '');
  for (const p of r.config.protocols) {
    out.push(
      `### ${PROTOCOL_TITLES[p]}`,
      '',
      mdRow(['Target', 'p50', 'p90', 'p99', 'direct alongside p50 / p90 / p99', 'added p50 / p90 / p99', 'added × HAProxy', 'p99 × direct', 'proxy cores per 1,000 rps', 'RSS (MB)', 'RSS × HAProxy', 'ok / errors']),
      mdRow(['---', '---:', '---:', '---:', '---:', '---:', '---:', '---:', '---:', '---:', '---:', '---:']),
    );
    for (const c of r.cells.filter((x) => x.protocol === p)) {
      const f = c.fixed;
      const cmp = cmpOf(c);
      if (c.status !== 'ok' || !f) {
        out.push(mdRow([NAMES[c.target], why(c), '', '', '', '', '', '', '', '', '', '']));
        continue;
      }
      const a = cmp?.addedMs;
      const ah = cmp?.addedVsHaproxy;
      const rss = c.hops ? `${f.rssBytes.map(mb).join(' + ')}` : '–';
      out.push(
        mdRow([
          NAMES[c.target],
          fmt(r3(f.latencyMs.p50)),
          fmt(r3(f.latencyMs.p90)),
          fmt(r3(f.latencyMs.p99)),
          f.pairedDirect ? `${r3(f.pairedDirect.latencyMs.p50)} / ${r3(f.pairedDirect.latencyMs.p90)} / ${r3(f.pairedDirect.latencyMs.p99)}` : '–',
          c.hops && a ? `${a.p50} / ${a.p90} / ${a.p99}` : '–',
          c.hops && ah && c.target !== 'haproxy' ? `${fmt(ah.p50)} / ${fmt(ah.p90)} / ${fmt(ah.p99)}` : '–',
          fmt(cmp?.latencyVsDirect?.p99),
          c.hops ? fmt(f.proxyCoresPer1000Rps) : '–',
          rss,
          fmt(cmp?.rssVsHaproxy),
          `${f.ok} / ${f.errors + f.skipped}`,
        ]),
      );
    }
    const lag = r.cells.find((c) => c.protocol === p && c.target === 'direct')?.fixed?.sendLagMs;
    if (lag) out.push('', `Send lag against the schedule (direct run): p50 ${r3(lag.p50)} ms, p99 ${r3(lag.p99)} ms.`);
    out.push('');
  }
  if (r.where) out.push(...whereMarkdown(r.where));
  out.push(
    '## Method',
    '',
    `Upstreams: nginx (1 worker) serves a 1 KB static file over HTTP/1.1 and over h2c (HTTP/2 prior knowledge) — nginx rather than a Node server because it is cheaper and steadier per request, so on ${m.cores} cores it takes less CPU from the proxy under test and adds less jitter; gRPC unary is a grpc-js server in its own process answering each 1 KB request with a 1 KB message. ` +
      'Baselines: HAProxy (Debian, HTTP mode, nbthread 1, http-reuse always; HTTP/2 on both sides for h2c and gRPC) and nginx (Debian, 1 worker, keep-alive upstream pool; it cannot proxy HTTP/2 to an HTTP upstream, so for h2c it talks HTTP/1.1 to the upstream, and uses grpc_pass for gRPC). Trellis two-hop is a client-side proxy and a server-side proxy with mesh mTLS between them, L7 policy and flows on; one-hop is the server-side proxy alone (clients reach its inbound listener in plaintext, PeerAuthentication PERMISSIVE, the same L7 rules). ' +
      `Trellis proxies are real \`trellis proxy\` processes run from the compiled code (dist/), configured over xDS by a control plane in the benchmark process (not measured)${r.config.trellisNodeFlags ? `, with node flags \`${r.config.trellisNodeFlags.join(' ') || '(none)'}\`` : ''}. ` +
      `Maximum rate: wrk ${r.config.wrk} (HTTP/1.1) and h2load ${r.config.h2load} (h2c; gRPC posts a 1 KB message in a gRPC frame with content-type application/grpc and te: trailers), ${r.config.seconds} s after a ${r.config.warmupSeconds} s warm-up. ` +
      'Proxy CPU is user + system time of every proxy process (nginx: master and worker; Trellis two-hop: both proxies) from /proc/<pid>/stat over the measured run; rps per proxy core = requests ÷ that CPU time; "per hop" multiplies by the proxies a request passes (a sidecar handles each request once, as in Istio\'s 0.2 vCPU per 1,000 rps). ' +
      `Fixed rate: an open-loop generator in Node sends ${r.config.rate.toLocaleString('en')} requests per second (http.Agent keep-alive, node:http2 and grpc-js clients) whether or not earlier ones have returned, for ${r.config.latencySeconds} s after a ${r.config.warmupSeconds} s warm-up at the same rate; each request is timed with process.hrtime from hand-off to the client until the whole 1 KB answer (and for gRPC the status) arrived, so the client's own cost is in every row and cancels in "added" = target − direct at the same percentile. ` +
      'Each proxy run alternates with direct every 0.5 s (proxy, direct, proxy, …; the same rate, clients and connections throughout), and "added" subtracts those interleaved direct slices ("direct alongside"), so both sides saw the same background load on the shared machine; the direct row is a run of its own. Proxy CPU per 1,000 rps divides the proxy CPU over the whole alternating run by its proxy half. ' +
      'RSS is VmRSS from /proc/<pid>/status, the maximum of samples every 250 ms during the fixed-rate run, per proxy process. Ratios: × direct divides by the direct run of the same protocol; × HAProxy divides by HAProxy\'s figure (for added latency, by HAProxy\'s added latency).',
    '',
  );
  return out.join('\n');
}
