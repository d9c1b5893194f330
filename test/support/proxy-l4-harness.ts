// Test support for the proxy's L4 core: a real CA in a temp dir issuing workload certificates, the real policy
// runtime over pod manifests, a small static ClusterManager of our own (round robin over fixed hosts, connection
// counting, recorded outcomes; it stands in for the real cluster manager, which is built and tested on its own), a
// flow log, listener/config builders, and loopback servers.
import { once } from 'node:events';
import http from 'node:http';
import http2 from 'node:http2';
import type { Duplex } from 'node:stream';
import { mkdtemp } from 'node:fs/promises';
import net, { type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ConnectionOptions } from 'node:tls';
import { CertificateAuthority } from '../../src/ca/certificate-authority.ts';
import type { CertificateFiles } from '../../src/ca/certificate-files.ts';
import { createCsr } from '../../src/ca/csr.ts';
import { exportPrivateKeyPem, generateP256KeyPair } from '../../src/ca/keys.ts';
import type { Flow } from '../../src/observe/flow.ts';
import type { ClusterManager, ConnectionInfo, FlowReporter, HttpEngine, RequestOutcome, UpstreamCluster, UpstreamHost } from '../../src/proxy/contracts.ts';
import type { MeshTls } from '../../src/proxy/mesh-tls.ts';
import { PolicyRuntime } from '../../src/proxy/policy-runtime.ts';
import { DEFAULT_LISTENER_LIMITS, type ListenerConfig, type ProxyCluster, type ProxyConfig } from '../../src/proxy/proxy-config.ts';
import { loadManifests } from '../../src/resources/load.ts';

export interface IssuedFiles extends CertificateFiles {
  spiffeId: string;
}

export interface TestCa {
  ca: CertificateAuthority;
  issue(namespace: string, serviceAccount: string, ttlMs?: number): Promise<IssuedFiles>;
}

/** A CA with its own freshly generated root in a temp state dir. */
export async function testCa(trustDomain = 'cluster.local'): Promise<TestCa> {
  const ca = await CertificateAuthority.loadOrCreate({ stateDir: await mkdtemp(join(tmpdir(), 'trellis-l4-ca-')), trustDomain });
  return {
    ca,
    async issue(namespace, serviceAccount, ttlMs) {
      const keys = await generateP256KeyPair();
      const issued = await ca.issue(await createCsr(keys), { namespace, serviceAccount }, ttlMs);
      return { spiffeId: issued.spiffeId, certChainPem: issued.certChain.join('\n'), keyPem: await exportPrivateKeyPem(keys.privateKey), rootCertPem: issued.rootCert };
    },
  };
}

export const pod = (ns: string, name: string, ip: string, sa = name): string => `apiVersion: v1
kind: Pod
metadata: {name: ${name}, namespace: ${ns}, labels: {app: ${name}}}
spec:
  serviceAccountName: ${sa}
  nodeName: node-1
  containers: [{name: main, image: x}]
status: {podIP: ${ip}}
`;

const NODE = `apiVersion: v1
kind: Node
metadata: {name: node-1}
spec: {podCIDR: 127.0.64.0/24}
status: {addresses: [{type: InternalIP, address: 127.0.63.1}]}
`;

/** The real policy runtime over a node, the given pods and policies (all YAML). */
export function policyRuntime(...docs: string[]): PolicyRuntime {
  const loaded = loadManifests([NODE, ...docs].map((text, i) => ({ name: `doc${i}.yaml`, text })));
  const errors = loaded.diagnostics.filter((d) => d.severity === 'error');
  if (errors.length > 0) throw new Error(errors.map((e) => e.message).join('\n'));
  return PolicyRuntime.fromSnapshot({ version: '1', trustDomain: 'cluster.local', resources: loaded.resources });
}

export class TestHost implements UpstreamHost {
  activeRequests = 0;
  available = true;
  connections = 0;
  constructor(
    readonly address: string,
    readonly port: number,
    readonly pod?: string,
  ) {}
}

