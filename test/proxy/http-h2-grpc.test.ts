// The HTTP engine over HTTP/2 and gRPC, with real clients and servers on loopback: multiplexing, HTTP/2 to
// HTTP/1.1 translation, grpc-js through the engine for all four call kinds with status codes, custom trailers and
// trailers-only replies preserved, grpc-timeout deadlines shortened by the route timeout, and gRPC local replies.
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { EchoClient, type EchoReply, type EchoRequest } from '../support/echo-service.ts';
import { cluster, h2request, pathPolicy, route, startEngine, startH2Upstream, startHttpUpstream, type EngineHarness } from './http-engine-harness.ts';

type Echo = grpc.Client & {
  Unary(r: EchoRequest, m: grpc.Metadata, o: grpc.CallOptions, cb: (e: grpc.ServiceError | null, v?: EchoReply) => void): grpc.ClientUnaryCall;
  ServerStream(r: EchoRequest, m?: grpc.Metadata, o?: grpc.CallOptions): grpc.ClientReadableStream<EchoReply>;
  ClientStream(m: grpc.Metadata, o: grpc.CallOptions, cb: (e: grpc.ServiceError | null, v?: EchoReply) => void): grpc.ClientWritableStream<EchoRequest>;
  Bidi(m?: grpc.Metadata, o?: grpc.CallOptions): grpc.ClientDuplexStream<EchoRequest, EchoReply>;
};

interface GrpcBackend {
  port: number;
  deadlines: number[];
  server: grpc.Server;
}

/** An Echo server that also sends custom initial metadata and trailers, fails on demand and records deadlines. */
async function startGrpcBackend(): Promise<GrpcBackend> {
  const server = new grpc.Server();
  const state: GrpcBackend = { port: 0, deadlines: [], server };
  const trailers = (): grpc.Metadata => {
    const m = new grpc.Metadata();
    m.set('x-trailer', 'kept');
    return m;
  };
  server.addService(EchoClient.service, {
    Unary: (call: grpc.ServerUnaryCall<EchoRequest, EchoReply>, cb: grpc.sendUnaryData<EchoReply>) => {
      const d = call.getDeadline();
      state.deadlines.push(d instanceof Date ? d.getTime() - Date.now() : Number(d) - Date.now());
      if (call.request.fail_code) return cb({ code: call.request.fail_code, details: `failed: ${call.request.message ?? ''}`, metadata: trailers() });
      const initial = new grpc.Metadata();
      initial.set('x-initial', 'yes');
      call.sendMetadata(initial);
      const answer = (): void => cb(null, { message: call.request.message ?? '', server: 'g' }, trailers());
      if (call.request.message === 'slow') setTimeout(answer, 600);
      else answer();
    },
    ServerStream: (call: grpc.ServerWritableStream<EchoRequest, EchoReply>) => {
      for (let i = 0; i < (call.request.count ?? 1); i++) call.write({ message: `${call.request.message ?? ''}#${i}`, server: 'g' });
      call.end(trailers());
    },
    ClientStream: (call: grpc.ServerReadableStream<EchoRequest, EchoReply>, cb: grpc.sendUnaryData<EchoReply>) => {
      const parts: string[] = [];
      call.on('data', (r: EchoRequest) => parts.push(r.message ?? ''));
      call.on('end', () => cb(null, { message: parts.join(','), server: 'g' }, trailers()));
    },
    Bidi: (call: grpc.ServerDuplexStream<EchoRequest, EchoReply>) => {
      call.on('data', (r: EchoRequest) => call.write({ message: r.message ?? '', server: 'g' }));
      call.on('end', () => call.end(trailers()));
    },
  });
  state.port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  return state;
}

