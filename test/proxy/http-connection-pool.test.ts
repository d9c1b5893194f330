// The HTTP engine's upstream connection pool against real loopback upstreams: max_requests_per_connection closes an
// HTTP/1.1 keep-alive socket after N requests and moves HTTP/2 to a new session after N streams, and HTTP/1.1
// requests beyond the connection limit wait as pending requests, bounded by max_pending_requests (503 overflow past it).
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import { after, before, describe, it } from 'node:test';
import { cluster, h2request, request, route, startEngine, startH2Upstream, startHttpUpstream, type EngineHarness, type Upstream } from './http-engine-harness.ts';

describe('HTTP engine, upstream connection pool', () => {
  let h: EngineHarness;
  let h1Limited: Upstream;
  let h1Free: Upstream;
  let slow: Upstream;
  let h2Limited: Awaited<ReturnType<typeof startH2Upstream>>;
  let h2Sessions = 0;
  let inFlight = 0;
  let maxInFlight = 0;
  const slowSockets = new Set<number | undefined>();

  before(async () => {
    h1Limited = await startHttpUpstream('limited');
    h1Free = await startHttpUpstream('free');
    // Holds each request 300 ms, recording how many it serves at once and over how many connections.
    slow = await startHttpUpstream('slow', (req, res) => {
      slowSockets.add(req.socket.remotePort);
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      setTimeout(() => {
        inFlight--;
        res.end('slow');
      }, 300);
      return true;
    });
    h2Limited = await startH2Upstream('h2');
    h2Limited.server.on('session', () => h2Sessions++);
    h = await startEngine({
      routes: [
        route('h1-limited', { path: { prefix: '/h1-limited' } }, 'h1-limited'),
        route('h1-free', { path: { prefix: '/h1-free' } }, 'h1-free'),
        route('slow', { path: { prefix: '/slow' } }, 'slow'),
        route('h2', { path: { prefix: '/h2' } }, 'h2'),
      ],
      clusters: [
        cluster('h1-limited', [h1Limited.port], { maxRequestsPerConnection: 2 }),
        cluster('h1-free', [h1Free.port]),
        cluster('slow', [slow.port], { circuitBreakers: { maxConnections: 1, maxPendingRequests: 1 } }),
        cluster('h2', [h2Limited.port], { http2: true, protocol: 'http2', maxRequestsPerConnection: 2 }),
      ],
    });
  });

  after(async () => {
    await h.close();
    await Promise.all([h1Limited.close(), h1Free.close(), slow.close(), h2Limited.close()]);
  });

  it('HTTP/1.1: closes an upstream keep-alive socket after max_requests_per_connection requests', async () => {
    for (let i = 0; i < 5; i++) assert.equal((await request(`${h.url}/h1-limited/${i}`)).status, 200);
    const perSocket = new Map<number | undefined, number>();
    for (const r of h1Limited.requests) perSocket.set(r.remotePort, (perSocket.get(r.remotePort) ?? 0) + 1);
    assert.equal(h1Limited.requests.length, 5);
    assert.deepEqual([...perSocket.values()], [2, 2, 1]);
  });

  it('HTTP/1.1 without the limit keeps reusing one socket', async () => {
    for (let i = 0; i < 5; i++) assert.equal((await request(`${h.url}/h1-free/${i}`)).status, 200);
    assert.equal(new Set(h1Free.requests.map((r) => r.remotePort)).size, 1);
  });

  it('HTTP/2: opens a new session after max_requests_per_connection streams', async () => {
    const s = http2.connect(h.url);
    try {
      for (let i = 0; i < 5; i++) assert.equal((await h2request(s, { ':path': `/h2/${i}` })).status, 200);
    } finally {
      s.close();
    }
    assert.equal(h2Limited.requests.length, 5);
    assert.equal(h2Sessions, 3);
  });

  it('HTTP/1.1: past the connection limit requests wait as pending, and overflow past max_pending_requests', async () => {
    const replies = await Promise.all([0, 1, 2, 3].map((i) => request(`${h.url}/slow/${i}`)));
    const ok = replies.filter((r) => r.status === 200);
    const overflow = replies.filter((r) => r.status === 503);
    assert.equal(ok.length, 2, `statuses ${replies.map((r) => r.status).join(',')}`);
    assert.equal(overflow.length, 2);
    for (const r of overflow) assert.equal(r.headers['x-envoy-overloaded'], 'true');
    assert.equal(maxInFlight, 1);
    assert.equal(slowSockets.size, 1);
  });
});
