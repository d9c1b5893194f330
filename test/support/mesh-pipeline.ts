// Test support: the whole proxyless pipeline as users drive it. YAML manifests → loadManifests → buildCluster →
// buildRoutingModel → MeshResources → AdsServer, with real grpc-js Echo servers standing in for the pods (each on
// its own loopback address and a fixed port, so a Pod's status.podIP is where it really listens) and real
// grpc-js-xds clients dialing `xds:///…`. apply() re-reads changed YAML and pushes, as a control plane would.
import * as grpc from '@grpc/grpc-js';
import { createServer } from 'node:net';
import { buildCluster } from '../../src/model/cluster.ts';
import { formatDiagnostic, hasErrors, type Diagnostic } from '../../src/resources/diagnostics.ts';
import { loadManifests } from '../../src/resources/load.ts';
import { buildRoutingModel } from '../../src/routing/build.ts';
import type { RoutingModel } from '../../src/routing/model.ts';
import { AdsServer, type XdsEvent } from '../../src/xds/ads-server.ts';
import { MeshResources } from '../../src/xds/mesh-resources.ts';
import { EchoClient, type EchoReply, type EchoRequest } from './echo-service.ts';
import { bootstrap } from './xds-harness.ts';

export { EchoClient } from './echo-service.ts';

/** The port every backend pod listens on (its containerPort `grpc`), as in a real cluster. */
export const POD_PORT = 50051;

/** A pod's process: an Echo server on `address:50051` whose replies carry the pod's name. */
export interface Backend {
  name: string;
  address: string;
  port: number;
  /** Calls that reached this backend, of any kind. */
  calls: number;
  /** When set, unary calls fail with this status code. */
  failWith?: grpc.status;
  /** When set, unary calls answer after this many milliseconds. */
  delayMs?: number;
  close(): Promise<void>;
}

/** Starts one Echo server per pod on its own loopback address and the fixed pod port. */
export async function startBackend(name: string, address: string, port = POD_PORT): Promise<Backend> {
  const server = new grpc.Server();
  const timers = new Set<NodeJS.Timeout>();
  const b: Backend = {
    name,
    address,
    port,
    calls: 0,
    close: async () => {
      for (const t of timers) clearTimeout(t);
      await closeServer(server);
    },
  };
  server.addService(EchoClient.service, {
    Unary: (call: grpc.ServerUnaryCall<EchoRequest, EchoReply>, cb: grpc.sendUnaryData<EchoReply>) => {
      b.calls++;
      const answer = (): void => {
        const code = call.request.fail_code || b.failWith;
        if (code) cb({ code, details: `${name} fails on purpose` });
        else cb(null, { message: call.request.message ?? '', server: name });
      };
      if (b.delayMs) {
        const t = setTimeout(() => {
          timers.delete(t);
          answer();
        }, b.delayMs);
        timers.add(t);
      } else answer();
    },
    ServerStream: (call: grpc.ServerWritableStream<EchoRequest, EchoReply>) => {
      b.calls++;
      for (let i = 0; i < (call.request.count ?? 1); i++) call.write({ message: `${call.request.message ?? ''}#${i}`, server: name });
      call.end();
    },
    ClientStream: (call: grpc.ServerReadableStream<EchoRequest, EchoReply>, cb: grpc.sendUnaryData<EchoReply>) => {
      b.calls++;
      const parts: string[] = [];
      call.on('data', (r: EchoRequest) => parts.push(r.message ?? ''));
      call.on('end', () => cb(null, { message: parts.join(','), server: name }));
    },
    Bidi: (call: grpc.ServerDuplexStream<EchoRequest, EchoReply>) => {
      b.calls++;
      call.on('data', (r: EchoRequest) => call.write({ message: r.message ?? '', server: name }));
      call.on('end', () => call.end());
    },
  });
  await waitUntilFree(address, port);
  await new Promise<void>((resolve, reject) =>
    server.bindAsync(`${address}:${port}`, grpc.ServerCredentials.createInsecure(), (err) =>
      // A fixed pod address can be taken only by another run of the same test file at the same time.
      err ? reject(new Error(`pod ${name} cannot listen on ${address}:${port} (is this test file running twice at once?): ${err.message}`)) : resolve(),
    ),
  );
  return b;
}

