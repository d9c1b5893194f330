// A 100 MB gRPC server stream (1600 messages of 64 KiB) from a grpc-js server through the engine to a grpc-js client,
// all in this process: every byte arrives, and the process's RSS stays bounded while it flows (the engine holds no
// more than its flow-control windows, whatever the stream's length).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { EchoClient, type EchoReply, type EchoRequest } from '../support/echo-service.ts';
import { cluster, route, startEngine, type EngineHarness } from './http-engine-harness.ts';

const MESSAGES = 1600;
const SIZE = 64 * 1024;

describe('HTTP engine, a 100 MB gRPC server stream', () => {
  let h: EngineHarness;
  let server: grpc.Server;
  let client: grpc.Client;

  before(async () => {
    server = new grpc.Server();
    const payload = 'x'.repeat(SIZE - 64);
    server.addService(EchoClient.service, {
      Unary: (_c: unknown, cb: grpc.sendUnaryData<EchoReply>) => cb(null, { message: '', server: 'big' }),
      ClientStream: (_c: unknown, cb: grpc.sendUnaryData<EchoReply>) => cb(null, { message: '', server: 'big' }),
      Bidi: (call: grpc.ServerDuplexStream<EchoRequest, EchoReply>) => call.end(),
      ServerStream: (call: grpc.ServerWritableStream<EchoRequest, EchoReply>) => {
        let i = 0;
        // Writes with backpressure, as a well-behaved server streams a zone transfer.
        const pump = (): void => {
          while (i < (call.request.count ?? 0)) {
            const more = call.write({ message: payload, server: String(i++) });
            if (!more) return void call.once('drain', pump);
          }
          call.end();
        };
        pump();
      },
    });
    const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
    h = await startEngine({ routes: [route('grpc', { path: { prefix: '/' } }, 'grpc')], clusters: [cluster('grpc', [port], { http2: true, protocol: 'grpc' })] });
    client = new EchoClient(`127.0.0.1:${h.port}`, grpc.credentials.createInsecure(), { 'grpc.max_receive_message_length': 2 * SIZE });
  });
  after(async () => {
    client.close();
    await h.close();
    server.forceShutdown();
  });

  it('delivers every message with bounded RSS growth', { timeout: 60_000 }, async () => {
    const base = process.memoryUsage().rss;
    let peak = base;
    const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);
    let bytes = 0;
    let count = 0;
    try {
      const call = (client as unknown as { ServerStream(r: EchoRequest): grpc.ClientReadableStream<EchoReply> }).ServerStream({ message: 'zone', count: MESSAGES });
      for await (const m of call) {
        const r = m as EchoReply;
        assert.equal(r.server, String(count));
        count++;
        bytes += r.message.length;
      }
    } finally {
      clearInterval(sampler);
    }
    assert.equal(count, MESSAGES);
    assert.equal(bytes, MESSAGES * (SIZE - 64));
    const growthMb = (peak - base) / 1024 / 1024;
    assert.ok(growthMb < 64, `RSS grew by ${growthMb.toFixed(1)} MB while 100 MB flowed`);
    const f = h.flows.at(-1)!;
    assert.equal(f.trellis?.grpc_status, 0);
    assert.ok((f.trellis?.bytes_sent ?? 0) > MESSAGES * SIZE * 0.99);
  });
});
