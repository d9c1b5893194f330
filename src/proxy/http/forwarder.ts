// One request through the proxy: route, filters, then tries against upstream hosts with retries and timeouts,
// streaming both bodies with backpressure, trailers and gRPC statuses preserved, and one record when it is over.
import type { PolicyVerdict, RequestOutcome, UpstreamCluster, UpstreamHost } from '../contracts.ts';
import type { Endpoint } from '../../policy/endpoint.ts';
import type { RetryPolicy, Route } from '../../routing/model.ts';
import { H2Downstream, type Downstream } from './downstream.ts';
import type { ConnState, EngineContext, ListenerState, RequestRecord } from './engine-context.ts';
import { GrpcFrameChecker, GrpcStatus, formatGrpcTimeout, grpcStatusOf, parseGrpcTimeout } from './grpc.ts';
import { addForwardingHeaders, applyHeaderOps, responseHeadersFrom, type HeaderRecord } from './headers.ts';
import type { FilterRequest, LocalReply } from './http-filter.ts';
import { LocalReplies, localReplyGrpcStatus, sendLocalReply } from './local-reply.ts';
import { startMirror } from './mirror.ts';
import { requestHash } from './request-hash.ts';
import { RequestBody } from './request-body.ts';
import { backoffMs, retriableFailure, retriableResponse } from './retry.ts';
import { denialReply, egressVerdict } from './builtin-filters.ts';
import { pickCluster, rewritePath, type CompiledRoute } from './route-table.ts';
import type { Failure } from './upstream-pool.ts';
import { H1Attempt, H2Attempt, type Attempt, type AttemptOwner } from './upstream-request.ts';

function outcomeOf(status: number, grpcStatus?: number): RequestOutcome {
  // As Envoy's router: a gRPC status counts as the HTTP status it maps to (UNAVAILABLE 503, DEADLINE_EXCEEDED 504,
  // UNKNOWN, INTERNAL and DATA_LOSS 500, UNIMPLEMENTED 501), so a backend failing its calls is an outlier too.
  if (grpcStatus !== undefined && status === 200) {
    if (grpcStatus === 14 || grpcStatus === 4) return 'gateway-error';
    return grpcStatus === 2 || grpcStatus === 12 || grpcStatus === 13 || grpcStatus === 15 ? '5xx' : 'success';
  }
  if (status === 502 || status === 503 || status === 504) return 'gateway-error';
  return status >= 500 ? '5xx' : 'success';
}

function isPromise(v: unknown): v is Promise<void | LocalReply> {
  return typeof (v as Promise<unknown> | undefined)?.then === 'function';
}

/** How long the start of a gRPC response may be held back before it is sent on (see Exchange.held). */
const HOLD_RESPONSE_MS = 100;
/** How many response bytes may be held back with it. */
const HOLD_RESPONSE_BYTES = 64 * 1024;

export class Exchange implements AttemptOwner, RequestRecord {
  readonly startNs = process.hrtime.bigint();
  readonly req: FilterRequest;
  status = 0;
  grpcStatus: number | undefined;
  flags = '-';
  bytesOut = 0;
  routeName: string | undefined;
  clusterName: string | undefined;
  upstream: string | undefined;
  destination: Endpoint | undefined;
  denial: RequestRecord['denial'];
  peerReset = false;
  private state: ListenerState | undefined;
  private compiled: CompiledRoute | undefined;
  private cluster: UpstreamCluster | undefined;
  private retry: RetryPolicy | undefined;
  private host: UpstreamHost | undefined;
  private outcome: RequestOutcome = 'success';
  private tried: Set<UpstreamHost> | undefined;
  private attempt: Attempt | undefined;
  private tries = 0;
  private retryHeld = false;
  private body: RequestBody | undefined;
  private upPath = '';
  private h2Upstream = false;
  private hash: number | undefined;
  private deadline = 0;
  private timer: NodeJS.Timeout | undefined;
  private tryTimer: NodeJS.Timeout | undefined;
  private filterIndex = 0;
  private done = false;
  private complete = false;
  /**
   * The start of a gRPC response on a route that retries: its headers and first messages are held back until the
   * trailers (at most HOLD_RESPONSE_MS and HOLD_RESPONSE_BYTES). A unary call's headers, message and trailers
   * normally arrive together, and while nothing has gone downstream an upstream reset (a backend killed
   * mid-response) can still be retried on another host, as the route's retry policy allows for resets.
   */
  private held: { status: number; headers: Record<string, string | string[] | undefined>; trailers: boolean; timer: NodeJS.Timeout; chunks: Buffer[]; bytes: number } | undefined;
  /** gRPC: the response's messages, checked against the listener's message size bound and its grpc-encoding. */
  private responseFrames: GrpcFrameChecker | undefined;

