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
