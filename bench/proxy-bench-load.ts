// Loads for the proxy benchmark: wrk (HTTP/1.1) and h2load (h2c, gRPC unary) at full speed for the maximum
// throughput, and an open-loop generator at a fixed rate (wrk2 is not in Debian) for the latency a proxy adds:
// requests leave on a schedule whether or not earlier ones have returned, each timed with the monotonic clock
// from the moment it is handed to the client until its last byte (or status) arrives.
import * as http from 'node:http';
import * as http2 from 'node:http2';
import * as grpc from '@grpc/grpc-js';
import { runTool } from './proxy-bench-procs.ts';
import { BODY_BYTES, grpcMessage, type BenchProtocol } from './proxy-bench-types.ts';

export interface Percentiles {
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
  mean: number;
}

/** Nearest-rank percentiles of the first n values (sorted in place). */
export function percentiles(xs: Float64Array, n: number = xs.length): Percentiles {
  const a = xs.subarray(0, n).sort();
  const at = (q: number): number => (n === 0 ? NaN : (a[Math.min(n - 1, Math.max(0, Math.ceil(q * n) - 1))] as number));
  let sum = 0;
  for (let i = 0; i < n; i++) sum += a[i] as number;
  return { p50: at(0.5), p90: at(0.9), p99: at(0.99), p999: at(0.999), max: n === 0 ? NaN : (a[n - 1] as number), mean: n === 0 ? NaN : sum / n };
}

export interface SaturationResult {
  tool: string;
  args: string[];
  seconds: number;
  requests: number;
  rps: number;
  /** Requests that failed (non-2xx, socket errors, h2load failed/errored). */
  errors: number;
  /** The tool's own latency percentiles under full load, ms (wrk only; for information). */
  latencyMs?: { p50: number; p90: number; p99: number };
}

const WRK_UNITS: Record<string, number> = { us: 0.001, ms: 1, s: 1000 };

/** wrk -t1 -c32 -dSs: HTTP/1.1 keep-alive, 32 connections. */
export async function runWrk(url: string, seconds: number): Promise<SaturationResult> {
  const args = ['-t1', '-c32', `-d${seconds}s`, '--latency', url];
  const r = await runTool('wrk', args, (seconds + 30) * 1000);
  const out = r.stdout;
  const m = /(\d+) requests in ([\d.]+)(us|ms|s|m)/.exec(out);
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(out);
  if (r.code !== 0 || !m || !rps) throw new Error(`wrk failed (${r.code}): ${r.stderr || out}`);
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0);
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const sockErrors = sock ? sock.slice(1).reduce((s, x) => s + Number(x), 0) : 0;
  const pct = (p: string): number => {
    const x = new RegExp(`^\\s+${p}%\\s+([\\d.]+)(us|ms|s)`, 'm').exec(out);
    return x ? Number(x[1]) * (WRK_UNITS[x[2] as string] ?? NaN) : NaN;
  };
  return { tool: 'wrk', args, seconds, requests: Number(m[1]), rps: Number(rps[1]), errors: non2xx + sockErrors, latencyMs: { p50: pct('50'), p90: pct('90'), p99: pct('99') } };
}

/** h2load -t1 -c8 -m16 -D S: HTTP/2 prior knowledge, 8 connections × 16 streams; with a gRPC frame to POST for gRPC. */
export async function runH2load(url: string, seconds: number, grpcFrameFile?: string): Promise<SaturationResult> {
  const args = ['-t1', '-c8', '-m16', '-D', String(seconds)];
  if (grpcFrameFile !== undefined) args.push('-d', grpcFrameFile, '-H', 'content-type: application/grpc', '-H', 'te: trailers');
  args.push(url);
  const r = await runTool('h2load', args, (seconds + 30) * 1000);
  const out = r.stdout;
  const fin = /finished in ([\d.]+)(ms|s), ([\d.]+) req\/s/.exec(out);
  const req = /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/.exec(out);
  const codes = /status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/.exec(out);
  if (r.code !== 0 || !fin || !req) throw new Error(`h2load failed (${r.code}): ${r.stderr || out}`);
  // "status codes" also counts answers whose headers arrived for requests still in flight when the time was up, so
  // the count is `succeeded`; non-2xx answers and failures are the errors. (gRPC statuses travel in trailers, which
  // h2load does not check: the smoke call before each run checks them with grpc-js.)
  const requests = Number(req[4]);
  const non2xx = codes ? Number(codes[2]) + Number(codes[3]) + Number(codes[4]) : 0;
  const secondsRun = Number(fin[1]) / (fin[2] === 'ms' ? 1000 : 1);
  const errors = Number(req[5]) + Number(req[6]) + Number(req[7]) + non2xx;
  return { tool: 'h2load', args, seconds, requests, rps: requests / secondsRun, errors };
}

