// Traffic management end to end, from Istio manifests through the control plane to real proxies: a weighted canary
// between DestinationRule subsets, header-match routing, fault injection (abort and delay), per-try and overall
// timeouts (HTTP 504 and gRPC DEADLINE_EXCEEDED), circuit breaking (503 with x-envoy-overloaded), ring-hash
// stickiness by header, a local rate limit from Istio's EnvoyFilter example (429), and a user extension filter
// (a .mjs module next to the manifests) that edits requests and responses.
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import * as grpc from '@grpc/grpc-js';
import { EchoClient, unary, type EchoReply, type EchoRequest } from '../support/echo-service.ts';
import { MeshEnv } from '../support/mesh-env.ts';

const NS = 'shop';
const svc = (name: string): string => `${name}.${NS}.svc.cluster.local`;

const service = (name: string, selector: string, port = 8080, protocol = 'http'): string => `apiVersion: v1
kind: Service
metadata: {name: ${name}, namespace: ${NS}}
spec:
  selector: {app: ${selector}}
  ports: [{name: ${protocol}, port: ${port}, targetPort: ${port}, appProtocol: ${protocol}}]
`;

const MANIFESTS = [
  ...['api', 'faulty', 'slow', 'breaker', 'sticky'].map((n) => service(n, 'api')),
  service('rpc', 'api', 9090, 'grpc'),
  service('limited', 'limited'),
  service('ext', 'ext'),
  `apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata: {name: api, namespace: ${NS}}
spec:
  host: api
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
`,
  `apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: {name: api, namespace: ${NS}}
spec:
  hosts: [api]
  http:
  - match: [{headers: {end-user: {exact: jason}}}]
    route: [{destination: {host: api, subset: v2}}]
  - route:
    - {destination: {host: api, subset: v1}, weight: 90}
    - {destination: {host: api, subset: v2}, weight: 10}
`,
  `apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: {name: faulty, namespace: ${NS}}
spec:
  hosts: [faulty]
  http:
  - match: [{uri: {prefix: /abort}}]
    fault: {abort: {percentage: {value: 50}, httpStatus: 503}}
    route: [{destination: {host: faulty}}]
  - match: [{uri: {prefix: /delay}}]
    fault: {delay: {percentage: {value: 100}, fixedDelay: 300ms}}
    route: [{destination: {host: faulty}}]
  - route: [{destination: {host: faulty}}]
`,
  `apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: {name: slow, namespace: ${NS}}
spec:
  hosts: [slow]
  http:
  - match: [{uri: {prefix: /pertry}}]
    timeout: 5s
    retries: {attempts: 2, perTryTimeout: 200ms, retryOn: "reset,connect-failure"}
    route: [{destination: {host: slow}}]
  - timeout: 400ms
    route: [{destination: {host: slow}}]
`,
  `apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: {name: rpc, namespace: ${NS}}
spec:
  hosts: [rpc]
  http:
  - timeout: 400ms
    route: [{destination: {host: rpc}}]
`,
  `apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata: {name: breaker, namespace: ${NS}}
spec:
  host: breaker
  trafficPolicy:
    connectionPool:
      http: {http1MaxPendingRequests: 1, http2MaxRequests: 1}
`,
  `apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata: {name: sticky, namespace: ${NS}}
spec:
  host: sticky
  trafficPolicy:
    loadBalancer:
      consistentHash: {httpHeaderName: x-user}
`,
  // Istio's local rate limit task, as users copy it: 4 tokens a minute at the server-side proxy.
  `apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: ratelimit, namespace: ${NS}}
spec:
  workloadSelector:
    labels: {app: limited}
  configPatches:
  - applyTo: HTTP_FILTER
    match:
      context: SIDECAR_INBOUND
      listener:
        filterChain:
          filter:
            name: envoy.filters.network.http_connection_manager
    patch:
      operation: INSERT_BEFORE
      value:
        name: envoy.filters.http.local_ratelimit
        typed_config:
          "@type": type.googleapis.com/udpa.type.v1.TypedStruct
          type_url: type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit
          value:
            stat_prefix: http_local_rate_limiter
            token_bucket: {max_tokens: 4, tokens_per_fill: 4, fill_interval: 60s}
            filter_enabled:
              runtime_key: local_rate_limit_enabled
              default_value: {numerator: 100, denominator: HUNDRED}
            filter_enforced:
              runtime_key: local_rate_limit_enforced
              default_value: {numerator: 100, denominator: HUNDRED}
            response_headers_to_add:
            - append: false
              header: {key: x-local-rate-limit, value: "true"}
`,
  `apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: stamp, namespace: ${NS}}
spec:
  workloadSelector:
    labels: {app: ext}
  configPatches:
  - applyTo: HTTP_FILTER
    match: {context: SIDECAR_INBOUND}
    patch:
      operation: ADD
      value:
        name: test.stamp
        typed_config:
          "@type": type.googleapis.com/udpa.type.v1.TypedStruct
          type_url: trellis.dev/extension
          value:
            module: ./stamp.mjs
            config: {value: from-config}
`,
].join('---\n');