  constructor(
    private readonly ctx: EngineContext,
    readonly conn: ConnState,
    private readonly ds: Downstream,
    readonly method: string,
    readonly path: string,
    readonly authority: string,
    headers: HeaderRecord,
    private readonly hasBody: boolean,
    readonly grpc: boolean,
  ) {
    this.req = { method, path, authority, protocol: ds.protocol, grpc, headers, connection: conn.info, route: undefined };
    ds.onClose(this.onClose);
  }

  get protocol(): 'HTTP/1.1' | 'HTTP/2' {
    return this.ds.protocol;
  }
  get bytesIn(): number {
    return this.body?.bytes ?? 0;
  }
  get verdict(): PolicyVerdict | undefined {
    return this.req.policyVerdict;
  }
  get route(): Route | undefined {
    return this.compiled?.route;
  }

  /** Routes the request and runs the filter chain, then forwards (or replies locally). */
  run(): void {
    const state = this.ctx.listenerState(this.conn.info.listener.name);
    if (!state) return this.reply(LocalReplies.noRoute());
    this.state = state;
    const cr = state.table?.match(this.req);
    this.compiled = cr;
    if (cr) {
      (this.req as { route: Route | undefined }).route = cr.route;
      this.routeName = cr.route.name;
    }
    this.runFilters();
  }

  private runFilters(): void {
    const filters = this.state!.filters;
    while (this.filterIndex < filters.length) {
      const f = filters[this.filterIndex++]!;
      let r: void | LocalReply | Promise<void | LocalReply>;
      try {
        r = f.onRequest(this.req);
      } catch (e) {
        return this.reply(LocalReplies.internal(`filter ${f.name} failed: ${(e as Error).message}`));
      }
      if (r === undefined) continue;
      if (isPromise(r)) {
        r.then(this.onFilterDone, (e: unknown) => this.reply(LocalReplies.internal(`filter ${f.name} failed: ${(e as Error).message}`)));
        return;
      }
      return this.reply(r);
    }
    this.forward();
  }

  private readonly onFilterDone = (r: void | LocalReply): void => {
    if (this.done) return;
    if (r) this.reply(r);
    else this.runFilters();
  };

  private forward(): void {
    const cr = this.compiled;
    if (!cr) return this.reply(LocalReplies.noRoute());
    const action = cr.route.action;
    if (action.type === 'redirect') return this.reply(redirectReply(action, cr, this.authority, this.path, this.conn.tls));
    if (action.type === 'direct-response') return this.reply({ status: action.status, body: action.body ?? '', reason: 'DR' });
    const name = pickCluster(cr);
    this.clusterName = name;
    const cluster = name === undefined ? undefined : this.ctx.clusters.get(name);
    if (!cluster) return this.reply(LocalReplies.noCluster(name ?? '(none)'));
    this.cluster = cluster;
    const headers = this.req.headers;
    // The shorter of the route timeout and the client's grpc-timeout bounds the whole exchange.
    let timeout = action.timeoutMs && action.timeoutMs > 0 ? action.timeoutMs : undefined;
    if (this.grpc) {
      const gt = parseGrpcTimeout(headers['grpc-timeout']);
      if (gt !== undefined && (timeout === undefined || gt < timeout)) timeout = gt;
    }
    if (timeout !== undefined) {
      this.deadline = performance.now() + timeout;
      this.timer = setTimeout(this.onTimeout, timeout);
    }
    this.upPath = rewritePath(cr, this.path);
    const authority = action.rewrite?.authority ?? this.authority;
    addForwardingHeaders(headers, this.conn.info.remote.ip, this.conn.tls);
    if (cr.route.headers?.request) applyHeaderOps(headers, cr.route.headers.request);
    else if (action.headersToAdd) for (const k in action.headersToAdd) headers[k] = action.headersToAdd[k];
    delete headers.expect;
    this.h2Upstream = cluster.spec.http2 || this.grpc;
    if (this.h2Upstream) {
      headers[':method'] = this.method;
      headers[':path'] = this.upPath;
      headers[':authority'] = authority;
      headers[':scheme'] = this.conn.tls ? 'https' : 'http';
    } else {
      headers.host = authority;
      for (const k in headers) if (headers[k] === undefined) delete headers[k];
    }
    this.hash = requestHash(action.hashPolicy, headers, this.path, this.conn.info.remote.ip);
    this.retry = action.retry && action.retry.attempts > 0 ? action.retry : undefined;
    const limits = this.state!.listener.limits;
    if (this.hasBody) {
      this.ds.sendContinue();
      const checker = this.grpc ? new GrpcFrameChecker(limits.maxGrpcMessageBytes, grpcEncoded(headers['grpc-encoding'])) : undefined;
      this.body = new RequestBody(this.ds.body, this.retry || action.mirror ? limits.maxBufferBytes : 0, checker, this);
    }
    if (action.mirror) startMirror(this.ctx, action.mirror, headers, this.method, this.upPath, authority, this.body, this.conn.info.listener.sourceAddress);
    this.startAttempt();
  }

