// Test support: a raw AggregatedDiscoveryService client (SotW and delta) over grpc-js, so a test sets every
// field of every request itself, and a queue of responses with timeouts so a broken server fails fast, never hangs.
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { PROTO_INCLUDE_DIRS, decodeAny } from '../../src/xds/protos.ts';

export interface AnyMessage {
  type_url: string;
  value: Buffer;
}

export interface RawNode {
  id: string;
  cluster?: string;
  metadata?: { fields: Record<string, { stringValue: string }> };
}

export interface DiscoveryRequest {
  version_info?: string;
  node?: RawNode;
  resource_names?: string[];
  type_url: string;
  response_nonce?: string;
  error_detail?: { code: number; message: string };
}

export interface DiscoveryResponse {
  version_info: string;
  resources: AnyMessage[];
  type_url: string;
  nonce: string;
}

export interface DeltaDiscoveryRequest {
  node?: RawNode;
  type_url: string;
  resource_names_subscribe?: string[];
  resource_names_unsubscribe?: string[];
  initial_resource_versions?: Record<string, string>;
  response_nonce?: string;
  error_detail?: { code: number; message: string };
}

export interface DeltaResource {
  name: string;
  version: string;
  resource: AnyMessage | null;
}

export interface DeltaDiscoveryResponse {
  system_version_info: string;
  resources: DeltaResource[];
  type_url: string;
  removed_resources: string[];
  nonce: string;
}

type AdsClientCtor = new (address: string, creds: grpc.ChannelCredentials) => grpc.Client & {
  StreamAggregatedResources(): grpc.ClientDuplexStream<DiscoveryRequest, DiscoveryResponse>;
  DeltaAggregatedResources(): grpc.ClientDuplexStream<DeltaDiscoveryRequest, DeltaDiscoveryResponse>;
};

let ctor: AdsClientCtor | undefined;

function adsClientCtor(): AdsClientCtor {
  if (ctor) return ctor;
  const def = protoLoader.loadSync('envoy/service/discovery/v3/ads.proto', {
    keepCase: true,
    longs: String,
    enums: String,
    defaults: true,
    oneofs: true,
    includeDirs: PROTO_INCLUDE_DIRS,
  });
  const pkg = grpc.loadPackageDefinition(def) as unknown as { envoy: { service: { discovery: { v3: { AggregatedDiscoveryService: AdsClientCtor } } } } };
  ctor = pkg.envoy.service.discovery.v3.AggregatedDiscoveryService;
  return ctor;
}

/** A node as a client sends it, with Istio-style NAMESPACE metadata. */
export function rawNode(id: string, namespace = 'default'): RawNode {
  // protobufjs' Struct wrapper reads Value's camelCase JSON names.
  return { id, cluster: 'test', metadata: { fields: { NAMESPACE: { stringValue: namespace } } } };
}

/** The name a resource carries (ClusterLoadAssignment names itself by cluster_name). */
export function resourceName(any: AnyMessage): string {
  const obj = decodeAny(any);
  const name = obj.name ?? obj.cluster_name ?? obj.clusterName;
  return typeof name === 'string' ? name : '';
}

/** Responses as they arrive; `next` waits for one, `none` asserts that none arrives for a while. */
class ResponseQueue<T> {
  private readonly items: T[] = [];
  private waiter: ((v: T) => void) | undefined;
  private failure: Error | undefined;
  private failWaiter: ((e: Error) => void) | undefined;

  push(v: T): void {
    const w = this.waiter;
    if (w) {
      this.waiter = undefined;
      this.failWaiter = undefined;
      w(v);
    } else this.items.push(v);
  }

  fail(e: Error): void {
    this.failure ??= e;
    const f = this.failWaiter;
    this.waiter = undefined;
    this.failWaiter = undefined;
    f?.(e);
  }

  next(timeoutMs = 2000): Promise<T> {
    const head = this.items.shift();
    if (head !== undefined) return Promise.resolve(head);
    if (this.failure) return Promise.reject(this.failure);
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = undefined;
        this.failWaiter = undefined;
        reject(new Error(`no response within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiter = (v) => {
        clearTimeout(timer);
        resolve(v);
      };
      this.failWaiter = (e) => {
        clearTimeout(timer);
        reject(e);
      };
    });
  }

  /** Resolves with the responses that arrived within `quietMs` (a test asserts this is empty). */
  async drain(quietMs = 150): Promise<T[]> {
    await new Promise((r) => setTimeout(r, quietMs));
    return this.items.splice(0);
  }
}

abstract class RawStream<Req, Res> {
  readonly responses = new ResponseQueue<Res>();
  constructor(
    protected readonly client: grpc.Client,
    protected readonly call: grpc.ClientDuplexStream<Req, Res>,
  ) {
    call.on('data', (r: Res) => this.responses.push(r));
    call.on('error', (e: Error) => this.responses.fail(e));
    call.on('end', () => this.responses.fail(new Error('stream ended')));
  }

  send(req: Req): void {
    this.call.write(req);
  }

  next(timeoutMs?: number): Promise<Res> {
    return this.responses.next(timeoutMs);
  }

  /** Waits `quietMs` and returns whatever arrived meanwhile; `[]` means the server sent nothing. */
  drain(quietMs?: number): Promise<Res[]> {
    return this.responses.drain(quietMs);
  }

  /** Ends the stream and the channel. */
  close(): void {
    this.call.on('error', () => undefined);
    this.call.cancel();
    this.client.close();
  }
}

export class SotwStream extends RawStream<DiscoveryRequest, DiscoveryResponse> {
  /** Sends a request and waits for the next response. */
  async request(req: DiscoveryRequest, timeoutMs?: number): Promise<DiscoveryResponse> {
    this.send(req);
    return this.next(timeoutMs);
  }
}

export class DeltaStream extends RawStream<DeltaDiscoveryRequest, DeltaDiscoveryResponse> {
  async request(req: DeltaDiscoveryRequest, timeoutMs?: number): Promise<DeltaDiscoveryResponse> {
    this.send(req);
    return this.next(timeoutMs);
  }
}

export function openSotw(port: number, creds: grpc.ChannelCredentials = grpc.credentials.createInsecure()): SotwStream {
  const client = new (adsClientCtor())(`127.0.0.1:${port}`, creds);
  return new SotwStream(client, client.StreamAggregatedResources());
}

export function openDelta(port: number): DeltaStream {
  const client = new (adsClientCtor())(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  return new DeltaStream(client, client.DeltaAggregatedResources());
}
