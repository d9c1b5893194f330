// Proxy (data plane) benchmark (DESIGN.md, Benchmarks; issue 4): in one run on this machine, the same loads go
// direct to the upstreams, through HAProxy (HTTP mode) and nginx (reverse proxy) from Debian, and through
// Trellis in one-hop (server-side proxy) and two-hop (client proxy → mTLS → server proxy) form. For each of
// HTTP/1.1, h2c and gRPC unary, with 1 KB bodies: the maximum rate (wrk, h2load) and the proxy CPU it cost (rps
// per proxy core), then the latency at a fixed rate (an open-loop generator; added = proxy − direct, per
// percentile), the proxy CPU per 1,000 rps and the proxies' RSS at that rate, with ratios to HAProxy and to direct.
// Not a test.
//
//   npm run bench:proxy          (node --import tsx bench/proxy-bench.ts)
//
// Environment: BENCH_SECONDS (10) per maximum-rate run, BENCH_LATENCY_SECONDS (10) per fixed-rate run,
// BENCH_RATE (1000) the fixed rate, BENCH_WARMUP_SECONDS (3) before each measured run, BENCH_TARGETS and
// BENCH_PROTOCOLS (comma lists; default all) to run a subset, BENCH_PROFILE_SECONDS (5; 0 skips it) for the
// profiled Trellis run that says where the time goes, and the Trellis proxies' own knobs (BENCH_PROXY_NODE_FLAGS,
// BENCH_CPU_PROF: bench/proxy-bench-trellis.ts). Results are written to bench/results/proxy.json and proxy.md only at
// the default settings (a judged run), or with BENCH_WRITE=1.
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { machineInfo } from './bench-common.ts';
import { fixedRate, interleaved, makeClient, once, runH2load, runWrk, type Client, type FixedRateResult, type SaturationResult } from './proxy-bench-load.ts';
import { cpuSeconds, killAllStarted, rssBytes, runTool, withDescendants } from './proxy-bench-procs.ts';
import { renderMarkdown, type BenchResult, type Cell, type TargetName } from './proxy-bench-report.ts';
import { startGrpcUpstream, startHaproxy, startNginxProxy, startStaticUpstream, type Upstreams } from './proxy-bench-servers.ts';
import { proxyNodeFlags, startTrellis, TrellisNotAvailable } from './proxy-bench-trellis.ts';
import { whereLines, whereTimeGoes, type WhereResult } from './proxy-bench-where.ts';
import { grpcFrame, grpcMessage, type BenchProtocol, type RunningProxy } from './proxy-bench-types.ts';

const num = (name: string, dflt: number): number => {
  const v = process.env[name];
  const n = v === undefined || v === '' ? dflt : Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${name} must be a positive number, got ${v}`);
  return n;
};
const ALL_TARGETS: TargetName[] = ['direct', 'haproxy', 'nginx', 'trellis-one-hop', 'trellis-two-hop'];
const ALL_PROTOCOLS: BenchProtocol[] = ['http1', 'h2c', 'grpc'];
function list<T extends string>(name: string, all: readonly T[]): T[] {
  const v = process.env[name];
  if (v === undefined || v === '') return [...all];
  const xs = v.split(',').map((s) => s.trim()) as T[];
  for (const x of xs) if (!all.includes(x)) throw new Error(`${name}: unknown ${x} (one of ${all.join(', ')})`);
  return all.filter((x) => xs.includes(x));
}

const SECONDS = num('BENCH_SECONDS', 10);
const LATENCY_SECONDS = num('BENCH_LATENCY_SECONDS', 10);
const RATE = num('BENCH_RATE', 1000);
const WARMUP_SECONDS = num('BENCH_WARMUP_SECONDS', 3);
const PROFILE_SECONDS = process.env.BENCH_PROFILE_SECONDS === '0' ? 0 : num('BENCH_PROFILE_SECONDS', 5);
const TARGETS = list('BENCH_TARGETS', ALL_TARGETS);
const PROTOCOLS = list('BENCH_PROTOCOLS', ALL_PROTOCOLS);
const JUDGED = SECONDS === 10 && LATENCY_SECONDS === 10 && RATE === 1000 && WARMUP_SECONDS === 3 && TARGETS.length === ALL_TARGETS.length && PROTOCOLS.length === ALL_PROTOCOLS.length;
const WRITE = JUDGED || process.env.BENCH_WRITE === '1';
const HOPS: Record<TargetName, number> = { direct: 0, haproxy: 1, nginx: 1, 'trellis-one-hop': 1, 'trellis-two-hop': 2 };

const log = (msg: string): void => console.log(`[proxy-bench ${new Date().toISOString().slice(11, 19)}] ${msg}`);
const round = (x: number, d = 3): number => Math.round(x * 10 ** d) / 10 ** d;

interface Env {
  root: string;
  upstreams: Upstreams;
  upstreamPids: number[];
  grpcFrameFile: string;
}

async function startTarget(env: Env, target: TargetName, protocol: BenchProtocol): Promise<RunningProxy> {
  const up = env.upstreams[protocol];
  switch (target) {
    case 'direct':
      return { url: `http://${up.host}:${up.port}`, pids: [], stop: () => Promise.resolve() };
    case 'haproxy':
      return startHaproxy(env.root, protocol, env.upstreams);
    case 'nginx':
      return startNginxProxy(env.root, protocol, env.upstreams);
    case 'trellis-one-hop':
      return startTrellis('one-hop', up);
    case 'trellis-two-hop':
      return startTrellis('two-hop', up);
  }
}

