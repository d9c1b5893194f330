// Starts Trellis in front of one benchmark upstream, for bench/proxy-bench.ts: the real control plane (in this
// process: it is not measured) serving manifests generated into a temp dir, and real `trellis proxy` processes run
// from the compiled code (dist/, rebuilt first when stale; not tsx, which would add ~100 MB RSS and startup time).
// `two-hop`: a client pod's proxy (outbound listener) and the server pod's proxy (inbound listener), mesh mTLS
// STRICT between them, a CiliumNetworkPolicy with L7 HTTP rules (GET and POST) on the port, flows on. The load
// generator connects to the client pod's outbound address; the Service's clusterIP is that address, so the Host /
// :authority the tools send (`ip:port`) is one of the Service's domains, as a ClusterIP client's would be.
// `one-hop`: the server pod's proxy alone; the load generator (not a pod: the `world` entity) connects to its
// inbound listener in plaintext (PeerAuthentication PERMISSIVE), and the same L7 rules apply. The upstream is the
// server pod's app: its app address (trellis.dev/app-ip) is the upstream's host. pids are the proxies only.
//
// Environment: BENCH_PROXY_NODE_FLAGS (the proxies' node flags, space-separated, instead of
// DEFAULT_PROXY_NODE_FLAGS; empty for none), BENCH_PROXY_ENV (extra environment for them, `NAME=value …`),
// BENCH_CPU_PROF=DIR (start the proxies with --cpu-prof into DIR; each profile is written when its proxy stops).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import os from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { ensureBuilt, ROOT } from './proxy-bench-build.ts';
import type { BenchProtocol, BenchUpstream, RunningProxy } from './proxy-bench-types.ts';

export type TrellisMode = 'one-hop' | 'two-hop';

export class TrellisNotAvailable extends Error {
  readonly code = 'not-available';
  constructor(mode: TrellisMode, why = 'bench/proxy-bench-trellis.ts does not start the proxy') {
    super(`Trellis ${mode} is not available: ${why}`);
    this.name = 'TrellisNotAvailable';
  }
}

/** The bench's own loopback /16 (test files use 127.41–127.60). */
const SUBNET = 250;
const NS = 'bench';
const SERVICE = 'upstream';
const CLIENT = { name: 'client', podIp: `127.${SUBNET}.1.1`, appIp: `127.${SUBNET}.2.1`, outboundIp: `127.${SUBNET}.3.1` };
const SERVER = { name: 'server', podIp: `127.${SUBNET}.1.2`, outboundIp: `127.${SUBNET}.3.2` };
const APP_PROTOCOL: Record<BenchProtocol, string> = { http1: 'http', h2c: 'http2', grpc: 'grpc' };

function pod(p: { name: string; podIp: string; outboundIp: string }, appIp: string, ports: number[]): string {
  return `apiVersion: v1
kind: Pod
metadata:
  name: ${p.name}
  namespace: ${NS}
  labels: {app: ${p.name}}
  annotations: {trellis.dev/app-ip: "${appIp}", trellis.dev/outbound-ip: "${p.outboundIp}"}
spec:
  serviceAccountName: ${p.name}
  containers: [{name: main, image: app, ports: [${ports.map((x) => `{containerPort: ${x}, name: http, protocol: TCP}`).join(', ')}]}]
status: {podIP: ${p.podIp}}
`;
}

/** The manifests of one run: the pods, the Service, the L7 policy and the mTLS mode. */
export function benchManifests(mode: TrellisMode, up: BenchUpstream): string {
  const port = up.port;
  const from = mode === 'two-hop' ? `fromEndpoints: [{matchLabels: {app: ${CLIENT.name}}}]` : 'fromEntities: [world]';
  const docs = [
    `apiVersion: v1\nkind: Namespace\nmetadata: {name: ${NS}}\n`,
    pod(SERVER, up.host, [port]),
    ...(mode === 'two-hop' ? [pod(CLIENT, CLIENT.appIp, [])] : []),
    `apiVersion: v1
kind: Service
metadata: {name: ${SERVICE}, namespace: ${NS}}
spec:
  clusterIP: ${CLIENT.outboundIp}
  selector: {app: ${SERVER.name}}
  ports: [{name: http, port: ${port}, targetPort: ${port}, appProtocol: ${APP_PROTOCOL[up.protocol]}}]
`,
    `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: upstream-l7, namespace: ${NS}}
spec:
  endpointSelector: {matchLabels: {app: ${SERVER.name}}}
  ingress:
  - ${from}
    toPorts:
    - ports: [{port: "${port}", protocol: TCP}]
      rules:
        http: [{method: GET}, {method: POST}]
`,
    `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: mtls, namespace: ${NS}}
spec:
  mtls: {mode: ${mode === 'two-hop' ? 'STRICT' : 'PERMISSIVE'}}
`,
  ];
  return docs.join('---\n');
}

