// gRPC end to end through two real proxies (grpc-js client → client-side proxy → mesh mTLS → server-side proxy →
// grpc-js server): the four call kinds, status codes with messages and trailing metadata, deadline propagation, and a
// 100 MB server stream checked message by message while both proxies' RSS is sampled and must stay bounded.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import http2 from 'node:http2';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { EchoClient, type EchoReply, type EchoRequest } from '../support/echo-service.ts';
import { MeshEnv } from '../support/mesh-env.ts';

const PORT = 9090;
/** A second gRPC port served by a bare HTTP/2 server that never answers: only the proxies can enforce deadlines. */
const STUCK = 9091;
const AUTHORITY = `echo.grpc.svc.cluster.local:${PORT}`;
const MANIFESTS = `apiVersion: v1
kind: Service
metadata: {name: echo, namespace: grpc}
spec:
  selector: {app: echo}
  ports:
  - {name: grpc, port: ${PORT}, targetPort: ${PORT}, appProtocol: grpc}
  - {name: grpc-stuck, port: ${STUCK}, targetPort: ${STUCK}, appProtocol: grpc}
`;
const T = { timeout: 30_000 };
/** The big stream: 1,600 messages of 64 KiB (100 MiB); each message is recognisable by its index. */
const BIG_COUNT = 1600;
const BLOCK = randomBytes(48 * 1024).toString('base64'); // 65,536 characters
function bigMessage(i: number): string {
  return String(i).padStart(8, '0') + BLOCK.slice(8);
}
/** Max RSS growth of a proxy process during the big stream, over its baseline just before. */
const RSS_BOUND = 80 * 1024 * 1024;

type Unary = (req: EchoRequest, md: grpc.Metadata, opts: grpc.CallOptions, cb: (e: grpc.ServiceError | null, v?: EchoReply) => void) => grpc.ClientUnaryCall;
interface Echo extends grpc.Client {
  Unary: Unary;
  ServerStream(req: EchoRequest, md?: grpc.Metadata, opts?: grpc.CallOptions): grpc.ClientReadableStream<EchoReply>;
  ClientStream(md: grpc.Metadata, opts: grpc.CallOptions, cb: (e: grpc.ServiceError | null, v?: EchoReply) => void): grpc.ClientWritableStream<EchoRequest>;
  Bidi(md?: grpc.Metadata, opts?: grpc.CallOptions): grpc.ClientDuplexStream<EchoRequest, EchoReply>;
}

/** What the server saw of the slow call. */
interface SlowCall {
  deadlineInMs: number;
  cancelled: Promise<number>;
}