function unaryCall(c: Echo, req: EchoRequest, deadlineMs = 5000): Promise<{ reply?: EchoReply; error?: grpc.ServiceError; initial?: grpc.Metadata; status?: grpc.StatusObject }> {
  return new Promise((resolve) => {
    let initial: grpc.Metadata | undefined;
    let status: grpc.StatusObject | undefined;
    let result: { reply?: EchoReply; error?: grpc.ServiceError } | undefined;
    const done = (): void => {
      if (result && status) resolve({ ...result, initial, status });
    };
    const call = c.Unary(req, new grpc.Metadata(), { deadline: Date.now() + deadlineMs }, (e, v) => {
      result = e ? { error: e } : { reply: v };
      done();
    });
    call.on('metadata', (m: grpc.Metadata) => (initial = m));
    call.on('status', (s: grpc.StatusObject) => {
      status = s;
      done();
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

/** A gRPC message frame of EchoRequest{message, fail_code} encoded by hand. */
function frame(message: string, failCode = 0): Buffer {
  const m = Buffer.from(message);
  const body = Buffer.concat([Buffer.from([0x0a, m.length]), m, failCode ? Buffer.from([0x18, failCode]) : Buffer.alloc(0)]);
  const head = Buffer.alloc(5);
  head.writeUInt32BE(body.length, 1);
  return Buffer.concat([head, body]);
}

describe('HTTP engine, HTTP/2 and gRPC', () => {
  let h: EngineHarness;
  let g: GrpcBackend;
  let client: Echo;
  let up2: Awaited<ReturnType<typeof startH2Upstream>>;
  let up1: Awaited<ReturnType<typeof startHttpUpstream>>;

  before(async () => {
    g = await startGrpcBackend();
    up2 = await startH2Upstream('h2', (stream, headers) => {
      if (String(headers[':path']).startsWith('/early')) {
        // Answers in full, trailers included, without waiting for the request body to end.
        stream.respond({ ':status': 200 }, { waitForTrailers: true });
        stream.on('wantTrailers', () => stream.sendTrailers({ 'x-t': 'early' }));
        stream.end('answer');
        return;
      }
      const delay = Number(new URL(String(headers[':path']), 'http://x').searchParams.get('delay') ?? 0);
      setTimeout(() => {
        if (stream.closed) return;
        stream.respond({ ':status': 200, 'x-path': String(headers[':path']) });
        stream.end(String(headers[':path']));
      }, delay);
    });
    up1 = await startHttpUpstream('h1');
    h = await startEngine(
      {
        routes: [
          route('short', { path: { prefix: '/trellis.test.v1.Echo/' }, headers: [{ name: 'x-route', match: { exact: 'short' } }] }, { type: 'route', clusters: [{ cluster: 'grpc', weight: 1 }], timeoutMs: 250 }),
          route('grpc', { path: { prefix: '/trellis.test.v1.Echo/' } }, 'grpc'),
          route('h1', { path: { prefix: '/to-h1/' } }, 'h1'),
          route('h2', { path: { prefix: '/' } }, 'h2'),
        ],
        clusters: [cluster('grpc', [g.port], { http2: true, protocol: 'grpc' }), cluster('h2', [up2.port], { http2: true }), cluster('h1', [up1.port])],
        filters: [{ name: 'trellis.policy' }],
      },
      pathPolicy({ '/trellis.test.v1.Echo/Bidi': { kind: 'CiliumNetworkPolicy', namespace: 'dns', name: 'no-bidi' } }),
    );
    client = new EchoClient(`127.0.0.1:${h.port}`, grpc.credentials.createInsecure()) as unknown as Echo;
  });
  after(async () => {
    client.close();
    await h.close();
    await up2.close();
    await up1.close();
    g.server.forceShutdown();
  });

  it('multiplexes 100 concurrent streams on one downstream session', async () => {
    const s = http2.connect(h.url);
    try {
      const replies = await Promise.all(Array.from({ length: 100 }, (_, i) => h2request(s, { ':path': `/m/${i}?delay=${i % 7}` })));
      replies.forEach((r, i) => {
        assert.equal(r.status, 200);
        assert.equal(r.body, `/m/${i}?delay=${i % 7}`);
      });
      assert.equal(up2.requests.length >= 100, true);
    } finally {
      s.close();
    }
  });

  it('delivers a complete response with trailers while the client is still sending, then stops the request', async () => {
    const s = http2.connect(h.url);
    try {
      const st = s.request({ ':method': 'POST', ':path': '/early', te: 'trailers' });
      st.write('still sending');
      const chunks: Buffer[] = [];
      st.on('data', (c: Buffer) => chunks.push(c));
      const trailers = await new Promise<http2.IncomingHttpHeaders>((resolve, reject) => {
        st.on('trailers', resolve);
        st.on('error', reject);
      });
      assert.equal(trailers['x-t'], 'early');
      await new Promise((r) => st.on('close', r));
      assert.equal(Buffer.concat(chunks).toString(), 'answer');
      assert.equal(st.rstCode, http2.constants.NGHTTP2_NO_ERROR);
    } finally {
      s.close();
    }
  });

  it('translates HTTP/2 requests to an HTTP/1.1 upstream', async () => {
    const s = http2.connect(h.url);
    try {
      const r = await h2request(s, { ':path': '/to-h1/x', ':authority': 'shop.example' }, 'body!');
      assert.equal(r.status, 200);
      const seen = JSON.parse(r.body) as { method: string; headers: Record<string, string>; body: number };
      assert.equal(seen.method, 'POST');
      assert.equal(seen.headers.host, 'shop.example');
      assert.equal(seen.body, 5);
    } finally {
      s.close();
    }
  });

  it('carries unary calls with initial metadata, custom trailers and status codes', async () => {
    const ok = await unaryCall(client, { message: 'hi' });
    assert.equal(ok.reply?.message, 'hi');
    assert.deepEqual(ok.initial?.get('x-initial'), ['yes']);
    assert.deepEqual(ok.status?.metadata.get('x-trailer'), ['kept']);
    const bad = await unaryCall(client, { message: 'x', fail_code: grpc.status.NOT_FOUND });
    assert.equal(bad.error?.code, grpc.status.NOT_FOUND);
    assert.equal(bad.error?.details, 'failed: x');
    assert.deepEqual(bad.status?.metadata.get('x-trailer'), ['kept']);
    const f = h.flows.findLast((x) => x.trellis?.grpc_status === grpc.status.NOT_FOUND);
    assert.ok(f, 'the flow carries the gRPC status');
    assert.equal(f.l7?.http?.code, 200);
  });

  it('forwards a trailers-only error response as trailers-only', async () => {
    const s = http2.connect(h.url);
    try {
      const r = await h2request(s, { ':method': 'POST', ':path': '/trellis.test.v1.Echo/Unary', 'content-type': 'application/grpc', te: 'trailers' }, frame('t', 9));
      assert.equal(r.status, 200);
      assert.equal(r.headers['grpc-status'], '9');
      assert.equal(r.trailers, undefined);
      assert.equal(r.body, '');
    } finally {
      s.close();
    }
  });

  it('carries server-streaming, client-streaming and bidi calls', async () => {
    const got: string[] = [];
    const ss = client.ServerStream({ message: 'm', count: 50 });
    const ssStatus = new Promise<grpc.StatusObject>((r) => ss.on('status', r));
    for await (const m of ss) got.push((m as EchoReply).message);
    assert.equal(got.length, 50);
    assert.equal(got[49], 'm#49');
    assert.deepEqual((await ssStatus).metadata.get('x-trailer'), ['kept']);

    const cs = await new Promise<EchoReply>((resolve, reject) => {
      const call = client.ClientStream(new grpc.Metadata(), { deadline: Date.now() + 5000 }, (e, v) => (e ? reject(e) : resolve(v!)));
      for (let i = 0; i < 20; i++) call.write({ message: String(i) });
      call.end();
    });
    assert.equal(cs.message, Array.from({ length: 20 }, (_, i) => String(i)).join(','));
  });

  it('denies a method by policy with PERMISSION_DENIED naming the policy', async () => {
    const call = client.Bidi();
    const err = await new Promise<grpc.ServiceError>((resolve) => {
      call.on('error', resolve);
      call.on('data', () => {});
      call.write({ message: 'x' });
    });
    assert.equal(err.code, grpc.status.PERMISSION_DENIED);
    assert.equal(err.details, 'denied by CiliumNetworkPolicy dns/no-bidi');
    await until(() => h.flows.some((x) => x.l7?.http?.url.endsWith('/Bidi')));
    call.end();
    const f = h.flows.findLast((x) => x.l7?.http?.url.endsWith('/Bidi'))!;
    assert.equal(f.verdict, 'DROPPED');
    assert.equal(f.trellis?.grpc_status, 7);
  });

  it('carries bidi streams when allowed', async () => {
    const h2 = await startEngine({ routes: [route('grpc', { path: { prefix: '/' } }, 'grpc')], clusters: [cluster('grpc', [g.port], { http2: true })] });
    const c = new EchoClient(`127.0.0.1:${h2.port}`, grpc.credentials.createInsecure()) as unknown as Echo;
    try {
      const call = c.Bidi();
      const replies: string[] = [];
      const done = new Promise<grpc.StatusObject>((r) => call.on('status', r));
      call.on('data', (m: EchoReply) => {
        replies.push(m.message);
        if (replies.length < 10) call.write({ message: `b${replies.length}` });
        else call.end();
      });
      call.write({ message: 'b0' });
      const st = await done;
      assert.equal(st.code, grpc.status.OK);
      assert.deepEqual(st.metadata.get('x-trailer'), ['kept']);
      assert.equal(replies.length, 10);
      assert.equal(replies[9], 'b9');
    } finally {
      c.close();
      await h2.close();
    }
  });

  it('propagates the shorter deadline upstream: the route timeout caps grpc-timeout', async () => {
    g.deadlines.length = 0;
    const capped = new grpc.Metadata();
    capped.set('x-route', 'short');
    await new Promise<void>((resolve, reject) =>
      client.Unary({ message: 'd' }, capped, { deadline: Date.now() + 5000 }, (e) => (e ? reject(e) : resolve())),
    );
    await unaryCall(client, { message: 'd2' }, 1500);
    const [short, own] = g.deadlines;
    assert.ok(short! > 100 && short! <= 260, `server saw ${short} ms under the 250 ms route timeout`);
    assert.ok(own! > 1000 && own! <= 1500, `server saw ${own} ms from the client's 1500 ms deadline`);
  });

  it('answers DEADLINE_EXCEEDED when the route timeout passes', async () => {
    const m = new grpc.Metadata();
    m.set('x-route', 'short');
    const err = await new Promise<grpc.ServiceError>((resolve) => client.Unary({ message: 'slow' }, m, { deadline: Date.now() + 5000 }, (e) => resolve(e!)));
    assert.equal(err.code, grpc.status.DEADLINE_EXCEEDED);
  });

  it('answers UNIMPLEMENTED for a gRPC call without a route and UNAVAILABLE without an upstream', async () => {
    const h2 = await startEngine({ routes: [route('only', { path: { exact: '/trellis.test.v1.Echo/Unary' } }, 'down')], clusters: [cluster('down', [1], { http2: true })] });
    const c = new EchoClient(`127.0.0.1:${h2.port}`, grpc.credentials.createInsecure()) as unknown as Echo;
    try {
      const none = await new Promise<grpc.ServiceError>((resolve) => {
        const call = c.ServerStream({ message: 'x' });
        call.on('error', resolve);
        call.on('data', () => {});
      });
      assert.equal(none.code, grpc.status.UNIMPLEMENTED);
      const down = await unaryCall(c, { message: 'x' });
      assert.equal(down.error?.code, grpc.status.UNAVAILABLE);
      assert.match(down.error?.details ?? '', /upstream connect error/);
    } finally {
      c.close();
      await h2.close();
    }
  });
});
