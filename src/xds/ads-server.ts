// The ADS server: state-of-the-world and delta xDS v3 streams, following Envoy's xds_protocol rules —
// versions and nonces per type, ACK/NACK by error_detail, wildcard only for LDS/CDS, every new name
// answered, make-before-break ordering, and no resend when nothing changed.
import { createHash } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { PROTO_INCLUDE_DIRS } from './protos.ts';
import type { ResourceProvider, VersionedResource } from './resource-provider.ts';
import { isKnownType, PUSH_ORDER, shortType, WILDCARD_TYPES, type TypeUrl } from './type-urls.ts';
import { parseNode, type XdsNode } from './xds-node.ts';

export type XdsEvent =
  | { kind: 'connect' | 'disconnect'; node: XdsNode; stream: 'sotw' | 'delta' }
  | { kind: 'push'; node: XdsNode; type: TypeUrl; version: string; resources: number; nonce: string }
  | { kind: 'ack'; node: XdsNode; type: TypeUrl; version: string; nonce: string }
  | { kind: 'nack'; node: XdsNode; type: TypeUrl; version: string; nonce: string; message: string };

export interface AdsServerOptions {
  provider: ResourceProvider;
  onEvent?: (e: XdsEvent) => void;
  /** Upper bound on names one stream may subscribe to per type (a bound on memory per client). */
  maxNamesPerType?: number;
  /** Upper bound on concurrent streams; more are refused with RESOURCE_EXHAUSTED. */
  maxStreams?: number;
  /**
   * Admits a node on its stream's first request, given the TLS peer of the stream: returns the node as it
   * may be served (e.g. with labels taken from the cluster rather than from what it claims), or throws
   * XdsAdmissionError to refuse the stream with PERMISSION_DENIED.
   */
  admitNode?: (node: XdsNode, peer: PeerAuth) => XdsNode;
}

/** What grpc-js knows of a stream's peer (its TLS certificate, when there is one). */
export type PeerAuth = ReturnType<grpc.ServerDuplexStream<unknown, unknown>['getAuthContext']>;

/** Refuses a stream: its node may not have configuration from this server. */
export class XdsAdmissionError extends Error {
  readonly code = 'permission-denied';
}

/** Per stream and type: what the client asked for, what it was sent, and what it acknowledged. */
export interface TypeSyncState {
  wildcard: boolean;
  /**
   * The client has named resources for this type on this stream (SotW: a non-empty resource_names, "*" included;
   * delta: a non-empty resource_names_subscribe). From then on the legacy "empty means wildcard" rule no longer
   * applies (xds_protocol, "How the client specifies what resources to return").
   */
  explicit?: boolean;
  names: Set<string>;
  /** name → version last sent (SotW) or known to the client (delta). */
  sent: Map<string, string>;
  sentVersion?: string;
  nonce?: string;
  ackedVersion?: string;
  nack?: { version: string; nonce: string; message: string };
  lastResources: VersionedResource[];
}

export interface StreamStatus {
  node: XdsNode;
  kind: 'sotw' | 'delta';
  connectedAt: Date;
  types: Map<TypeUrl, TypeSyncState>;
}

interface DiscoveryRequest {
  version_info?: string;
  node?: Parameters<typeof parseNode>[0];
  resource_names?: string[];
  type_url?: string;
  response_nonce?: string;
  error_detail?: { code?: number; message?: string } | null;
}

interface DeltaDiscoveryRequest {
  node?: Parameters<typeof parseNode>[0];
  type_url?: string;
  resource_names_subscribe?: string[];
  resource_names_unsubscribe?: string[];
  initial_resource_versions?: Record<string, string>;
  response_nonce?: string;
  error_detail?: { code?: number; message?: string } | null;
}

const DEFAULT_MAX_NAMES = 100_000;

function loadAdsService(): grpc.ServiceDefinition {
  const def = protoLoader.loadSync('envoy/service/discovery/v3/ads.proto', {
    keepCase: true,
    longs: String,
    enums: String,
    defaults: true,
    oneofs: true,
    includeDirs: PROTO_INCLUDE_DIRS,
  });
  const pkg = grpc.loadPackageDefinition(def) as unknown as { envoy: { service: { discovery: { v3: { AggregatedDiscoveryService: { service: grpc.ServiceDefinition } } } } } };
  return pkg.envoy.service.discovery.v3.AggregatedDiscoveryService.service;
}

