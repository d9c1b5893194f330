// The HTTP engine's resilience on loopback with real upstreams: retries (5xx, resets, connect failures, gRPC
// UNAVAILABLE, only with a replayable body), per-try and overall timeouts, weighted clusters, circuit breaking and
// mirroring, through the real UpstreamClusterManager.
import assert from 'node:assert/strict';
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { cluster, h2request, request, route, sleep, startEngine, startH2Upstream, startHttpUpstream, type EngineHarness, type Upstream } from './http-engine-harness.ts';

/** A port with nothing listening. */
async function deadPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

describe('HTTP engine, resilience', () => {
  let h: EngineHarness;
  let flaky: Upstream;
  let good: Upstream;
  let bad: Upstream;
  let slow: Upstream;
  let shadow: Upstream;
  let blue: Upstream;
  let green: Upstream;
  let grpcUp: Awaited<ReturnType<typeof startH2Upstream>>;
  const failNext = new Map<string, 'status' | 'reset'>();

  before(async () => {
    // Fails the first try of a request id (x-id) with a 503 or a reset, then answers.
    flaky = await startHttpUpstream('flaky', (req, res) => {
      const id = String(req.headers['x-id']);
      const mode = failNext.get(id);
      if (!mode) return false;
      failNext.delete(id);
      if (mode === 'reset') req.socket.destroy();
      else {
        req.resume();
        res.writeHead(503).end('try again');
      }
      return true;
    });
    good = await startHttpUpstream('good');
    bad = await startHttpUpstream('bad', (req, res) => {
      req.resume();
      res.writeHead(503).end('always down');
      return true;
    });
    // Slow on the first request of an id, fast on the next.
    const seen = new Set<string>();
    slow = await startHttpUpstream('slow', (req, res) => {
      const id = String(req.headers['x-id']);
      const delay = req.url?.startsWith('/hold') ? 1000 : seen.has(id) ? 0 : 500;
      seen.add(id);
      req.resume();
      const t = setTimeout(() => res.end('slow-done'), delay);
      res.on('close', () => clearTimeout(t));
      return true;
    });
    shadow = await startHttpUpstream('shadow');
    blue = await startHttpUpstream('blue');
    green = await startHttpUpstream('green');
    let grpcCalls = 0;
    grpcUp = await startH2Upstream('grpc', (stream) => {
      stream.resume();
      if (grpcCalls++ % 2 === 0) {
        stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '14', 'grpc-message': 'warming up' }, { endStream: true });
        return;
      }
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
      stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
      stream.end(Buffer.from([0, 0, 0, 0, 0]));
    });
    const dead = await deadPort();
    const retry = (retryOn: string[], extra: object = {}) => ({ attempts: 2, retryOn, ...extra });
    h = await startEngine({
      routes: [
        route('retry-5xx', { path: { prefix: '/r5' } }, { type: 'route', clusters: [{ cluster: 'flaky', weight: 1 }], retry: retry(['5xx']) }),
        route('retry-reset', { path: { prefix: '/rr' } }, { type: 'route', clusters: [{ cluster: 'flaky', weight: 1 }], retry: retry(['reset']) }),
        route('no-retry', { path: { prefix: '/nr' } }, 'flaky'),
        route('other-host', { path: { prefix: '/oh' } }, { type: 'route', clusters: [{ cluster: 'half-bad', weight: 1 }], retry: retry(['gateway-error']) }),
        route('connect', { path: { prefix: '/cf' } }, { type: 'route', clusters: [{ cluster: 'half-dead', weight: 1 }], retry: retry(['connect-failure']) }),
        route('per-try', { path: { prefix: '/pt' } }, { type: 'route', clusters: [{ cluster: 'slow', weight: 1 }], retry: retry(['reset'], { perTryTimeoutMs: 100 }) }),
        route('overall', { path: { prefix: '/hold' } }, { type: 'route', clusters: [{ cluster: 'slow', weight: 1 }], timeoutMs: 150 }),
        route('split', { path: { prefix: '/split' } }, { type: 'route', clusters: [{ cluster: 'blue', weight: 80 }, { cluster: 'green', weight: 20 }] }),
        route('limited', { path: { prefix: '/limited' } }, 'limited'),
        route('mirror', { path: { prefix: '/mirror' } }, { type: 'route', clusters: [{ cluster: 'good', weight: 1 }], mirror: { cluster: 'shadow', percent: 100 } }),
        route('grpc', { path: { prefix: '/pkg.Svc/' } }, { type: 'route', clusters: [{ cluster: 'grpc', weight: 1 }], retry: retry(['unavailable']) }),
      ],
      clusters: [
        cluster('flaky', [flaky.port]),
        cluster('good', [good.port]),
        cluster('half-bad', [bad.port, good.port]),
        cluster('half-dead', [dead, good.port]),
        cluster('slow', [slow.port]),
        cluster('blue', [blue.port]),
        cluster('green', [green.port]),
        cluster('shadow', [shadow.port]),
        cluster('limited', [slow.port], { circuitBreakers: { maxRequests: 1 } }),
        cluster('grpc', [grpcUp.port], { http2: true, protocol: 'grpc' }),
      ],
      limits: { maxBufferBytes: 1024 },
    });
  });
  after(async () => {
    await h.close();
    for (const u of [flaky, good, bad, slow, shadow, blue, green, grpcUp]) await u.close();
  });

  it('retries a 503 and a reset, replaying a body that fit the buffer', async () => {
    failNext.set('a', 'status');
    const r = await request(`${h.url}/r5`, { method: 'POST', headers: { 'x-id': 'a', 'content-type': 'text/plain' }, body: 'p'.repeat(100) });
    assert.equal(r.status, 200);
    assert.equal((JSON.parse(r.body) as { body: number }).body, 100);
    assert.equal(h.records.at(-1)!.flags, '-', 'a retry that succeeded leaves no flag');
    failNext.set('b', 'reset');
    assert.equal((await request(`${h.url}/rr`, { headers: { 'x-id': 'b' } })).status, 200);
  });

  it('does not retry without a policy, nor a body larger than the retry buffer', async () => {
    failNext.set('c', 'status');
    assert.equal((await request(`${h.url}/nr`, { headers: { 'x-id': 'c' } })).status, 503);
    failNext.set('d', 'status');
    const before = flaky.requests.length;
    const r = await request(`${h.url}/r5`, { method: 'POST', headers: { 'x-id': 'd' }, body: 'q'.repeat(4096) });
    assert.equal(r.status, 503, 'a 4 KiB body does not fit the 1 KiB retry buffer: no retry');
    assert.equal(h.records.at(-1)!.flags, 'URX');
    assert.equal(flaky.requests.length - before, 1);
  });

  it('moves a retry to another host and retries connect failures', async () => {
    for (let i = 0; i < 6; i++) {
      assert.equal((await request(`${h.url}/oh/${i}`)).status, 200);
      assert.equal((await request(`${h.url}/cf/${i}`)).status, 200);
    }
  });

  it('retries a gRPC UNAVAILABLE read from a trailers-only response', async () => {
    const s = http2.connect(h.url);
    try {
      const r = await h2request(s, { ':method': 'POST', ':path': '/pkg.Svc/M', 'content-type': 'application/grpc', te: 'trailers' }, Buffer.from([0, 0, 0, 0, 0]));
      assert.equal(r.trailers?.['grpc-status'], '0');
      assert.equal(h.records.at(-1)!.grpcStatus, 0);
    } finally {
      s.close();
    }
  });

  it('cuts a slow try at the per-try timeout and retries it', async () => {
    const t0 = performance.now();
    const r = await request(`${h.url}/pt`, { headers: { 'x-id': 'pt1' } });
    assert.equal(r.status, 200);
    assert.equal(r.body, 'slow-done');
    assert.ok(performance.now() - t0 < 450, 'answered by the second try, not after the slow first one');
  });

  it('answers 504 when the route timeout passes', async () => {
    const t0 = performance.now();
    const r = await request(`${h.url}/hold`, { headers: { 'x-id': 'to' } });
    const took = performance.now() - t0;
    assert.equal(r.status, 504);
    assert.equal(r.body, 'upstream request timeout\n');
    assert.ok(took >= 140 && took < 600, `timed out after ${took} ms`);
    assert.equal(h.records.at(-1)!.flags, 'UT');
  });

  it('splits traffic by cluster weights', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
    try {
      const b0 = blue.requests.length;
      const g0 = green.requests.length;
      await Promise.all(Array.from({ length: 400 }, () => request(`${h.url}/split`, { agent })));
      const b = blue.requests.length - b0;
      const g = green.requests.length - g0;
      assert.equal(b + g, 400);
      assert.ok(b > 280 && b < 360, `blue got ${b} of 400 at weight 80`);
    } finally {
      agent.destroy();
    }
  });

  it('answers 503 with x-envoy-overloaded past the cluster max requests (gRPC: UNAVAILABLE)', async () => {
    const held = request(`${h.url}/limited/hold`, { headers: { 'x-id': 'cb' } });
    await sleep(50);
    const r = await request(`${h.url}/limited/x`);
    assert.equal(r.status, 503);
    assert.equal(r.headers['x-envoy-overloaded'], 'true');
    const s = http2.connect(h.url);
    try {
      const g = await h2request(s, { ':method': 'POST', ':path': '/limited/pkg.Svc/M', 'content-type': 'application/grpc' }, Buffer.from([0, 0, 0, 0, 0]));
      assert.equal(g.status, 200);
      assert.equal(g.headers['grpc-status'], '14');
    } finally {
      s.close();
    }
    assert.equal((await held).status, 200);
  });

  it('mirrors a request to the shadow cluster with -shadow on the authority', async () => {
    const r = await request(`${h.url}/mirror/x`, { headers: { host: 'shop.example:8080' } });
    assert.equal(r.status, 200);
    for (let i = 0; i < 100 && shadow.requests.length === 0; i++) await sleep(10);
    assert.equal(shadow.requests.at(-1)?.headers.host, 'shop.example-shadow:8080');
    assert.equal(shadow.requests.at(-1)?.url, '/mirror/x');
  });
});
