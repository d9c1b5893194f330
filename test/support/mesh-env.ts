// Test support for end-to-end proxy tests: a real control plane (in process) serving manifests from a temp dir, and
// real `trellis proxy` processes (one per pod, sidecar mode) that get certificates from its CA with bootstrap tokens.
// Each pod has three loopback addresses in the test's own /16 (127.S.0.0): its pod IP (the proxy's inbound side),
// the address its app listens on, and the address its outbound listeners bind to (where the app sends requests).
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { pino } from 'pino';
import { ControlPlane } from '../../src/control-plane/control-plane.ts';
import type { Flow } from '../../src/observe/flow.ts';

const ROOT = new URL('../..', import.meta.url).pathname;
const CLI = join(ROOT, 'src/cli/trellis.ts');

export interface MeshPodSpec {
  name: string;
  namespace?: string;
  serviceAccount?: string;
  labels?: Record<string, string>;
  /** Container ports the app listens on (on its app address). */
  ports?: { port: number; name?: string; protocol?: 'TCP' | 'UDP' }[];
  /** Run a proxy for this pod (default true). */
  proxy?: boolean;
  /** spec.nodeName: the pod runs on this node (a per-node proxy from startNodeProxy() serves it; give proxy: false). */
  nodeName?: string;
  /** Extra metadata.annotations (e.g. trellis.dev/request-headers-timeout). */
  annotations?: Record<string, string>;
}

export interface MeshPod {
  name: string;
  namespace: string;
  key: string;
  serviceAccount: string;
  podIp: string;
  appIp: string;
  outboundIp: string;
  labels: Record<string, string>;
}

export interface ProxyProcess {
  pod: MeshPod;
  child: ChildProcess;
  adminUrl: string;
  /** Everything the process wrote to stderr (its JSON log), for failure messages. */
  log(): string;
}

export interface MeshEnvOptions {
  /** Second octet of this test file's addresses: 127.<subnet>.x.y. Distinct per test file. */
  subnet: number;
  pods: MeshPodSpec[];
  /** Services, policies and traffic kinds (YAML). Pods are generated from `pods`. */
  manifests: string;
  xdsProtocol?: 'delta' | 'sotw';
  /** Extra `trellis proxy` flags (a function: per pod, e.g. an audit log path of its own). */
  proxyArgs?: string[] | ((pod: MeshPod) => string[]);
  /** Lifetime of the workload certificates the control plane's CA issues (short: proxies rotate at half-life). */
  workloadTtlMs?: number;
  /** Files written into the manifests directory before anything starts (e.g. extension filter modules), by relative name. */
  files?: Record<string, string>;
  /** Proxies serve the Observer API (`--observer-port 0`) and the control plane runs the flow relay on a free port. */
  observer?: boolean;
}

export function podYaml(p: MeshPod, spec: MeshPodSpec): string {
  const labels = Object.entries(p.labels).map(([k, v]) => `${JSON.stringify(k)}: ${JSON.stringify(v)}`).join(', ');
  const ports = (spec.ports ?? []).map((x) => `{containerPort: ${x.port}${x.name ? `, name: ${x.name}` : ''}, protocol: ${x.protocol ?? 'TCP'}}`).join(', ');
  return `apiVersion: v1
kind: Pod
metadata:
  name: ${p.name}
  namespace: ${p.namespace}
  labels: {${labels}}
  annotations: {trellis.dev/app-ip: ${p.appIp}, trellis.dev/outbound-ip: ${p.outboundIp}${Object.entries(spec.annotations ?? {}).map(([k, v]) => `, ${JSON.stringify(k)}: ${JSON.stringify(v)}`).join('')}}
spec:
  serviceAccountName: ${p.serviceAccount}${spec.nodeName ? `\n  nodeName: ${spec.nodeName}` : ''}
  containers: [{name: main, image: app, ports: [${ports}]}]
status: {podIP: ${p.podIp}}
`;
}

export class MeshEnv {
  readonly pods = new Map<string, MeshPod>();
  readonly proxies = new Map<string, ProxyProcess>();
  cp!: ControlPlane;
  /** False between stopControlPlane() and startControlPlane(). */
  private cpRunning = true;
  private constructor(
    readonly dir: string,
    readonly opts: MeshEnvOptions,
  ) {}

