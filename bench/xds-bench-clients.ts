// Child process of bench/xds-bench.ts: many raw ADS clients (state of the world), each behaving like a
// proxyless gRPC client: it asks for its listeners by name, then the RouteConfigurations they name, then the
// Clusters the routes name, then the ClusterLoadAssignments those clusters name; it ACKs every response with
// the response's nonce and version_info, and tells the parent (over the fork IPC channel) when it has its full
// configuration and, after the parent arms a change, when it ACKed what changed.
//
// Not run directly: bench/xds-bench.ts forks it. Clock: every timestamp is wall-clock milliseconds with
// sub-millisecond resolution, `performance.timeOrigin + performance.now()`, the same clock the parent uses.
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import type protobuf from 'protobufjs';
import { PROTO_INCLUDE_DIRS, protoRoot } from '../src/xds/protos.ts';
import { TYPE } from '../src/xds/type-urls.ts';

export type Kind = 'LDS' | 'RDS' | 'CDS' | 'EDS';

export interface ClientSpec {
  index: number;
  id: string;
  namespace: string;
  /** The names the client dials (`xds:///<name>`): its LDS subscription. */
  listeners: string[];
}

/** What a client should see once a change reached it: a ClusterLoadAssignment's endpoint count, or a route's weights. */
export interface Watch {
  type: 'EDS' | 'RDS';
  name: string;
  expect: string;
}

export type ToChild =
  | { cmd: 'init'; port: number; clients: ClientSpec[]; clientsPerChannel: number }
  | { cmd: 'connect' }
  | { cmd: 'arm'; rep: number; watch: Watch[] }
  | { cmd: 'collect'; rep: number }
  | { cmd: 'names' }
  | { cmd: 'close' };

export type FromChild =
  | { ev: 'inited'; protoLoadMs: number }
  | { ev: 'connected'; streams: number; channels: number }
  | { ev: 'full'; client: number; startedAt: number; fullAt: number; responses: number }
  | { ev: 'ack'; rep: number; client: number; type: Kind; at: number; ok: boolean }
  | { ev: 'armed'; rep: number }
  | { ev: 'collected'; rep: number; received: number[]; responses: Record<Kind, number> }
  | { ev: 'names'; clients: { client: number; rds: string[]; cds: string[]; eds: string[] }[] }
  | { ev: 'error'; client: number; message: string }
  | { ev: 'closed'; cpuUserMs: number; cpuSystemMs: number; maxRssMB: number };

interface AnyMsg {
  type_url: string;
  value: Uint8Array;
}

interface DiscoveryResponse {
  version_info: string;
  resources: AnyMsg[];
  type_url: string;
  nonce: string;
}

interface DiscoveryRequest {
  version_info: string;
  node?: { id: string; cluster: string; metadata: { fields: Record<string, { stringValue: string }> } };
  resource_names: string[];
  type_url: string;
  response_nonce: string;
}

type AdsCtor = new (address: string, creds: grpc.ChannelCredentials, opts: grpc.ChannelOptions) => grpc.Client & {
  StreamAggregatedResources(): grpc.ClientDuplexStream<DiscoveryRequest, DiscoveryResponse>;
};

// Decoded shapes (protobufjs messages with the .proto field names; only the fields read here).
interface ListenerMsg {
  name: string;
  api_listener?: { api_listener?: AnyMsg };
}
interface HcmMsg {
  rds?: { route_config_name: string };
}
interface RouteMsg {
  route?: { cluster?: string; weighted_clusters?: { clusters: { name: string; weight?: { value: number } }[] } };
}
interface RouteConfigMsg {
  name: string;
  virtual_hosts: { routes: RouteMsg[] }[];
}
interface ClusterMsg {
  name: string;
  eds_cluster_config?: { service_name: string };
}
interface ClaMsg {
  cluster_name: string;
  endpoints: { lb_endpoints: unknown[] }[];
}

const now = (): number => performance.timeOrigin + performance.now();
const KIND: Record<string, Kind> = { [TYPE.listener]: 'LDS', [TYPE.route]: 'RDS', [TYPE.cluster]: 'CDS', [TYPE.endpoint]: 'EDS' };
const URL_OF: Record<Kind, string> = { LDS: TYPE.listener, RDS: TYPE.route, CDS: TYPE.cluster, EDS: TYPE.endpoint };
const NEXT: Partial<Record<Kind, Kind>> = { LDS: 'RDS', RDS: 'CDS', CDS: 'EDS' };

const send = (m: FromChild): void => {
  process.send?.(m);
};

let types: { listener: protobuf.Type; hcm: protobuf.Type; route: protobuf.Type; cluster: protobuf.Type; cla: protobuf.Type } | undefined;
let adsCtor: AdsCtor | undefined;
let armed: { rep: number; watch: Map<string, Watch> } | undefined;