function saturate(env: Env, protocol: BenchProtocol, url: string, seconds: number): Promise<SaturationResult> {
  const full = `${url}${env.upstreams[protocol].path}`;
  return protocol === 'http1' ? runWrk(full, seconds) : runH2load(full, seconds, protocol === 'grpc' ? env.grpcFrameFile : undefined);
}

/** One target × protocol: smoke check, fixed-rate latency (after a warm-up), then the maximum rate (after another). */
async function runCell(env: Env, target: TargetName, protocol: BenchProtocol): Promise<Cell> {
  const cell: Cell = { target, protocol, status: 'ok', hops: HOPS[target] };
  let proxy: RunningProxy | undefined;
  let client: Client | undefined;
  let direct: Client | undefined;
  try {
    proxy = await startTarget(env, target, protocol);
    const pids = proxy.pids;
    cell.processes = pids.length;
    client = makeClient(protocol, proxy.url, env.upstreams[protocol].path);
    await once(client);

    log(`${target} ${protocol}: warm-up ${WARMUP_SECONDS}s at ${RATE} rps, then ${LATENCY_SECONDS}s measured${cell.hops ? ', alternating with direct' : ''}`);
    await fixedRate(client, RATE, WARMUP_SECONDS);
    const rssMax = new Map<number, number>(pids.map((p) => [p, 0]));
    const sample = (): void => {
      for (const p of pids) rssMax.set(p, Math.max(rssMax.get(p) ?? 0, rssBytes(p)));
    };
    const c0 = cpuSeconds(pids);
    let fixed: FixedRateResult;
    let pairedDirect: FixedRateResult | undefined;
    if (cell.hops === 0) fixed = await fixedRate(client, RATE, LATENCY_SECONDS);
    else {
      direct = makeClient(protocol, `http://${env.upstreams[protocol].host}:${env.upstreams[protocol].port}`, env.upstreams[protocol].path);
      await once(direct);
      const [viaProxy, viaDirect] = await interleaved([client, direct], RATE, LATENCY_SECONDS, { sample: (c) => c === 0 && sample() });
      fixed = viaProxy as FixedRateResult;
      pairedDirect = viaDirect;
    }
    const fixedCpu = cpuSeconds(pids) - c0;
    sample();
    const rss = [...rssMax.values()];
    cell.fixed = {
      ...fixed,
      ...(pairedDirect ? { pairedDirect } : {}),
      proxyCpuSeconds: round(fixedCpu),
      proxyCoresPer1000Rps: pids.length ? round((fixedCpu / LATENCY_SECONDS) * (1000 / Math.max(1, fixed.achievedRps))) : undefined,
      rssBytes: rss,
      rssTotalBytes: rss.reduce((s, x) => s + x, 0),
      rssMaxProcessBytes: rss.length ? Math.max(...rss) : 0,
    };

    log(`${target} ${protocol}: warm-up ${WARMUP_SECONDS}s at full load, then ${SECONDS}s measured`);
    await saturate(env, protocol, proxy.url, WARMUP_SECONDS);
    const p0 = cpuSeconds(pids);
    const u0 = cpuSeconds(env.upstreamPids);
    const sat = await saturate(env, protocol, proxy.url, SECONDS);
    const proxyCpu = cpuSeconds(pids) - p0;
    const upstreamCpu = cpuSeconds(env.upstreamPids) - u0;
    cell.saturation = {
      ...sat,
      proxyCpuSeconds: round(proxyCpu),
      upstreamCpuSeconds: round(upstreamCpu),
      rpsPerProxyCore: pids.length && proxyCpu > 0 ? Math.round(sat.requests / proxyCpu) : undefined,
      rpsPerHopCore: pids.length && proxyCpu > 0 ? Math.round((sat.requests * cell.hops) / proxyCpu) : undefined,
    };
    log(
      `${target} ${protocol}: ${Math.round(sat.rps)} rps (${sat.errors} errors), proxy CPU ${round(proxyCpu, 2)} s → ${cell.saturation.rpsPerProxyCore ?? '-'} rps/core; ` +
        `at ${RATE} rps p50/p90/p99 ${round(fixed.latencyMs.p50)}/${round(fixed.latencyMs.p90)}/${round(fixed.latencyMs.p99)} ms, RSS ${Math.round(cell.fixed.rssTotalBytes / 2 ** 20)} MB`,
    );
  } catch (err) {
    if (err instanceof TrellisNotAvailable) {
      cell.status = 'missing';
      cell.error = err.message;
    } else {
      cell.status = 'error';
      cell.error = err instanceof Error ? err.message : String(err);
    }
    log(`${target} ${protocol}: ${cell.status}: ${cell.error}`);
  } finally {
    client?.close();
    direct?.close();
    await proxy?.stop().catch((e: unknown) => log(`stopping ${target}: ${String(e)}`));
  }
  return cell;
}