function versionOf(resources: readonly VersionedResource[]): string {
  const h = createHash('sha256');
  for (const r of resources) h.update(`${r.name}\0${r.version}\n`);
  return h.digest('hex').slice(0, 16);
}

abstract class AdsStream {
  node: XdsNode | undefined;
  readonly types = new Map<TypeUrl, TypeSyncState>();
  readonly connectedAt = new Date();
  protected nonceCounter = 0;
  constructor(protected readonly server: AdsServer) {}

  protected state(type: TypeUrl): { s: TypeSyncState; first: boolean } {
    const s = this.types.get(type);
    if (s) return { s, first: false };
    const fresh: TypeSyncState = { wildcard: false, names: new Set(), sent: new Map(), lastResources: [] };
    this.types.set(type, fresh);
    return { s: fresh, first: true };
  }

  /** Handles the nonce of a request: true when it answers our latest response (ACK or NACK). */
  protected ackOrNack(type: TypeUrl, s: TypeSyncState, nonce: string | undefined, version: string, error: { message?: string } | null | undefined): 'fresh' | 'current' | 'stale' {
    // A nonce is only valid on the stream that sent it and does not survive a reconnect (xds_protocol), and it
    // becomes stale only once a newer one was sent. Before any response of this type on this stream, a nonce
    // (e.g. one a reconnecting client kept from its old stream) is neither stale nor an ACK: the request is fresh.
    if (!nonce || s.nonce === undefined) return 'fresh';
    if (nonce !== s.nonce) return 'stale';
    const node = this.node as XdsNode;
    if (error) {
      const message = error.message ?? 'rejected';
      s.nack = { version: s.sentVersion ?? '', nonce, message };
      this.server.emit({ kind: 'nack', node, type, version: s.sentVersion ?? '', nonce, message });
    } else {
      s.ackedVersion = version;
      s.nack = undefined;
      this.server.emit({ kind: 'ack', node, type, version, nonce });
    }
    return 'current';
  }

  protected desired(type: TypeUrl, s: TypeSyncState): VersionedResource[] {
    const node = this.node as XdsNode;
    const p = this.server.provider;
    if (s.wildcard) {
      const all = p.list(node, type);
      // Names asked for explicitly alongside a wildcard are served too.
      const seen = new Set(all.map((r) => r.name));
      for (const n of s.names) {
        if (seen.has(n)) continue;
        const r = p.get(node, type, n);
        if (r) all.push(r);
      }
      return all.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    }
    const out: VersionedResource[] = [];
    for (const n of [...s.names].sort()) {
      const r = p.get(node, type, n);
      if (r) out.push(r);
    }
    return out;
  }

  protected nextNonce(): string {
    return String(++this.nonceCounter);
  }

  abstract recompute(): void;
}

class SotwStream extends AdsStream {
  constructor(server: AdsServer, private readonly call: grpc.ServerDuplexStream<DiscoveryRequest, unknown>) {
    super(server);
  }

  onRequest(req: DiscoveryRequest): void {
    if (!this.node) {
      this.node = this.server.admit(parseNode(req.node), this.call);
      this.server.emit({ kind: 'connect', node: this.node, stream: 'sotw' });
    }
    const type = req.type_url ?? '';
    if (!isKnownType(type)) return; // unknown types get no answer, as Envoy's management servers do
    const { s, first } = this.state(type);
    const nonceState = this.ackOrNack(type, s, req.response_nonce, req.version_info ?? '', req.error_detail);
    if (nonceState === 'stale') return; // a stale nonce is ignored (xds_protocol)
    const requested = req.resource_names ?? [];
    if (requested.length > 0) s.explicit = true;
    const explicitWildcard = requested.includes('*');
    // "*" is a subscription mode, not a name: it does not count against the bound, and a long list cannot cut it off.
    const names = [...new Set(requested.filter((n) => n !== '*'))].slice(0, this.server.maxNamesPerType);
    // Legacy wildcard: LDS/CDS requests with empty resource_names mean "*" only while every request of that type on
    // this stream has been empty. Once the client named anything ("*" included), an empty list unsubscribes from all.
    s.wildcard = WILDCARD_TYPES.has(type) && (explicitWildcard || !s.explicit);
    const before = s.names;
    s.names = new Set(names);
    const added = [...s.names].some((n) => !before.has(n));
    this.send(type, s, first || added);
  }

