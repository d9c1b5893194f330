// The relay (Hubble Relay's role, on the conventional port 4245): one Observer API over many. GetFlows asks every
// peer with the same request and merges their streams in time order: flows wait in a small reorder window (a peer's
// stream is nearly, not strictly, time ordered) and leave oldest first. Without follow the whole answer is sorted;
// `number` without `first` keeps the newest N overall, `first` takes N per peer as Hubble Relay does (and so does
// `number` with `follow`: each peer's backlog, merged). A following call also follows peers added after it began. A peer's lost
// events pass through with its node name; a peer that cannot be reached is reported as a node_status event
// (NODE_UNAVAILABLE) and in ServerStatus, never silently skipped. A slow client pauses the peers' streams (nothing is
// dropped here; the peers' rings then report what they lost). Peers are given (addPeer/removePeer), e.g. by the
// control plane from the observer addresses its proxies announce.
import * as grpc from '@grpc/grpc-js';
import { ObserverClient } from './observer-client.ts';
import { nsOf, timestampOf, type Timestamp } from './observer-protos.ts';
import { TimeHeap, type TimedItem } from './observer-time-heap.ts';
import { compileRequest, OBSERVER_VERSION, serveObserver, type GetFlowsRequest, type ObserverServer } from './observer-server.ts';

export const DEFAULT_RELAY_PORT = 4245;

export interface RelayOptions {
  /** How long a flow may wait for older ones from other peers while following (default 500 ms). */
  reorderWindowMs?: number;
  /** Flows held for reordering at most; beyond it the oldest leave early (default 10,000). */
  maxBuffered?: number;
  /** Deadline for a peer's unary answers (default 2 s). */
  peerTimeoutMs?: number;
  /** Concurrent GetFlows calls (default 64); more are refused with RESOURCE_EXHAUSTED. */
  maxStreams?: number;
}

interface Peer {
  name: string;
  address: string;
  client: ObserverClient;
}

type Raw = Record<string, unknown>;
type Held = TimedItem<Raw>;

function now(): Timestamp {
  return timestampOf(BigInt(Date.now()) * 1_000_000n);
}

function nodeStatus(state: string, names: string[], message: string): Raw {
  return { node_status: { state_change: state, node_names: names, message }, node_name: '', time: now() };
}

export class ObserverRelay {
  private readonly peerMap = new Map<string, Peer>();
  private readonly startedNs = process.hrtime.bigint();
  private streams = 0;
  /** Following GetFlows calls, told about each peer added after they started. */
  private readonly addedListeners = new Set<(peer: Peer) => void>();
  constructor(readonly opts: RelayOptions = {}) {}

  addPeer(name: string, address: string): void {
    const old = this.peerMap.get(name);
    if (old?.address === address) return;
    old?.client.close();
    const peer = { name, address, client: new ObserverClient(address) };
    this.peerMap.set(name, peer);
    for (const l of this.addedListeners) l(peer);
  }

  removePeer(name: string): void {
    this.peerMap.get(name)?.client.close();
    this.peerMap.delete(name);
  }

  peers(): { name: string; address: string }[] {
    return [...this.peerMap.values()].map((p) => ({ name: p.name, address: p.address }));
  }

  /** Each peer's ServerStatus, or why it has none. */
  private async statuses(): Promise<{ peer: Peer; status?: Raw; error?: string }[]> {
    const timeout = this.opts.peerTimeoutMs ?? 2000;
    return Promise.all(
      [...this.peerMap.values()].map(async (peer) => {
        try {
          return { peer, status: await peer.client.serverStatus(timeout) };
        } catch (e) {
          return { peer, error: (e as Error).message };
        }
      }),
    );
  }