/** The user's extension filter: stamps each request it passes, and each response with its config and listener. */
const STAMP_MODULE = `export default function stamp(config, listener) {
  return {
    name: 'test.stamp',
    onRequest(req) { req.headers['x-stamp-request'] = String(config.value); },
    onResponse(req, res) { res.headers['x-stamp'] = String(config.value) + ' ' + listener.direction; },
  };
}
`;

const API_PODS = ['api-v1', 'api-v2', 'api-v3'];

interface Reply {
  status: number;
  body: string;
  headers: http.IncomingHttpHeaders;
  ms: number;
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 32 });

function get(ip: string, host: string, path: string, headers: Record<string, string> = {}): Promise<Reply> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const req = http.get({ host: ip, port: 8080, path, agent, headers: { host: svc(host), ...headers }, timeout: 10_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers, ms: performance.now() - t0 }));
    });
    req.on('timeout', () => req.destroy(new Error('client timeout')));
    req.on('error', reject);
  });
}

async function many<T>(n: number, concurrency: number, one: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < n) {
        const i = next++;
        out[i] = await one(i);
      }
    }),
  );
  return out;
}

function count(xs: readonly string[]): Map<string, number> {
  const m = new Map<string, number>();
  for (const x of xs) m.set(x, (m.get(x) ?? 0) + 1);
  return m;
}

