// gRPC message checks on upstream RESPONSES, through the HTTP engine with a real HTTP/2 backend: a message over the
// listener's size bound ends the call with RESOURCE_EXHAUSTED and cancels the upstream stream, a malformed or
// truncated message with INTERNAL; compressed messages pass when grpc-encoding says so; the proxy keeps serving.
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import { after, before, describe, it } from 'node:test';
import { cluster, h2request, route, startEngine, startH2Upstream, type EngineHarness, type Upstream } from './http-engine-harness.ts';

const LIMIT = 64 * 1024;

function grpcFrame(length: number, flag = 0, bodyBytes = length): Buffer {
  const b = Buffer.alloc(5 + bodyBytes);
  b[0] = flag;
  b.writeUInt32BE(length, 1);
  return b;
}

describe('HTTP engine, gRPC response message checks', () => {
  let grpcUp: Upstream;
  let h: EngineHarness;
  let bigClosed: Promise<number> | undefined;

  before(async () => {
    grpcUp = await startH2Upstream('grpc', (stream, headers) => {
      stream.resume();
      const method = String(headers[':path']).slice('/pkg.Svc/'.length);
      const head: http2.OutgoingHttpHeaders = { ':status': 200, 'content-type': 'application/grpc' };
      if (method === 'Encoded') head['grpc-encoding'] = 'gzip';
      stream.respond(head, { waitForTrailers: true });
      stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
      if (method === 'Big') {
        // One fine message, then a prefix announcing 5 MB, then the stream stays open: the proxy must cut it.
        bigClosed = new Promise((r) => stream.once('close', () => r(stream.rstCode)));
        stream.write(grpcFrame(10));
        stream.write(grpcFrame(5 * 1024 * 1024, 0, 16));
        return;
      }
      if (method === 'Truncated') return void stream.end(grpcFrame(100, 0, 10));
      if (method === 'BadFlag') return void stream.end(grpcFrame(3, 1));
      if (method === 'Encoded') return void stream.end(grpcFrame(3, 1));
      stream.end(grpcFrame(LIMIT));
    });
    h = await startEngine({
      routes: [route('grpc', { path: { prefix: '/pkg.Svc/' } }, 'grpc')],
      clusters: [cluster('grpc', [grpcUp.port], { http2: true, protocol: 'grpc' })],
      limits: { maxGrpcMessageBytes: LIMIT },
    });
  });
  after(async () => {
    await h.close();
    await grpcUp.close();
  });

  const call = async (s: http2.ClientHttp2Session, method: string) => {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${method}: no end within 5 s`)), 5000)));
    const r = await Promise.race([h2request(s, { ':method': 'POST', ':path': `/pkg.Svc/${method}`, 'content-type': 'application/grpc', te: 'trailers' }, grpcFrame(1)), timeout]).finally(() => clearTimeout(timer));
    return { ...r, grpcStatus: (r.trailers ?? r.headers)['grpc-status'], grpcMessage: (r.trailers ?? r.headers)['grpc-message'] };
  };

  it('ends a call whose backend sends a message over the limit with RESOURCE_EXHAUSTED, and cancels the backend stream', async () => {
    const s = http2.connect(h.url);
    try {
      const big = await call(s, 'Big');
      assert.equal(big.grpcStatus, '8');
      assert.match(String(big.grpcMessage), /larger than the limit/);
      // Only the message before the oversized one reached the client.
      assert.equal(big.body.length, 15);
      assert.equal(await bigClosed, http2.constants.NGHTTP2_CANCEL);
      const rec = h.records.find((r) => r.flags === 'UPE');
      assert.ok(rec, 'the request record carries Envoy’s UPE flag');
    } finally {
      s.close();
    }
  });

  it('ends truncated and badly flagged response messages with INTERNAL, passes declared compression, and keeps serving', async () => {
    const s = http2.connect(h.url);
    try {
      assert.equal((await call(s, 'Truncated')).grpcStatus, '13');
      assert.equal((await call(s, 'BadFlag')).grpcStatus, '13');
      assert.equal((await call(s, 'Encoded')).grpcStatus, '0');
      const fine = await call(s, 'Fine');
      assert.equal(fine.grpcStatus, '0');
      assert.equal(fine.body.length, LIMIT + 5, 'a message of exactly the limit passes whole');
    } finally {
      s.close();
    }
  });
});
