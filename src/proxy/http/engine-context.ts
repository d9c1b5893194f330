// What one request needs from the engine around it: the current config per listener (compiled routes and filter
// chain), the cluster manager, the upstream pool, the drain state, and where finished requests are reported.
import type { ClusterManager, ConnectionInfo, PolicyEnforcer, PolicyVerdict } from '../contracts.ts';
import type { Endpoint } from '../../policy/endpoint.ts';
import type { Route } from '../../routing/model.ts';
import type { ListenerConfig } from '../proxy-config.ts';
import type { HttpFilter } from './http-filter.ts';
import type { RouteTable } from './route-table.ts';
import type { UpstreamPool } from './upstream-pool.ts';

/** One listener under one config: its compiled route table and filter chain. */
export interface ListenerState {
  readonly listener: ListenerConfig;
  readonly table: RouteTable | undefined;
  readonly filters: readonly HttpFilter[];
  /** The filters that look at responses, in chain order. */
  readonly responseFilters: readonly HttpFilter[];
}

/** A downstream connection as the engine tracks it. */
export interface ConnState {
  readonly info: ConnectionInfo;
  /** Arrived over TLS (x-forwarded-proto https). */
  readonly tls: boolean;
}

/** The facts of a finished request that flows and metrics need. */
export interface RequestRecord {
  readonly conn: ConnState;
  readonly protocol: 'HTTP/1.1' | 'HTTP/2';
  readonly grpc: boolean;
  readonly method: string;
  readonly path: string;
  readonly authority: string;
  readonly startNs: bigint;
  /** Response status (0 when the client left before any). */
  readonly status: number;
  readonly grpcStatus: number | undefined;
  /** Envoy response flags (`-` when none): NR, UH, UO, UF, UT, URX, UR, DC, RL, FI, UAEX, DI. */
  readonly flags: string;
  readonly bytesIn: number;
  readonly bytesOut: number;
  readonly routeName: string | undefined;
  readonly clusterName: string | undefined;
  readonly upstream: string | undefined;
  readonly verdict: PolicyVerdict | undefined;
  /** Outbound: the upstream endpoint the (last) try went to, which flows name as the server. */
  readonly destination?: Endpoint | undefined;
  /** The local reply's policy and rule when a filter denied the request. */
  readonly denial: { policy?: { kind: string; namespace: string; name: string }; rule?: string; reason: string } | undefined;
  readonly route: Route | undefined;
  /** HTTP/2: the client reset the stream before its response was complete (the rapid-reset guard counts these). */
  readonly peerReset: boolean;
}

export interface EngineContext {
  readonly clusters: ClusterManager;
  /** Decides outbound requests' egress per try (egressVerdict). */
  readonly policy: PolicyEnforcer;
  readonly pool: UpstreamPool;
  readonly draining: boolean;
  listenerState(name: string): ListenerState | undefined;
  complete(rec: RequestRecord): void;
}