function startServer(host: string, slow: SlowCall[]): Promise<grpc.Server> {
  const server = new grpc.Server();
  server.addService(EchoClient.service, {
    Unary: (call: grpc.ServerUnaryCall<EchoRequest, EchoReply>, cb: grpc.sendUnaryData<EchoReply>) => {
      const msg = call.request.message ?? '';
      if (msg === 'not-found') {
        const md = new grpc.Metadata();
        md.set('x-reason', 'gone');
        md.set('x-detail-bin', Buffer.from([0, 1, 2, 255]));
        return cb({ code: grpc.status.NOT_FOUND, details: 'no such thing: widget 42', metadata: md });
      }
      if (call.request.fail_code) return cb({ code: call.request.fail_code, details: `failed with ${call.request.fail_code}` });
      if (msg === 'sleep') {
        const started = Date.now();
        const deadline = call.getDeadline();
        slow.push({
          deadlineInMs: deadline instanceof Date ? deadline.getTime() - started : deadline - started,
          cancelled: new Promise((resolve) => call.on('cancelled', () => resolve(Date.now() - started))),
        });
        setTimeout(() => (call.cancelled ? undefined : cb(null, { message: 'woke up', server: 'echo' })), 2000);
        return;
      }
      const initial = new grpc.Metadata();
      initial.set('x-echo-req', String(call.metadata.get('x-req')[0] ?? ''));
      call.sendMetadata(initial);
      const trailing = new grpc.Metadata();
      trailing.set('x-unary-trailer', 'done');
      cb(null, { message: msg, server: 'echo' }, trailing);
    },
    ServerStream: (call: grpc.ServerWritableStream<EchoRequest, EchoReply>) => {
      const n = call.request.count ?? 1;
      const big = call.request.message === 'big';
      let i = 0;
      const pump = (): void => {
        while (i < n && !call.cancelled) {
          const ok = call.write({ message: big ? bigMessage(i) : `${call.request.message ?? ''}#${i}`, server: 'echo' });
          i++;
          if (!ok) return void call.once('drain', pump);
        }
        if (!call.cancelled) call.end();
      };
      pump();
    },
    ClientStream: (call: grpc.ServerReadableStream<EchoRequest, EchoReply>, cb: grpc.sendUnaryData<EchoReply>) => {
      const parts: string[] = [];
      let done = false;
      call.on('data', (r: EchoRequest) => {
        if (done) return;
        if (r.message === 'fail-early') {
          done = true;
          return cb({ code: grpc.status.FAILED_PRECONDITION, details: 'stopped early' });
        }
        parts.push(r.message ?? '');
      });
      call.on('end', () => done || cb(null, { message: parts.join(','), server: 'echo' }));
    },
    Bidi: (call: grpc.ServerDuplexStream<EchoRequest, EchoReply>) => {
      call.on('data', (r: EchoRequest) => call.write({ message: `re:${r.message ?? ''}`, server: 'echo' }));
      call.on('end', () => call.end());
    },
  });
  return new Promise((resolve, reject) => server.bindAsync(`${host}:${PORT}`, grpc.ServerCredentials.createInsecure(), (e) => (e ? reject(e) : resolve(server))));
}

function unary(c: Echo, req: EchoRequest, opts: { md?: grpc.Metadata; deadlineMs?: number } = {}): Promise<{ reply?: EchoReply; err?: grpc.ServiceError; headers?: grpc.Metadata; trailers?: grpc.Metadata }> {
  return new Promise((resolve) => {
    let headers: grpc.Metadata | undefined;
    let trailers: grpc.Metadata | undefined;
    const call = c.Unary(req, opts.md ?? new grpc.Metadata(), { deadline: Date.now() + (opts.deadlineMs ?? 10_000) }, (err, reply) => {
      // 'status' comes after the callback: wait a turn for the trailing metadata.
      setImmediate(() => resolve({ reply, err: err ?? undefined, headers, trailers }));
    });
    call.on('metadata', (m: grpc.Metadata) => (headers = m));
    call.on('status', (s: grpc.StatusObject) => (trailers = s.metadata));
  });
}