  private send(type: TypeUrl, s: TypeSyncState, force: boolean): void {
    const resources = this.desired(type, s);
    const version = versionOf(resources);
    if (!force && version === s.sentVersion) return;
    const nonce = this.nextNonce();
    s.sentVersion = version;
    s.nonce = nonce;
    s.sent = new Map(resources.map((r) => [r.name, r.version]));
    s.lastResources = resources;
    this.call.write({ version_info: version, resources: resources.map((r) => r.resource), type_url: type, nonce, control_plane: { identifier: 'trellis' } });
    this.server.emit({ kind: 'push', node: this.node as XdsNode, type, version, resources: resources.length, nonce });
  }

  recompute(): void {
    if (!this.node) return;
    for (const type of PUSH_ORDER) {
      const s = this.types.get(type);
      if (s) this.send(type, s, false);
    }
  }
}

class DeltaStream extends AdsStream {
  constructor(server: AdsServer, private readonly call: grpc.ServerDuplexStream<DeltaDiscoveryRequest, unknown>) {
    super(server);
  }

  onRequest(req: DeltaDiscoveryRequest): void {
    if (!this.node) {
      this.node = this.server.admit(parseNode(req.node), this.call);
      this.server.emit({ kind: 'connect', node: this.node, stream: 'delta' });
    }
    const type = req.type_url ?? '';
    if (!isKnownType(type)) return;
    const { s, first } = this.state(type);
    // In delta the nonce only pairs an ACK/NACK with a response: a stale nonce is no ACK, but the subscription
    // changes the request carries must still be honoured (xds_protocol, Incremental xDS).
    this.ackOrNack(type, s, req.response_nonce, s.sentVersion ?? '', req.error_detail);
    const initial = first ? (req.initial_resource_versions ?? {}) : {};
    for (const [n, v] of Object.entries(initial)) s.sent.set(n, v);
    const sub = req.resource_names_subscribe ?? [];
    const unsub = req.resource_names_unsubscribe ?? [];
    if (sub.length > 0) s.explicit = true;
    // Legacy wildcard: a first request with nothing to subscribe or unsubscribe, for LDS/CDS.
    if (first && sub.length === 0 && unsub.length === 0 && WILDCARD_TYPES.has(type)) s.wildcard = true;
    const forced = new Set<string>();
    for (const n of sub) {
      if (n === '*') {
        if (WILDCARD_TYPES.has(type)) s.wildcard = true;
        continue;
      }
      // The bound applies to new names only; names already subscribed are still answered below.
      if (!s.names.has(n) && s.names.size >= this.server.maxNamesPerType) continue;
      s.names.add(n);
      // Every name in resource_names_subscribe is answered, even one the client should already have (it may have
      // forgotten it) — except on the first request, where initial_resource_versions says what the client has.
      if (!Object.hasOwn(initial, n)) forced.add(n);
    }
    for (const n of unsub) {
      if (n === '*') {
        s.wildcard = false;
        continue;
      }
      const wasExplicit = s.names.delete(n);
      s.sent.delete(n);
      // Unsubscribing an explicit name while "*" is subscribed: the client cannot tell whether the wildcard still
      // covers it, so it is answered, in resources if the wildcard includes it, else in removed_resources.
      if (wasExplicit && s.wildcard) forced.add(n);
    }
    if (req.response_nonce && sub.length === 0 && unsub.length === 0 && !first) return; // a plain ACK/NACK
    this.send(type, s, forced, first);
  }