  async serverStatus(): Promise<Raw> {
    const all = await this.statuses();
    const ok = all.filter((s) => s.status);
    const sum = (k: string): number => ok.reduce((n, s) => n + Number(s.status?.[k] ?? 0), 0);
    return {
      num_flows: sum('num_flows'),
      max_flows: sum('max_flows'),
      seen_flows: sum('seen_flows'),
      uptime_ns: Number(process.hrtime.bigint() - this.startedNs),
      num_connected_nodes: { value: ok.length },
      num_unavailable_nodes: { value: all.length - ok.length },
      unavailable_nodes: all.filter((s) => !s.status).map((s) => s.peer.name),
      version: OBSERVER_VERSION,
      flows_rate: ok.reduce((n, s) => n + Number(s.status?.flows_rate ?? 0), 0),
    };
  }

  async nodes(): Promise<Raw[]> {
    return (await this.statuses()).map(({ peer, status }) => ({
      name: peer.name,
      version: (status?.version as string | undefined) ?? '',
      address: peer.address,
      state: status ? 'NODE_CONNECTED' : 'NODE_UNAVAILABLE',
      tls: { enabled: false, server_name: '' },
      uptime_ns: Number(status?.uptime_ns ?? 0),
      num_flows: Number(status?.num_flows ?? 0),
      max_flows: Number(status?.max_flows ?? 0),
      seen_flows: Number(status?.seen_flows ?? 0),
    }));
  }

  async namespaces(): Promise<{ cluster: string; namespace: string }[]> {
    const timeout = this.opts.peerTimeoutMs ?? 2000;
    const seen = new Map<string, { cluster: string; namespace: string }>();
    await Promise.all(
      [...this.peerMap.values()].map(async (p) => {
        try {
          for (const n of (await p.client.getNamespaces(timeout)).namespaces) seen.set(`${n.cluster}\u0000${n.namespace}`, { cluster: n.cluster, namespace: n.namespace });
        } catch {
          // an unavailable peer contributes nothing; ServerStatus and GetNodes name it
        }
      }),
    );
    return [...seen.values()].sort((a, b) => (a.cluster === b.cluster ? a.namespace.localeCompare(b.namespace) : a.cluster.localeCompare(b.cluster)));
  }

  async getFlows(call: grpc.ServerWritableStream<GetFlowsRequest, unknown>): Promise<void> {
    const req = call.request;
    try {
      compileRequest(req);
    } catch (e) {
      call.emit('error', { code: grpc.status.INVALID_ARGUMENT, details: (e as Error).message });
      return;
    }
    if (this.streams >= (this.opts.maxStreams ?? 64)) {
      call.emit('error', { code: grpc.status.RESOURCE_EXHAUSTED, details: 'too many GetFlows streams' });
      return;
    }
    this.streams++;
    try {
      await this.mergeFlows(call);
    } finally {
      this.streams--;
    }
  }

