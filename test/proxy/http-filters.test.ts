// The HTTP engine's filter chain with real clients and upstreams: Envoy's local rate limit (429, gRPC UNAVAILABLE,
// per route), the fault filter (abort by HTTP or gRPC status, fixed delay), and a `trellis.extension` module loaded
// from a temporary .mjs file; a module that cannot load refuses the config and the last good one stays in force.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http2 from 'node:http2';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ProxyError } from '../../src/proxy/proxy-error.ts';
import { cluster, h2request, request, route, startEngine, startHttpUpstream, type EngineHarness, type EngineSetup, type Upstream } from './http-engine-harness.ts';

const GRPC_HEADERS = { ':method': 'POST', 'content-type': 'application/grpc', te: 'trailers' };
const EMPTY_MESSAGE = Buffer.from([0, 0, 0, 0, 0]);

describe('HTTP engine, filters', () => {
  let dir: string;
  let up: Upstream;
  let h: EngineHarness;
  let setup: EngineSetup;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'trellis-ext-'));
    writeFileSync(
      join(dir, 'tag.mjs'),
      `export default function factory(config, listener) {
  return {
    name: 'tag',
    onRequest(req) {
      if (req.path === '/ext/throw') throw new Error('boom');
      if (req.path === '/ext/deny') return { status: 451, body: 'unavailable for legal reasons', reason: 'EXT' };
      req.headers['x-tag'] = config.tag + '@' + listener.name;
    },
    onResponse(req, res) {
      res.headers['x-tagged'] = String(req.route?.name);
    },
  };
}
`,
    );
    writeFileSync(join(dir, 'broken.mjs'), 'export default 42;\n');
    up = await startHttpUpstream('up');
    setup = {
      routes: [
        route('limited', { path: { prefix: '/limited' } }, 'up'),
        route('abort', { path: { prefix: '/abort' } }, 'up', { fault: { abort: { httpStatus: 503, percent: 100 } } }),
        route('grpc-abort', { path: { prefix: '/pkg.Svc/Abort' } }, 'up', { fault: { abort: { grpcStatus: 9, percent: 100 } } }),
        route('never', { path: { prefix: '/never' } }, 'up', { fault: { abort: { httpStatus: 500, percent: 0 } } }),
        route('delay', { path: { prefix: '/delay' } }, 'up', { fault: { delay: { fixedDelayMs: 200, percent: 100 } } }),
        route('still', { path: { prefix: '/still' } }, 'up'),
        route('default', { path: { prefix: '/' } }, 'up'),
      ],
      clusters: [cluster('up', [up.port])],
      filters: [
        { name: 'trellis.extension', module: join(dir, 'tag.mjs'), config: { tag: 'blue' } },
        { name: 'envoy.filters.http.fault' },
        { name: 'envoy.filters.http.local_ratelimit', maxTokens: 3, tokensPerFill: 3, fillIntervalMs: 60_000, perRoute: true },
      ],
    };
    h = await startEngine(setup);
  });
  after(async () => {
    await h.close();
    await up.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('loads an extension module that edits request headers and sees responses', async () => {
    const r = await request(`${h.url}/ext/x`);
    assert.equal(r.status, 200);
    const seen = JSON.parse(r.body) as { headers: Record<string, string> };
    assert.equal(seen.headers['x-tag'], 'blue@inbound|127.0.0.1|test');
    assert.equal(r.headers['x-tagged'], 'default');
    assert.equal((await request(`${h.url}/ext/deny`)).status, 451);
  });

  it('answers 500 when a filter throws, and keeps serving', async () => {
    const r = await request(`${h.url}/ext/throw`);
    assert.equal(r.status, 500);
    assert.match(r.body, /filter tag failed: boom/);
    assert.equal((await request(`${h.url}/ext/ok`)).status, 200);
  });

  it('rate limits per route: 429 with x-envoy-ratelimited, UNAVAILABLE for gRPC, other routes untouched', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) statuses.push((await request(`${h.url}/limited`)).status);
    assert.deepEqual(statuses, [200, 200, 200, 429]);
    const r = await request(`${h.url}/limited`);
    assert.equal(r.headers['x-envoy-ratelimited'], 'true');
    assert.equal(r.body, 'local_rate_limited\n');
    const s = http2.connect(h.url);
    try {
      const g = await h2request(s, { ...GRPC_HEADERS, ':path': '/limited/pkg.Svc/M' }, EMPTY_MESSAGE);
      assert.equal(g.headers['grpc-status'], '14');
      assert.equal(g.headers['x-envoy-ratelimited'], 'true');
    } finally {
      s.close();
    }
    assert.equal((await request(`${h.url}/other`)).status, 200);
    assert.equal(h.records.findLast((x) => x.path === '/limited')!.flags, 'RL');
  });

  it('aborts by fault with an HTTP status, or a gRPC status for gRPC, and honours percentages', async () => {
    const r = await request(`${h.url}/abort`);
    assert.equal(r.status, 503);
    assert.equal(r.body, 'fault filter abort\n');
    assert.equal(h.records.at(-1)!.flags, 'FI');
    const s = http2.connect(h.url);
    try {
      const g = await h2request(s, { ...GRPC_HEADERS, ':path': '/pkg.Svc/Abort' }, EMPTY_MESSAGE);
      assert.equal(g.status, 200);
      assert.equal(g.headers['grpc-status'], '9');
    } finally {
      s.close();
    }
    assert.equal((await request(`${h.url}/never`)).status, 200);
  });

  it('delays by fault before forwarding', async () => {
    const t0 = performance.now();
    const r = await request(`${h.url}/delay`);
    const took = performance.now() - t0;
    assert.equal(r.status, 200);
    assert.ok(took >= 190, `answered after ${took} ms`);
  });

  it('refuses a config whose extension cannot load and keeps the last good one', async () => {
    const broken: EngineSetup = { ...setup, filters: [{ name: 'trellis.extension', module: join(dir, 'broken.mjs'), config: {} }] };
    await assert.rejects(h.apply(broken), (e: unknown) => e instanceof ProxyError && e.code === 'extension-failed' && /HttpFilterFactory/.test(e.message));
    const missing: EngineSetup = { ...setup, filters: [{ name: 'trellis.extension', module: join(dir, 'nope.mjs'), config: {} }] };
    await assert.rejects(h.apply(missing), (e: unknown) => e instanceof ProxyError && e.code === 'extension-failed' && /cannot load/.test(e.message));
    const r = await request(`${h.url}/still`);
    assert.equal((JSON.parse(r.body) as { headers: Record<string, string> }).headers['x-tag'], 'blue@inbound|127.0.0.1|test');
  });
});
