// Test support: real grpc-js Echo servers on loopback that say which backend answered, and clients for them.
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { fileURLToPath } from 'node:url';

export interface EchoRequest {
  message?: string;
  count?: number;
  fail_code?: number;
}
export interface EchoReply {
  message: string;
  server: string;
}

const def = protoLoader.loadSync(fileURLToPath(new URL('./echo.proto', import.meta.url)), { keepCase: true, defaults: true });
const pkg = grpc.loadPackageDefinition(def) as unknown as { trellis: { test: { v1: { Echo: grpc.ServiceClientConstructor } } } };
export const EchoClient = pkg.trellis.test.v1.Echo;

export interface EchoServer {
  name: string;
  port: number;
  address: string;
  calls: number;
  /** When set, unary calls fail with this status code. */
  failWith?: grpc.status;
  server: grpc.Server;
  close(): Promise<void>;
}

/** Starts an Echo server on host:0 (loopback). Every reply names the server. */
export async function startEchoServer(name: string, host = '127.0.0.1', server: grpc.Server = new grpc.Server(), port = 0): Promise<EchoServer> {
  const state: EchoServer = {
    name,
    port: 0,
    address: host,
    calls: 0,
    server,
    close: () => new Promise<void>((resolve) => server.tryShutdown(() => resolve())),
  };
  const fail = (req: EchoRequest): grpc.status | undefined => (req.fail_code ? req.fail_code : state.failWith);
  server.addService(EchoClient.service, {
    Unary: (call: grpc.ServerUnaryCall<EchoRequest, EchoReply>, cb: grpc.sendUnaryData<EchoReply>) => {
      state.calls++;
      const code = fail(call.request);
      if (code) return cb({ code, details: `${name} fails on purpose` });
      cb(null, { message: call.request.message ?? '', server: name });
    },
    ServerStream: (call: grpc.ServerWritableStream<EchoRequest, EchoReply>) => {
      state.calls++;
      for (let i = 0; i < (call.request.count ?? 1); i++) call.write({ message: `${call.request.message ?? ''}#${i}`, server: name });
      call.end();
    },
    ClientStream: (call: grpc.ServerReadableStream<EchoRequest, EchoReply>, cb: grpc.sendUnaryData<EchoReply>) => {
      state.calls++;
      const parts: string[] = [];
      call.on('data', (r: EchoRequest) => parts.push(r.message ?? ''));
      call.on('end', () => cb(null, { message: parts.join(','), server: name }));
    },
    Bidi: (call: grpc.ServerDuplexStream<EchoRequest, EchoReply>) => {
      state.calls++;
      call.on('data', (r: EchoRequest) => call.write({ message: r.message ?? '', server: name }));
      call.on('end', () => call.end());
    },
  });
  state.port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`${host}:${port}`, grpc.ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port))),
  );
  return state;
}

export function unary(client: grpc.Client, req: EchoRequest, metadata = new grpc.Metadata(), deadlineMs = 5000): Promise<EchoReply> {
  return new Promise((resolve, reject) => {
    (client as unknown as { Unary: (r: EchoRequest, m: grpc.Metadata, o: grpc.CallOptions, cb: (e: grpc.ServiceError | null, v?: EchoReply) => void) => void }).Unary(
      req,
      metadata,
      { deadline: Date.now() + deadlineMs },
      (e, v) => (e ? reject(e) : resolve(v as EchoReply)),
    );
  });
}
