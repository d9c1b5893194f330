// The xDS client the proxy learns its configuration with: one ADS stream (delta or SotW) to the control plane,
// subscriptions per type, ACK/NACK by error_detail, the last good state kept across NACKs and reconnects, and
// reconnection forever with jittered backoff (Envoy's xds_protocol rules).
import { EventEmitter } from 'node:events';
import * as grpc from '@grpc/grpc-js';
import { pino, type Logger } from 'pino';
import { AdsClientError, TypeState, type Candidate, type DeltaResponse, type ResourceSet, type SotwResponse } from './ads-client-state.ts';
import { adsStubCtor, nodeMessage, type AdsStub, type Message } from './ads-client-stub.ts';
import { Backoff } from './backoff.ts';
import { PUSH_ORDER, shortType } from './type-urls.ts';

export { AdsClientError, type AdsClientErrorCode, type ResourceSet, type XdsResourceEntry } from './ads-client-state.ts';

export interface AdsClientOptions {
  /** host:port of the control plane's ADS. */
  target: string;
  /** Default: insecure (loopback only). */
  credentials?: grpc.ChannelCredentials;
  /** metadata becomes a google.protobuf.Struct. */
  node: { id: string; cluster?: string; metadata?: Record<string, unknown> };
  /** Default delta. */
  protocol?: 'delta' | 'sotw';
  /** Jittered exponential; default 500 ms .. 30 s, back to the base once a stream stayed up resetAfterMs (default 10 s). */
  backoff?: { baseMs?: number; maxMs?: number; resetAfterMs?: number };
  /** Bound on resources held per type (default 100k); a response beyond it is NACKed. */
  maxResourcesPerType?: number;
  /** grpc max_receive_message_length (default 64 MiB); a larger response fails the stream, which is retried. */
  maxMessageBytes?: number;
  /** HTTP/2 keepalive ping interval, to notice a control plane that vanished without closing (default 30 s; 0: off). */
  keepaliveMs?: number;
  logger?: Logger;
}

export type UpdateHandler = (typeUrl: string, resources: ResourceSet) => string[];

export interface TypeStatus {
  version: string;
  nonce: string;
  resources: number;
  lastError?: string;
  ackedAt?: Date;
}

const INVALID_ARGUMENT = 3;
const MAX_ERROR_DETAIL = 16 * 1024;

/** What the client reports: stream up and down, and each ACK and NACK it sent. */
export interface AdsClientEvents {
  connected: [];
  disconnected: [Error];
  ack: [{ typeUrl: string; version: string }];
  nack: [{ typeUrl: string; errors: string[] }];
}

export class AdsClient extends EventEmitter<AdsClientEvents> {
  private readonly opts: AdsClientOptions;
  private readonly log: Logger;
  private readonly protocol: 'delta' | 'sotw';
  private readonly maxResources: number;
  private readonly backoff: Backoff;
  private readonly resetAfterMs: number;
  private readonly nodeMessage: Message;
  private readonly states = new Map<string, TypeState>();
  private handler: UpdateHandler = () => [];
  private started = false;
  private closed = false;
  private up = false;
  private upSince = 0;
  private stub: AdsStub | undefined;
  private call: grpc.ClientDuplexStream<Message, SotwResponse | DeltaResponse> | undefined;
  private nodeSent = false;
  private timer: NodeJS.Timeout | undefined;
  /** Subscription changes made while the handler runs are sent after its ACK/NACK (Envoy pauses them the same way). */
  private inHandler = false;
  private readonly pending = new Set<string>();

  constructor(opts: AdsClientOptions) {
    super();
    this.opts = opts;
    this.log = opts.logger ?? pino({ level: 'silent' });
    this.protocol = opts.protocol ?? 'delta';
    this.maxResources = opts.maxResourcesPerType ?? 100_000;
    this.backoff = new Backoff(opts.backoff);
    this.resetAfterMs = opts.backoff?.resetAfterMs ?? 10_000;
    this.nodeMessage = nodeMessage(opts.node);
  }

  get connected(): boolean {
    return this.up;
  }

  /**
   * Subscribes; names '*' = wildcard. Calling again with new names updates the subscription on the live stream
   * (from inside the handler too: the change goes out right after that update's ACK/NACK). Names dropped from a
   * subscription leave the accepted set at once, without a handler call. An empty list asks for nothing: no request
   * is sent for the type (it would read as a wildcard to LDS/CDS), so its handler is not called until names come.
   * Known types are requested, and so applied, clusters first: CDS, EDS, LDS, RDS (make before break).
   */
  watch(typeUrl: string, names: '*' | readonly string[]): void {
    if (names !== '*') {
      if (names.length > this.maxResources) throw new AdsClientError('bad-watch', `${shortType(typeUrl)}: ${names.length} names exceed the limit of ${this.maxResources}`);
      for (const n of names) if (typeof n !== 'string' || n === '' || n === '*') throw new AdsClientError('bad-watch', `${shortType(typeUrl)}: ${JSON.stringify(n)} is not a resource name (use '*' alone for a wildcard)`);
    }
    let st = this.states.get(typeUrl);
    if (!st) this.states.set(typeUrl, (st = new TypeState(typeUrl)));
    const sub = names === '*' ? '*' : new Set(names);
    if (sameSubscription(st.subscription, sub) && (st.sentOnStream || !this.call)) return;
    st.resubscribe(sub);
    if (this.inHandler) this.pending.add(typeUrl);
    else this.sendSubscription(st);
  }

