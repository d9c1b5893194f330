// The gRPC upstream of the proxy benchmark, run as a child process (so its CPU is its own): one unary method,
// /bench.Echo/Unary, that answers every 1 KB request with a 1 KB message. Messages are opaque bytes (no protobuf
// decoding), as the proxies under test see them. It tells its parent the port over IPC and exits when the parent goes.
import * as grpc from '@grpc/grpc-js';
import { GRPC_PATH, grpcMessage } from './proxy-bench-types.ts';

const RESPONSE = grpcMessage(0x52);
const identity = (b: Buffer): Buffer => b;

const server = new grpc.Server({ 'grpc.max_concurrent_streams': 1000 });
server.addService(
  {
    Unary: { path: GRPC_PATH, requestStream: false, responseStream: false, requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity },
  },
  {
    Unary: (_call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => cb(null, RESPONSE),
  },
);
server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, port) => {
  if (err) {
    console.error(err.message);
    process.exit(1);
  }
  process.send?.({ port });
});
const stop = (): void => {
  server.forceShutdown();
  process.exit(0);
};
process.on('disconnect', stop);
process.on('SIGTERM', stop);