  private startAttempt(): void {
    this.tryTimer = undefined;
    if (this.done) return;
    const cluster = this.cluster!;
    let host = cluster.pick({ hash: this.hash, exclude: this.tried });
    if (!host && this.tried) host = cluster.pick({ hash: this.hash });
    if (!host) return this.reply(LocalReplies.noHealthyUpstream());
    if (this.conn.info.listener.direction === 'outbound') {
      // The source's egress, about the pod this try goes to (the policy filter leaves outbound requests to this).
      const e = egressVerdict(this.ctx.policy, this.conn.info, this.req, host);
      this.req.policyVerdict = e.verdict;
      this.destination = e.destination;
      if (!e.verdict.allowed) return this.reply(denialReply(e.verdict));
    }
    if (!cluster.tryBeginRequest(host)) return this.reply(LocalReplies.overflow());
    this.host = host;
    this.outcome = 'success';
    this.upstream = `${host.address}:${host.port}`;
    this.tries++;
    const headers = this.req.headers;
    if (this.deadline > 0 && this.grpc) headers['grpc-timeout'] = formatGrpcTimeout(this.deadline - performance.now());
    const perTry = this.retry?.perTryTimeoutMs;
    if (perTry && perTry > 0) this.tryTimer = setTimeout(this.onTryTimeout, perTry);
    const local = this.conn.info.listener.sourceAddress;
    const a = this.h2Upstream
      ? new H2Attempt(this, this.ctx.pool, cluster, host, local, headers, !this.hasBody)
      : new H1Attempt(this, this.ctx.pool.agentFor(cluster, host, local), host, this.method, this.upPath, headers, this.hasBody);
    this.attempt = a;
    a.start();
  }

  onAttemptReady(a: Attempt): void {
    if (a === this.attempt && this.body) this.body.attach(a.sink!);
  }

  onAttemptHeaders(a: Attempt, status: number, upHeaders: Readonly<Record<string, string | string[] | number | undefined>>, endStream: boolean): void {
    if (a !== this.attempt || this.done) return;
    clearTimeout(this.tryTimer);
    const gs = grpcStatusOf(upHeaders);
    if (this.retry && retriableResponse(this.retry, status, gs)) {
      if (this.canRetry()) return this.retryAfter(outcomeOf(status, this.grpc ? gs : undefined));
      // Retriable, but the tries (or the budget) ran out: Envoy's URX.
      if (this.flags === '-') this.flags = 'URX';
    }
    this.status = status;
    this.outcome = outcomeOf(status, this.grpc ? gs : undefined);
    const headers = responseHeadersFrom(upHeaders);
    const ops = this.compiled!.route.headers?.response;
    if (ops) applyHeaderOps(headers, ops);
    const rf = this.state!.responseFilters;
    for (let i = 0; i < rf.length; i++) rf[i]!.onResponse!(this.req, { status, headers });
    if (this.ctx.draining && this.ds.protocol === 'HTTP/1.1') headers.connection = 'close';
    if (endStream) {
      this.grpcStatus = gs;
      this.complete = true;
      this.ds.respond(status, headers, true, false);
      return;
    }
    const trailers = this.ds.protocol === 'HTTP/2' && (this.grpc || this.req.headers.te === 'trailers');
    if (this.grpc && this.retry !== undefined) {
      this.held = { status, headers, trailers, timer: setTimeout(this.flushHeld, HOLD_RESPONSE_MS), chunks: [], bytes: 0 };
    } else this.ds.respond(status, headers, false, trailers);
    if (this.grpc) this.responseFrames = new GrpcFrameChecker(this.state!.listener.limits.maxGrpcMessageBytes, grpcEncoded(upHeaders['grpc-encoding'] as string | string[] | undefined));
    const src = a.body!;
    src.on('data', this.onResponseData);
  }