/** One request; calls done exactly once, with an error when the answer is not a 200 (gRPC: OK) with 1 KB. */
export interface Client {
  send(done: (err?: Error) => void): void;
  close(): void;
}

const identity = (b: Buffer): Buffer => b;

export function makeClient(protocol: BenchProtocol, url: string, path: string): Client {
  const u = new URL(url);
  const host = u.hostname;
  const port = Number(u.port);
  if (protocol === 'http1') {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 64, scheduling: 'lifo' });
    return {
      send(done) {
        const req = http.request({ host, port, path, agent, method: 'GET' }, (res) => {
          let n = 0;
          res.on('data', (b: Buffer) => (n += b.length));
          res.on('end', () => done(res.statusCode === 200 && n === BODY_BYTES ? undefined : new Error(`HTTP ${res.statusCode}, ${n} bytes`)));
          res.on('error', done);
        });
        req.on('error', done);
        req.end();
      },
      close: () => agent.destroy(),
    };
  }
  if (protocol === 'h2c') {
    const session = http2.connect(`http://${host}:${port}`);
    session.on('error', () => undefined); // each stream reports its own failure
    return {
      send(done) {
        const st = session.request({ ':path': path });
        let status = 0;
        let n = 0;
        st.on('response', (h) => (status = Number(h[':status'])));
        st.on('data', (b: Buffer) => (n += b.length));
        st.on('end', () => done(status === 200 && n === BODY_BYTES ? undefined : new Error(`HTTP/2 ${status}, ${n} bytes`)));
        st.on('error', done);
        st.end();
      },
      close: () => session.close(),
    };
  }
  const client = new grpc.Client(`${host}:${port}`, grpc.credentials.createInsecure());
  const request = grpcMessage(0x51);
  return {
    send(done) {
      client.makeUnaryRequest(path, identity, identity, request, (err, res) => done(err ?? (res?.length === BODY_BYTES ? undefined : new Error(`gRPC answer of ${res?.length} bytes`))));
    },
    close: () => client.close(),
  };
}

/** One request through the client, bounded in time: the smoke check before a target is loaded. */
export function once(client: Client, timeoutMs = 5000): Promise<void> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    client.send((err) => {
      clearTimeout(t);
      if (err) reject(err);
      else resolve();
    });
  });
}

export interface FixedRateResult {
  rate: number;
  seconds: number;
  scheduled: number;
  ok: number;
  errors: number;
  /** Not sent because maxInFlight requests were outstanding (the target could not keep up). */
  skipped: number;
  achievedRps: number;
  latencyMs: Percentiles;
  /** How late requests left against their schedule (timer granularity, pauses), ms. */
  sendLagMs: Percentiles;
  firstError?: string;
}

/** What one fixed-rate run leaves: every latency and lag, so runs can be merged before percentiles are taken. */
interface RawRun {
  scheduled: number;
  ok: number;
  errors: number;
  skipped: number;
  /** Time the schedule covered, ns. */
  spanNs: number;
  lat: Float64Array;
  lag: Float64Array;
  sent: number;
  firstError?: string;
}

/** Sends `rate` requests per second for `seconds`, open loop; `sample` is called every 250 ms meanwhile. */
export async function fixedRate(client: Client, rate: number, seconds: number, opts: { maxInFlight?: number; sample?: () => void } = {}): Promise<FixedRateResult> {
  const sampler = opts.sample ? setInterval(opts.sample, 250) : undefined;
  try {
    return summarize([await runOpenLoop(client, rate, seconds, opts.maxInFlight ?? 256)], rate, seconds);
  } finally {
    if (sampler) clearInterval(sampler);
  }
}

/**
 * Fixed rate through several clients in turn, `sliceSeconds` each, for `seconds` per client: the proxy under test
 * and direct alternate every half second, so both see the same background load on a shared machine and "added"
 * compares like with like. One result per client.
 */
