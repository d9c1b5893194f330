// The dns.v1 and grpc.health.v1 contracts, loaded with @grpc/proto-loader, and their messages as TypeScript types.
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { fileURLToPath } from 'node:url';

export interface RecordMsg {
  name: string;
  type: string;
  ttl: number;
  data: string;
}
export interface ZoneMsg {
  name: string;
  serial: number;
  recordCount: number;
}
export interface ListZonesResponse {
  zones: ZoneMsg[];
}
export interface GetZoneRequest {
  zone: string;
  batchSize?: number;
}
export interface GetZoneResponse {
  zone: ZoneMsg | null;
  records: RecordMsg[];
}
export type ChangeOp = 'OP_UNSPECIFIED' | 'UPSERT' | 'REPLACE' | 'DELETE';
export interface RecordChangeMsg {
  op: ChangeOp;
  record: RecordMsg | null;
}
export interface UpsertRecordsRequest {
  zone: string;
  changes: RecordChangeMsg[];
}
export interface UpsertRecordsResponse {
  zone: ZoneMsg | null;
  upserted: number;
  deleted: number;
  created: boolean;
}
export interface DeleteZoneResponse {
  zone: string;
  serial: number;
}
export type ChangeKind = 'KIND_UNSPECIFIED' | 'EXISTING' | 'CREATED' | 'UPDATED' | 'DELETED';
export interface ZoneChangeMsg {
  zone: string;
  serial: number;
  kind: ChangeKind;
}
export interface PushHeader {
  zone: string;
  serial: number;
  deleted: boolean;
  recordCount: number;
}
export interface PushZoneRequest {
  header?: PushHeader | null;
  records?: { records: RecordMsg[] } | null;
  item?: 'header' | 'records';
}
export interface PushZoneResponse {
  zone: string;
  serial: number;
  applied: boolean;
  recordCount: number;
  edgeVersion: string;
  edgePod: string;
}
export type ServingStatus = 'UNKNOWN' | 'SERVING' | 'NOT_SERVING' | 'SERVICE_UNKNOWN';

const PROTO_DIR = fileURLToPath(new URL('../../proto', import.meta.url));

const OPTIONS: protoLoader.Options = { keepCase: false, longs: Number, enums: String, defaults: true, oneofs: true, includeDirs: [PROTO_DIR] };

const loaded = grpc.loadPackageDefinition(protoLoader.loadSync(['dns/v1/zone.proto', 'grpc/health/v1/health.proto'], OPTIONS)) as unknown as {
  dns: { v1: { ZoneService: grpc.ServiceClientConstructor; EdgeService: grpc.ServiceClientConstructor } };
  grpc: { health: { v1: { Health: grpc.ServiceClientConstructor } } };
};

export const ZoneServiceClient = loaded.dns.v1.ZoneService;
export const EdgeServiceClient = loaded.dns.v1.EdgeService;
export const HealthClient = loaded.grpc.health.v1.Health;

/** Full method paths, as the mesh's policies name them. */
export const METHODS = {
  listZones: '/dns.v1.ZoneService/ListZones',
  getZone: '/dns.v1.ZoneService/GetZone',
  upsertRecords: '/dns.v1.ZoneService/UpsertRecords',
  deleteZone: '/dns.v1.ZoneService/DeleteZone',
  watchZones: '/dns.v1.ZoneService/WatchZones',
  pushZone: '/dns.v1.EdgeService/PushZone',
  healthCheck: '/grpc.health.v1.Health/Check',
} as const;

export type UnaryCallback<T> = (err: grpc.ServiceError | null, res?: T) => void;

/** The client methods of dns.v1.ZoneService, always called with metadata and options. */
export interface ZoneServiceApi extends grpc.Client {
  ListZones(req: object, md: grpc.Metadata, opts: grpc.CallOptions, cb: UnaryCallback<ListZonesResponse>): grpc.ClientUnaryCall;
  GetZone(req: GetZoneRequest, md: grpc.Metadata, opts: grpc.CallOptions): grpc.ClientReadableStream<GetZoneResponse>;
  UpsertRecords(md: grpc.Metadata, opts: grpc.CallOptions, cb: UnaryCallback<UpsertRecordsResponse>): grpc.ClientWritableStream<UpsertRecordsRequest>;
  DeleteZone(req: { zone: string }, md: grpc.Metadata, opts: grpc.CallOptions, cb: UnaryCallback<DeleteZoneResponse>): grpc.ClientUnaryCall;
  WatchZones(req: { sendInitial: boolean }, md: grpc.Metadata, opts: grpc.CallOptions): grpc.ClientReadableStream<ZoneChangeMsg>;
}

export interface EdgeServiceApi extends grpc.Client {
  PushZone(md: grpc.Metadata, opts: grpc.CallOptions, cb: UnaryCallback<PushZoneResponse>): grpc.ClientWritableStream<PushZoneRequest>;
}

export interface HealthApi extends grpc.Client {
  Check(req: { service: string }, md: grpc.Metadata, opts: grpc.CallOptions, cb: UnaryCallback<{ status: ServingStatus }>): grpc.ClientUnaryCall;
}

export function zoneServiceClient(address: string, options: grpc.ChannelOptions = {}): ZoneServiceApi {
  return new ZoneServiceClient(address, grpc.credentials.createInsecure(), options) as unknown as ZoneServiceApi;
}

export function edgeServiceClient(address: string, options: grpc.ChannelOptions = {}): EdgeServiceApi {
  return new EdgeServiceClient(address, grpc.credentials.createInsecure(), options) as unknown as EdgeServiceApi;
}

export function healthClient(address: string, options: grpc.ChannelOptions = {}): HealthApi {
  return new HealthClient(address, grpc.credentials.createInsecure(), options) as unknown as HealthApi;
}