function decode<T>(t: protobuf.Type, bytes: Uint8Array): T {
  return t.decode(bytes) as unknown as T;
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

class Client {
  private call: grpc.ClientDuplexStream<DiscoveryRequest, DiscoveryResponse> | undefined;
  private readonly names: Record<Kind, string[]> = { LDS: [], RDS: [], CDS: [], EDS: [] };
  private readonly acked: Record<Kind, { version: string; nonce: string }> = { LDS: { version: '', nonce: '' }, RDS: { version: '', nonce: '' }, CDS: { version: '', nonce: '' }, EDS: { version: '', nonce: '' } };
  /** listener → route config; route config → clusters (and the weights of its split routes); cluster → EDS name; EDS name → endpoint count. */
  private readonly listeners = new Map<string, string>();
  private readonly routes = new Map<string, { clusters: string[]; weights: string }>();
  private readonly clusters = new Map<string, string>();
  private readonly endpoints = new Map<string, number>();
  private startedAt = 0;
  private fullAt = 0;
  private responseCount = 0;
  /** Since the last arm: responses of each type. */
  sinceArm: Record<Kind, number> = { LDS: 0, RDS: 0, CDS: 0, EDS: 0 };

  constructor(readonly spec: ClientSpec) {
    this.names.LDS = [...spec.listeners].sort();
  }

  start(stub: InstanceType<AdsCtor>): void {
    this.startedAt = now();
    const call = stub.StreamAggregatedResources();
    this.call = call;
    call.on('data', (r: DiscoveryResponse) => {
      try {
        this.onResponse(r);
      } catch (e) {
        send({ ev: 'error', client: this.spec.index, message: (e as Error).message });
      }
    });
    call.on('error', (e: grpc.ServiceError) => {
      if (e.code !== grpc.status.CANCELLED) send({ ev: 'error', client: this.spec.index, message: e.message });
    });
    // google.protobuf.Value comes from proto-loader's built-in descriptors, whose field names are camelCase.
    call.write({
      version_info: '',
      node: { id: this.spec.id, cluster: 'xds-bench', metadata: { fields: { NAMESPACE: { stringValue: this.spec.namespace } } } },
      resource_names: this.names.LDS,
      type_url: TYPE.listener,
      response_nonce: '',
    });
  }

  close(): void {
    this.call?.cancel();
  }

  subscriptions(): { rds: string[]; cds: string[]; eds: string[] } {
    return { rds: this.names.RDS, cds: this.names.CDS, eds: this.names.EDS };
  }

  private onResponse(r: DiscoveryResponse): void {
    const kind = KIND[r.type_url];
    if (!kind || !types) return;
    this.responseCount++;
    this.sinceArm[kind]++;
    let ok = true;
    const watch = armed?.watch;
    // State of the world: a response carries every subscribed resource of its type.
    switch (kind) {
      case 'LDS':
        this.listeners.clear();
        for (const a of r.resources) {
          const l = decode<ListenerMsg>(types.listener, a.value);
          const hcm = l.api_listener?.api_listener ? decode<HcmMsg>(types.hcm, l.api_listener.api_listener.value) : undefined;
          if (hcm?.rds?.route_config_name) this.listeners.set(l.name, hcm.rds.route_config_name);
        }
        break;
      case 'RDS':
        this.routes.clear();
        for (const a of r.resources) {
          const rc = decode<RouteConfigMsg>(types.route, a.value);
          const clusters = new Set<string>();
          const weights: string[] = [];
          for (const vh of rc.virtual_hosts) {
            for (const route of vh.routes) {
              const wc = route.route?.weighted_clusters?.clusters;
              if (wc && wc.length > 0) {
                for (const c of wc) clusters.add(c.name);
                weights.push(wc.map((c) => c.weight?.value ?? 0).join('/'));
              } else if (route.route?.cluster) clusters.add(route.route.cluster);
            }
          }
          this.routes.set(rc.name, { clusters: [...clusters], weights: weights.join(',') });
          const w = watch?.get(`RDS ${rc.name}`);
          if (w && weights.join(',') !== w.expect) ok = false;
        }
        break;
      case 'CDS':
        this.clusters.clear();
        for (const a of r.resources) {
          const c = decode<ClusterMsg>(types.cluster, a.value);
          if (c.eds_cluster_config) this.clusters.set(c.name, c.eds_cluster_config.service_name || c.name);
        }
        break;
      case 'EDS':
        this.endpoints.clear();
        for (const a of r.resources) {
          const cla = decode<ClaMsg>(types.cla, a.value);
          let n = 0;
          for (const l of cla.endpoints) n += l.lb_endpoints.length;
          this.endpoints.set(cla.cluster_name, n);
          const w = watch?.get(`EDS ${cla.cluster_name}`);
          if (w && String(n) !== w.expect) ok = false;
        }
        break;
    }
    // ACK: same nonce, the version_info of the response, and the names the client wants now.
    this.acked[kind] = { version: r.version_info, nonce: r.nonce };
    this.write(kind);
    const at = now();
    if (armed) send({ ev: 'ack', rep: armed.rep, client: this.spec.index, type: kind, at, ok });
    // What this type now names downstream: subscribe to it (with the last ACKed version and nonce of that type).
    const next = NEXT[kind];
    if (next) {
      const want = this.want(next);
      if (!sameList(want, this.names[next])) {
        this.names[next] = want;
        this.write(next);
      }
    }
    if (this.fullAt === 0 && this.complete()) {
      this.fullAt = at;
      send({ ev: 'full', client: this.spec.index, startedAt: this.startedAt, fullAt: at, responses: this.responseCount });
    }
  }

  private write(kind: Kind): void {
    this.call?.write({ version_info: this.acked[kind].version, resource_names: this.names[kind], type_url: URL_OF[kind], response_nonce: this.acked[kind].nonce });
  }

  private want(kind: Kind): string[] {
    const out = new Set<string>();
    if (kind === 'RDS') for (const n of this.names.LDS) { const rc = this.listeners.get(n); if (rc) out.add(rc); }
    if (kind === 'CDS') for (const n of this.names.RDS) for (const c of this.routes.get(n)?.clusters ?? []) out.add(c);
    if (kind === 'EDS') for (const n of this.names.CDS) { const e = this.clusters.get(n); if (e) out.add(e); }
    return [...out].sort();
  }

  private complete(): boolean {
    return (
      this.names.LDS.every((n) => this.listeners.has(n)) &&
      this.names.RDS.length > 0 &&
      this.names.RDS.every((n) => this.routes.has(n)) &&
      sameList(this.want('RDS'), this.names.RDS) &&
      this.names.CDS.every((n) => this.clusters.has(n)) &&
      sameList(this.want('CDS'), this.names.CDS) &&
      this.names.EDS.every((n) => this.endpoints.has(n)) &&
      sameList(this.want('EDS'), this.names.EDS)
    );
  }
}

let clients: Client[] = [];
let stubs: InstanceType<AdsCtor>[] = [];

function init(port: number, specs: ClientSpec[], perChannel: number): void {
  const t0 = performance.now();
  const root = protoRoot();
  types = {
    listener: root.lookupType('envoy.config.listener.v3.Listener'),
    hcm: root.lookupType('envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager'),
    route: root.lookupType('envoy.config.route.v3.RouteConfiguration'),
    cluster: root.lookupType('envoy.config.cluster.v3.Cluster'),
    cla: root.lookupType('envoy.config.endpoint.v3.ClusterLoadAssignment'),
  };
  const def = protoLoader.loadSync('envoy/service/discovery/v3/ads.proto', { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true, includeDirs: PROTO_INCLUDE_DIRS });
  const pkg = grpc.loadPackageDefinition(def) as unknown as { envoy: { service: { discovery: { v3: { AggregatedDiscoveryService: AdsCtor } } } } };
  adsCtor = pkg.envoy.service.discovery.v3.AggregatedDiscoveryService;
  clients = specs.map((s) => new Client(s));
  // One channel (one HTTP/2 connection: a local subchannel pool keeps channels from sharing one) per `perChannel` clients.
  const nChannels = Math.ceil(specs.length / perChannel);
  stubs = [];
  for (let i = 0; i < nChannels; i++) stubs.push(new adsCtor(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1, 'grpc.max_receive_message_length': 64 * 1024 * 1024 }));
  send({ ev: 'inited', protoLoadMs: performance.now() - t0 });
}

