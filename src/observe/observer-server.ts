// The Observer API (Hubble's `observer.Observer`) over one FlowRing: GetFlows with number/first/follow/since/until
// and whitelist/blacklist filters, ServerStatus, GetNodes and GetNamespaces. A proxy serves it on loopback for its
// own ring; the relay (relay.ts) serves the same API merged over many. Streams are bounded (a cap on concurrent
// GetFlows calls, backpressure from the client pauses the ring follower, which then loses flows and says so).
import * as grpc from '@grpc/grpc-js';
import type { Flow } from './flow.ts';
import { compileFlowFilters, type FlowFilterSpec, type FlowPredicate } from './flow-filter.ts';
import type { FlowRing } from './flow-ring.ts';
import { ObserveError } from './observe-error.ts';
import { flowToProto, nsOf, observerService, timeNs, timestampOf, type Timestamp } from './observer-protos.ts';

export const OBSERVER_VERSION = 'trellis/0.1.0';
const DEFAULT_MAX_STREAMS = 64;

export interface GetFlowsRequest {
  number?: number;
  first?: boolean;
  follow?: boolean;
  whitelist?: FlowFilterSpec[];
  blacklist?: FlowFilterSpec[];
  since?: Timestamp | null;
  until?: Timestamp | null;
}

export interface ObserverOptions {
  ring: FlowRing;
  /** The node (proxy) name every response carries. */
  nodeName: string;
  clusterName?: string;
  /** Concurrent GetFlows calls (default 64); more are refused with RESOURCE_EXHAUSTED. */
  maxStreams?: number;
}

function nowNs(): bigint {
  return BigInt(Date.now()) * 1_000_000n;
}

/** A checked request: the predicate and the time window (ns), or ObserveError `bad-filter`. */
export function compileRequest(req: GetFlowsRequest): { pred: FlowPredicate; since?: bigint; until?: bigint; number: number; first: boolean; follow: boolean } {
  const number = Number(req.number ?? 0);
  if (!Number.isSafeInteger(number) || number < 0) throw new ObserveError('bad-filter', `number ${String(req.number)}: not a count`);
  if (req.first && req.follow) throw new ObserveError('bad-filter', 'first and follow cannot be combined');
  const since = nsOf(req.since);
  const until = nsOf(req.until);
  if (since !== undefined && until !== undefined && since > until) throw new ObserveError('bad-filter', 'since is after until');
  const pred = compileFlowFilters(req.whitelist ?? [], req.blacklist ?? []);
  return { pred, number, first: req.first === true, follow: req.follow === true, ...(since !== undefined ? { since } : {}), ...(until !== undefined ? { until } : {}) };
}

function inWindow(f: Flow, since: bigint | undefined, until: bigint | undefined): boolean {
  if (since === undefined && until === undefined) return true;
  const t = timeNs(f.time);
  if (t === undefined) return false;
  return (since === undefined || t >= since) && (until === undefined || t <= until);
}

export class FlowObserver {
  readonly startedNs = process.hrtime.bigint();
  private streams = 0;
  constructor(readonly opts: ObserverOptions) {}

  get uptimeNs(): number {
    return Number(process.hrtime.bigint() - this.startedNs);
  }

  /** Flows in the ring stamped within the last minute, per second (Hubble's flows_rate). */
  flowsRate(): number {
    const ring = this.opts.ring;
    const from = nowNs() - 60_000_000_000n;
    let n = 0;
    for (let s = ring.lastSeq; s >= ring.oldestSeq && s > 0; s--) {
      const t = timeNs(ring.get(s)?.time ?? '');
      if (t === undefined || t < from) break;
      n++;
    }
    return n / 60;
  }

  serverStatus(): Record<string, unknown> {
    const st = this.opts.ring.status();
    return { num_flows: st.numFlows, max_flows: st.maxFlows, seen_flows: st.seenFlows, uptime_ns: this.uptimeNs, num_connected_nodes: { value: 1 }, num_unavailable_nodes: { value: 0 }, unavailable_nodes: [], version: OBSERVER_VERSION, flows_rate: this.flowsRate() };
  }

  nodes(address: string): Record<string, unknown>[] {
    const st = this.opts.ring.status();
    return [{ name: this.opts.nodeName, version: OBSERVER_VERSION, address, state: 'NODE_CONNECTED', tls: { enabled: false, server_name: '' }, uptime_ns: this.uptimeNs, num_flows: st.numFlows, max_flows: st.maxFlows, seen_flows: st.seenFlows }];
  }

  /** Namespaces named by the flows in the ring, sorted (cluster, namespace). */
  namespaces(): { cluster: string; namespace: string }[] {
    const ring = this.opts.ring;
    const seen = new Map<string, { cluster: string; namespace: string }>();
    for (let s = ring.oldestSeq; s <= ring.lastSeq; s++) {
      const f = ring.get(s);
      if (!f) continue;
      for (const ep of [f.source, f.destination]) {
        if (ep.namespace) seen.set(`${ep.cluster_name}\u0000${ep.namespace}`, { cluster: ep.cluster_name, namespace: ep.namespace });
      }
    }
    return [...seen.values()].sort((a, b) => (a.cluster === b.cluster ? a.namespace.localeCompare(b.namespace) : a.cluster.localeCompare(b.cluster)));
  }