async function toolsPresent(): Promise<string[]> {
  const missing: string[] = [];
  for (const t of ['wrk', 'h2load', 'haproxy', 'nginx']) {
    const r = await runTool('sh', ['-c', `command -v ${t}`], 5000);
    if (r.code !== 0) missing.push(t);
  }
  return missing;
}

async function main(): Promise<void> {
  const missingTools = await toolsPresent();
  if (missingTools.length > 0) throw new Error(`missing tools: ${missingTools.join(', ')} (apt-get install -y wrk haproxy nginx nghttp2-client)`);
  const root = mkdtempSync(join(os.tmpdir(), 'trellis-proxy-bench-'));
  chmodSync(root, 0o755); // nginx workers run as nobody when the bench runs as root
  const stops: (() => Promise<void>)[] = [];
  const interrupt = (): void => {
    killAllStarted();
    rmSync(root, { recursive: true, force: true });
    process.exit(130);
  };
  process.once('SIGINT', interrupt);
  process.once('SIGTERM', interrupt);
  const started = new Date();
  const cells: Cell[] = [];
  let where: WhereResult | undefined;
  try {
    const statics = await startStaticUpstream(root);
    stops.push(() => statics.stop());
    const grpcUp = await startGrpcUpstream();
    stops.push(() => grpcUp.stop());
    const frameFile = join(root, 'grpc-request.bin');
    writeFileSync(frameFile, grpcFrame(grpcMessage(0x51)));
    const nginxUpstreamPid = Number(readFileSync(join(root, 'upstream-nginx', 'nginx.pid'), 'utf8').trim());
    const env: Env = {
      root,
      upstreams: { http1: statics.http1, h2c: statics.h2c, grpc: grpcUp.upstream },
      upstreamPids: [...withDescendants(nginxUpstreamPid), grpcUp.pid],
      grpcFrameFile: frameFile,
    };
    log(`upstreams: nginx HTTP/1.1 :${env.upstreams.http1.port}, h2c :${env.upstreams.h2c.port}; grpc-js :${env.upstreams.grpc.port}; ${JUDGED ? 'full settings' : 'reduced settings (not judged)'}`);
    for (const target of TARGETS) for (const protocol of PROTOCOLS) cells.push(await runCell(env, target, protocol));
    if (PROFILE_SECONDS > 0 && TARGETS.includes('trellis-two-hop')) {
      log(`where the time goes: Trellis two-hop http1 under node --cpu-prof, ${Math.min(WARMUP_SECONDS, 2)}s warm-up, ${PROFILE_SECONDS}s profiled`);
      try {
        where = await whereTimeGoes(env.upstreams.http1, PROFILE_SECONDS, Math.min(WARMUP_SECONDS, 2));
        for (const l of whereLines(where)) log(l);
      } catch (err) {
        log(`the profiled run failed: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
  } finally {
    for (const s of stops.reverse()) await s().catch(() => undefined);
    rmSync(root, { recursive: true, force: true });
  }

  const result: BenchResult = {
    benchmark: 'proxy',
    date: started.toISOString(),
    judged: JUDGED,
    machine: machineInfo(),
    config: { seconds: SECONDS, latencySeconds: LATENCY_SECONDS, rate: RATE, warmupSeconds: WARMUP_SECONDS, targets: TARGETS, protocols: PROTOCOLS, wrk: '-t1 -c32', h2load: '-t1 -c8 -m16', bodyBytes: 1024, trellisNodeFlags: proxyNodeFlags() },
    cells,
    ...(where ? { where } : {}),
  };
  const md = renderMarkdown(result);
  console.log(`\n${md}`);
  if (!WRITE) {
    log('reduced settings: results not written (BENCH_WRITE=1 to write them anyway)');
    return;
  }
  const dir = join(dirname(fileURLToPath(import.meta.url)), 'results');
  writeFileSync(join(dir, 'proxy.json'), `${JSON.stringify(result, null, 2)}\n`);
  writeFileSync(join(dir, 'proxy.md'), md);
  log(`wrote ${join(dir, 'proxy.json')} and proxy.md`);
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? (err.stack ?? err.message) : err);
  killAllStarted();
  process.exitCode = 1;
});
