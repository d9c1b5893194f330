// What the proxy benchmark's parts agree on: the upstreams it runs, a proxy under test as it runs, and the 1 KB
// payloads (the static file's name, the gRPC method and its message).

export type BenchProtocol = 'http1' | 'h2c' | 'grpc';

/** One upstream server: HTTP/1.1 (nginx, a 1 KB static file), h2c (the same nginx, HTTP/2 prior knowledge) or gRPC (grpc-js). */
export interface BenchUpstream {
  protocol: BenchProtocol;
  host: string;
  port: number;
  /** The request path: the 1 KB file for HTTP, the unary method for gRPC. */
  path: string;
}

/** A proxy under test (or none, for direct): where clients connect, and the processes whose CPU and RSS count. */
export interface RunningProxy {
  /** `http://127.0.0.1:PORT`: speaks the same protocol as the upstream it fronts (h2c prior knowledge for h2c and gRPC). */
  url: string;
  pids: number[];
  stop(): Promise<void>;
}

export const BODY_BYTES = 1024;
export const STATIC_PATH = '/1k.bin';
export const GRPC_PATH = '/bench.Echo/Unary';

/**
 * A 1 KB protobuf message `{ bytes data = 1; }`: tag 0x0a, varint length 1021 (0xfd 0x07), 1021 bytes. Request
 * and response are the same size; the benchmark treats them as opaque bytes.
 */
export function grpcMessage(fill: number): Buffer {
  const b = Buffer.alloc(BODY_BYTES, fill);
  b[0] = 0x0a;
  b[1] = 0xfd;
  b[2] = 0x07;
  return b;
}

/** The same message in a gRPC length-prefixed frame (uncompressed), as h2load posts it. */
export function grpcFrame(msg: Buffer): Buffer {
  const f = Buffer.alloc(5 + msg.length);
  f.writeUInt32BE(msg.length, 1);
  msg.copy(f, 5);
  return f;
}