interface ProxyProc {
  child: ChildProcess;
  output(): string;
  stop(): Promise<void>;
}

/**
 * Node flags the proxies run with unless BENCH_PROXY_NODE_FLAGS says otherwise (as a sidecar would get them through
 * NODE_OPTIONS): a young generation of 2 × 2 MB instead of V8's default of up to 2 × 16 MB. Measured back to back on
 * HTTP/1.1 two-hop: ~28 MB less RSS per proxy at 1,000 rps (~131 → ~104 MB) with throughput per core within the
 * noise; --optimize-for-size cost ~30 % of throughput and --heap-growing-percent more, so they are not used.
 */
export const DEFAULT_PROXY_NODE_FLAGS = ['--max-semi-space-size=2'];

/** The node flags of the proxies this run starts. */
export function proxyNodeFlags(): string[] {
  const v = process.env.BENCH_PROXY_NODE_FLAGS;
  return v === undefined ? [...DEFAULT_PROXY_NODE_FLAGS] : v.split(/\s+/).filter(Boolean);
}

export interface TrellisOptions {
  /** Write a V8 CPU profile of each proxy into this directory (when it stops). Default: BENCH_CPU_PROF. */
  cpuProfDir?: string;
  /** On SIGUSR2 each proxy writes its memory breakdown to `<dir>/memory-<pid>.json` (see readMemory). */
  memoryProbeDir?: string;
}

/** What the memory probe writes: process.memoryUsage() and V8's heap spaces, in bytes, before and after a full GC. */
export interface ProxyMemory {
  rss: number;
  heapTotal: number;
  heapUsed: number;
  external: number;
  arrayBuffers: number;
  spaces: Record<string, { size: number; used: number }>;
  afterGc?: { rss: number; heapUsed: number; heapTotal: number };
}

// Preloaded with --import as a data: URL, so nothing but the flag differs from a normal proxy.
const PROBE = `import v8 from 'node:v8';import {writeFileSync} from 'node:fs';
const dir=process.env.TRELLIS_BENCH_PROBE_DIR;
const snap=()=>{const m=process.memoryUsage();const spaces={};for(const s of v8.getHeapSpaceStatistics())spaces[s.space_name]={size:s.space_size,used:s.space_used_size};return {...m,spaces};};
process.on('SIGUSR2',()=>{const m=snap();if(globalThis.gc){globalThis.gc();const a=process.memoryUsage();m.afterGc={rss:a.rss,heapUsed:a.heapUsed,heapTotal:a.heapTotal};}
writeFileSync(dir+'/memory-'+process.pid+'.json',JSON.stringify(m));});`;

function nodeFlags(o: TrellisOptions): string[] {
  const flags = proxyNodeFlags();
  const prof = o.cpuProfDir ?? process.env.BENCH_CPU_PROF;
  if (prof) {
    mkdirSync(prof, { recursive: true });
    flags.push('--cpu-prof', `--cpu-prof-dir=${prof}`);
  }
  if (o.memoryProbeDir) flags.push('--expose-gc', '--import', `data:text/javascript,${encodeURIComponent(PROBE)}`);
  return flags;
}