/**
 * Pod addresses are fixed, so two runs of one test file at the same time (say, the whole suite started twice)
 * would collide. The later run waits for the address, up to `limitMs`, instead of failing at once.
 */
async function waitUntilFree(address: string, port: number, limitMs = 30_000): Promise<void> {
  const deadline = Date.now() + limitMs;
  for (;;) {
    const free = await new Promise<boolean>((resolve) => {
      const probe = createServer();
      probe.once('error', () => resolve(false));
      probe.listen(port, address, () => probe.close(() => resolve(true)));
    });
    if (free || Date.now() > deadline) return;
    await sleep(250);
  }
}

/** One backend per pod, keyed by name; if any cannot start, the others are closed again and the error thrown. */
export async function startBackends(pods: readonly { name: string; ip: string }[]): Promise<Map<string, Backend>> {
  const settled = await Promise.allSettled(pods.map((p) => startBackend(p.name, p.ip)));
  const started = settled.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) {
    await Promise.all(started.map((b) => b.close()));
    throw failed.reason;
  }
  return new Map(started.map((b) => [b.name, b]));
}

/** tryShutdown, but never longer than a moment: a test's after() must not hang on a lingering stream. */
function closeServer(server: grpc.Server, graceMs = 500): Promise<void> {
  return new Promise<void>((resolve) => {
    const t = setTimeout(() => {
      server.forceShutdown();
      resolve();
    }, graceMs);
    server.tryShutdown(() => {
      clearTimeout(t);
      resolve();
    });
  });
}

export interface PodSpec {
  name: string;
  ip: string;
  labels?: Record<string, string>;
  namespace?: string;
  /** Adds `status.conditions: [{type: Ready, status: "False"}]`. */
  notReady?: boolean;
}

/** A Pod manifest as kubectl would show it: labels, a containerPort named `grpc`, status.podIP. */
export function podYaml(p: PodSpec): string {
  const labels = Object.entries({ app: 'zone-api', ...p.labels }).map(([k, v]) => `    ${k}: ${v}`).join('\n');
  return `apiVersion: v1
kind: Pod
metadata:
  name: ${p.name}
  namespace: ${p.namespace ?? 'dns'}
  labels:
${labels}
spec:
  containers:
  - name: app
    image: registry.example/zone-api:1
    ports:
    - name: grpc
      containerPort: ${POD_PORT}
status:
  podIP: ${p.ip}${p.notReady ? '\n  conditions:\n  - type: Ready\n    status: "False"' : ''}
`;
}

/** A ClusterIP Service on port 50051 (named grpc, so gRPC routing applies) selecting the given labels. */
export function serviceYaml(name: string, selector: Record<string, string> = { app: 'zone-api' }, namespace = 'dns'): string {
  const sel = Object.entries(selector).map(([k, v]) => `    ${k}: ${v}`).join('\n');
  return `apiVersion: v1
kind: Service
metadata:
  name: ${name}
  namespace: ${namespace}
spec:
  selector:
${sel}
  ports:
  - name: grpc
    port: ${POD_PORT}
    targetPort: grpc
`;
}

export interface Built {
  model: RoutingModel;
  diagnostics: Diagnostic[];
}

/** Loads YAML strings and builds the routing model; any load error or routing warning fails the test. */
export function buildFromYaml(docs: readonly string[]): Built {
  const loaded = loadManifests(docs.map((text, i) => ({ name: `manifest-${i}.yaml`, text })));
  if (hasErrors(loaded.diagnostics)) throw new Error(`manifests do not load:\n${loaded.diagnostics.map(formatDiagnostic).join('\n')}`);
  const { model, diagnostics } = buildRoutingModel(loaded.resources, buildCluster(loaded.resources));
  if (diagnostics.length > 0) throw new Error(`routing diagnostics:\n${diagnostics.map(formatDiagnostic).join('\n')}`);
  return { model, diagnostics };
}

export interface ClientNode {
  id: string;
  namespace?: string;
  labels?: Record<string, string>;
}

export type TimedEvent = XdsEvent & { at: number };

