// Abuse end to end, at a client proxy's outbound listener and at a server proxy's inbound listener (PERMISSIVE, so a
// plaintext attacker reaches it): oversized and too many headers, a slowloris client, an HTTP/2 rapid-reset flood
// (CVE-2023-44487) and malformed gRPC frames. Each is refused the right way; the proxy process stays up and keeps
// serving other clients, during the attack and after it.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import * as grpc from '@grpc/grpc-js';
import { EchoClient, startEchoServer, unary, type EchoServer } from '../support/echo-service.ts';
import { MeshEnv } from '../support/mesh-env.ts';

const NS = 'shop';
const HOST = `api.${NS}.svc.cluster.local`;
const RPC = `rpc.${NS}.svc.cluster.local`;

const MANIFESTS = `apiVersion: v1
kind: Service
metadata: {name: api, namespace: ${NS}}
spec:
  selector: {app: api}
  ports: [{name: http, port: 8080, targetPort: 8080, appProtocol: http}]
---
apiVersion: v1
kind: Service
metadata: {name: rpc, namespace: ${NS}}
spec:
  selector: {app: api}
  ports: [{name: grpc, port: 9090, targetPort: 9090, appProtocol: grpc}]
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: api, namespace: ${NS}}
spec:
  selector: {matchLabels: {app: api}}
  mtls: {mode: PERMISSIVE}
`;

interface Target {
  /** Which listener: the client proxy's outbound one, or the server proxy's inbound one. */
  side: 'outbound' | 'inbound';
  proxy: string;
  ip: string;
}

/** Writes raw bytes and collects what comes back until the peer closes (or `ms` passes). */
function raw(ip: string, port: number, write: (s: net.Socket) => void, ms = 5000): Promise<{ text: string; closed: boolean; error?: string }> {
  return new Promise((resolve) => {
    let text = '';
    let error: string | undefined;
    const s = net.connect({ host: ip, port }, () => write(s));
    s.setEncoding('latin1').on('data', (d: string) => (text += d.slice(0, 4096)));
    s.on('error', (e) => (error = (e as NodeJS.ErrnoException).code ?? e.message));
    const t = setTimeout(() => {
      s.destroy();
      resolve({ text, closed: false, ...(error ? { error } : {}) });
    }, ms);
    s.on('close', () => {
      clearTimeout(t);
      resolve({ text, closed: true, ...(error ? { error } : {}) });
    });
  });
}

function get(ip: string, agent: http.Agent | false = false): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: ip, port: 8080, path: '/ok', agent, headers: { host: HOST }, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error('client timeout')));
    req.on('error', reject);
  });
}

/** A gRPC request over a raw HTTP/2 session with the given body; resolves with grpc-status and the HTTP status. */
function grpcRaw(ip: string, body: Buffer, extra: Record<string, string> = {}): Promise<{ status: number; grpcStatus: string | undefined; message: string | undefined }> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`http://${ip}:9090`);
    session.on('error', reject);
    const req = session.request({ ':method': 'POST', ':path': '/trellis.test.v1.Echo/Unary', ':authority': RPC, 'content-type': 'application/grpc', te: 'trailers', ...extra });
    let status = 0;
    let head: http2.IncomingHttpHeaders = {};
    req.on('response', (h) => {
      status = Number(h[':status']);
      head = h;
    });
    req.on('trailers', (t: http2.IncomingHttpHeaders) => {
      head = { ...head, ...t };
    });
    req.on('error', () => undefined);
    req.resume();
    const done = (): void => {
      session.close();
      const gs = head['grpc-status'];
      const gm = head['grpc-message'];
      resolve({ status, grpcStatus: typeof gs === 'string' ? gs : undefined, message: typeof gm === 'string' ? decodeURIComponent(gm) : undefined });
    };
    req.on('close', done);
    req.end(body);
  });
}

const MAX_FLOOD_STREAMS = 20_000;

interface Flood {
  opened: number;
  goaway: number | undefined;
  closed: boolean;
}

/**
 * The attacker, in a process of its own (so that it does not starve this one's clients): for `ms`, HTTP/2 sessions
 * one after another, each opening and at once cancelling streams until the proxy closes it (or MAX_FLOOD_STREAMS).
 * Prints one JSON line per session.
 */