  private send(type: TypeUrl, s: TypeSyncState, forced: ReadonlySet<string>, first: boolean): void {
    const resources = this.desired(type, s);
    const desiredNames = new Set(resources.map((r) => r.name));
    const changed = resources.filter((r) => s.sent.get(r.name) !== r.version || forced.has(r.name));
    const removed = [...s.sent.keys()].filter((n) => !desiredNames.has(n));
    // A newly subscribed name that does not exist is answered too: as removed.
    for (const n of forced) if (!desiredNames.has(n) && !removed.includes(n)) removed.push(n);
    if (changed.length === 0 && removed.length === 0 && !first) return;
    const nonce = this.nextNonce();
    const version = versionOf(resources);
    s.sentVersion = version;
    s.nonce = nonce;
    for (const r of changed) s.sent.set(r.name, r.version);
    for (const n of removed) s.sent.delete(n);
    s.lastResources = resources;
    this.call.write({
      system_version_info: version,
      resources: changed.map((r) => ({ name: r.name, version: r.version, resource: r.resource })),
      type_url: type,
      removed_resources: removed,
      nonce,
    });
    this.server.emit({ kind: 'push', node: this.node as XdsNode, type, version, resources: changed.length, nonce });
  }

  recompute(): void {
    if (!this.node) return;
    for (const type of PUSH_ORDER) {
      const s = this.types.get(type);
      if (s) this.send(type, s, new Set(), false);
    }
  }
}

export class AdsServer {
  readonly provider: ResourceProvider;
  readonly maxNamesPerType: number;
  readonly maxStreams: number;
  private readonly streams = new Set<AdsStream>();
  private readonly onEvent: ((e: XdsEvent) => void) | undefined;

  private readonly admitNode: AdsServerOptions['admitNode'];

  constructor(opts: AdsServerOptions) {
    this.provider = opts.provider;
    this.onEvent = opts.onEvent;
    this.admitNode = opts.admitNode;
    this.maxNamesPerType = opts.maxNamesPerType ?? DEFAULT_MAX_NAMES;
    this.maxStreams = opts.maxStreams ?? 20_000;
  }

  /** Applies the admission hook; a refusal propagates as XdsAdmissionError and ends the stream. */
  admit(node: XdsNode, call: grpc.ServerDuplexStream<unknown, unknown>): XdsNode {
    return this.admitNode ? this.admitNode(node, call.getAuthContext()) : node;
  }

  emit(e: XdsEvent): void {
    this.onEvent?.(e);
  }

  /** Registers StreamAggregatedResources and DeltaAggregatedResources on a gRPC server. */
  register(server: grpc.Server): void {
    server.addService(loadAdsService(), {
      StreamAggregatedResources: (call: grpc.ServerDuplexStream<DiscoveryRequest, unknown>) => {
        const s = new SotwStream(this, call);
        this.attach(s, call, (r: DiscoveryRequest) => s.onRequest(r), 'sotw');
      },
      DeltaAggregatedResources: (call: grpc.ServerDuplexStream<DeltaDiscoveryRequest, unknown>) => {
        const s = new DeltaStream(this, call);
        this.attach(s, call, (r: DeltaDiscoveryRequest) => s.onRequest(r), 'delta');
      },
    });
  }

  private attach<T>(s: AdsStream, call: grpc.ServerDuplexStream<T, unknown>, onRequest: (r: T) => void, kind: 'sotw' | 'delta'): void {
    if (this.streams.size >= this.maxStreams) {
      call.emit('error', { code: grpc.status.RESOURCE_EXHAUSTED, details: `too many xDS streams (${this.maxStreams})` });
      return;
    }
    this.streams.add(s);
    const done = (): void => {
      if (!this.streams.delete(s)) return;
      if (s.node) this.emit({ kind: 'disconnect', node: s.node, stream: kind });
    };
    call.on('data', (r: T) => {
      try {
        onRequest(r);
      } catch (e) {
        // A refused node gets PERMISSION_DENIED; anything else is an internal error. Either ends the stream.
        const code = e instanceof XdsAdmissionError ? grpc.status.PERMISSION_DENIED : grpc.status.INTERNAL;
        done();
        call.emit('error', { code, details: (e as Error).message });
      }
    });
    call.on('end', () => {
      done();
      call.end();
    });
    call.on('error', done);
    call.on('close', done);
    call.on('cancelled', done);
  }

  /** Recomputes every stream after a change; only what differs from what a client has is sent. */
  push(): void {
    for (const s of this.streams) s.recompute();
  }

  status(): StreamStatus[] {
    return [...this.streams].filter((s) => s.node).map((s) => ({ node: s.node as XdsNode, kind: s instanceof DeltaStream ? 'delta' : 'sotw', connectedAt: s.connectedAt, types: s.types }));
  }
}

export { shortType };