  private readonly flushHeld = (): void => {
    const h = this.held;
    if (!h) return;
    this.held = undefined;
    clearTimeout(h.timer);
    if (this.done) return;
    this.ds.respond(h.status, h.headers, false, h.trailers);
    for (const c of h.chunks) this.writeDown(c);
  };

  private readonly onResponseData = (chunk: Buffer): void => {
    if (this.responseFrames) {
      const bad = this.responseFrames.push(chunk);
      if (bad !== 0) return this.onResponseFrameError(bad);
    }
    const held = this.held;
    if (held) {
      if (held.bytes + chunk.length <= HOLD_RESPONSE_BYTES) {
        held.chunks.push(chunk);
        held.bytes += chunk.length;
        return;
      }
      this.flushHeld();
    }
    this.writeDown(chunk);
  };

  private writeDown(chunk: Buffer): void {
    this.bytesOut += chunk.length;
    const out = this.ds.out;
    if (!out.write(chunk)) {
      this.attempt?.body?.pause();
      out.once('drain', this.onDownstreamDrain);
    }
  }

  private readonly onDownstreamDrain = (): void => {
    if (!this.done) this.attempt?.body?.resume();
  };

  onAttemptEnd(a: Attempt): void {
    if (a !== this.attempt || this.done) return;
    const truncated = this.responseFrames?.finish() ?? 0;
    if (truncated !== 0) return this.onResponseFrameError(truncated);
    if (this.held) this.flushHeld();
    const t = a.trailers;
    if (this.grpc) {
      this.grpcStatus = grpcStatusOf(t) ?? this.grpcStatus;
      this.outcome = outcomeOf(this.status, this.grpcStatus);
    }
    this.complete = true;
    this.ds.finish(t);
  }

  onAttemptError(a: Attempt, f: Failure): void {
    if (a !== this.attempt || this.done) return;
    clearTimeout(this.tryTimer);
    const held = this.held;
    if (held) {
      // Nothing went downstream yet: the try failed as if before its headers.
      clearTimeout(held.timer);
      this.held = undefined;
    }
    if (!a.gotHeaders || held) {
      if (f.kind === 'overflow') {
        // The connection breaker refused before any byte reached the host: not the host's fault.
        return this.reply(LocalReplies.overflow());
      }
      const outcome: RequestOutcome = f.kind === 'connect-failure' ? 'connect-failure' : 'gateway-error';
      const retriable = this.retry !== undefined && retriableFailure(this.retry, f.kind);
      if (retriable && this.canRetry()) return this.retryAfter(outcome);
      this.outcome = outcome;
      const r = LocalReplies.connectFailure(f.message);
      r.reason = f.kind === 'connect-failure' ? 'UF' : 'UR';
      if (retriable) r.reason += ',URX';
      return this.reply(r);
    }
    // The response had started: it cannot be retried or replaced.
    this.outcome = 'gateway-error';
    this.flags = 'UR';
    this.failStarted(GrpcStatus.UNAVAILABLE, 'upstream reset');
  }

  onBodyError(code: number): void {
    if (this.done) return;
    this.attempt?.abort();
    this.attempt = undefined;
    const msg = code === GrpcStatus.RESOURCE_EXHAUSTED ? 'grpc message larger than the limit' : 'malformed grpc message';
    if (!this.ds.headersSent) return this.reply({ status: code === GrpcStatus.RESOURCE_EXHAUSTED ? 413 : 400, grpcStatus: code, body: msg, reason: 'DPE' });
    this.flags = 'DPE';
    this.failStarted(code, msg);
  }

  /**
   * The upstream sent a gRPC message over the size bound (RESOURCE_EXHAUSTED) or a malformed one (INTERNAL): the try
   * is cancelled and the client gets that status (Envoy's UPE), as the caller would from a peer breaking its limit.
   */
  private onResponseFrameError(code: number): void {
    const a = this.attempt;
    a?.body?.off('data', this.onResponseData);
    a?.abort();
    this.attempt = undefined;
    this.responseFrames = undefined;
    const msg = code === GrpcStatus.RESOURCE_EXHAUSTED ? 'grpc response message larger than the limit' : 'malformed grpc response message';
    if (!this.ds.headersSent) {
      if (this.held) {
        clearTimeout(this.held.timer);
        this.held = undefined;
      }
      return this.reply({ status: 502, grpcStatus: code, body: msg, reason: 'UPE' });
    }
    this.flags = 'UPE';
    this.failStarted(code, msg);
  }

