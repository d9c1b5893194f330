// HTTP/1.1 Upgrade (WebSocket and the like): the request is routed and filtered like any other, sent upstream
// with its Upgrade headers, and once the upstream answers 101 the two sockets are joined both ways with
// backpressure (pipe) and the listener's idle timeout. A non-101 answer is relayed and the connection closed.
import http, { STATUS_CODES, type IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { PolicyVerdict, RequestOutcome, UpstreamHost } from '../contracts.ts';
import type { Route } from '../../routing/model.ts';
import type { ConnState, EngineContext, ListenerState, RequestRecord } from './engine-context.ts';
import { addForwardingHeaders, applyHeaderOps, requestHeadersFrom, type HeaderRecord } from './headers.ts';
import type { FilterRequest, LocalReply } from './http-filter.ts';
import { LocalReplies } from './local-reply.ts';
import { denialReply, egressVerdict } from './builtin-filters.ts';
import type { Endpoint } from '../../policy/endpoint.ts';
import { pickCluster, rewritePath, type CompiledRoute } from './route-table.ts';

function rawHead(status: number, rawHeaders: readonly string[] | undefined, extra: string): string {
  let out = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\n`;
  if (rawHeaders) for (let i = 0; i + 1 < rawHeaders.length; i += 2) out += `${rawHeaders[i]}: ${rawHeaders[i + 1]}\r\n`;
  return `${out}${extra}\r\n`;
}

class UpgradeRecord implements RequestRecord {
  readonly startNs = process.hrtime.bigint();
  readonly protocol = 'HTTP/1.1' as const;
  readonly grpc = false;
  readonly grpcStatus = undefined;
  readonly peerReset = false;
  status = 0;
  flags = '-';
  bytesIn = 0;
  bytesOut = 0;
  routeName: string | undefined;
  clusterName: string | undefined;
  upstream: string | undefined;
  destination: Endpoint | undefined;
  denial: RequestRecord['denial'];
  route: Route | undefined;
  verdict: PolicyVerdict | undefined;
  private reported = false;
  constructor(
    readonly conn: ConnState,
    readonly method: string,
    readonly path: string,
    readonly authority: string,
  ) {}

  finish(ctx: EngineContext): void {
    if (this.reported) return;
    this.reported = true;
    ctx.complete(this);
  }
}

function replyRaw(ctx: EngineContext, rec: UpgradeRecord, socket: Duplex, r: LocalReply): void {
  rec.status = r.status;
  if (rec.flags === '-') rec.flags = r.reason;
  const body = r.body ? `${r.body}\n` : '';
  let extra = `content-type: text/plain\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n`;
  if (r.headers) for (const k in r.headers) extra += `${k}: ${r.headers[k]}\r\n`;
  if (socket.writable) socket.end(rawHead(r.status, undefined, extra) + body);
  rec.finish(ctx);
}

async function runFilters(req: FilterRequest, state: ListenerState): Promise<LocalReply | undefined> {
  for (const f of state.filters) {
    const r = await f.onRequest(req);
    if (r) return r;
  }
  return undefined;
}

export function handleUpgrade(ctx: EngineContext, conn: ConnState, req: IncomingMessage, socket: Duplex, head: Buffer): void {
  socket.on('error', () => socket.destroy());
  const authority = req.headers.host ?? '';
  const method = req.method ?? 'GET';
  const path = req.url ?? '/';
  const rec = new UpgradeRecord(conn, method, path, authority);
  const state = ctx.listenerState(conn.info.listener.name);
  const headers = requestHeadersFrom(req.headers);
  const cr = state?.table?.match({ method, path, authority, headers });
  if (!state || !cr) return replyRaw(ctx, rec, socket, LocalReplies.noRoute());
  rec.route = cr.route;
  rec.routeName = cr.route.name;
  const freq: FilterRequest = { method, path, authority, protocol: 'HTTP/1.1', grpc: false, headers, connection: conn.info, route: cr.route };
  runFilters(freq, state).then(
    (r) => {
      rec.verdict = freq.policyVerdict;
      if (r) {
        if (r.policy || r.reason === 'UAEX') rec.denial = { policy: r.policy, rule: r.rule, reason: r.reason };
        return replyRaw(ctx, rec, socket, r);
      }
      connectUpstream(ctx, conn, rec, cr, req, headers, socket, head);
    },
    (e: unknown) => replyRaw(ctx, rec, socket, LocalReplies.internal(`filter failed: ${(e as Error).message}`)),
  );
}

function connectUpstream(
  ctx: EngineContext,
  conn: ConnState,
  rec: UpgradeRecord,
  cr: CompiledRoute,
  req: IncomingMessage,
  headers: HeaderRecord,
  socket: Duplex,
  head: Buffer,
): void {
  const action = cr.route.action;
  if (action.type !== 'route') return replyRaw(ctx, rec, socket, { status: 404, body: 'upgrade needs a forwarding route', reason: 'NR' });
  const name = pickCluster(cr);
  rec.clusterName = name;
  const cluster = name === undefined ? undefined : ctx.clusters.get(name);
  if (!cluster) return replyRaw(ctx, rec, socket, LocalReplies.noCluster(name ?? '(none)'));
  const host: UpstreamHost | undefined = cluster.pick({});
  if (!host) return replyRaw(ctx, rec, socket, LocalReplies.noHealthyUpstream());
  if (conn.info.listener.direction === 'outbound') {
    // The source's egress, about the pod the upgrade goes to (as Exchange does per try).
    const e = egressVerdict(ctx.policy, conn.info, { method: rec.method, path: rec.path, authority: rec.authority, headers }, host);
    rec.verdict = e.verdict;
    rec.destination = e.destination;
    if (!e.verdict.allowed) {
      const r = denialReply(e.verdict);
      rec.denial = { policy: r.policy, rule: r.rule, reason: r.reason };
      return replyRaw(ctx, rec, socket, r);
    }
  }
  if (!cluster.tryBeginRequest(host)) return replyRaw(ctx, rec, socket, LocalReplies.overflow());
  rec.upstream = `${host.address}:${host.port}`;
  let outcome: RequestOutcome = 'success';
  let ended = false;
  const end = (): void => {
    if (ended) return;
    ended = true;
    cluster.endRequest(host, outcome);
    rec.finish(ctx);
  };
  addForwardingHeaders(headers, conn.info.remote.ip, conn.tls);
  applyHeaderOps(headers, cr.route.headers?.request);
  headers.host = action.rewrite?.authority ?? rec.authority;
  headers.connection = 'Upgrade';
  headers.upgrade = req.headers.upgrade;
  for (const k in headers) if (headers[k] === undefined) delete headers[k];
  const up = http.request({
    agent: ctx.pool.agentFor(cluster, host, conn.info.listener.sourceAddress),
    host: host.address,
    port: host.port,
    method: rec.method,
    path: rewritePath(cr, rec.path),
    headers: headers as http.OutgoingHttpHeaders,
    setHost: false,
  });
  const idle = conn.info.listener.limits.idleTimeoutMs;
  up.on('upgrade', (res: IncomingMessage, upSocket: Duplex, upHead: Buffer) => {
    rec.status = 101;
    socket.write(rawHead(101, res.rawHeaders, ''));
    if (upHead.length > 0) socket.write(upHead);
    if (head.length > 0) upSocket.write(head);
    upSocket.on('data', (c: Buffer) => (rec.bytesOut += c.length));
    socket.on('data', (c: Buffer) => (rec.bytesIn += c.length));
    socket.pipe(upSocket);
    upSocket.pipe(socket);
    const close = (): void => {
      socket.destroy();
      upSocket.destroy();
      end();
    };
    upSocket.on('error', close);
    upSocket.on('close', close);
    socket.on('close', close);
    (socket as Partial<{ setTimeout(ms: number, cb: () => void): void }>).setTimeout?.(idle, close);
    (upSocket as Partial<{ setTimeout(ms: number, cb: () => void): void }>).setTimeout?.(idle, close);
  });
  up.on('response', (res: IncomingMessage) => {
    rec.status = res.statusCode ?? 502;
    if (rec.status >= 500) outcome = rec.status >= 502 && rec.status <= 504 ? 'gateway-error' : '5xx';
    socket.write(rawHead(rec.status, res.rawHeaders.filter((_, i, a) => !/^(connection|keep-alive)$/i.test(a[i - (i % 2)]!)), 'connection: close\r\n'));
    res.pipe(socket);
    res.on('end', end);
    res.on('error', () => socket.destroy());
    socket.on('close', end);
  });
  up.on('error', (e: NodeJS.ErrnoException) => {
    if (rec.status !== 0) return socket.destroy();
    outcome = 'connect-failure';
    replyRaw(ctx, rec, socket, LocalReplies.connectFailure(e.code ?? e.message));
    cluster.endRequest(host, outcome);
    ended = true;
  });
  up.end();
}
