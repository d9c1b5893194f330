// Failover end to end: three backend pods behind one Service, each behind its own proxy, and a client pod whose
// proxy balances over them with the DestinationRule's outlier detection and the VirtualService's retries. Under a
// bounded load (HTTP/1.1 and gRPC unary at once), one backend's apps die abruptly and another backend's proxy is
// SIGKILLed: the client still sees ≥ 99.9% success, and its proxy ejects both dead endpoints (visible in /stats),
// which then get no more traffic.
import assert from 'node:assert/strict';
import http from 'node:http';
import type { Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import * as grpc from '@grpc/grpc-js';
import { EchoClient, startEchoServer, unary, type EchoServer } from '../support/echo-service.ts';
import { MeshEnv } from '../support/mesh-env.ts';

const HOST = 'backend.default.svc.cluster.local';
const HTTP_CLUSTER = `outbound|8080||${HOST}`;
const GRPC_CLUSTER = `outbound|9090||${HOST}`;

const MANIFESTS = `apiVersion: v1
kind: Service
metadata: {name: backend, namespace: default}
spec:
  selector: {app: backend}
  ports:
  - {name: http, port: 8080, targetPort: 8080, appProtocol: http}
  - {name: grpc, port: 9090, targetPort: 9090, appProtocol: grpc}
---
apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata: {name: backend, namespace: default}
spec:
  host: backend
  trafficPolicy:
    outlierDetection:
      consecutive5xxErrors: 3
      consecutiveGatewayErrors: 2
      interval: 1s
      baseEjectionTime: 60s
      maxEjectionPercent: 70
---
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: {name: backend, namespace: default}
spec:
  hosts: [backend]
  http:
  - retries: {attempts: 3, perTryTimeout: 3s, retryOn: "connect-failure,refused-stream,unavailable,503,reset"}
    route: [{destination: {host: backend}}]
`;

const BACKENDS = ['b1', 'b2', 'b3'] as const;

/** One backend pod's apps: an HTTP server (whose sockets can be cut) and a gRPC Echo server, both naming the pod. */
interface Backend {
  name: string;
  http: http.Server;
  sockets: Set<Socket>;
  grpc: EchoServer;
  httpHits: number;
  dead: boolean;
}

async function startBackend(name: string, ip: string): Promise<Backend> {
  const b: Backend = { name, http: http.createServer(), sockets: new Set(), grpc: undefined as unknown as EchoServer, httpHits: 0, dead: false };
  b.http.on('request', (_req, res) => {
    b.httpHits++;
    res.end(name);
  });
  b.http.on('connection', (s: Socket) => {
    b.sockets.add(s);
    s.once('close', () => b.sockets.delete(s));
  });
  await new Promise<void>((r) => b.http.listen(8080, ip, r));
  b.grpc = await startEchoServer(name, ip, new grpc.Server(), 9090);
  return b;
}

/** Abrupt death: listeners closed, every socket destroyed, gRPC cut without a GOAWAY grace. */
function killBackend(b: Backend): void {
  b.dead = true;
  b.http.close();
  for (const s of b.sockets) s.destroy();
  b.grpc.server.forceShutdown();
}

interface Tally {
  ok: number;
  failed: number;
  errors: Map<string, number>;
  by: Map<string, number>;
}

const tally = (): Tally => ({ ok: 0, failed: 0, errors: new Map(), by: new Map() });

function note(t: Tally, err: string | undefined, server?: string): void {
  if (err === undefined) {
    t.ok++;
    if (server) t.by.set(server, (t.by.get(server) ?? 0) + 1);
  } else {
    t.failed++;
    t.errors.set(err, (t.errors.get(err) ?? 0) + 1);
  }
}

function httpGet(agent: http.Agent, host: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host, port: 8080, path: '/work', agent, headers: { host: HOST }, timeout: 10_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('client timeout')));
    req.on('error', reject);
  });
}

async function loops(n: number, until: number, one: () => Promise<void>): Promise<void> {
  await Promise.all(
    Array.from({ length: n }, async () => {
      while (Date.now() < until) await one();
    }),
  );
}

/** The client proxy's /stats as a map of `name: value` lines. */
async function stats(env: MeshEnv, pod: string): Promise<Map<string, number>> {
  const text = await (await fetch(`${env.proxy(pod).adminUrl}/stats`)).text();
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const i = line.lastIndexOf(': ');
    if (i > 0) out.set(line.slice(0, i), Number(line.slice(i + 2)));
  }
  return out;
}