  /** The flows a request selects from what the ring holds now, oldest first, and the sequence number read up to. */
  backlog(q: ReturnType<typeof compileRequest>): { flows: Flow[]; end: number } {
    const ring = this.opts.ring;
    const end = ring.lastSeq;
    const out: Flow[] = [];
    const want = (f: Flow | undefined): f is Flow => f !== undefined && inWindow(f, q.since, q.until) && q.pred(f);
    // With follow and no number/since, Hubble starts from now.
    if (q.follow && q.number === 0 && q.since === undefined) return { flows: out, end };
    const limit = q.number === 0 ? Infinity : q.number;
    if (q.first) {
      for (let s = ring.oldestSeq; s <= end && out.length < limit; s++) {
        const f = ring.get(s);
        if (want(f)) out.push(f);
      }
      return { flows: out, end };
    }
    for (let s = end; s >= ring.oldestSeq && s > 0 && out.length < limit; s--) {
      const f = ring.get(s);
      if (want(f)) out.push(f);
    }
    return { flows: out.reverse(), end };
  }

  private response(f: Flow): Record<string, unknown> {
    return { flow: flowToProto(f), node_name: this.opts.nodeName, time: timestampOf(timeNs(f.time) ?? 0n) };
  }

  private lost(n: number): Record<string, unknown> {
    return { lost_events: { source: 'HUBBLE_RING_BUFFER', num_events_lost: n, cpu: null }, node_name: this.opts.nodeName, time: timestampOf(nowNs()) };
  }

  async getFlows(call: grpc.ServerWritableStream<GetFlowsRequest, unknown>): Promise<void> {
    let q: ReturnType<typeof compileRequest>;
    try {
      q = compileRequest(call.request);
    } catch (e) {
      call.emit('error', { code: grpc.status.INVALID_ARGUMENT, details: (e as Error).message });
      return;
    }
    if (this.streams >= (this.opts.maxStreams ?? DEFAULT_MAX_STREAMS)) {
      call.emit('error', { code: grpc.status.RESOURCE_EXHAUSTED, details: 'too many GetFlows streams' });
      return;
    }
    this.streams++;
    let done = false;
    const finish = (): void => {
      if (done) return;
      done = true;
      this.streams--;
    };
    call.on('cancelled', finish);
    call.on('close', finish);
    const write = (msg: Record<string, unknown>): Promise<void> | undefined => {
      if (done || call.cancelled) return undefined;
      if (call.write(msg)) return undefined;
      return new Promise((resolve) => {
        const go = (): void => {
          call.off('drain', go);
          call.off('cancelled', go);
          resolve();
        };
        call.on('drain', go);
        call.on('cancelled', go);
      });
    };
    const { flows, end } = this.backlog(q);
    for (const f of flows) {
      const w = write(this.response(f));
      if (w) await w;
      if (done || call.cancelled) return;
    }
    if (!q.follow) {
      finish();
      call.end();
      return;
    }
    const follower = this.opts.ring.follow(
      (event) => {
        if (done || call.cancelled) return;
        if ('lost' in event) return write(this.lost(event.lost));
        const f = event.flow;
        if (q.until !== undefined) {
          const t = timeNs(f.time);
          if (t !== undefined && t > q.until) {
            follower.close();
            finish();
            call.end();
            return;
          }
        }
        if (!inWindow(f, q.since, undefined) || !q.pred(f)) return;
        return write(this.response(f));
      },
      { after: end },
    );
    const stop = (): void => {
      follower.close();
      finish();
    };
    call.on('cancelled', stop);
    call.on('close', stop);
  }

  /** The service implementation for a grpc.Server; `address` is what GetNodes reports. */
  handlers(address: () => string): grpc.UntypedServiceImplementation {
    return {
      GetFlows: (call: grpc.ServerWritableStream<GetFlowsRequest, unknown>) => {
        void this.getFlows(call);
      },
      ServerStatus: (_call: grpc.ServerUnaryCall<unknown, unknown>, cb: grpc.sendUnaryData<unknown>) => cb(null, this.serverStatus()),
      GetNodes: (_call: grpc.ServerUnaryCall<unknown, unknown>, cb: grpc.sendUnaryData<unknown>) => cb(null, { nodes: this.nodes(address()) }),
      GetNamespaces: (_call: grpc.ServerUnaryCall<unknown, unknown>, cb: grpc.sendUnaryData<unknown>) => cb(null, { namespaces: this.namespaces() }),
    };
  }
}

export interface ObserverServer {
  /** `host:port` */
  address: string;
  port: number;
  close(): Promise<void>;
}

export function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/** Serves an Observer implementation on a loopback address (plaintext gRPC); port 0 picks a free one. */
export async function serveObserver(impl: grpc.UntypedServiceImplementation | ((address: () => string) => grpc.UntypedServiceImplementation), host: string, port: number): Promise<ObserverServer> {
  if (!isLoopbackHost(host)) throw new ObserveError('bad-option', `the Observer API binds loopback only, not ${host}`);
  const server = new grpc.Server({ 'grpc.max_receive_message_length': 1024 * 1024, 'grpc.max_concurrent_streams': 128 });
  let address = '';
  server.addService(observerService(), typeof impl === 'function' ? impl(() => address) : impl);
  const bound = await new Promise<number>((resolve, reject) => server.bindAsync(`${host.includes(':') ? `[${host}]` : host}:${port}`, grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(new ObserveError('bad-option', `cannot bind the Observer API on ${host}:${port}: ${err.message}`)) : resolve(p))));
  address = `${host.includes(':') ? `[${host}]` : host}:${bound}`;
  return {
    address,
    port: bound,
    close: async () => {
      await Promise.race([new Promise<void>((r) => server.tryShutdown(() => r())), new Promise((r) => setTimeout(r, 300).unref())]);
      server.forceShutdown();
    },
  };
}

/** The Observer API over one ring on a loopback port. */
export function startObserver(opts: ObserverOptions & { host?: string; port?: number }): Promise<ObserverServer & { observer: FlowObserver }> {
  const observer = new FlowObserver(opts);
  return serveObserver((address) => observer.handlers(address), opts.host ?? '127.0.0.1', opts.port ?? 0).then((s) => ({ ...s, observer }));
}
