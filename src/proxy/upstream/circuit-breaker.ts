// Per-cluster circuit breakers as Envoy counts them: connections, pending requests, active requests and active
// retries, each a counter with a limit, plus a retry budget proportional to the cluster's load.
import type { CircuitBreakers } from '../../routing/model.ts';

/** Envoy's defaults when a threshold is unset (config.cluster.v3.CircuitBreakers.Thresholds). */
export const DEFAULT_CIRCUIT_BREAKERS: Readonly<Required<CircuitBreakers>> = {
  maxConnections: 1024,
  maxPendingRequests: 1024,
  maxRequests: 1024,
  maxRetries: 3,
};

/** Envoy's retry_budget defaults: 20% of active plus pending requests, never fewer than 3 concurrent retries. */
export const RETRY_BUDGET_PERCENT = 20;
export const RETRY_BUDGET_MIN_CONCURRENCY = 3;

/** Overflow counters, named as Envoy's cluster stats. */
export interface CircuitBreakerStats {
  upstream_cx_active: number;
  upstream_rq_active: number;
  upstream_rq_pending_active: number;
  upstream_rq_retry_active: number;
  upstream_cx_overflow: number;
  upstream_rq_pending_overflow: number;
  upstream_rq_overflow: number;
  upstream_rq_retry_overflow: number;
}

/**
 * One cluster's breakers. Every `tryBegin*` that returns true must be matched by one `end*`; an unmatched `end*`
 * never drives a counter below zero. Limits can change with a config update while the counters carry on.
 *
 * Retries: when `maxRetries` is set, a retry needs both `active retries < maxRetries` and the budget. When it is
 * unset, the budget alone decides (as Envoy ignores max_retries once a retry_budget is configured), so that retries
 * scale with load instead of stopping at Envoy's fixed default of 3.
 */
export class CircuitBreaker {
  private limits: Required<CircuitBreakers> = { ...DEFAULT_CIRCUIT_BREAKERS };
  private explicitMaxRetries: number | undefined;
  private connections = 0;
  private pending = 0;
  private requests = 0;
  private retries = 0;
  private cxOverflow = 0;
  private pendingOverflow = 0;
  private rqOverflow = 0;
  private retryOverflow = 0;

  constructor(config?: CircuitBreakers) {
    this.configure(config);
  }

  configure(config: CircuitBreakers | undefined): void {
    this.limits = {
      maxConnections: config?.maxConnections ?? DEFAULT_CIRCUIT_BREAKERS.maxConnections,
      maxPendingRequests: config?.maxPendingRequests ?? DEFAULT_CIRCUIT_BREAKERS.maxPendingRequests,
      maxRequests: config?.maxRequests ?? DEFAULT_CIRCUIT_BREAKERS.maxRequests,
      maxRetries: config?.maxRetries ?? DEFAULT_CIRCUIT_BREAKERS.maxRetries,
    };
    this.explicitMaxRetries = config?.maxRetries;
  }

  tryBeginConnection(): boolean {
    if (this.connections >= this.limits.maxConnections) {
      this.cxOverflow++;
      return false;
    }
    this.connections++;
    return true;
  }

  endConnection(): void {
    if (this.connections > 0) this.connections--;
  }

  tryBeginPending(): boolean {
    if (this.pending >= this.limits.maxPendingRequests) {
      this.pendingOverflow++;
      return false;
    }
    this.pending++;
    return true;
  }

  endPending(): void {
    if (this.pending > 0) this.pending--;
  }

  tryBeginRequest(): boolean {
    if (this.requests >= this.limits.maxRequests) {
      this.rqOverflow++;
      return false;
    }
    this.requests++;
    return true;
  }

  endRequest(): void {
    if (this.requests > 0) this.requests--;
  }

  /** How many retries may be in flight at once right now. */
  retryLimit(): number {
    const budget = Math.max(RETRY_BUDGET_MIN_CONCURRENCY, Math.floor(((this.requests + this.pending) * RETRY_BUDGET_PERCENT) / 100));
    return this.explicitMaxRetries === undefined ? budget : Math.min(this.explicitMaxRetries, budget);
  }

  tryBeginRetry(): boolean {
    if (this.retries >= this.retryLimit()) {
      this.retryOverflow++;
      return false;
    }
    this.retries++;
    return true;
  }

  endRetry(): void {
    if (this.retries > 0) this.retries--;
  }

  stats(): CircuitBreakerStats {
    return {
      upstream_cx_active: this.connections,
      upstream_rq_active: this.requests,
      upstream_rq_pending_active: this.pending,
      upstream_rq_retry_active: this.retries,
      upstream_cx_overflow: this.cxOverflow,
      upstream_rq_pending_overflow: this.pendingOverflow,
      upstream_rq_overflow: this.rqOverflow,
      upstream_rq_retry_overflow: this.retryOverflow,
    };
  }
}