  /**
   * The handler validates and applies one update of one type: the full current set for that type, decoded with
   * decodeAny. A non-empty error list (or a throw) NACKs with all errors joined in error_detail, and the previous
   * set stays the accepted one; [] ACKs. The first set of each type is always handed over; after that, a response
   * that changes nothing (e.g. after a reconnect) is ACKed without calling the handler.
   */
  onUpdate(handler: UpdateHandler): void {
    this.handler = handler;
  }

  start(): void {
    if (this.started || this.closed) return;
    this.started = true;
    this.connect();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.timer);
    this.endStream(new AdsClientError('stream-closed', 'client closed'));
  }

  /** The accepted set of one type (for /config_dump). */
  resources(typeUrl: string): ResourceSet {
    return this.states.get(typeUrl)?.accepted ?? new Map();
  }

  /** Per type: last ACKed version/nonce, last NACK error, counts (for /config_dump and /stats). */
  status(): Record<string, TypeStatus> {
    const out: Record<string, TypeStatus> = {};
    for (const [t, st] of this.states) {
      const s: TypeStatus = { version: st.version, nonce: st.nonce, resources: st.accepted.size };
      if (st.lastError !== undefined) s.lastError = st.lastError;
      if (st.ackedAt) s.ackedAt = st.ackedAt;
      out[t] = s;
    }
    return out;
  }

  private connect(): void {
    this.timer = undefined;
    if (this.closed) return;
    const keepalive = this.opts.keepaliveMs ?? 30_000;
    const options: grpc.ChannelOptions = {
      'grpc.max_receive_message_length': this.opts.maxMessageBytes ?? 64 * 1024 * 1024,
      // A fresh channel per attempt with its own subchannel: our backoff decides when to retry, not grpc-js'.
      'grpc.use_local_subchannel_pool': 1,
      ...(keepalive > 0 ? { 'grpc.keepalive_time_ms': keepalive, 'grpc.keepalive_timeout_ms': Math.min(keepalive, 10_000) } : {}),
    };
    const stub = new (adsStubCtor())(this.opts.target, this.opts.credentials ?? grpc.credentials.createInsecure(), options);
    const call: grpc.ClientDuplexStream<Message, SotwResponse | DeltaResponse> = this.protocol === 'delta' ? stub.DeltaAggregatedResources() : stub.StreamAggregatedResources();
    this.stub = stub;
    this.call = call;
    this.nodeSent = false;
    call.on('data', (m: SotwResponse | DeltaResponse) => {
      if (this.call !== call) return;
      this.markUp(call);
      this.onResponse(m);
    });
    call.on('error', (e: Error) => this.onStreamEnd(call, e));
    call.on('status', (s: grpc.StatusObject) => {
      if (s.code === grpc.status.OK) this.onStreamEnd(call, new AdsClientError('stream-closed', 'the server ended the stream'));
    });
    for (const st of this.states.values()) st.resetForStream();
    // Clusters before endpoints before listeners before routes (make before break), then any other type.
    for (const st of this.ordered()) this.sendSubscription(st);
  }

  private ordered(): TypeState[] {
    const rank = (t: string): number => {
      const i = (PUSH_ORDER as readonly string[]).indexOf(t);
      return i < 0 ? PUSH_ORDER.length : i;
    };
    return [...this.states.values()].sort((a, b) => rank(a.typeUrl) - rank(b.typeUrl));
  }

  private markUp(call: unknown): void {
    if (this.up || this.call !== call) return;
    this.up = true;
    this.upSince = Date.now();
    this.log.info({ target: this.opts.target, protocol: this.protocol }, 'xDS stream up');
    this.emit('connected');
  }

  private onStreamEnd(call: unknown, err: Error): void {
    if (this.call !== call) return;
    const stayedUp = this.up && Date.now() - this.upSince >= this.resetAfterMs;
    this.endStream(err);
    if (this.closed) return;
    if (stayedUp) this.backoff.reset();
    const delay = this.backoff.next();
    this.log.warn({ target: this.opts.target, err: err.message, retryInMs: delay }, 'xDS stream failed');
    this.timer = setTimeout(() => this.connect(), delay);
  }

  private endStream(err: Error): void {
    const call = this.call;
    this.call = undefined;
    if (call) {
      call.on('error', () => undefined);
      call.cancel();
    }
    this.stub?.close();
    this.stub = undefined;
    this.pending.clear();
    if (this.up) {
      this.up = false;
      this.emit('disconnected', err);
    }
  }

  private write(req: Message): void {
    if (!this.call) return;
    if (!this.nodeSent) {
      req.node = this.nodeMessage;
      this.nodeSent = true;
    }
    this.call.write(req);
  }

  /** Tells the live stream what we want of a type: the whole subscription (first request, SotW) or its change (delta). */
  private sendSubscription(st: TypeState): void {
    if (!this.call) return;
    const first = st.sentOnStream === undefined;
    if (first && !st.hasInterest()) return; // an explicit empty list on a first request would read as wildcard
    const now = { wildcard: st.wildcard, names: st.wildcard ? new Set<string>() : new Set(st.subscription) };
    if (this.protocol === 'sotw') {
      const req: Message = { type_url: st.typeUrl, resource_names: st.resourceNames(), version_info: st.version };
      if (st.streamNonce) req.response_nonce = st.streamNonce;
      this.write(req);
    } else if (first) {
      this.write({ type_url: st.typeUrl, resource_names_subscribe: st.resourceNames(), initial_resource_versions: st.initialVersions() });
    } else {
      const was = st.sentOnStream as { wildcard: boolean; names: Set<string> };
      const sub = [...(now.wildcard && !was.wildcard ? ['*'] : []), ...[...now.names].filter((n) => !was.names.has(n))];
      const unsub = [...(was.wildcard && !now.wildcard ? ['*'] : []), ...[...was.names].filter((n) => !now.names.has(n))];
      if (sub.length === 0 && unsub.length === 0) return;
      this.write({ type_url: st.typeUrl, resource_names_subscribe: sub, resource_names_unsubscribe: unsub });
    }
    st.sentOnStream = now;
  }

  private onResponse(m: SotwResponse | DeltaResponse): void {
    const st = this.states.get(m.type_url);
    if (!st || st.sentOnStream === undefined) {
      this.log.warn({ typeUrl: m.type_url }, 'xDS response for a type not subscribed; ignored');
      return;
    }
    st.streamNonce = m.nonce;
    const delta = 'system_version_info' in m;
    const version = delta ? m.system_version_info : m.version_info;
    const c: Candidate = delta ? st.fromDelta(m, this.maxResources) : st.fromSotw(m, this.maxResources);
    let errors = c.errors;
    if (errors.length === 0 && (!st.applied || st.differs(c.set))) errors = this.runHandler(st.typeUrl, c.set);
    // The state moves even if the handler closed the client meanwhile: the handler has applied what it accepted.
    if (errors.length > 0) {
      const message = errorDetail(errors);
      st.nack(c.set, message);
      this.log.warn({ type: shortType(st.typeUrl), version, errors: errors.length, message }, 'xDS update rejected (NACK)');
      if (!this.call) return;
      const req: Message = { type_url: st.typeUrl, response_nonce: m.nonce, error_detail: { code: INVALID_ARGUMENT, message } };
      if (!delta) Object.assign(req, { version_info: st.version, resource_names: st.resourceNames() });
      this.write(req);
      this.emit('nack', { typeUrl: st.typeUrl, errors });
    } else {
      st.ack(c.set, version, m.nonce);
      this.log.debug({ type: shortType(st.typeUrl), version, resources: c.set.size }, 'xDS update accepted (ACK)');
      if (!this.call) return;
      const req: Message = { type_url: st.typeUrl, response_nonce: m.nonce };
      if (!delta) Object.assign(req, { version_info: version, resource_names: st.resourceNames() });
      this.write(req);
      this.emit('ack', { typeUrl: st.typeUrl, version });
    }
    this.flushPending();
  }

  private runHandler(typeUrl: string, set: ResourceSet): string[] {
    this.inHandler = true;
    try {
      const errors = this.handler(typeUrl, set);
      return Array.isArray(errors) ? errors.map(String) : ['the update handler returned no error list'];
    } catch (e) {
      // A handler that throws rejects the update: fail closed, keep the last good state.
      return [`update handler failed: ${e instanceof Error ? e.message : String(e)}`];
    } finally {
      this.inHandler = false;
    }
  }

  private flushPending(): void {
    if (this.pending.size === 0) return;
    const types = new Set(this.pending);
    this.pending.clear();
    for (const st of this.ordered()) if (types.has(st.typeUrl)) this.sendSubscription(st);
  }
}

function sameSubscription(a: '*' | ReadonlySet<string>, b: '*' | ReadonlySet<string>): boolean {
  if (a === '*' || b === '*') return a === b;
  if (a.size !== b.size) return false;
  for (const n of a) if (!b.has(n)) return false;
  return true;
}

/** All errors joined, bounded. */
function errorDetail(errors: readonly string[]): string {
  const joined = errors.join('; ');
  return joined.length <= MAX_ERROR_DETAIL ? joined : `${joined.slice(0, MAX_ERROR_DETAIL)}… (${errors.length} errors)`;
}
