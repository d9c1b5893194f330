// The Observer API's gRPC definitions (proto/observer/observer.proto and proto/flow/flow.proto, packages `observer`
// and `flow`), loaded once with @grpc/proto-loader, and the conversions between a Trellis Flow and its wire message.
// Messages keep the .proto field names; enums travel by name, 64-bit numbers as JS numbers, oneofs are named.
import { dirname, join } from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import type { Flow, FlowPolicy } from './flow.ts';

const require = createRequire(import.meta.url);
const PROTO_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'proto');

export const LOADER_OPTIONS = { keepCase: true, longs: Number, enums: String, defaults: true, oneofs: true, includeDirs: [PROTO_DIR, dirname(require.resolve('protobufjs/package.json'))] };

let service: grpc.ServiceDefinition | undefined;
let clientCtor: grpc.ServiceClientConstructor | undefined;

function load(): void {
  const def = loadSync('observer/observer.proto', LOADER_OPTIONS);
  const pkg = grpc.loadPackageDefinition(def) as unknown as { observer: { Observer: grpc.ServiceClientConstructor } };
  clientCtor = pkg.observer.Observer;
  service = clientCtor.service;
}

export function observerService(): grpc.ServiceDefinition {
  if (!service) load();
  return service as grpc.ServiceDefinition;
}

export function observerClientConstructor(): grpc.ServiceClientConstructor {
  if (!clientCtor) load();
  return clientCtor as grpc.ServiceClientConstructor;
}

export interface Timestamp {
  seconds: number;
  nanos: number;
}

/** `2026-11-22T08:00:00.123456789Z` (or any RFC 3339 time) as nanoseconds since the epoch; NaN when not a time. */
export function timeNs(rfc3339: string): bigint | undefined {
  const m = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)$/.exec(rfc3339);
  if (!m) return undefined;
  const ms = Date.parse(`${m[1] ?? ''}${m[3] ?? 'Z'}`);
  if (Number.isNaN(ms)) return undefined;
  return BigInt(ms) * 1_000_000n + BigInt((m[2] ?? '').padEnd(9, '0'));
}

export function timestampOf(ns: bigint): Timestamp {
  return { seconds: Number(ns / 1_000_000_000n), nanos: Number(ns % 1_000_000_000n) };
}

export function nsOf(ts: Timestamp | null | undefined): bigint | undefined {
  if (!ts) return undefined;
  return BigInt(Math.trunc(Number(ts.seconds))) * 1_000_000_000n + BigInt(Math.trunc(ts.nanos ?? 0));
}

/** RFC 3339 with nine fraction digits, as Flow.time is written. */
export function rfc3339Of(ns: bigint): string {
  const s = ns / 1_000_000_000n;
  return `${new Date(Number(s) * 1000).toISOString().slice(0, 19)}.${String(ns % 1_000_000_000n).padStart(9, '0')}Z`;
}

/** A Flow as the `flow.Flow` message (a plain object proto-loader serializes). */
export function flowToProto(f: Flow): Record<string, unknown> {
  const t = f.trellis;
  return {
    time: timestampOf(timeNs(f.time) ?? 0n),
    uuid: f.uuid,
    verdict: f.verdict,
    drop_reason_desc: f.drop_reason_desc ?? 'DROP_REASON_UNKNOWN',
    auth_type: f.auth_type ?? 'DISABLED',
    IP: f.IP,
    l4: f.l4,
    source: f.source,
    destination: f.destination,
    Type: f.Type,
    node_name: f.node_name,
    l7: f.l7,
    source_service: f.source_service,
    destination_service: f.destination_service,
    traffic_direction: f.traffic_direction,
    is_reply: { value: f.is_reply },
    Summary: f.Summary,
    egress_allowed_by: f.egress_allowed_by ?? [],
    ingress_allowed_by: f.ingress_allowed_by ?? [],
    egress_denied_by: f.egress_denied_by ?? [],
    ingress_denied_by: f.ingress_denied_by ?? [],
    trellis: t ? { ...t, grpc_status: t.grpc_status === undefined ? undefined : { value: t.grpc_status } } : undefined,
  };
}

type Msg = Record<string, unknown> & { [k: string]: unknown };

function policies(v: unknown): FlowPolicy[] | undefined {
  const list = (v as FlowPolicy[] | undefined) ?? [];
  return list.length === 0 ? undefined : list.map((p) => ({ name: p.name, namespace: p.namespace, labels: [...p.labels], revision: Number(p.revision), kind: p.kind }));
}

/** A decoded `flow.Flow` message (proto-loader objects, defaults on) back into a Flow. */
export function flowFromProto(m: Msg): Flow {
  const l4 = (m.l4 ?? {}) as Flow['l4'] & { protocol?: string };
  const l7 = m.l7 as (Flow['l7'] & { record?: string }) | null;
  const trellis = m.trellis as (Record<string, unknown> & { grpc_status?: { value: number } | null }) | null;
  const f: Flow = {
    time: rfc3339Of(nsOf(m.time as Timestamp) ?? 0n),
    uuid: (m.uuid as string | undefined) ?? '',
    verdict: m.verdict as Flow['verdict'],
    IP: m.IP as Flow['IP'],
    l4: l4.TCP ? { TCP: l4.TCP } : l4.UDP ? { UDP: l4.UDP } : {},
    source: m.source as Flow['source'],
    destination: m.destination as Flow['destination'],
    Type: m.Type as Flow['Type'],
    node_name: (m.node_name as string | undefined) ?? '',
    traffic_direction: m.traffic_direction as Flow['traffic_direction'],
    is_reply: (m.is_reply as { value?: boolean } | null)?.value === true,
    Summary: (m.Summary as string | undefined) ?? '',
  };
  if (m.drop_reason_desc && m.drop_reason_desc !== 'DROP_REASON_UNKNOWN') f.drop_reason_desc = m.drop_reason_desc as Flow['drop_reason_desc'];
  if (m.auth_type && m.auth_type !== 'DISABLED') f.auth_type = m.auth_type as Flow['auth_type'];
  if (m.source_service) f.source_service = m.source_service as Flow['source_service'];
  if (m.destination_service) f.destination_service = m.destination_service as Flow['destination_service'];
  if (l7) f.l7 = { type: l7.type, latency_ns: Number(l7.latency_ns), ...(l7.http ? { http: l7.http } : {}) };
  for (const k of ['egress_allowed_by', 'ingress_allowed_by', 'egress_denied_by', 'ingress_denied_by'] as const) {
    const p = policies(m[k]);
    if (p) f[k] = p;
  }
  if (trellis) {
    const t: NonNullable<Flow['trellis']> = {};
    for (const k of ['rule', 'transport', 'route', 'upstream', 'response_flags'] as const) if (trellis[k]) (t as Record<string, unknown>)[k] = trellis[k];
    if (trellis.bytes_sent) t.bytes_sent = Number(trellis.bytes_sent);
    if (trellis.bytes_received) t.bytes_received = Number(trellis.bytes_received);
    if (trellis.grpc_status) t.grpc_status = trellis.grpc_status.value;
    f.trellis = t;
  }
  return f;
}