  private async mergeFlows(call: grpc.ServerWritableStream<GetFlowsRequest, unknown>): Promise<void> {
    const req = call.request;
    const follow = req.follow === true;
    const lastN = !follow && !req.first && Number(req.number ?? 0) > 0 ? Number(req.number) : 0;
    const window = this.opts.reorderWindowMs ?? 500;
    const cap = this.opts.maxBuffered ?? 10_000;
    const heap = new TimeHeap<Raw>();
    const streams: ReturnType<ObserverClient['getFlows']>[] = [];
    let ended = false;
    let paused = false;
    let timer: NodeJS.Timeout | undefined;
    let onAdded: ((peer: Peer) => void) | undefined;
    let cancelled: () => void = () => undefined;
    const stop = (): void => {
      if (ended) return;
      ended = true;
      if (timer) clearInterval(timer);
      if (onAdded) this.addedListeners.delete(onAdded);
      for (const s of streams) s.cancel();
      cancelled();
    };
    call.on('cancelled', stop);
    call.on('close', stop);
    const write = (msg: Raw): void => {
      if (ended || call.cancelled) return;
      if (!call.write(msg) && !paused) {
        paused = true;
        for (const s of streams) s.call.pause();
        call.once('drain', () => {
          paused = false;
          for (const s of streams) s.call.resume();
        });
      }
    };
    /** Sends held flows: those older than the window (all when `all`), and the oldest while over the cap. */
    const flush = (all: boolean): void => {
      const horizon = Date.now() - window;
      for (let h = heap.peek(); h && (all || h.at <= horizon || heap.size > cap); h = heap.peek()) write((heap.pop() as Held).msg);
    };

    const peers = [...this.peerMap.values()];
    if (peers.length === 0) write(nodeStatus('NODE_UNAVAILABLE', [], 'the relay has no peers'));
    const available: Peer[] = [];
    for (const { peer, error } of await this.statuses()) {
      if (error) write(nodeStatus('NODE_UNAVAILABLE', [peer.name], error));
      else available.push(peer);
    }
    if (available.length > 0) write(nodeStatus('NODE_CONNECTED', available.map((p) => p.name), ''));
    if (follow) timer = setInterval(() => flush(false), Math.max(20, Math.floor(window / 4)));
    const consume = async (peer: Peer): Promise<void> => {
        const s = peer.client.getFlows(req);
        streams.push(s);
        if (ended) s.cancel();
        if (paused) s.call.pause();
        try {
          for await (const e of s.call) {
            const m = e as Raw;
            if (m.flow) {
              const t = nsOf(m.time as Timestamp) ?? 0n;
              heap.push({ t, at: Date.now(), msg: { ...m, node_name: (m.node_name) || peer.name } });
              if (heap.size > cap) flush(false);
            } else if (m.lost_events) write({ ...m, node_name: (m.node_name) || peer.name });
          }
        } catch (e) {
          const err = e as grpc.ServiceError;
          if (!ended && err.code !== grpc.status.CANCELLED) write(nodeStatus('NODE_UNAVAILABLE', [peer.name], err.details || err.message));
        }
    };
    const initial = available.map(consume);
    if (follow && req.until == null) {
      // Following without an end: peers that join later are followed too, until the client goes away.
      onAdded = (peer) => {
        write(nodeStatus('NODE_CONNECTED', [peer.name], ''));
        void consume(peer);
      };
      this.addedListeners.add(onAdded);
      await new Promise<void>((resolve) => {
        cancelled = resolve;
        if (ended || call.cancelled) resolve();
      });
      return;
    }
    await Promise.all(initial);
    if (ended || call.cancelled) return;
    if (lastN > 0) {
      const sorted: Held[] = [];
      for (let h = heap.pop(); h; h = heap.pop()) sorted.push(h);
      for (const h of sorted.slice(-lastN)) write(h.msg);
    } else flush(true);
    stop();
    call.end();
  }

  handlers(): grpc.UntypedServiceImplementation {
    const unary =
      <T>(f: () => Promise<T>) =>
      (_call: grpc.ServerUnaryCall<unknown, unknown>, cb: grpc.sendUnaryData<unknown>): void => {
        f().then(
          (v) => cb(null, v),
          (e: unknown) => cb({ code: grpc.status.INTERNAL, details: (e as Error).message }),
        );
      };
    return {
      GetFlows: (call: grpc.ServerWritableStream<GetFlowsRequest, unknown>) => {
        void this.getFlows(call);
      },
      ServerStatus: unary(() => this.serverStatus()),
      GetNodes: unary(async () => ({ nodes: await this.nodes() })),
      GetNamespaces: unary(async () => ({ namespaces: await this.namespaces() })),
    };
  }

  close(): void {
    for (const p of this.peerMap.values()) p.client.close();
    this.peerMap.clear();
  }
}

/** Runs a relay on a loopback address (default 127.0.0.1:4245). */
export async function startRelay(opts: RelayOptions & { host?: string; port?: number; peers?: { name: string; address: string }[] } = {}): Promise<ObserverServer & { relay: ObserverRelay }> {
  const relay = new ObserverRelay(opts);
  for (const p of opts.peers ?? []) relay.addPeer(p.name, p.address);
  const server = await serveObserver(relay.handlers(), opts.host ?? '127.0.0.1', opts.port ?? DEFAULT_RELAY_PORT);
  return {
    ...server,
    relay,
    close: async () => {
      relay.close();
      await server.close();
    },
  };
}