  /** Ends a response already under way with a gRPC status in trailers (gRPC over HTTP/2), else resets it. */
  private failStarted(grpcStatus: number, message: string): void {
    if (this.grpc && this.ds.protocol === 'HTTP/2') {
      this.grpcStatus = grpcStatus;
      this.complete = true;
      this.ds.finish({ 'grpc-status': String(grpcStatus), 'grpc-message': message });
    } else this.ds.reset();
  }

  private canRetry(): boolean {
    const retry = this.retry!;
    if (this.tries > retry.attempts || this.ds.closed) return false;
    if (this.body && !this.body.replayable) return false;
    if (this.deadline > 0 && performance.now() >= this.deadline) return false;
    if (this.retryHeld) {
      this.cluster!.endRetry();
      this.retryHeld = false;
    }
    if (!this.cluster!.tryBeginRetry()) return false;
    this.retryHeld = true;
    return true;
  }

  private retryAfter(outcome: RequestOutcome): void {
    const a = this.attempt!;
    a.abort();
    this.attempt = undefined;
    this.body?.detach();
    this.cluster!.endRequest(this.host!, outcome);
    (this.tried ??= new Set()).add(this.host!);
    this.host = undefined;
    this.tryTimer = setTimeout(this.startAttemptBound, backoffMs(this.tries));
  }

  private readonly startAttemptBound = (): void => this.startAttempt();

  private readonly onTryTimeout = (): void => {
    const a = this.attempt;
    if (!a || a.gotHeaders || this.done) return;
    if (this.retry && retriableFailure(this.retry, 'timeout') && this.canRetry()) return this.retryAfter('gateway-error');
    this.outcome = 'gateway-error';
    this.reply(LocalReplies.timeout());
  };

  private readonly onTimeout = (): void => {
    this.timer = undefined;
    if (this.done || this.complete) return;
    if (this.host) this.outcome = 'gateway-error';
    this.flags = 'UT';
    if (!this.ds.headersSent) return this.reply(LocalReplies.timeout());
    this.attempt?.abort();
    this.failStarted(GrpcStatus.DEADLINE_EXCEEDED, 'upstream request timeout');
  };

  /** Replies locally (denials, no route, failures, timeouts); any try under way is cancelled. */
  reply(r: LocalReply): void {
    if (this.done) return;
    if (this.attempt) {
      this.attempt.abort();
      this.attempt = undefined;
    }
    clearTimeout(this.tryTimer);
    if (this.held) {
      clearTimeout(this.held.timer);
      this.held = undefined;
    }
    if (this.flags === '-' || r.reason.endsWith('URX')) this.flags = r.reason;
    if (r.policy || r.reason === 'UAEX') this.denial = { policy: r.policy, rule: r.rule, reason: r.reason };
    this.status = r.status;
    if (this.grpc) this.grpcStatus = localReplyGrpcStatus(r);
    this.complete = true;
    // A request body not yet read would make the connection unusable for the next request.
    sendLocalReply(this.ds, r, this.grpc, this.ctx.draining || (this.hasBody && !this.body));
  }

  private readonly onClose = (): void => {
    if (this.done) return;
    this.done = true;
    clearTimeout(this.timer);
    clearTimeout(this.tryTimer);
    if (this.held) clearTimeout(this.held.timer);
    this.held = undefined;
    if (!this.complete) {
      this.flags = this.flags === '-' ? 'DC' : `${this.flags},DC`;
      if (!this.ds.headersSent) this.status = 0;
    }
    if (this.attempt && !this.attempt.finished) this.attempt.abort();
    if (this.host) this.cluster!.endRequest(this.host, this.outcome);
    if (this.retryHeld) this.cluster!.endRetry();
    this.body?.dispose();
    this.peerReset = !this.complete && this.ds instanceof H2Downstream && this.ds.resetByPeer;
    this.ctx.complete(this);
  };
}

function grpcEncoded(v: string | string[] | undefined): boolean {
  return typeof v === 'string' && v !== 'identity';
}

function redirectReply(a: Extract<Route['action'], { type: 'redirect' }>, cr: CompiledRoute, authority: string, path: string, tls: boolean): LocalReply {
  const scheme = a.scheme ?? (tls ? 'https' : 'http');
  let host = a.host ?? authority;
  if (a.port) host = `${host.replace(/:\d+$/, '')}:${a.port}`;
  let p = path;
  if (a.path !== undefined) p = a.path;
  else if (a.prefixRewrite !== undefined) {
    const cut = cr.path && cr.path.kind === 1 ? cr.path.value.length : 0;
    p = a.prefixRewrite + path.slice(cut);
  }
  return { status: a.status, body: '', reason: 'DR', headers: { location: `${scheme}://${host}${p}` } };
}
