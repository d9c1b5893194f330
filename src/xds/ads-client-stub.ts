// The AggregatedDiscoveryService client stub (Envoy's ads.proto through proto-loader) and the node message the
// xDS client sends on the first request of each stream.
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { AdsClientError, type DeltaResponse, type SotwResponse } from './ads-client-state.ts';
import { PROTO_INCLUDE_DIRS } from './protos.ts';

export type Message = Record<string, unknown>;
export type AdsStub = grpc.Client & {
  StreamAggregatedResources(): grpc.ClientDuplexStream<Message, SotwResponse>;
  DeltaAggregatedResources(): grpc.ClientDuplexStream<Message, DeltaResponse>;
};
type AdsStubCtor = new (target: string, creds: grpc.ChannelCredentials, options: grpc.ChannelOptions) => AdsStub;

let stubCtor: AdsStubCtor | undefined;

export function adsStubCtor(): AdsStubCtor {
  if (stubCtor) return stubCtor;
  const def = protoLoader.loadSync('envoy/service/discovery/v3/ads.proto', { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true, includeDirs: PROTO_INCLUDE_DIRS });
  const pkg = grpc.loadPackageDefinition(def) as unknown as { envoy: { service: { discovery: { v3: { AggregatedDiscoveryService: AdsStubCtor } } } } };
  stubCtor = pkg.envoy.service.discovery.v3.AggregatedDiscoveryService;
  return stubCtor;
}

/** The node as DiscoveryRequest.node: metadata becomes a google.protobuf.Struct. */
export function nodeMessage(node: { id: string; cluster?: string; metadata?: Record<string, unknown> }): Message {
  return { id: node.id, cluster: node.cluster ?? '', metadata: toStruct(node.metadata ?? {}, 0), user_agent_name: 'trellis' };
}

/** A plain object as a google.protobuf.Struct (the loader's Value uses camelCase field names). */
function toStruct(obj: Record<string, unknown>, depth: number): { fields: Record<string, unknown> } {
  const fields: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(obj)) fields[k] = toValue(v, depth + 1);
  return { fields };
}

function toValue(v: unknown, depth: number): Record<string, unknown> {
  if (depth > 32) throw new AdsClientError('bad-node', 'node metadata nests deeper than 32 levels');
  if (v === null || v === undefined) return { nullValue: 'NULL_VALUE' };
  if (typeof v === 'string') return { stringValue: v };
  if (typeof v === 'number') return { numberValue: v };
  if (typeof v === 'boolean') return { boolValue: v };
  if (Array.isArray(v)) return { listValue: { values: v.map((x) => toValue(x, depth + 1)) } };
  if (typeof v === 'object') return { structValue: toStruct(v as Record<string, unknown>, depth) };
  throw new AdsClientError('bad-node', `node metadata: a ${typeof v} cannot be carried in a Struct`);
}