export async function interleaved(clients: readonly Client[], rate: number, seconds: number, opts: { sliceSeconds?: number; sample?: (client: number) => void } = {}): Promise<FixedRateResult[]> {
  const slice = opts.sliceSeconds ?? 0.5;
  const slices = Math.max(1, Math.round(seconds / slice));
  const runs: RawRun[][] = clients.map(() => []);
  for (let s = 0; s < slices; s++) {
    for (let c = 0; c < clients.length; c++) {
      const sampler = opts.sample ? setInterval(() => opts.sample?.(c), 250) : undefined;
      try {
        runs[c]?.push(await runOpenLoop(clients[c] as Client, rate, slice, 256));
      } finally {
        if (sampler) clearInterval(sampler);
      }
      opts.sample?.(c);
    }
  }
  return runs.map((r) => summarize(r, rate, slices * slice));
}

function summarize(runs: readonly RawRun[], rate: number, seconds: number): FixedRateResult {
  const cat = (pick: (r: RawRun) => Float64Array, n: (r: RawRun) => number): [Float64Array, number] => {
    const total = runs.reduce((t, r) => t + n(r), 0);
    const out = new Float64Array(total);
    let at = 0;
    for (const r of runs) {
      out.set(pick(r).subarray(0, n(r)), at);
      at += n(r);
    }
    return [out, total];
  };
  const [lat, ok] = cat((r) => r.lat, (r) => r.ok);
  const [lag, sent] = cat((r) => r.lag, (r) => r.sent);
  const spanNs = runs.reduce((t, r) => t + r.spanNs, 0);
  const firstError = runs.find((r) => r.firstError !== undefined)?.firstError;
  return {
    rate,
    seconds,
    scheduled: runs.reduce((t, r) => t + r.scheduled, 0),
    ok,
    errors: runs.reduce((t, r) => t + r.errors, 0),
    skipped: runs.reduce((t, r) => t + r.skipped, 0),
    achievedRps: (ok * 1e9) / Math.max(1, spanNs),
    latencyMs: percentiles(lat, ok),
    sendLagMs: percentiles(lag, sent),
    ...(firstError !== undefined ? { firstError } : {}),
  };
}

function runOpenLoop(client: Client, rate: number, seconds: number, maxInFlight: number): Promise<RawRun> {
  const total = Math.round(rate * seconds);
  const interval = 1e9 / rate;
  const lat = new Float64Array(total);
  const lag = new Float64Array(total);
  let sent = 0;
  let ok = 0;
  let errors = 0;
  let skipped = 0;
  let inFlight = 0;
  let firstError: string | undefined;
  const base = process.hrtime.bigint();
  const nowNs = (): number => Number(process.hrtime.bigint() - base);
  return new Promise((resolve) => {
    let finished = false;
    let tickTimer: NodeJS.Timeout | undefined;
    const finish = (): void => {
      if (finished) return;
      finished = true;
      clearTimeout(deadline);
      if (tickTimer) clearTimeout(tickTimer);
      errors += inFlight; // still outstanding at the deadline
      resolve({ scheduled: total, ok, errors, skipped, spanNs: Math.min(nowNs(), total * interval), lat, lag, sent, ...(firstError !== undefined ? { firstError } : {}) });
    };
    const deadline = setTimeout(finish, (seconds + 10) * 1000);
    const tick = (): void => {
      const now = nowNs();
      while (sent + skipped < total && (sent + skipped) * interval <= now) {
        const due = (sent + skipped) * interval;
        if (inFlight >= maxInFlight) {
          skipped++;
          continue;
        }
        const start = process.hrtime.bigint();
        lag[sent++] = (Number(start - base) - due) / 1e6;
        inFlight++;
        let done = false;
        client.send((err) => {
          if (done || finished) return;
          done = true;
          inFlight--;
          if (err) {
            errors++;
            firstError ??= err.message;
          } else lat[ok++] = Number(process.hrtime.bigint() - start) / 1e6;
          if (sent + skipped >= total && inFlight === 0) finish();
        });
      }
      if (sent + skipped < total) tickTimer = setTimeout(tick, 1);
      else if (inFlight === 0) finish();
    };
    tick();
  });
}