const FLOODER = `
const http2 = require('node:http2');
const [ip, authority, ms, max] = process.argv.slice(1);
const until = Date.now() + Number(ms);
function one() {
  return new Promise((resolve) => {
    const session = http2.connect('http://' + ip + ':8080');
    let opened = 0, goaway;
    session.on('error', () => {});
    session.on('goaway', (code) => (goaway = code));
    const timer = setTimeout(() => { session.destroy(); resolve({ opened, goaway, closed: false }); }, 10000);
    session.on('close', () => { clearTimeout(timer); resolve({ opened, goaway, closed: true }); });
    session.on('connect', () => {
      const burst = () => {
        for (let i = 0; i < 200 && !session.closed && !session.destroyed; i++) {
          try {
            const req = session.request({ ':path': '/flood', ':authority': authority });
            req.on('error', () => {});
            req.close(http2.constants.NGHTTP2_CANCEL);
            opened++;
          } catch { return; }
        }
        if (opened < Number(max) && !session.closed && !session.destroyed) setImmediate(burst);
      };
      burst();
    });
  });
}
(async () => { while (Date.now() < until) console.log(JSON.stringify(await one())); })();
`;

async function flood(ip: string, ms: number): Promise<Flood[]> {
  const child = spawn(process.execPath, ['-e', FLOODER, ip, HOST, String(ms), String(MAX_FLOOD_STREAMS)], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  const kill = setTimeout(() => child.kill('SIGKILL'), ms + 15_000);
  await once(child, 'exit');
  clearTimeout(kill);
  return out.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Flood);
}