export interface MeshPipeline {
  mesh: MeshResources;
  ads: AdsServer;
  xdsPort: number;
  /** What the ADS server reported, each with performance.now() at the time. */
  events: TimedEvent[];
  model: RoutingModel;
  /** Re-reads the whole set of manifests, rebuilds the model and pushes it to every connected client. */
  apply(docs: readonly string[]): Built;
  /** A grpc-js-xds Echo client for a node of its own (bootstrap per channel). Closed by close(). */
  client(target: string, node: ClientNode): grpc.Client;
  /** Every NACK a client sent so far (each one is a resource grpc-js-xds rejected), formatted for a message. */
  nacks(): string[];
  /** Closes clients, the ADS server and nothing else (backends are the test's). */
  close(): Promise<void>;
}

export async function startPipeline(docs: readonly string[]): Promise<MeshPipeline> {
  const first = buildFromYaml(docs);
  const mesh = new MeshResources(first.model);
  const events: TimedEvent[] = [];
  const ads = new AdsServer({ provider: mesh, onEvent: (e) => events.push({ ...e, at: performance.now() }) });
  const server = new grpc.Server();
  ads.register(server);
  const xdsPort = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
  const clients: grpc.Client[] = [];
  const p: MeshPipeline = {
    mesh,
    ads,
    xdsPort,
    events,
    model: first.model,
    apply(next) {
      const built = buildFromYaml(next);
      mesh.update(built.model);
      p.model = built.model;
      ads.push();
      return built;
    },
    client(target, node) {
      const c = new EchoClient(target, grpc.credentials.createInsecure(), { 'grpc.TEST_ONLY_DO_NOT_USE_IN_PROD.xds_bootstrap_config': bootstrap(xdsPort, node) });
      clients.push(c);
      return c;
    },
    nacks() {
      return events.flatMap((e) => (e.kind === 'nack' ? [`${e.node.id} ${e.type}: ${e.message}`] : []));
    },
    async close() {
      for (const c of clients) c.close();
      await closeServer(server);
    },
  };
  return p;
}

// --- calls -------------------------------------------------------------------------------------------------

type UnaryFn = (r: EchoRequest, m: grpc.Metadata, o: grpc.CallOptions, cb: (e: grpc.ServiceError | null, v?: EchoReply) => void) => void;

export function metadata(headers: Record<string, string> = {}): grpc.Metadata {
  const m = new grpc.Metadata();
  for (const [k, v] of Object.entries(headers)) m.set(k, v);
  return m;
}

/** One unary call; resolves with the reply or the error (never rejects), and how long it took. */
export function call(client: grpc.Client, headers: Record<string, string> = {}, deadlineMs = 5000): Promise<{ reply?: EchoReply; error?: grpc.ServiceError; ms: number }> {
  const start = performance.now();
  return new Promise((resolve) => {
    (client as unknown as { Unary: UnaryFn }).Unary({ message: 'hi' }, metadata(headers), { deadline: Date.now() + deadlineMs }, (error, reply) =>
      resolve({ ...(error ? { error } : { reply: reply as EchoReply }), ms: performance.now() - start }),
    );
  });
}

/** Unary call that must succeed; returns the name of the backend that answered. */
export async function answeredBy(client: grpc.Client, headers: Record<string, string> = {}): Promise<string> {
  const r = await call(client, headers);
  if (r.error) throw r.error;
  return (r.reply as EchoReply).server;
}

/** `n` unary calls, at most `concurrency` in flight; counts answers by backend, and errors by status code name. */
export async function spread(client: grpc.Client, n: number, headers: Record<string, string> = {}, concurrency = 20): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < n) {
      next++;
      const r = await call(client, headers);
      const k = r.error ? `error:${grpc.status[r.error.code]}` : (r.reply as EchoReply).server;
      counts.set(k, (counts.get(k) ?? 0) + 1);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, n) }, worker));
  return counts;
}

/** Calls until every named backend has answered (subchannels READY), or throws after `limit` calls. */
export async function warmUp(client: grpc.Client, backends: readonly string[], headers: Record<string, string> = {}, limit = 200): Promise<void> {
  const seen = new Set<string>();
  for (let i = 0; i < limit && !backends.every((b) => seen.has(b)); i++) {
    const r = await call(client, headers);
    if (r.reply) seen.add(r.reply.server);
  }
  const missing = backends.filter((b) => !seen.has(b));
  if (missing.length > 0) throw new Error(`after ${limit} calls, never reached ${missing.join(', ')}`);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
