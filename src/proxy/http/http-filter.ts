// The HTTP filter seam, in the spirit of Envoy's HTTP filters and EnvoyFilter: every request passes a chain of
// filters before the router. Trellis' own policy, fault and rate-limit filters use it, and so can a user's
// TypeScript module (`trellis.extension`), loaded once per config and called per request.
import type { ConnectionInfo, PolicyVerdict } from '../contracts.ts';
import type { Route } from '../../routing/model.ts';
import type { ListenerConfig } from '../proxy-config.ts';

/** The request as filters see it. Header names are lower case; filters may edit `headers` in place. */
export interface FilterRequest {
  readonly method: string;
  /** Path with query string. */
  readonly path: string;
  readonly authority: string;
  readonly protocol: 'HTTP/1.1' | 'HTTP/2';
  /** `content-type: application/grpc…`: local replies become gRPC statuses. */
  readonly grpc: boolean;
  headers: Record<string, string | string[] | undefined>;
  readonly connection: ConnectionInfo;
  /** The route the router matched (filters run after matching, so per-route config applies), if any. */
  readonly route: Route | undefined;
  /** Set by the policy filter: the L7 verdict, so that flows name the policy that allowed or denied the request. */
  policyVerdict?: PolicyVerdict;
}

/** A reply the proxy sends itself, without reaching the upstream. */
export interface LocalReply {
  /** HTTP status; for gRPC requests the engine sends HTTP 200 with `grpcStatus` in trailers-only form. */
  status: number;
  /** gRPC status code for gRPC requests (default: mapped from `status`, as Envoy maps 403 → 7, 429 → 14, 503 → 14). */
  grpcStatus?: number;
  /** Short text body (HTTP) or grpc-message (gRPC). */
  body: string;
  headers?: Record<string, string>;
  /** Why, for flows and metrics: e.g. `policy-denied`, `rate-limited`, `fault-abort` (Envoy response flags: UAEX, RL, FI). */
  reason: string;
  /** The policy that denied, for flows. */
  policy?: { kind: string; namespace: string; name: string };
  rule?: string;
}

export interface FilterResponse {
  readonly status: number;
  headers: Record<string, string | string[] | undefined>;
}

/**
 * One filter instance serves one listener for the life of one config. `onRequest` returns nothing to continue,
 * a LocalReply to stop the chain, or a promise of either (e.g. a fault delay). Filters must not buffer bodies.
 */
export interface HttpFilter {
  readonly name: string;
  onRequest(req: FilterRequest): void | LocalReply | Promise<void | LocalReply>;
  /** Called with the upstream (or local) response headers before they go downstream. */
  onResponse?(req: FilterRequest, res: FilterResponse): void;
  /** Releases timers and state when the config that made it is replaced. */
  close?(): void;
}

/** What a `trellis.extension` module must export as its default: a factory called once per listener and config. */
export type HttpFilterFactory = (config: Record<string, unknown>, listener: ListenerConfig) => HttpFilter;
