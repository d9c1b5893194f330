// Trellis' own HTTP filters on the filter seam: the L7 policy filter (PolicyEnforcer.decideRequest), Envoy's fault
// filter (Route.fault: abort with an HTTP or gRPC status, fixed delay, each with a percentage) and Envoy's local
// rate limit (a token bucket per listener, or per route), refilled lazily on use so no timer runs.
import type { ConnectionInfo, PolicyEnforcer, PolicyVerdict, RequestFacts, UpstreamHost } from '../contracts.ts';
import type { Endpoint } from '../../policy/endpoint.ts';
import type { Route } from '../../routing/model.ts';
import { httpStatusForGrpc } from './grpc.ts';
import type { FilterRequest, HttpFilter, LocalReply } from './http-filter.ts';

export function policyFilter(enforcer: PolicyEnforcer): HttpFilter {
  return {
    name: 'trellis.policy',
    onRequest(req: FilterRequest): LocalReply | undefined {
      // Outbound: the source's egress rules are about the upstream pod, known only once balancing has picked it, so
      // each try is decided there (egressVerdict), not against the outbound listener's own address.
      if (req.connection.listener.direction === 'outbound') return undefined;
      const v = enforcer.decideRequest(req.connection, req);
      req.policyVerdict = v;
      if (v.allowed) return undefined;
      return denialReply(v);
    },
  };
}

/** The local reply for a denied request: 403 (401 for a bad JWT) naming the policy. */
export function denialReply(v: PolicyVerdict): LocalReply {
  return { status: v.httpStatus ?? 403, body: v.message, reason: 'UAEX', policy: v.policy, rule: v.rule };
}

/** Outbound: the source's egress (Cilium L7 rules included) for a request to the upstream host balancing picked. */
export function egressVerdict(enforcer: PolicyEnforcer, conn: ConnectionInfo, req: RequestFacts, host: UpstreamHost): { verdict: PolicyVerdict; destination: Endpoint } {
  const destination = (host.pod !== undefined ? enforcer.endpointForPod(host.pod) : undefined) ?? enforcer.endpointForIp(host.address);
  return { verdict: enforcer.decideRequest(conn, req, { destination, port: host.port }), destination };
}

/** Envoy's fault filter. `random` is injectable so tests can pin the percentages. */
export function faultFilter(random: () => number = Math.random): HttpFilter {
  return {
    name: 'envoy.filters.http.fault',
    onRequest(req: FilterRequest): void | LocalReply | Promise<void | LocalReply> {
      const fault = req.route?.fault;
      if (!fault) return undefined;
      const abort = fault.abort && random() * 100 < fault.abort.percent ? fault.abort : undefined;
      const reply: LocalReply | undefined = abort
        ? {
            status: abort.httpStatus ?? (abort.grpcStatus !== undefined ? httpStatusForGrpc(abort.grpcStatus) : 503),
            grpcStatus: abort.grpcStatus,
            body: 'fault filter abort',
            reason: 'FI',
          }
        : undefined;
      const delay = fault.delay && fault.delay.fixedDelayMs > 0 && random() * 100 < fault.delay.percent ? fault.delay.fixedDelayMs : 0;
      if (delay === 0) return reply;
      return new Promise((resolve) => setTimeout(resolve, delay, reply));
    },
  };
}

interface Bucket {
  tokens: number;
  last: number;
}

/**
 * Envoy's local_ratelimit: `maxTokens`, `tokensPerFill` every `fillIntervalMs`; 429 with `x-envoy-ratelimited` and
 * the configured `responseHeaders` (Envoy's response_headers_to_add).
 */
export function localRateLimitFilter(
  cfg: { maxTokens: number; tokensPerFill: number; fillIntervalMs: number; perRoute: boolean; responseHeaders?: Record<string, string> },
  now: () => number = performance.now.bind(performance),
): HttpFilter {
  const shared: Bucket = { tokens: cfg.maxTokens, last: now() };
  const perRoute = new WeakMap<Route, Bucket>();
  const take = (b: Bucket): boolean => {
    const t = now();
    const fills = Math.floor((t - b.last) / cfg.fillIntervalMs);
    if (fills > 0) {
      b.tokens = Math.min(cfg.maxTokens, b.tokens + fills * cfg.tokensPerFill);
      b.last += fills * cfg.fillIntervalMs;
    }
    if (b.tokens < 1) return false;
    b.tokens--;
    return true;
  };
  const limited: Record<string, string> = { ...cfg.responseHeaders, 'x-envoy-ratelimited': 'true' };
  return {
    name: 'envoy.filters.http.local_ratelimit',
    onRequest(req: FilterRequest): LocalReply | undefined {
      let b = shared;
      if (cfg.perRoute) {
        if (!req.route) return undefined;
        let rb = perRoute.get(req.route);
        if (!rb) {
          rb = { tokens: cfg.maxTokens, last: now() };
          perRoute.set(req.route, rb);
        }
        b = rb;
      }
      if (take(b)) return undefined;
      return { status: 429, body: 'local_rate_limited', reason: 'RL', headers: limited };
    },
  };
}