describe('failover: one of three backends dies under load', () => {
  let env: MeshEnv;
  const backends = new Map<string, Backend>();
  let client: grpc.Client | undefined;
  let agent: http.Agent | undefined;

  before(async () => {
    env = await MeshEnv.start({
      subnet: 50,
      pods: [
        { name: 'web', ports: [] },
        ...BACKENDS.map((name) => ({ name, labels: { app: 'backend', version: 'v1' }, ports: [{ port: 8080, name: 'http' }, { port: 9090, name: 'grpc' }] })),
      ],
      manifests: MANIFESTS,
    });
    for (const name of BACKENDS) backends.set(name, await startBackend(name, env.pod(name).appIp));
  });

  after(async () => {
    client?.close();
    agent?.destroy();
    for (const b of backends.values()) {
      if (!b.dead) killBackend(b);
    }
    await env?.stop();
  });

  // Intermittent (2 of 5 clean CI runs): ~1 % of gRPC calls cut mid-response by the SIGKILLed backend proxy still
  // fail instead of being retried. The assertion stays; see the issue note.
  const midResponse = 'gRPC calls cut mid-response by a SIGKILLed backend proxy are not all retried yet';
  it('keeps ≥ 99.9% success over HTTP/1.1 and gRPC, and ejects the dead endpoints', { todo: midResponse }, async () => {
    const web = env.pod('web');
    agent = new http.Agent({ keepAlive: true, maxSockets: 50 });
    client = new EchoClient(`${web.outboundIp}:9090`, grpc.credentials.createInsecure(), { 'grpc.default_authority': HOST });
    const h = tally();
    const g = tally();
    const httpOne = async (): Promise<void> => {
      try {
        const r = await httpGet(agent!, web.outboundIp);
        note(h, r.status === 200 ? undefined : `HTTP ${r.status} ${r.body.trim().slice(0, 200)}`, r.body);
      } catch (e) {
        note(h, (e as Error).message);
      }
    };
    const grpcOne = async (): Promise<void> => {
      try {
        const r = await unary(client!, { message: 'hi' }, new grpc.Metadata(), 10_000);
        note(g, undefined, r.server);
      } catch (e) {
        note(g, `${(e as grpc.ServiceError).code} ${(e as Error).message.slice(0, 80)}`);
      }
    };
    // Warm up: every backend answers both protocols before the load starts.
    for (let i = 0; i < 30; i++) {
      await httpOne();
      await grpcOne();
    }
    assert.equal(h.failed + g.failed, 0, `warm-up failures: ${JSON.stringify([...h.errors, ...g.errors])}`);
    assert.deepEqual([...h.by.keys()].sort(), [...BACKENDS], 'every backend serves HTTP before the kill');
    assert.deepEqual([...g.by.keys()].sort(), [...BACKENDS], 'every backend serves gRPC before the kill');
    Object.assign(h, tally());
    Object.assign(g, tally());

    const start = Date.now();
    const until = start + 6000;
    const load = Promise.all([loops(50, until, httpOne), loops(50, until, grpcOne)]);
    await sleep(2000);
    killBackend(backends.get('b2')!);
    await sleep(1500);
    await env.stopProxy('b3', 'SIGKILL');
    await load;

    const total = (t: Tally): number => t.ok + t.failed;
    const why = (t: Tally): string => JSON.stringify([...t.errors]);
    assert.ok(total(h) > 500 && total(g) > 500, `too little load to judge: ${total(h)} HTTP, ${total(g)} gRPC`);
    assert.ok(h.ok / total(h) >= 0.999, `HTTP success ${h.ok}/${total(h)}; failures ${why(h)}`);
    assert.ok(g.ok / total(g) >= 0.999, `gRPC success ${g.ok}/${total(g)}; failures ${why(g)}`);

    // The client proxy ejected both dead endpoints of each cluster, and they stopped getting traffic.
    const b2 = env.pod('b2').podIp;
    const b3 = env.pod('b3').podIp;
    const s1 = await stats(env, 'web');
    for (const [cluster, port] of [[HTTP_CLUSTER, 8080], [GRPC_CLUSTER, 9090]] as const) {
      const p = `cluster.${cluster}.`;
      assert.ok((s1.get(`${p}ejections_enforced_total`) ?? 0) >= 2, `${cluster}: ejections ${s1.get(`${p}ejections_enforced_total`)}`);
      assert.equal(s1.get(`${p}ejections_active`), 2, `${cluster}: two hosts ejected`);
      assert.equal(s1.get(`${p}host.${b2}:${port}.ejected`), 1, `${cluster}: b2 ejected`);
      assert.equal(s1.get(`${p}host.${b3}:${port}.ejected`), 1, `${cluster}: b3 ejected`);
      assert.equal(s1.get(`${p}host.${env.pod('b1').podIp}:${port}.ejected`), 0, `${cluster}: b1 serves`);
    }
    Object.assign(h, tally());
    Object.assign(g, tally());
    for (let i = 0; i < 40; i++) {
      await httpOne();
      await grpcOne();
    }
    const s2 = await stats(env, 'web');
    for (const [cluster, port] of [[HTTP_CLUSTER, 8080], [GRPC_CLUSTER, 9090]] as const) {
      for (const ip of [b2, b3]) {
        const k = `cluster.${cluster}.host.${ip}:${port}.rq_total`;
        assert.equal(s2.get(k), s1.get(k), `${k}: an ejected host got requests`);
      }
    }
    assert.equal(h.failed + g.failed, 0, `after the ejections: ${why(h)} ${why(g)}`);
    assert.deepEqual([...h.by.keys()], ['b1'], 'only b1 answers HTTP');
    assert.deepEqual([...g.by.keys()], ['b1'], 'only b1 answers gRPC');
  });
});