/** Asks a proxy started with memoryProbeDir for its memory breakdown (a full GC follows the first reading). */
export async function readMemory(dir: string, pid: number, timeoutMs = 5000): Promise<ProxyMemory> {
  const file = join(dir, `memory-${pid}.json`);
  rmSync(file, { force: true });
  process.kill(pid, 'SIGUSR2');
  const until = Date.now() + timeoutMs;
  for (;;) {
    try {
      return JSON.parse(readFileSync(file, 'utf8')) as ProxyMemory;
    } catch {
      // not written (completely) yet
    }
    if (Date.now() > until) throw new Error(`proxy ${pid} wrote no memory report within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** One `trellis proxy` process from dist/, with a token from the control plane's CA; resolves once /ready is 200. */
async function startProxy(dir: string, cp: import('../src/control-plane/control-plane.ts').ControlPlane, p: { name: string; podIp: string }, o: TrellisOptions): Promise<ProxyProc> {
  const token = cp.tokens.issue({ namespace: NS, serviceAccount: p.name });
  const args = [
    ...nodeFlags(o),
    join(ROOT, 'dist/cli/trellis.js'),
    'proxy',
    '--xds', `127.0.0.1:${cp.xdsPort}`,
    '--node', `${NS}/${p.name}`, '--ip', p.podIp,
    '--token', token, '--ca', cp.caTarget ?? '', '--ca-bundle', join(dir, 'cp', 'root-cert.pem'),
    '--state-dir', join(dir, `proxy-${p.name}`),
    '--admin-port', '0', '--drain-seconds', '0',
  ];
  const env: NodeJS.ProcessEnv = { ...process.env, ...(o.memoryProbeDir ? { TRELLIS_BENCH_PROBE_DIR: o.memoryProbeDir } : {}) };
  for (const kv of (process.env.BENCH_PROXY_ENV ?? '').split(/\s+/).filter(Boolean)) {
    const i = kv.indexOf('=');
    if (i > 0) env[kv.slice(0, i)] = kv.slice(i + 1);
  }
  const child = spawn(process.execPath, args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const keep = (d: Buffer): void => {
    out = (out + d.toString()).slice(-16384);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const proc: ProxyProc = {
    child,
    output: () => out,
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`proxy ${p.name} had exited (${child.exitCode ?? child.signalCode}) before the end of the run:\n${out}`);
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(t);
    },
  };
  const deadline = Date.now() + 30_000;
  let admin: string | undefined;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`proxy ${p.name} exited with ${child.exitCode ?? child.signalCode}:\n${out}`);
    admin ??= /admin\s+(http:\/\/\S+)/.exec(out)?.[1];
    if (admin !== undefined && (await fetch(`${admin}/ready`).then((r) => r.status === 200, () => false))) return proc;
    if (Date.now() > deadline) {
      await proc.stop();
      throw new Error(`proxy ${p.name} not ready within 30 s:\n${out}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Waits until a TCP connect to host:port succeeds (the listener from the first configuration is bound). */
async function waitListening(host: string, port: number, timeoutMs = 10_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect(port, host);
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > until) throw new Error(`nothing listens on ${host}:${port} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A running Trellis: the proxies (server side first) and what each one is. */
export interface RunningTrellis extends RunningProxy {
  roles: ('server' | 'client')[];
  /** The last 16 KB each proxy wrote (its JSON log and warnings), in pids order. */
  outputs(): string[];
}

export async function startTrellis(mode: TrellisMode, upstream: BenchUpstream, opts: TrellisOptions = {}): Promise<RunningTrellis> {
  await ensureBuilt();
  const { ControlPlane } = await import('../src/control-plane/control-plane.ts');
  const dir = mkdtempSync(join(os.tmpdir(), 'trellis-bench-mesh-'));
  mkdirSync(join(dir, 'manifests'));
  writeFileSync(join(dir, 'manifests', 'bench.yaml'), benchManifests(mode, upstream));
  const cp = new ControlPlane({ paths: [join(dir, 'manifests')], stateDir: join(dir, 'cp'), xdsPort: 0, adminPort: 0, caPort: 0, logger: pino({ level: 'silent' }) });
  const procs: ProxyProc[] = [];
  const stop = async (): Promise<void> => {
    const results = await Promise.allSettled(procs.map((p) => p.stop()));
    await cp.stop();
    rmSync(dir, { recursive: true, force: true });
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
  };
  try {
    await cp.start();
    procs.push(await startProxy(dir, cp, SERVER, opts));
    await waitListening(SERVER.podIp, upstream.port);
    if (mode === 'two-hop') {
      procs.push(await startProxy(dir, cp, CLIENT, opts));
      await waitListening(CLIENT.outboundIp, upstream.port);
    }
  } catch (e) {
    await stop().catch(() => undefined);
    throw e;
  }
  const host = mode === 'two-hop' ? CLIENT.outboundIp : SERVER.podIp;
  return { url: `http://${host}:${upstream.port}`, pids: procs.map((p) => p.child.pid ?? 0), roles: mode === 'two-hop' ? ['server', 'client'] : ['server'], outputs: () => procs.map((p) => p.output()), stop };
}