process.on('message', (m: ToChild) => {
  switch (m.cmd) {
    case 'init':
      init(m.port, m.clients, m.clientsPerChannel);
      break;
    case 'connect': {
      const per = Math.ceil(clients.length / Math.max(1, stubs.length));
      clients.forEach((c, i) => c.start(stubs[Math.floor(i / per)] as InstanceType<AdsCtor>));
      send({ ev: 'connected', streams: clients.length, channels: stubs.length });
      break;
    }
    case 'arm':
      for (const c of clients) c.sinceArm = { LDS: 0, RDS: 0, CDS: 0, EDS: 0 };
      armed = { rep: m.rep, watch: new Map(m.watch.map((w) => [`${w.type} ${w.name}`, w])) };
      send({ ev: 'armed', rep: m.rep });
      break;
    case 'collect': {
      const responses: Record<Kind, number> = { LDS: 0, RDS: 0, CDS: 0, EDS: 0 };
      const received: number[] = [];
      for (const c of clients) {
        let any = 0;
        for (const k of ['LDS', 'RDS', 'CDS', 'EDS'] as const) {
          responses[k] += c.sinceArm[k];
          any += c.sinceArm[k];
        }
        if (any > 0) received.push(c.spec.index);
      }
      armed = undefined;
      send({ ev: 'collected', rep: m.rep, received, responses });
      break;
    }
    case 'names':
      send({ ev: 'names', clients: clients.map((c) => ({ client: c.spec.index, ...c.subscriptions() })) });
      break;
    case 'close': {
      for (const c of clients) c.close();
      for (const s of stubs) s.close();
      const cpu = process.cpuUsage();
      send({ ev: 'closed', cpuUserMs: cpu.user / 1000, cpuSystemMs: cpu.system / 1000, maxRssMB: process.resourceUsage().maxRSS / 1024 });
      setTimeout(() => process.exit(0), 50);
      break;
    }
  }
});
