// The HTTP engine over HTTP/1.1, with real clients (node:http, raw sockets) and real upstreams on loopback:
// forwarding and Envoy's request decoration, keep-alive, chunked bodies, pipelining, 100-continue, WebSocket
// upgrade, routing (headers, rewrites, redirect, direct response), local replies and flows.
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { cluster, pathPolicy, request, route, startEngine, startHttpUpstream, type EngineHarness, type Upstream } from './http-engine-harness.ts';

/** Writes raw bytes and collects what comes back until `done(text)` says enough (or 3 s pass). */
function rawExchange(port: number, steps: (sock: net.Socket, text: () => string) => Promise<void>): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1');
    let text = '';
    sock.on('data', (c: Buffer) => (text += c.toString('latin1')));
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`raw exchange timed out; got ${JSON.stringify(text)}`));
    }, 3000);
    sock.once('connect', () => {
      steps(sock, () => text).then(
        () => {
          clearTimeout(timer);
          sock.destroy();
          resolve(text);
        },
        (e: unknown) => {
          clearTimeout(timer);
          sock.destroy();
          reject(e instanceof Error ? e : new Error(String(e)));
        },
      );
    });
  });
}

async function until(cond: () => boolean, ms = 2000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('HTTP engine, HTTP/1.1', () => {
  let h: EngineHarness;
  let a: Upstream & { server: http.Server };
  let b: Upstream & { server: http.Server };
  let upstreamConnections = 0;

  before(async () => {
    a = await startHttpUpstream('a', (req, res) => {
      if (req.url === '/chunked') {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.write('one,');
        setTimeout(() => res.end('two'), 10);
        return true;
      }
      if (req.url === '/hop') {
        res.writeHead(200, { connection: 'keep-alive, x-private', 'x-private': 'secret', 'keep-alive': 'timeout=5', 'x-public': 'ok' });
        res.end('hop');
        return true;
      }
    });
    a.server.on('connection', () => upstreamConnections++);
    a.server.on('upgrade', (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => {
      socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${String(req.headers['sec-websocket-key'])}\r\n\r\n`);
      if (head.length) socket.write(head);
      socket.on('data', (c: Buffer) => socket.write(Buffer.concat([Buffer.from('echo:'), c])));
      socket.on('error', () => socket.destroy());
    });
    b = await startHttpUpstream('b');
    h = await startEngine(
      {
        routes: [
          route('canary-header', { headers: [{ name: 'x-canary', match: { exact: 'yes' } }] }, 'b'),
          route('method-put', { headers: [{ name: ':method', match: { exact: 'PUT' } }] }, 'b'),
          route('rewrite', { path: { prefix: '/old/' } }, { type: 'route', clusters: [{ cluster: 'a', weight: 1 }], rewrite: { prefix: '/new/', authority: 'rewritten.example' } }),
          route('redirect', { path: { exact: '/moved' } }, { type: 'redirect', host: 'elsewhere.example', path: '/there', status: 301 }),
          route('direct', { path: { exact: '/direct' } }, { type: 'direct-response', status: 418, body: 'teapot' }),
          route('ops', { path: { prefix: '/ops' } }, 'a', { headers: { request: { set: { 'x-set': 'v' }, add: { 'x-added': 'w' }, remove: ['x-drop'] }, response: { set: { 'x-resp': 'r' }, add: {}, remove: ['x-powered-by'] } } }),
          route('query', { path: { prefix: '/q' }, queryParams: [{ name: 'v', match: { exact: '2' } }] }, 'b'),
          route('nowhere', { path: { prefix: '/nowhere' } }, 'missing-cluster'),
          route('default', { path: { prefix: '/' } }, 'a'),
        ],
        clusters: [cluster('a', [a.port]), cluster('b', [b.port])],
        filters: [{ name: 'trellis.policy' }],
      },
      pathPolicy({ '/admin': { kind: 'AuthorizationPolicy', namespace: 'shop', name: 'deny-admin' } }),
    );
  });
  after(async () => {
    await h.close();
    await a.close();
    await b.close();
  });

  it('forwards a request with Host preserved, x-forwarded-* and x-request-id added, hop-by-hop headers stripped', async () => {
    const r = await request(`${h.url}/hello?x=1`, { headers: { host: 'shop.example', connection: 'keep-alive, x-private', 'x-private': 'p', 'keep-alive': '5', 'x-forwarded-for': '10.0.0.9' } });
    assert.equal(r.status, 200);
    const seen = JSON.parse(r.body) as { server: string; url: string; headers: Record<string, string> };
    assert.equal(seen.server, 'a');
    assert.equal(seen.url, '/hello?x=1');
    assert.equal(seen.headers.host, 'shop.example');
    assert.equal(seen.headers['x-forwarded-for'], '10.0.0.9, 127.0.0.1');
    assert.equal(seen.headers['x-forwarded-proto'], 'http');
    assert.match(seen.headers['x-request-id'] ?? '', /^[0-9a-f-]{36}$/);
    assert.equal(seen.headers['x-private'], undefined);
    assert.equal(seen.headers['keep-alive'], undefined);
  });

  it('strips hop-by-hop response headers and those the Connection header names', async () => {
    const r = await request(`${h.url}/hop`);
    assert.equal(r.body, 'hop');
    assert.equal(r.headers['x-public'], 'ok');
    assert.equal(r.headers['x-private'], undefined);
  });

  it('keeps the downstream connection alive and reuses one pooled upstream connection', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const before = upstreamConnections;
    const sockets = new Set<net.Socket>();
    for (let i = 0; i < 5; i++) {
      const r = await new Promise<number>((resolve, reject) => {
        const req = http.get(`${h.url}/keep/${i}`, { agent }, (res) => {
          sockets.add(res.socket);
          res.resume();
          res.on('end', () => resolve(res.statusCode!));
        });
        req.on('error', reject);
      });
      assert.equal(r, 200);
    }
    agent.destroy();
    assert.equal(sockets.size, 1, 'one downstream connection for five requests');
    assert.ok(upstreamConnections - before <= 1, 'at most one new upstream connection');
    const ports = new Set(a.requests.slice(-5).map((r) => r.remotePort));
    assert.equal(ports.size, 1, 'the five requests shared one upstream connection');
  });

  it('streams chunked bodies both ways', async () => {
    const got = await new Promise<{ body: string; up: number }>((resolve, reject) => {
      const req = http.request(`${h.url}/upload`, { method: 'POST', agent: false }, (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => resolve({ body, up: (JSON.parse(body) as { body: number }).body }));
      });
      req.on('error', reject);
      req.write('x'.repeat(1000));
      setTimeout(() => req.end('y'.repeat(500)), 10);
    });
    assert.equal(got.up, 1500);
    const seen = a.requests.at(-1)!;
    assert.equal(seen.headers['transfer-encoding'], 'chunked');
    const r = await request(`${h.url}/chunked`);
    assert.equal(r.body, 'one,two');
  });

  it('answers pipelined requests in order on one connection', async () => {
    const text = await rawExchange(h.port, async (sock, got) => {
      sock.write('GET /p1 HTTP/1.1\r\nHost: x\r\n\r\nGET /p2 HTTP/1.1\r\nHost: x\r\n\r\n');
      await until(() => (got().match(/HTTP\/1\.1 200/g) ?? []).length === 2 && got().includes('/p2"'));
    });
    const i1 = text.indexOf('"/p1"');
    const i2 = text.indexOf('"/p2"');
    assert.ok(i1 > 0 && i2 > i1, 'responses in request order');
  });

  it('sends 100 Continue only for a request the filters let through, then forwards the body', async () => {
    const ok = await rawExchange(h.port, async (sock, got) => {
      sock.write('POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n');
      await until(() => got().includes('100 Continue'));
      sock.write('hello');
      await until(() => got().includes('"body":5'));
    });
    assert.match(ok, /^HTTP\/1\.1 100 Continue/);
    assert.equal(a.requests.at(-1)!.headers.expect, undefined);
    const denied = await rawExchange(h.port, async (sock, got) => {
      sock.write('POST /admin/x HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n');
      await until(() => got().includes('\r\n\r\n') && got().includes('deny-admin'));
    });
    assert.doesNotMatch(denied, /100 Continue/);
    assert.match(denied, /^HTTP\/1\.1 403/);
    assert.match(denied, /connection: close/i);
  });

  it('upgrades to WebSocket and relays bytes both ways', async () => {
    const text = await rawExchange(h.port, async (sock, got) => {
      sock.write('GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: abc\r\nSec-WebSocket-Version: 13\r\n\r\n');
      await until(() => got().includes('\r\n\r\n'));
      sock.write('ping');
      await until(() => got().includes('echo:ping'));
      sock.write('pong');
      await until(() => got().includes('echo:pong'));
    });
    assert.match(text, /^HTTP\/1\.1 101 Switching Protocols/);
    assert.match(text, /Sec-WebSocket-Accept: abc/);
    await until(() => h.flows.some((f) => f.l7?.http?.code === 101));
  });

  it('refuses an upgrade the policy denies with a 403 naming the policy', async () => {
    const text = await rawExchange(h.port, async (sock, got) => {
      sock.write('GET /admin/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n');
      await until(() => got().includes('deny-admin'));
    });
    assert.match(text, /^HTTP\/1\.1 403/);
  });

  it('routes by header, method and query parameter', async () => {
    assert.equal((JSON.parse((await request(`${h.url}/x`, { headers: { 'x-canary': 'yes' } })).body) as { server: string }).server, 'b');
    assert.equal((JSON.parse((await request(`${h.url}/x`, { headers: { 'x-canary': 'no' } })).body) as { server: string }).server, 'a');
    assert.equal((JSON.parse((await request(`${h.url}/x`, { method: 'PUT' })).body) as { server: string }).server, 'b');
    assert.equal((JSON.parse((await request(`${h.url}/q?v=2`)).body) as { server: string }).server, 'b');
    assert.equal((JSON.parse((await request(`${h.url}/q?v=3`)).body) as { server: string }).server, 'a');
  });

  it('rewrites the path prefix and the authority', async () => {
    const seen = JSON.parse((await request(`${h.url}/old/thing?k=v`)).body) as { url: string; headers: Record<string, string> };
    assert.equal(seen.url, '/new/thing?k=v');
    assert.equal(seen.headers.host, 'rewritten.example');
  });

  it('applies request and response header operations', async () => {
    const r = await request(`${h.url}/ops`, { headers: { 'x-drop': '1', 'x-added': 'u' } });
    const seen = JSON.parse(r.body) as { headers: Record<string, string> };
    assert.equal(seen.headers['x-set'], 'v');
    assert.equal(seen.headers['x-added'], 'u, w');
    assert.equal(seen.headers['x-drop'], undefined);
    assert.equal(r.headers['x-resp'], 'r');
  });

  it('answers redirects and direct responses itself', async () => {
    const r = await request(`${h.url}/moved`);
    assert.equal(r.status, 301);
    assert.equal(r.headers.location, 'http://elsewhere.example/there');
    const d = await request(`${h.url}/direct`);
    assert.equal(d.status, 418);
    assert.equal(d.body, 'teapot\n');
  });

  it('replies 403 naming the denying policy, with a DROPPED flow that names it', async () => {
    const r = await request(`${h.url}/admin/panel`);
    assert.equal(r.status, 403);
    assert.equal(r.body, 'RBAC: access denied by AuthorizationPolicy shop/deny-admin\n');
    const f = h.flows.findLast((x) => x.l7?.http?.url.endsWith('/admin/panel'))!;
    assert.equal(f.verdict, 'DROPPED');
    assert.equal(f.drop_reason_desc, 'POLICY_DENIED');
    assert.equal(f.l7?.type, 'REQUEST');
    assert.equal(f.l7?.http?.code, 403);
    assert.deepEqual(f.ingress_denied_by?.map((p) => `${p.kind} ${p.namespace}/${p.name}`), ['AuthorizationPolicy shop/deny-admin']);
  });

  it('replies 404 without a route and 503 for a missing cluster', async () => {
    const h2 = await startEngine({ routes: [route('only', { path: { exact: '/only' } }, 'a')], clusters: [cluster('a', [a.port])] });
    try {
      assert.equal((await request(`${h2.url}/other`)).status, 404);
      assert.equal((await request(`${h2.url}/only`)).status, 200);
    } finally {
      await h2.close();
    }
    const r = await request(`${h.url}/nowhere`);
    assert.equal(r.status, 503);
    assert.match(r.body, /cluster not found/);
  });

  it('reports one RESPONSE flow per request with the route, upstream and code', async () => {
    await request(`${h.url}/flowcheck`);
    const f = h.flows.findLast((x) => x.l7?.http?.url.endsWith('/flowcheck'))!;
    assert.equal(f.verdict, 'FORWARDED');
    assert.equal(f.Type, 'L7');
    assert.equal(f.l7?.type, 'RESPONSE');
    assert.equal(f.is_reply, true);
    assert.equal(f.l7?.http?.code, 200);
    assert.equal(f.l7?.http?.method, 'GET');
    assert.ok((f.l7?.latency_ns ?? 0) > 0);
    assert.equal(f.trellis?.route, 'default');
    assert.equal(f.trellis?.upstream, `127.0.0.1:${a.port}`);
    assert.deepEqual(f.ingress_allowed_by?.map((p) => p.name), ['allow']);
    const rec = h.records.findLast((x) => x.path === '/flowcheck')!;
    assert.equal(rec.status, 200);
    assert.ok(rec.bytesOut > 0);
  });
});
