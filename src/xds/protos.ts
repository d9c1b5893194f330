// Envoy's xDS v3 protos (shipped inside @grpc/grpc-js-xds), loaded once: message types for encoding
// resources, and the ADS service definition for the server.
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';

const require = createRequire(import.meta.url);
const XDS_ROOT = join(dirname(require.resolve('@grpc/grpc-js-xds/package.json')), 'deps');

/** Where the .proto files live: Envoy's API, the xDS core types, googleapis and protoc-gen-validate. */
export const PROTO_INCLUDE_DIRS = [
  ...['envoy-api', 'xds', 'googleapis', 'protoc-gen-validate'].map((d) => join(XDS_ROOT, d)),
  // google/protobuf/descriptor.proto and friends ship with protobufjs itself.
  dirname(require.resolve('protobufjs/package.json')),
  // Trellis' own xDS types (trellis/policy/v1/policy.proto), two levels up from src/xds or dist/xds.
  join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'proto'),
];

/** Every file Trellis encodes resources from. */
export const RESOURCE_PROTO_FILES = [
  'envoy/service/discovery/v3/ads.proto',
  'envoy/config/listener/v3/listener.proto',
  'envoy/config/route/v3/route.proto',
  'envoy/config/cluster/v3/cluster.proto',
  'envoy/config/endpoint/v3/endpoint.proto',
  'envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto',
  'envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy.proto',
  'envoy/extensions/filters/http/router/v3/router.proto',
  'envoy/extensions/filters/http/fault/v3/fault.proto',
  'envoy/extensions/filters/http/rbac/v3/rbac.proto',
  'envoy/extensions/transport_sockets/tls/v3/tls.proto',
  'envoy/extensions/upstreams/http/v3/http_protocol_options.proto',
  'envoy/extensions/load_balancing_policies/ring_hash/v3/ring_hash.proto',
  'envoy/extensions/load_balancing_policies/round_robin/v3/round_robin.proto',
  'envoy/extensions/load_balancing_policies/least_request/v3/least_request.proto',
  'envoy/extensions/load_balancing_policies/random/v3/random.proto',
  'envoy/extensions/load_balancing_policies/wrr_locality/v3/wrr_locality.proto',
  'envoy/extensions/load_balancing_policies/pick_first/v3/pick_first.proto',
  // Trellis proxies (sidecar-resources.ts): listener filters, rate limits, typed structs, the policy snapshot.
  'envoy/extensions/filters/listener/tls_inspector/v3/tls_inspector.proto',
  'envoy/extensions/filters/listener/http_inspector/v3/http_inspector.proto',
  'envoy/extensions/filters/http/local_ratelimit/v3/local_rate_limit.proto',
  'xds/type/v3/typed_struct.proto',
  'trellis/policy/v1/policy.proto',
];

let root: protobuf.Root | undefined;

/** The protobufjs root with field names kept as in the .proto files (snake_case). */
export function protoRoot(): protobuf.Root {
  if (root) return root;
  const r = new protobuf.Root();
  r.resolvePath = (_origin, target) => {
    for (const dir of PROTO_INCLUDE_DIRS) {
      const p = join(dir, target);
      try {
        require.resolve(p);
        return p;
      } catch {
        // try the next include directory
      }
    }
    return target;
  };
  r.loadSync(RESOURCE_PROTO_FILES, { keepCase: true });
  r.resolveAll();
  root = r;
  return r;
}

export class ProtoError extends Error {
  readonly code = 'proto';
}

/** Encodes a plain object (proto field names; nested Any as `{'@type': url, ...}`) into a google.protobuf.Any. */
export function encodeAny(typeUrl: string, value: Record<string, unknown>): { type_url: string; value: Buffer } {
  const type = protoRoot().lookupType(typeUrl.slice(typeUrl.lastIndexOf('/') + 1));
  // fromObject (not verify, which wants enum numbers) accepts enum names as the .proto spells them.
  let msg;
  try {
    msg = type.fromObject(value);
  } catch (e) {
    throw new ProtoError(`${typeUrl}: ${(e as Error).message}`);
  }
  return { type_url: typeUrl, value: Buffer.from(type.encode(msg).finish()) };
}

/** Decodes an Any back into a plain object (for config dumps and tests). */
export function decodeAny(any: { type_url: string; value: Uint8Array }): Record<string, unknown> {
  const type = protoRoot().lookupType(any.type_url.slice(any.type_url.lastIndexOf('/') + 1));
  return type.toObject(type.decode(any.value), { longs: String, enums: String, defaults: false, json: true });
}