// The tests run at once: the slowloris client takes its time while the other attacks go on.
describe('abuse: the proxy refuses, stays up and keeps serving', { concurrency: true }, () => {
  let env: MeshEnv;
  let app: http.Server;
  let echo: EchoServer;
  const targets: Target[] = [];

  before(async () => {
    env = await MeshEnv.start({
      subnet: 53,
      pods: [
        { name: 'web', namespace: NS, ports: [] },
        { name: 'api', namespace: NS, ports: [{ port: 8080, name: 'http' }, { port: 9090, name: 'grpc' }] },
      ],
      manifests: MANIFESTS,
    });
    app = http.createServer((req, res) => res.end(`api ${req.url ?? ''}`));
    await new Promise<void>((r) => app.listen(8080, env.pod('api').appIp, r));
    echo = await startEchoServer('api', env.pod('api').appIp, new grpc.Server(), 9090);
    targets.push({ side: 'outbound', proxy: 'web', ip: env.pod('web').outboundIp }, { side: 'inbound', proxy: 'api', ip: env.pod('api').podIp });
  });

  after(async () => {
    app?.close();
    app?.closeAllConnections();
    echo?.server.forceShutdown();
    await env?.stop();
  });

  /** The proxy process is alive and a normal request through this listener still succeeds. */
  async function stillServes(t: Target): Promise<void> {
    const p = env.proxy(t.proxy);
    assert.equal(p.child.exitCode, null, `${t.proxy}'s proxy exited:\n${p.log().slice(-2000)}`);
    assert.equal(p.child.signalCode, null);
    const r = await get(t.ip);
    assert.equal(r.status, 200, `${t.side}: a normal request after the attack`);
    assert.equal(r.body, 'api /ok');
  }

  it('refuses a 100 KB header with 431 (or closes), at both listeners', async () => {
    for (const t of targets) {
      const r = await raw(t.ip, 8080, (s) => s.write(`GET /big HTTP/1.1\r\nhost: ${HOST}\r\nx-big: ${'a'.repeat(100 * 1024)}\r\n\r\n`));
      assert.ok(r.text.startsWith('HTTP/1.1 431') || (r.text === '' && r.closed), `${t.side}: ${JSON.stringify(r).slice(0, 200)}`);
      assert.ok(r.closed, `${t.side}: the connection is closed`);
      await stillServes(t);
    }
  });

  it('refuses too many headers with 431, over HTTP/1.1 and HTTP/2', async () => {
    const headers: Record<string, string> = {};
    for (let i = 0; i < 150; i++) headers[`x-h${i}`] = 'v';
    for (const t of targets) {
      const lines = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('');
      const r = await raw(t.ip, 8080, (s) => s.write(`GET /many HTTP/1.1\r\nhost: ${HOST}\r\n${lines}\r\n`));
      assert.match(r.text, /^HTTP\/1\.1 431/, `${t.side}: ${r.text.slice(0, 100)}`);
      const status = await new Promise<number>((resolve, reject) => {
        const session = http2.connect(`http://${t.ip}:8080`);
        session.on('error', reject);
        const req = session.request({ ':path': '/many', ':authority': HOST, ...headers });
        req.on('response', (h) => resolve(Number(h[':status'])));
        req.on('error', reject);
        req.on('close', () => session.close());
        req.resume();
      });
      assert.equal(status, 431, `${t.side} over HTTP/2`);
      await stillServes(t);
    }
  });

  it('closes a slowloris connection after the header timeout, and serves others meanwhile', async () => {
    await Promise.all(
      targets.map(async (t) => {
        const start = performance.now();
        let sent = 0;
        let closedAt = 0;
        const request = `GET /slow HTTP/1.1\r\nhost: ${HOST}\r\nx-slow: ${'z'.repeat(40)}`;
        const served = sleep(1500).then(() => stillServes(t));
        const r = await raw(
          t.ip,
          8080,
          (s) => {
            const tick = setInterval(() => {
              if (s.destroyed || sent >= request.length) return clearInterval(tick);
              s.write(request[sent++]!);
            }, 1000);
            s.once('close', () => {
              clearInterval(tick);
              closedAt = performance.now() - start;
            });
          },
          25_000,
        );
        await served;
        assert.ok(r.closed, `${t.side}: the proxy closed the connection (after ${sent} bytes)`);
        assert.ok(sent < request.length, `${t.side}: the header block was never complete`);
        // The header timeout is 10 s by default (ListenerLimits.headerTimeoutMs, Envoy's request_headers_timeout over
        // xDS); as with Envoy's listener filters, protocol detection (at most 5 s) comes before it.
        assert.ok(closedAt >= 9000 && closedAt < 20_000, `${t.side}: closed after ${Math.round(closedAt)} ms`);
        assert.ok(r.text === '' || r.text.startsWith('HTTP/1.1 408'), `${t.side}: ${r.text.slice(0, 100)}`);
        await stillServes(t);
      }),
    );
  });

  it('stops an HTTP/2 rapid-reset flood with GOAWAY, while another client keeps getting 200s', async () => {
    for (const t of targets) {
      let running = true;
      const statuses: number[] = [];
      const agent = new http.Agent({ keepAlive: true, maxSockets: 2 });
      const others = (async () => {
        while (running) statuses.push((await get(t.ip, agent)).status);
      })();
      const floods = await flood(t.ip, 2000);
      running = false;
      await others;
      agent.destroy();
      const summary = JSON.stringify(floods);
      assert.ok(floods.every((f) => f.closed), `${t.side}: every flooding session was closed: ${summary}`);
      assert.ok(floods.every((f) => f.opened < MAX_FLOOD_STREAMS), `${t.side}: and stopped early: ${summary}`);
      // The rapid-reset guard's GOAWAY (nghttp2 may close a session first with one of its own codes).
      const calm = floods.filter((f) => f.goaway === http2.constants.NGHTTP2_ENHANCE_YOUR_CALM).length;
      assert.ok(floods.length >= 2 && calm * 2 >= floods.length, `${t.side}: GOAWAY ENHANCE_YOUR_CALM: ${summary}`);
      assert.ok(statuses.length >= 5, `${t.side}: the other client was served during ${floods.length} floods (${statuses.length} requests)`);
      assert.deepEqual([...new Set(statuses)], [200], `${t.side}: the other client got only 200s`);
      await stillServes(t);
    }
  });

  it('fails malformed gRPC frames: a 2 GB length prefix with RESOURCE_EXHAUSTED, a bad compression flag with INTERNAL', async () => {
    const hello = Buffer.from([0x0a, 0x02, 0x68, 0x69]); // EchoRequest{message: "hi"}
    const frame = (flag: number, length: number, payload: Buffer): Buffer => {
      const h = Buffer.alloc(5);
      h[0] = flag;
      h.writeUInt32BE(length, 1);
      return Buffer.concat([h, payload]);
    };
    for (const t of targets) {
      const ok = await grpcRaw(t.ip, frame(0, hello.length, hello));
      assert.deepEqual([ok.status, ok.grpcStatus], [200, '0'], `${t.side}: a well-formed call`);
      const big = await grpcRaw(t.ip, frame(0, 0x80000000, Buffer.alloc(1024)));
      assert.equal(big.grpcStatus, String(grpc.status.RESOURCE_EXHAUSTED), `${t.side}: 2 GB prefix: ${JSON.stringify(big)}`);
      const flag = await grpcRaw(t.ip, frame(1, hello.length, hello));
      assert.equal(flag.grpcStatus, String(grpc.status.INTERNAL), `${t.side}: compressed flag without grpc-encoding: ${JSON.stringify(flag)}`);
      const junk = await grpcRaw(t.ip, frame(7, hello.length, hello));
      assert.equal(junk.grpcStatus, String(grpc.status.INTERNAL), `${t.side}: flag 7: ${JSON.stringify(junk)}`);
      const client = new EchoClient(`${t.ip}:9090`, grpc.credentials.createInsecure(), { 'grpc.default_authority': RPC });
      try {
        assert.equal((await unary(client, { message: 'after' })).message, 'after', `${t.side}: grpc-js is still served`);
      } finally {
        client.close();
      }
      await stillServes(t);
    }
  });
});