describe('gRPC end to end through client and server proxies', () => {
  let env: MeshEnv;
  let server: grpc.Server;
  let client: Echo;
  let stuck: http2.Http2Server;
  const slow: SlowCall[] = [];
  /** Streams the stuck server got, and how they ended (RST code, -1 while open). */
  const stuckStreams: { path: string; timeout: string; rst: number }[] = [];

  before(async () => {
    env = await MeshEnv.start({
      subnet: 45,
      pods: [
        { name: 'client', namespace: 'grpc' },
        { name: 'echo', namespace: 'grpc', ports: [{ port: PORT, name: 'grpc' }, { port: STUCK, name: 'grpc-stuck' }] },
      ],
      manifests: MANIFESTS,
    });
    server = await startServer(env.pod('echo').appIp, slow);
    stuck = http2.createServer();
    stuck.on('stream', (st, h) => {
      const rec = { path: String(h[':path']), timeout: String(h['grpc-timeout'] ?? ''), rst: -1 };
      stuckStreams.push(rec);
      st.on('error', () => {});
      st.resume();
      st.on('close', () => (rec.rst = st.rstCode ?? 0));
    });
    await new Promise<void>((r) => stuck.listen(STUCK, env.pod('echo').appIp, r));
    client = new EchoClient(`${env.pod('client').outboundIp}:${PORT}`, grpc.credentials.createInsecure(), {
      'grpc.default_authority': AUTHORITY,
    }) as unknown as Echo;
  });

  after(async () => {
    client?.close();
    server?.forceShutdown();
    stuck?.close();
    await env?.stop();
  });

  it('unary: reply, request metadata, response headers and trailers', T, async () => {
    const md = new grpc.Metadata();
    md.set('x-req', 'hello-md');
    const r = await unary(client, { message: 'ping' }, { md });
    assert.equal(r.err, undefined);
    assert.deepEqual(r.reply, { message: 'ping', server: 'echo' });
    assert.deepEqual(r.headers?.get('x-echo-req'), ['hello-md']);
    assert.deepEqual(r.trailers?.get('x-unary-trailer'), ['done']);
  });

  it('server stream, client stream and bidi', T, async () => {
    const got: string[] = [];
    const ss = client.ServerStream({ message: 'tick', count: 50 }, new grpc.Metadata(), { deadline: Date.now() + 10_000 });
    for await (const r of ss) got.push((r as EchoReply).message);
    assert.deepEqual(got, Array.from({ length: 50 }, (_, i) => `tick#${i}`));

    const cs = await new Promise<EchoReply>((resolve, reject) => {
      const w = client.ClientStream(new grpc.Metadata(), { deadline: Date.now() + 10_000 }, (e, v) => (e ? reject(e) : resolve(v!)));
      for (const m of ['a', 'b', 'c', 'd']) w.write({ message: m });
      w.end();
    });
    assert.equal(cs.message, 'a,b,c,d');

    const bidi = client.Bidi(new grpc.Metadata(), { deadline: Date.now() + 10_000 });
    const replies: string[] = [];
    bidi.on('data', (r: EchoReply) => replies.push(r.message));
    // Ping-pong: each reply arrives before the next request is sent, so the stream is really interactive.
    for (const m of ['one', 'two', 'three']) {
      const n = replies.length;
      bidi.write({ message: m });
      for (let i = 0; i < 200 && replies.length === n; i++) await sleep(10);
    }
    bidi.end();
    await once(bidi, 'end');
    assert.deepEqual(replies, ['re:one', 're:two', 're:three']);
  });

  it('status codes, messages and trailing metadata are preserved', T, async () => {
    const r = await unary(client, { message: 'not-found' });
    assert.equal(r.err?.code, grpc.status.NOT_FOUND);
    assert.equal(r.err?.details, 'no such thing: widget 42');
    assert.deepEqual(r.err?.metadata.get('x-reason'), ['gone']);
    assert.deepEqual(r.err?.metadata.get('x-detail-bin'), [Buffer.from([0, 1, 2, 255])]);
    for (const code of [grpc.status.INVALID_ARGUMENT, grpc.status.PERMISSION_DENIED, grpc.status.FAILED_PRECONDITION, grpc.status.INTERNAL, grpc.status.UNAUTHENTICATED]) {
      const x = await unary(client, { fail_code: code });
      assert.deepEqual([x.err?.code, x.err?.details], [code, `failed with ${code}`]);
    }
    // An error while the client is still streaming its requests.
    const w = await new Promise<grpc.ServiceError | null>((resolve) => {
      const s = client.ClientStream(new grpc.Metadata(), { deadline: Date.now() + 10_000 }, (e) => resolve(e));
      s.write({ message: 'x' });
      s.write({ message: 'fail-early' });
    });
    assert.deepEqual([w?.code, w?.details], [grpc.status.FAILED_PRECONDITION, 'stopped early']);
  });

  it('the client deadline propagates: DEADLINE_EXCEEDED, and the server sees the deadline and the cancellation', T, async () => {
    const t0 = Date.now();
    const r = await unary(client, { message: 'sleep' }, { deadlineMs: 300 });
    const elapsed = Date.now() - t0;
    assert.equal(r.err?.code, grpc.status.DEADLINE_EXCEEDED, `got ${r.err?.code} ${r.err?.details}`);
    assert.ok(elapsed < 1800, `the call ended after ${elapsed} ms, not at its deadline`);
    const s = slow.at(-1);
    assert.ok(s, 'the server got the call');
    assert.ok(s.deadlineInMs > 0 && s.deadlineInMs <= 300, `the server's deadline was ${s.deadlineInMs} ms away`);
    const cancelledAfter = await Promise.race([s.cancelled, sleep(1700).then(() => -1)]);
    assert.ok(cancelledAfter >= 0, 'the server call was never cancelled');
  });

  it('the proxies enforce grpc-timeout themselves: DEADLINE_EXCEEDED, and the stuck upstream stream is cancelled', T, async () => {
    const session = http2.connect(`http://${env.pod('client').outboundIp}:${STUCK}`);
    session.on('error', () => {});
    try {
      const t0 = Date.now();
      // A client that states a deadline but does not enforce it: grpc-timeout 300 ms, no timer of its own.
      const st = session.request({ ':method': 'POST', ':path': '/trellis.test.v1.Echo/Unary', ':authority': `echo.grpc.svc.cluster.local:${STUCK}`, 'content-type': 'application/grpc', te: 'trailers', 'grpc-timeout': '300m' });
      st.on('error', () => {});
      const status = new Promise<string>((resolve) => {
        st.on('response', (h) => h['grpc-status'] !== undefined && resolve(String(h['grpc-status'])));
        st.on('trailers', (t: http2.IncomingHttpHeaders) => resolve(String(t['grpc-status'])));
        st.on('close', () => resolve('closed without a status'));
      });
      st.resume();
      st.end(Buffer.from([0, 0, 0, 0, 7, 0x0a, 5, ...Buffer.from('sleep')]));
      const got = await Promise.race([status, sleep(5000).then(() => 'no answer in 5 s')]);
      const elapsed = Date.now() - t0;
      assert.equal(got, String(grpc.status.DEADLINE_EXCEEDED));
      assert.ok(elapsed < 1800, `answered after ${elapsed} ms`);
      const rec = stuckStreams.at(-1);
      assert.ok(rec, 'the request reached the app');
      const ms = Number(/^(\d+)m$/.exec(rec.timeout)?.[1] ?? NaN);
      assert.ok(ms > 0 && ms <= 300, `the app saw grpc-timeout ${rec.timeout}`);
      for (let i = 0; i < 40 && rec.rst === -1; i++) await sleep(50);
      assert.notEqual(rec.rst, -1, 'the upstream stream was left open after the deadline');
      const f = await env.waitFlow('echo', (x) => x.Type === 'L7' && x.l7?.http?.url.includes(`:${STUCK}/`) === true);
      const c = await env.waitFlow('client', (x) => x.Type === 'L7' && x.l7?.http?.url.includes(`:${STUCK}/`) === true);
      // The proxy whose timer fired first records the timeout (UT) with DEADLINE_EXCEEDED; the server-side one may
      // instead see the client side cancel its stream (a downstream disconnect, DC).
      const timedOut = [c, f].find((x) => x.trellis?.response_flags === 'UT');
      assert.ok(timedOut, `no proxy recorded the upstream timeout: ${JSON.stringify([c.trellis, f.trellis])}`);
      assert.equal(timedOut.trellis?.grpc_status, grpc.status.DEADLINE_EXCEEDED);
      assert.equal(c.trellis?.grpc_status, grpc.status.DEADLINE_EXCEEDED, 'the client side answered DEADLINE_EXCEEDED');
      assert.match(f.trellis?.response_flags ?? '', /^(UT|DC)$/);
    } finally {
      session.close();
    }
  });

  it('a 100 MB server stream completes intact while both proxies keep their RSS bounded', { timeout: 60_000 }, async () => {
    // Warm up both proxies on the same path first, so the baseline includes what any stream needs.
    for await (const _ of client.ServerStream({ message: 'big', count: 32 })) void _;
    const names = ['client', 'echo'];
    const base = await Promise.all(names.map((n) => env.rss(n)));
    const peak = [...base];
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const now = await Promise.all(names.map((n) => env.rss(n)));
        now.forEach((v, i) => (peak[i] = Math.max(peak[i]!, v)));
        await sleep(100);
      }
    })();
    let n = 0;
    let bytes = 0;
    try {
      const s = client.ServerStream({ message: 'big', count: BIG_COUNT }, new grpc.Metadata(), { deadline: Date.now() + 55_000 });
      for await (const r of s) {
        const m = (r as EchoReply).message;
        if (m !== bigMessage(n)) assert.fail(`message ${n} differs (length ${m.length})`);
        n++;
        bytes += m.length;
      }
    } finally {
      sampling = false;
      await sampler;
    }
    assert.equal(n, BIG_COUNT);
    assert.equal(bytes, 100 * 1024 * 1024);
    names.forEach((name, i) => {
      const growth = peak[i]! - base[i]!;
      assert.ok(growth < RSS_BOUND, `${name} proxy RSS grew by ${(growth / 1048576).toFixed(1)} MB (base ${(base[i]! / 1048576).toFixed(1)} MB)`);
    });
  });

  it('both proxies record gRPC flows with their status, and the server proxy counts them', T, async () => {
    const isCall = (method: string) => (f: { Type: string; l7?: { http?: { url: string } } }) => f.Type === 'L7' && f.l7?.http?.url.endsWith(`/trellis.test.v1.Echo/${method}`) === true;
    const ok = await env.waitFlow('echo', (f) => isCall('Unary')(f) && f.trellis?.grpc_status === 0);
    assert.deepEqual([ok.verdict, ok.traffic_direction, ok.is_reply, ok.l7?.http?.protocol, ok.l7?.http?.code, ok.trellis?.transport], ['FORWARDED', 'INGRESS', true, 'HTTP/2', 200, 'mtls']);
    assert.equal(ok.destination.pod_name, 'client');
    const nf = await env.waitFlow('echo', (f) => isCall('Unary')(f) && f.trellis?.grpc_status === grpc.status.NOT_FOUND);
    assert.equal(nf.verdict, 'FORWARDED', 'an application error is not a proxy error');
    const out = await env.waitFlow('client', (f) => isCall('Unary')(f) && f.trellis?.grpc_status === grpc.status.NOT_FOUND);
    assert.deepEqual([out.traffic_direction, out.l7?.http?.protocol, out.source.pod_name], ['EGRESS', 'HTTP/2', 'echo']);
    // The client gave up at its deadline (grpc-js cancels the stream itself, a downstream disconnect, DC) unless a
    // proxy's own timer won the race (UT, DEADLINE_EXCEEDED).
    const dl = await env.waitFlow('client', (f) => isCall('Unary')(f) && /\b(DC|UT)\b/.test(f.trellis?.response_flags ?? ''));
    assert.ok(dl.trellis?.grpc_status === undefined || dl.trellis.grpc_status === Number(grpc.status.DEADLINE_EXCEEDED), JSON.stringify(dl.trellis));
    await env.waitFlow('echo', (f) => isCall('Unary')(f) && /\b(DC|UT)\b/.test(f.trellis?.response_flags ?? ''));
    const big = await env.waitFlow('echo', (f) => isCall('ServerStream')(f) && (f.trellis?.bytes_sent ?? 0) > 100 * 1024 * 1024);
    assert.equal(big.trellis?.grpc_status, 0);
    for (const m of ['ClientStream', 'Bidi']) await env.waitFlow('echo', isCall(m));

    const text = await env.metrics('echo');
    const count = (re: RegExp): number => [...text.matchAll(re)].reduce((a, m) => a + Number(m[1]), 0);
    const grpcOk = count(/^istio_requests_total\{[^}]*reporter="destination"[^}]*request_protocol="grpc"[^}]*grpc_response_status="0"[^}]*\} (\d+)/gm);
    assert.ok(grpcOk >= 5, `grpc OK requests counted: ${grpcOk}`);
    assert.ok(count(/^istio_requests_total\{[^}]*reporter="destination"[^}]*grpc_response_status="5"[^}]*\} (\d+)/gm) >= 1);
    assert.ok(count(/^istio_response_bytes_sum\{[^}]*reporter="destination"[^}]*request_protocol="grpc"[^}]*\} ([\d.e+]+)/gm) > 100 * 1024 * 1024);
  });
});
