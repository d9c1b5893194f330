// The HTTP engine under abuse, with raw clients on loopback: oversized and too many headers (431), a slowloris
// client cut at the header timeout, an HTTP/2 rapid-reset flood (CVE-2023-44487) answered with GOAWAY, malformed
// and oversized gRPC frames, idle timeouts, and graceful drain. Other clients keep being served throughout.
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { cluster, h2request, request, route, sleep, startEngine, startH2Upstream, startHttpUpstream, type EngineHarness, type Upstream } from './http-engine-harness.ts';

function rawRequest(port: number, text: string, waitMs = 2000): Promise<{ text: string; closedAfterMs: number }> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const sock = net.connect(port, '127.0.0.1', () => sock.write(text));
    let got = '';
    sock.on('data', (c: Buffer) => (got += c.toString('latin1')));
    sock.on('error', () => {});
    const timer = setTimeout(() => sock.destroy(), waitMs);
    sock.on('close', () => {
      clearTimeout(timer);
      resolve({ text: got, closedAfterMs: performance.now() - t0 });
    });
  });
}

/** `p`, or `fallback` after `ms` (the timer is cleared either way, so nothing is left running). */
function within<T>(p: Promise<T>, ms: number, fallback: T): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<T>((r) => (timer = setTimeout(() => r(fallback), ms)));
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

function grpcFrame(length: number, flag = 0, bodyBytes = length): Buffer {
  const b = Buffer.alloc(5 + bodyBytes);
  b[0] = flag;
  b.writeUInt32BE(length, 1);
  return b;
}

describe('HTTP engine, hardening', () => {
  let up: Upstream;
  let grpcUp: Upstream;
  let h: EngineHarness;

  before(async () => {
    up = await startHttpUpstream('up', (req, res) => {
      if (!req.url?.startsWith('/slow')) return false;
      req.resume();
      const t = setTimeout(() => res.end('slow'), 200);
      res.on('close', () => clearTimeout(t));
      return true;
    });
    // A gRPC-like upstream that reads the whole request and answers OK in trailers.
    grpcUp = await startH2Upstream('grpc', (stream) => {
      stream.resume();
      stream.on('end', () => {
        if (stream.closed) return;
        stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
        stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
        stream.end();
      });
    });
    h = await startEngine({
      routes: [route('grpc', { path: { prefix: '/pkg.Svc/' } }, 'grpc'), route('all', { path: { prefix: '/' } }, 'up')],
      clusters: [cluster('up', [up.port]), cluster('grpc', [grpcUp.port], { http2: true, protocol: 'grpc' })],
      limits: { maxHeaderBytes: 8 * 1024, maxHeaders: 20, headerTimeoutMs: 300, maxGrpcMessageBytes: 64 * 1024, idleTimeoutMs: 5000 },
    });
  });
  after(async () => {
    await h.close();
    await up.close();
    await grpcUp.close();
  });

  it('refuses an oversized header block and too many headers with 431 (HTTP/1.1 and HTTP/2)', async () => {
    const big = await rawRequest(h.port, `GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(10_000)}\r\n\r\n`);
    assert.match(big.text, /^HTTP\/1\.1 431/);
    const many = Array.from({ length: 25 }, (_, i) => `X-H${i}: v\r\n`).join('');
    const count = await rawRequest(h.port, `GET / HTTP/1.1\r\nHost: x\r\n${many}\r\n`);
    assert.match(count.text, /^HTTP\/1\.1 431/);
    const s = http2.connect(h.url);
    try {
      const headers: http2.OutgoingHttpHeaders = { ':path': '/' };
      for (let i = 0; i < 25; i++) headers[`x-h${i}`] = 'v';
      assert.equal((await h2request(s, headers)).status, 431);
      assert.equal((await h2request(s, { ':path': '/fine' })).status, 200);
    } finally {
      s.close();
    }
    assert.equal((await request(`${h.url}/ok`)).status, 200);
  });

  it('closes a slowloris connection at the header timeout while serving another client', async () => {
    const t0 = performance.now();
    let closedAt = 0;
    const sock = net.connect(h.port, '127.0.0.1');
    sock.on('error', () => {});
    const closed = new Promise<void>((r) => sock.on('close', () => r()));
    sock.once('connect', () => sock.write('GET / HTTP/1.1\r\nHost: x\r\n'));
    const drip = setInterval(() => {
      if (!sock.destroyed) sock.write('X-Slow: 1\r\n');
    }, 50);
    const served: number[] = [];
    const other = (async () => {
      while (!closedAt) {
        served.push((await request(`${h.url}/meanwhile`)).status);
        await sleep(50);
      }
    })();
    await within(closed, 3000, undefined);
    closedAt = performance.now() - t0;
    clearInterval(drip);
    await other;
    assert.ok(sock.destroyed, 'the slow client was disconnected');
    assert.ok(closedAt >= 250 && closedAt < 1500, `closed after ${closedAt} ms (header timeout 300 ms)`);
    assert.ok(served.length >= 2 && served.every((s) => s === 200), `other client served: ${served.join(',')}`);
  });

  it('sends GOAWAY(ENHANCE_YOUR_CALM) to a rapid-reset flood and keeps serving others', async () => {
    const attacker = http2.connect(h.url);
    attacker.on('error', () => {});
    const goaway = new Promise<number>((resolve) => {
      attacker.on('goaway', (code: number) => resolve(code));
      attacker.on('close', () => resolve(-1));
    });
    await new Promise<void>((r) => attacker.once('connect', () => r()));
    let sent = 0;
    for (let i = 0; i < 2000 && !attacker.destroyed && !attacker.closed; i++) {
      try {
        const s = attacker.request({ ':path': '/slow/flood' });
        s.on('error', () => {});
        s.close(http2.constants.NGHTTP2_CANCEL);
        sent++;
      } catch {
        break;
      }
      if (i % 50 === 49) await sleep(1);
    }
    const code = await within(goaway, 3000, -2);
    attacker.destroy();
    assert.equal(code, http2.constants.NGHTTP2_ENHANCE_YOUR_CALM, `attacker saw ${code} after ${sent} resets`);
    const s = http2.connect(h.url);
    try {
      assert.equal((await h2request(s, { ':path': '/after-flood' })).status, 200);
    } finally {
      s.close();
    }
  });

  it('refuses gRPC messages over the size limit (RESOURCE_EXHAUSTED) and malformed frames (INTERNAL)', async () => {
    const s = http2.connect(h.url);
    try {
      const headers = { ':method': 'POST', ':path': '/pkg.Svc/M', 'content-type': 'application/grpc', te: 'trailers' };
      const big = await h2request(s, headers, grpcFrame(5 * 1024 * 1024, 0, 16));
      assert.equal(big.headers['grpc-status'], '8');
      const compressed = await h2request(s, headers, grpcFrame(3, 1));
      assert.equal(compressed.headers['grpc-status'], '13');
      const badFlag = await h2request(s, headers, grpcFrame(3, 9));
      assert.equal(badFlag.headers['grpc-status'], '13');
      const truncated = await h2request(s, headers, grpcFrame(100, 0, 10));
      assert.equal(truncated.headers['grpc-status'], '13');
      const fine = await h2request(s, headers, grpcFrame(1000));
      assert.equal(fine.trailers?.['grpc-status'], '0');
      assert.equal((await h2request(s, { ':path': '/still-up' })).status, 200);
    } finally {
      s.close();
    }
  });
});

