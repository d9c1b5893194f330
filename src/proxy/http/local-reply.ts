// Replies the proxy makes itself: HTTP gets the status and a short text body; gRPC gets HTTP 200 with
// grpc-status and a percent-encoded grpc-message in one trailers-only HEADERS frame.
import type { LocalReply } from './http-filter.ts';
import type { Downstream } from './downstream.ts';
import type { HeaderRecord } from './headers.ts';
import { encodeGrpcMessage, grpcStatusForHttp } from './grpc.ts';

/** The gRPC status a local reply carries to a gRPC client. */
export function localReplyGrpcStatus(reply: LocalReply): number {
  return reply.grpcStatus ?? grpcStatusForHttp(reply.status);
}

/** Writes a local reply; `close` adds `connection: close` on HTTP/1.1 (draining, or a request whose body is refused). */
export function sendLocalReply(ds: Downstream, reply: LocalReply, grpc: boolean, close: boolean): void {
  if (ds.closed || ds.headersSent) return;
  const headers: HeaderRecord = {};
  if (reply.headers) for (const k in reply.headers) headers[k] = reply.headers[k];
  if (close && ds.protocol === 'HTTP/1.1') headers.connection = 'close';
  if (grpc) {
    headers['content-type'] = 'application/grpc';
    headers['grpc-status'] = String(localReplyGrpcStatus(reply));
    if (reply.body) headers['grpc-message'] = encodeGrpcMessage(reply.body);
    ds.respond(200, headers, true, false);
    return;
  }
  const body = reply.body ? `${reply.body}\n` : '';
  headers['content-type'] = 'text/plain';
  headers['content-length'] = String(Buffer.byteLength(body));
  ds.respond(reply.status, headers, false, false);
  ds.out.end(body);
}

/** Builders for the engine's own replies, with Envoy's texts and response flags. */
export const LocalReplies = {
  noRoute: (): LocalReply => ({ status: 404, body: 'route not found', reason: 'NR' }),
  noCluster: (name: string): LocalReply => ({ status: 503, body: `cluster not found: ${name}`, reason: 'NC' }),
  noHealthyUpstream: (): LocalReply => ({ status: 503, body: 'no healthy upstream', reason: 'UH' }),
  overflow: (): LocalReply => ({ status: 503, body: 'upstream overflow', reason: 'UO', headers: { 'x-envoy-overloaded': 'true' } }),
  connectFailure: (why: string): LocalReply => ({ status: 503, body: `upstream connect error or disconnect/reset before headers. reset reason: ${why}`, reason: 'UF' }),
  timeout: (): LocalReply => ({ status: 504, grpcStatus: 4, body: 'upstream request timeout', reason: 'UT' }),
  internal: (why: string): LocalReply => ({ status: 500, body: why, reason: 'FE' }),
};