/** One cluster of fixed hosts: round robin, exclusions, a connection limit, and every outcome recorded. */
export class TestCluster implements UpstreamCluster {
  readonly outcomes: { host: TestHost; outcome: RequestOutcome }[] = [];
  #next = 0;
  constructor(
    readonly spec: ProxyCluster,
    readonly hosts: TestHost[],
  ) {}
  pick(ctx: { exclude?: ReadonlySet<UpstreamHost> }): UpstreamHost | undefined {
    for (let i = 0; i < this.hosts.length; i++) {
      const h = this.hosts[(this.#next + i) % this.hosts.length]!;
      if (h.available && !ctx.exclude?.has(h)) {
        this.#next = (this.#next + i + 1) % this.hosts.length;
        return h;
      }
    }
    return undefined;
  }
  tryBeginRequest(host: UpstreamHost): boolean {
    (host as TestHost).activeRequests++;
    return true;
  }
  endRequest(host: UpstreamHost, outcome: RequestOutcome): void {
    (host as TestHost).activeRequests--;
    this.outcomes.push({ host: host as TestHost, outcome });
  }
  tryBeginRetry(): boolean {
    return true;
  }
  endRetry(): void {}
  tryBeginConnection(host: UpstreamHost): boolean {
    const max = this.spec.circuitBreakers?.maxConnections ?? Infinity;
    if ((host as TestHost).connections >= max) return false;
    (host as TestHost).connections++;
    return true;
  }
  endConnection(host: UpstreamHost): void {
    (host as TestHost).connections--;
  }
  tryBeginPending(): boolean {
    return true;
  }
  endPending(): void {}
}

/** A ClusterManager over TestClusters; mesh clusters (spec.mtls) get MeshTls client options. */
export class TestClusters implements ClusterManager {
  readonly clusters = new Map<string, TestCluster>();
  constructor(private readonly tls?: MeshTls) {}
  add(name: string, hosts: { address: string; port: number; pod?: string }[], extra: Partial<ProxyCluster> = {}): TestCluster {
    const spec: ProxyCluster = { name, host: name, port: 0, discovery: 'EDS', lbPolicy: 'ROUND_ROBIN', http2: false, protocol: 'tcp', ...extra };
    const c = new TestCluster(
      spec,
      hosts.map((h) => new TestHost(h.address, h.port, h.pod)),
    );
    this.clusters.set(name, c);
    return c;
  }
  update(_config: ProxyConfig): void {}
  get(name: string): UpstreamCluster | undefined {
    return this.clusters.get(name);
  }
  tlsOptions(cluster: UpstreamCluster, _host: UpstreamHost, alpn: string[]): ConnectionOptions | undefined {
    const m = cluster.spec.mtls;
    return m === undefined || this.tls === undefined ? undefined : this.tls.clientOptions(alpn, m.subjectAltNames);
  }
  close(): void {}
}

export class FlowLog implements FlowReporter {
  readonly flows: Flow[] = [];
  report(flow: Flow): void {
    this.flows.push(flow);
  }
  /** Waits (bounded) until a flow matches. */
  async waitFor(pred: (f: Flow) => boolean, ms = 3000): Promise<Flow> {
    const end = Date.now() + ms;
    for (;;) {
      const f = this.flows.find(pred);
      if (f) return f;
      if (Date.now() > end) throw new Error(`no matching flow within ${ms} ms; flows: ${this.flows.map((x) => x.Summary).join(' | ')}`);
      await sleep(10);
    }
  }
}

export function listener(l: Partial<ListenerConfig> & Pick<ListenerConfig, 'name' | 'direction' | 'address'>): ListenerConfig {
  return { protocol: 'auto', httpFilters: [], limits: { ...DEFAULT_LISTENER_LIMITS }, ...l };
}

export function proxyConfig(listeners: ListenerConfig[]): ProxyConfig {
  return { listeners, routes: new Map(), clusters: new Map(), endpoints: new Map() };
}

/** A loopback TCP server; `onConn` gets each socket. allowHalfOpen so tests can observe half-close. */
export async function tcpServer(host: string, onConn: (s: net.Socket) => void): Promise<{ server: net.Server; port: number; close: () => Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    onConn(s);
  });
  server.listen(0, host);
  await once(server, 'listening');
  return {
    server,
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

/** A free port on host (bound and released). */
export async function freePort(host: string): Promise<number> {
  const s = net.createServer();
  s.listen(0, host);
  await once(s, 'listening');
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** Reads a socket to its end (bounded by `ms`); resolves with the text and whether it ended by reset. */
export function readAll(s: net.Socket, ms = 3000): Promise<{ text: string; error?: string }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const t = setTimeout(() => {
      s.destroy();
      resolve({ text: Buffer.concat(chunks).toString(), error: 'timeout' });
    }, ms);
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(t);
      resolve({ text: Buffer.concat(chunks).toString(), error: e.code ?? e.message });
    });
    s.on('close', () => {
      clearTimeout(t);
      resolve({ text: Buffer.concat(chunks).toString() });
    });
  });
}

/** An HttpEngine of our own over Node's HTTP/1.1 and HTTP/2 servers: it answers `<proto> <transport> <peer> <url>`. */
export class TestHttpEngine implements HttpEngine {
  readonly calls: { info: ConnectionInfo; protocol: 'http1' | 'http2' }[] = [];
  drains: number[] = [];
  readonly #sessions = new Set<{ close(): void }>();
  handleConnection(socket: Duplex, info: ConnectionInfo, protocol: 'http1' | 'http2'): void {
    this.calls.push({ info, protocol });
    const answer = (url: string | undefined): string => `${protocol} ${info.transport} ${info.peerSpiffeId ?? '-'} ${url ?? ''}`;
    if (protocol === 'http2') {
      const srv = http2.createServer((req, res) => res.end(answer(req.url)));
      srv.on('session', (s) => {
        this.#sessions.add(s);
        s.on('close', () => this.#sessions.delete(s));
      });
      srv.emit('connection', socket);
    } else {
      const srv = http.createServer((req, res) => res.end(answer(req.url)));
      srv.emit('connection', socket);
    }
  }
  drain(deadlineMs: number): Promise<void> {
    this.drains.push(deadlineMs);
    for (const s of this.#sessions) s.close();
    return Promise.resolve();
  }
}

/** The shop namespace on loopback: api, db, web and other, each with its own pod IP and service account. */
export const SHOP_IPS = { api: '127.0.64.10', db: '127.0.64.11', web: '127.0.64.12', other: '127.0.64.13' } as const;

/** db admits api and other (NetworkPolicy), but a Cilium deny rule refuses other; web may not egress anywhere. */
export const SHOP_POLICIES = `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db-ingress, namespace: shop}
spec:
  podSelector: {matchLabels: {app: db}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: api}}}, {podSelector: {matchLabels: {app: other}}}]
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: no-other, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: db}}
  ingressDeny:
  - fromEndpoints: [{matchLabels: {app: other}}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-egress, namespace: shop}
spec:
  podSelector: {matchLabels: {app: web}}
  policyTypes: [Egress]
`;

export function shopPolicy(): PolicyRuntime {
  return policyRuntime(`apiVersion: v1
kind: Namespace
metadata: {name: shop}
`, ...Object.entries(SHOP_IPS).map(([name, ip]) => pod('shop', name, ip)), SHOP_POLICIES);
}