  /** Writes the manifests, starts the control plane, then a proxy per pod, and waits until every proxy is ready. */
  static async start(opts: MeshEnvOptions): Promise<MeshEnv> {
    const dir = await mkdtemp(join(tmpdir(), 'trellis-mesh-'));
    const env = new MeshEnv(dir, opts);
    opts.pods.forEach((spec, i) => {
      const n = i + 1;
      const namespace = spec.namespace ?? 'default';
      const p: MeshPod = {
        name: spec.name,
        namespace,
        key: `${namespace}/${spec.name}`,
        serviceAccount: spec.serviceAccount ?? spec.name,
        podIp: `127.${opts.subnet}.1.${n}`,
        appIp: `127.${opts.subnet}.2.${n}`,
        outboundIp: `127.${opts.subnet}.3.${n}`,
        labels: spec.labels ?? { app: spec.name },
      };
      env.pods.set(spec.name, p);
    });
    await env.writeManifests(opts.manifests);
    for (const [name, text] of Object.entries(opts.files ?? {})) await writeFile(join(dir, 'manifests', name), text);
    env.cp = new ControlPlane({ paths: [join(dir, 'manifests')], stateDir: join(dir, 'cp'), xdsPort: 0, adminPort: 0, caPort: 0, debounceMs: 50, logger: pino({ level: 'silent' }), ...env.caOptions(), ...(opts.observer ? { relayPort: 0 } : {}) });
    await env.cp.start();
    try {
      await Promise.all(opts.pods.filter((s) => s.proxy !== false).map((s) => env.startProxy(s.name)));
    } catch (e) {
      await env.stop();
      throw e;
    }
    return env;
  }

  private caOptions(): { workloadTtlMs?: number } {
    return this.opts.workloadTtlMs !== undefined ? { workloadTtlMs: this.opts.workloadTtlMs } : {};
  }

  pod(name: string): MeshPod {
    const p = this.pods.get(name);
    if (!p) throw new Error(`no pod ${name}`);
    return p;
  }

  /** Replaces the user manifests (pods are regenerated); the control plane applies them live. */
  async writeManifests(manifests: string): Promise<void> {
    const pods = this.opts.pods.map((s) => podYaml(this.pod(s.name), s)).join('---\n');
    const { mkdir } = await import('node:fs/promises');
    await mkdir(join(this.dir, 'manifests'), { recursive: true });
    await writeFile(join(this.dir, 'manifests', 'mesh.yaml'), `${pods}---\n${manifests}`);
  }

  /** Starts (or restarts) the proxy of a pod and waits for its /ready. */
  async startProxy(name: string): Promise<ProxyProcess> {
    const p = this.pod(name);
    const token = this.cp.tokens.issue({ namespace: p.namespace, serviceAccount: p.serviceAccount });
    return this.launch(name, p, ['--node', p.key, '--ip', p.podIp], token, `proxy-${p.namespace}-${p.name}`);
  }

  /**
   * Starts one per-node proxy (`trellis proxy --mode node --node node~<IP>~<node>~trellis`) for every pod whose
   * spec says `nodeName` (give those pods `proxy: false`), and waits for its /ready. The node's address is
   * 127.S.4.<index>; its own certificate is for service account `trellis-node` in `trellis-system`, and it gets a
   * token per service account of the node's pods (`--workload-token`), so each pod's connections carry that pod's
   * identity. The proxy is known to flows(), metrics(), stopProxy() as `node/<nodeName>`.
   */
  async startNodeProxy(nodeName: string, index = 1): Promise<ProxyProcess> {
    const name = `node/${nodeName}`;
    const ip = `127.${this.opts.subnet}.4.${index}`;
    const node: MeshPod = { name: nodeName, namespace: 'trellis-system', key: name, serviceAccount: 'trellis-node', podIp: ip, appIp: ip, outboundIp: ip, labels: {} };
    const token = this.cp.tokens.issue({ namespace: node.namespace, serviceAccount: node.serviceAccount });
    const identities = new Set<string>();
    for (const s of this.opts.pods) if (s.nodeName === nodeName) identities.add(`${s.namespace ?? 'default'}/${s.serviceAccount ?? s.name}`);
    const workload = [...identities].flatMap((id) => {
      const [namespace = '', serviceAccount = ''] = id.split('/');
      return ['--workload-token', `${id}=${this.cp.tokens.issue({ namespace, serviceAccount })}`];
    });
    return this.launch(name, node, ['--mode', 'node', '--node', `node~${ip}~${nodeName}~trellis`, ...workload], token, `node-${nodeName}`);
  }