describe('traffic management through real proxies', () => {
  let env: MeshEnv;
  const servers: { close(): void }[] = [];
  /** Requests each app saw, by `id` query parameter (or path). */
  const hits = new Map<string, number>();
  let ip = '';

  before(async () => {
    env = await MeshEnv.start({
      subnet: 51,
      pods: [
        { name: 'web', namespace: NS, ports: [] },
        ...API_PODS.map((name) => ({ name, namespace: NS, labels: { app: 'api', version: name.slice(4) }, ports: [{ port: 8080, name: 'http' }, { port: 9090, name: 'grpc' }] })),
        { name: 'lim', namespace: NS, labels: { app: 'limited' }, ports: [{ port: 8080, name: 'http' }] },
        { name: 'ext', namespace: NS, labels: { app: 'ext' }, ports: [{ port: 8080, name: 'http' }] },
      ],
      manifests: MANIFESTS,
      files: { 'stamp.mjs': STAMP_MODULE },
    });
    ip = env.pod('web').outboundIp;
    for (const name of [...API_PODS, 'lim', 'ext']) {
      const app = http.createServer((req, res) => {
        const u = new URL(req.url ?? '/', 'http://x');
        const key = u.searchParams.get('id') ?? u.pathname;
        hits.set(key, (hits.get(key) ?? 0) + 1);
        const ms = Number(u.searchParams.get('ms') ?? 0);
        const reply = (): void => {
          if (!res.destroyed) res.end(`${name}${req.headers['x-stamp-request'] ? ` stamped ${String(req.headers['x-stamp-request'])}` : ''}`);
        };
        if (ms > 0) {
          const t = setTimeout(reply, ms);
          res.on('close', () => clearTimeout(t));
        } else reply();
      });
      app.keepAliveTimeout = 500;
      await new Promise<void>((r) => app.listen(8080, env.pod(name).appIp, r));
      servers.push({ close: () => (app.close(), app.closeAllConnections()) });
    }
    for (const name of API_PODS) {
      const server = new grpc.Server();
      server.addService(EchoClient.service, {
        Unary: (call: grpc.ServerUnaryCall<EchoRequest, EchoReply>, cb: grpc.sendUnaryData<EchoReply>) => {
          const m = /^sleep:(\d+)$/.exec(call.request.message ?? '');
          const t = setTimeout(() => cb(null, { message: call.request.message ?? '', server: name }), Number(m?.[1] ?? 0));
          call.on('cancelled', () => clearTimeout(t));
        },
      });
      await new Promise<void>((resolve, reject) => server.bindAsync(`${env.pod(name).appIp}:9090`, grpc.ServerCredentials.createInsecure(), (e) => (e ? reject(e) : resolve())));
      servers.push({ close: () => server.forceShutdown() });
    }
  });

  after(async () => {
    agent.destroy();
    for (const s of servers) s.close();
    await env?.stop();
  });

  it('splits a weighted canary 90/10 between subsets within ±4% over 1,000 requests', async () => {
    const r = await many(1000, 20, () => get(ip, 'api', '/canary'));
    assert.deepEqual(r.filter((x) => x.status !== 200).map((x) => `${x.status} ${x.body}`), []);
    const by = count(r.map((x) => x.body));
    assert.deepEqual([...by.keys()].sort(), ['api-v1', 'api-v2'], 'v3 is in neither subset');
    const v2 = (by.get('api-v2') ?? 0) / 1000;
    assert.ok(Math.abs(v2 - 0.1) <= 0.04, `v2 got ${(v2 * 100).toFixed(1)}%`);
  });

  it('routes by header: end-user jason always goes to v2', async () => {
    const r = await many(30, 5, () => get(ip, 'api', '/me', { 'end-user': 'jason' }));
    assert.deepEqual([...count(r.map((x) => `${x.status} ${x.body}`))], [['200 api-v2', 30]]);
  });

  it('injects faults: aborts about half the requests with 503 before the app, and delays others', async () => {
    const r = await many(400, 20, (i) => get(ip, 'faulty', `/abort?id=abort-${i}`));
    const aborted = r.filter((x) => x.status === 503);
    assert.equal(aborted.length + r.filter((x) => x.status === 200).length, 400, 'only 200 and 503');
    assert.ok(Math.abs(aborted.length / 400 - 0.5) <= 0.1, `${aborted.length} of 400 aborted`);
    assert.match(aborted[0]!.body, /fault filter abort/);
    const reached = r.map((_, i) => hits.get(`abort-${i}`) ?? 0);
    assert.equal(reached.reduce((a, b) => a + b, 0), 400 - aborted.length, 'an aborted request never reaches an app');
    const d = await many(4, 4, () => get(ip, 'faulty', '/delay'));
    for (const x of d) {
      assert.equal(x.status, 200);
      assert.ok(x.ms >= 290, `delayed by ${x.ms.toFixed(0)} ms`);
    }
  });

  it('times out: the route timeout gives 504, per-try timeouts retry then give 504 well before it', async () => {
    const t = await get(ip, 'slow', '/sleep?ms=3000&id=overall');
    assert.equal(t.status, 504);
    assert.match(t.body, /upstream request timeout/);
    assert.ok(t.ms >= 380 && t.ms < 2500, `answered after ${t.ms.toFixed(0)} ms`);
    const p = await get(ip, 'slow', '/pertry?ms=3000&id=pertry');
    assert.equal(p.status, 504);
    assert.ok(p.ms >= 590 && p.ms < 4000, `three tries of 200 ms, answered after ${p.ms.toFixed(0)} ms`);
    await sleep(100);
    assert.equal(hits.get('pertry'), 3, 'the first try and two retries reached the apps');
  });

  it('times out gRPC calls at the route timeout with DEADLINE_EXCEEDED', async () => {
    const client = new EchoClient(`${ip}:9090`, grpc.credentials.createInsecure(), { 'grpc.default_authority': svc('rpc') });
    try {
      assert.equal((await unary(client, { message: 'quick' })).message, 'quick');
      const t0 = performance.now();
      await assert.rejects(unary(client, { message: 'sleep:3000' }, new grpc.Metadata(), 5000), (e: grpc.ServiceError) => {
        assert.equal(e.code, grpc.status.DEADLINE_EXCEEDED);
        assert.match(e.details, /upstream request timeout/);
        return true;
      });
      assert.ok(performance.now() - t0 < 2500, 'the proxy, not the client deadline, ended the call');
    } finally {
      client.close();
    }
  });

  it('breaks the circuit: past http2MaxRequests, 503 with x-envoy-overloaded', async () => {
    const r = await many(12, 12, () => get(ip, 'breaker', '/sleep?ms=300'));
    const ok = r.filter((x) => x.status === 200);
    const over = r.filter((x) => x.status === 503);
    assert.ok(ok.length >= 1, 'one request at a time gets through');
    assert.ok(over.length >= 6, `${over.length} refused`);
    assert.equal(ok.length + over.length, 12);
    for (const x of over) assert.equal(x.headers['x-envoy-overloaded'], 'true');
    const stats = await (await fetch(`${env.proxy('web').adminUrl}/stats`)).text();
    const m = new RegExp(`cluster\\.outbound\\|8080\\|\\|${svc('breaker').replaceAll('.', '\\.')}\\.upstream_rq_overflow: (\\d+)`).exec(stats);
    assert.ok(Number(m?.[1]) >= over.length, `overflow counted: ${m?.[0]}`);
  });

  it('keeps a user on one backend with ring hash by header', async () => {
    const users = Array.from({ length: 20 }, (_, i) => `user-${i}`);
    const seen = new Map<string, Set<string>>();
    await many(users.length * 5, 10, async (i) => {
      const u = users[i % users.length]!;
      const r = await get(ip, 'sticky', '/who', { 'x-user': u });
      assert.equal(r.status, 200);
      (seen.get(u) ?? seen.set(u, new Set()).get(u)!).add(r.body);
    });
    for (const [u, s] of seen) assert.equal(s.size, 1, `${u} went to ${[...s].join(', ')}`);
    const backends = new Set([...seen.values()].flatMap((s) => [...s]));
    assert.ok(backends.size >= 2, `users spread over ${[...backends].join(', ')}`);
  });

  it('rate-limits locally with an EnvoyFilter: 429 once the bucket is empty', async () => {
    const r: Reply[] = [];
    for (let i = 0; i < 7; i++) r.push(await get(ip, 'limited', '/x'));
    assert.deepEqual(r.map((x) => x.status), [200, 200, 200, 200, 429, 429, 429]);
    assert.equal(r[4]!.headers['x-local-rate-limit'], 'true');
    assert.equal(r[4]!.headers['x-envoy-ratelimited'], 'true');
    assert.equal(r[0]!.headers['x-local-rate-limit'], undefined);
  });

  it('runs a user extension filter from EnvoyFilter: it edits the request and the response', async () => {
    const r = await get(ip, 'ext', '/x');
    assert.equal(r.status, 200);
    assert.equal(r.body, 'ext stamped from-config');
    assert.equal(r.headers['x-stamp'], 'from-config inbound');
    const other = await get(ip, 'api', '/x', { 'end-user': 'jason' });
    assert.equal(other.headers['x-stamp'], undefined, 'only the selected workload runs it');
  });
});