describe('HTTP engine, idle timeout and drain', () => {
  let up: Upstream;
  let h: EngineHarness;

  before(async () => {
    up = await startHttpUpstream('up', (req, res) => {
      if (!req.url?.startsWith('/slow')) return false;
      req.resume();
      setTimeout(() => res.end('slow'), 200);
      return true;
    });
    h = await startEngine({ routes: [route('all', { path: { prefix: '/' } }, 'up')], clusters: [cluster('up', [up.port])], limits: { idleTimeoutMs: 200 } });
  });
  after(async () => {
    await h.close();
    await up.close();
  });

  it('closes idle HTTP/1.1 and HTTP/2 connections after the idle timeout', async () => {
    const r = await rawRequest(h.port, 'GET /x HTTP/1.1\r\nHost: x\r\n\r\n', 3000);
    assert.match(r.text, /^HTTP\/1\.1 200/);
    assert.ok(r.closedAfterMs >= 150 && r.closedAfterMs < 2000, `h1 closed after ${r.closedAfterMs} ms`);
    const s = http2.connect(h.url);
    const t0 = performance.now();
    await h2request(s, { ':path': '/y' });
    await new Promise<void>((res) => s.on('close', () => res()));
    const took = performance.now() - t0;
    assert.ok(took >= 150 && took < 2000, `h2 closed after ${took} ms`);
  });

  it('drains: GOAWAY on HTTP/2 and connection: close on HTTP/1.1, letting requests in flight finish', async () => {
    const s = http2.connect(h.url);
    s.on('error', () => {});
    await h2request(s, { ':path': '/warm' });
    const inflight = h2request(s, { ':path': '/slow/h2' });
    const h1 = request(`${h.url}/slow/h1`);
    await sleep(50);
    const gotGoaway = new Promise<boolean>((r) => s.on('goaway', () => r(true)));
    const drained = h.engine.drain(3000);
    assert.equal(await within(gotGoaway, 1000, false), true);
    const r2 = await inflight;
    assert.equal(r2.body, 'slow');
    const r1 = await h1;
    assert.equal(r1.body, 'slow');
    assert.equal(r1.headers.connection, 'close');
    await drained;
    s.destroy();
  });
});