  private async launch(name: string, p: MeshPod, who: string[], token: string, stateDir: string): Promise<ProxyProcess> {
    const args = [
      '--import', 'tsx', CLI, 'proxy',
      '--xds', `127.0.0.1:${this.cp.xdsPort}`,
      ...who,
      '--token', token, '--ca', this.cp.caTarget ?? '', '--ca-bundle', join(this.dir, 'cp', 'root-cert.pem'),
      '--state-dir', join(this.dir, stateDir),
      '--admin-port', '0', '--xds-protocol', this.opts.xdsProtocol ?? 'delta', '--drain-seconds', '1',
      ...(this.opts.observer ? ['--observer-port', '0'] : []),
      ...(typeof this.opts.proxyArgs === 'function' ? this.opts.proxyArgs(p) : (this.opts.proxyArgs ?? [])),
    ];
    const child = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    child.stderr?.setEncoding('utf8').on('data', (d: string) => {
      err = (err + d).slice(-64 * 1024);
    });
    const adminUrl = await new Promise<string>((resolve, reject) => {
      let out = '';
      const timer = setTimeout(() => reject(new Error(`proxy ${name} printed no admin address in 20 s:\n${err}`)), 20_000);
      child.stdout?.setEncoding('utf8').on('data', (d: string) => {
        out += d;
        const m = /admin\s+(http:\/\/\S+)/.exec(out);
        if (m?.[1]) {
          clearTimeout(timer);
          resolve(m[1]);
        }
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`proxy ${name} exited with ${code}:\n${err}`));
      });
    });
    const proc: ProxyProcess = { pod: p, child, adminUrl, log: () => err };
    this.proxies.set(name, proc);
    await this.waitReady(name);
    return proc;
  }

  proxy(name: string): ProxyProcess {
    const p = this.proxies.get(name);
    if (!p) throw new Error(`no proxy for ${name}`);
    return p;
  }

  /** Waits until the proxy's /ready answers 200. */
  async waitReady(name: string, timeoutMs = 20_000): Promise<void> {
    const p = this.proxy(name);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        const r = await fetch(`${p.adminUrl}/ready`);
        if (r.status === 200) return;
      } catch {
        // not up yet
      }
      if (Date.now() > deadline) throw new Error(`proxy ${name} not ready after ${timeoutMs} ms:\n${p.log()}`);
      await sleep(50);
    }
  }

  /** The last `n` flows the pod's proxy recorded, oldest first. */
  async flows(name: string, n = 100): Promise<Flow[]> {
    const r = await fetch(`${this.proxy(name).adminUrl}/flows?last=${n}`);
    const body = (await r.json()) as { flows?: Flow[] } | Flow[];
    return Array.isArray(body) ? body : (body.flows ?? []);
  }

  /** Polls until a flow matching `pred` appears at the pod's proxy. */
  async waitFlow(name: string, pred: (f: Flow) => boolean, timeoutMs = 5000): Promise<Flow> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const hit = (await this.flows(name, 1000)).find(pred);
      if (hit) return hit;
      if (Date.now() > deadline) throw new Error(`no matching flow at ${name} within ${timeoutMs} ms`);
      await sleep(50);
    }
  }

  async metrics(name: string): Promise<string> {
    return (await fetch(`${this.proxy(name).adminUrl}/stats/prometheus`)).text();
  }

  /** Resident set size of a pod's proxy process, bytes (Linux /proc). */
  async rss(name: string): Promise<number> {
    const status = await readFile(`/proc/${this.proxy(name).child.pid}/status`, 'utf8');
    const m = /VmRSS:\s+(\d+) kB/.exec(status);
    return Number(m?.[1] ?? 0) * 1024;
  }

  /** Stops a proxy: SIGTERM (graceful drain), SIGKILL after 5 s. */
  async stopProxy(name: string, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const p = this.proxies.get(name);
    if (!p) return;
    this.proxies.delete(name);
    if (p.child.exitCode !== null || p.child.signalCode !== null) return;
    const exited = once(p.child, 'exit');
    p.child.kill(signal);
    const t = setTimeout(() => p.child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(t);
  }

  /** Stops the in-process control plane (xDS, CA, admin); the proxies keep their last good config and reconnect with backoff. */
  async stopControlPlane(): Promise<void> {
    if (!this.cpRunning) return;
    this.cpRunning = false;
    await this.cp.stop();
  }

  /**
   * Starts a new control plane on the xDS and CA ports of the previous one, over the same manifests directory and
   * state directory (so the same CA root), after replacing the user manifests with `manifests` when given. The
   * proxies find it by themselves when they next reconnect.
   */
  async startControlPlane(manifests?: string): Promise<void> {
    if (this.cpRunning) throw new Error('the control plane is running; stopControlPlane() first');
    if (manifests !== undefined) await this.writeManifests(manifests);
    const caPort = Number(/:(\d+)$/.exec(this.cp.caTarget ?? '')?.[1] ?? '0');
    const cp = new ControlPlane({ paths: [join(this.dir, 'manifests')], stateDir: join(this.dir, 'cp'), xdsPort: this.cp.xdsPort, adminPort: 0, caPort, debounceMs: 50, logger: pino({ level: 'silent' }), ...this.caOptions(), ...(this.opts.observer ? { relayPort: 0 } : {}) });
    await cp.start();
    this.cp = cp;
    this.cpRunning = true;
  }

  /** stopControlPlane(), then startControlPlane(manifests). */
  async restartControlPlane(manifests?: string): Promise<void> {
    await this.stopControlPlane();
    await this.startControlPlane(manifests);
  }

  async stop(): Promise<void> {
    await Promise.all([...this.proxies.keys()].map((n) => this.stopProxy(n)));
    if (this.cpRunning) await this.cp?.stop();
    await rm(this.dir, { recursive: true, force: true });
  }
}
