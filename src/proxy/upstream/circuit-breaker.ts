// Per-cluster circuit breakers as Envoy counts them: connections, pending requests, active requests and active
// retries, each a counter with a limit, plus a retry budget proportional to the cluster's recent load.
import type { CircuitBreakers } from '../../routing/model.ts';

/** Envoy's defaults when a threshold is unset (config.cluster.v3.CircuitBreakers.Thresholds). */
export const DEFAULT_CIRCUIT_BREAKERS: Readonly<Required<CircuitBreakers>> = {
  maxConnections: 1024,
  maxPendingRequests: 1024,
  maxRequests: 1024,
  maxRetries: 3,
};

/**
 * The retry budget, as Linkerd and Finagle keep one: over a sliding window, retries may number 20% of the request
 * attempts, plus 10 retries a second whatever the load. A budget over time rather than over concurrency (Envoy's
 * retry_budget) absorbs the burst a dying host causes, when all its requests in flight (a third of them, with three
 * hosts) fail at the same instant; a cluster failing every request still cannot multiply its load by more than 1.25.
 */
export const RETRY_BUDGET_PERCENT = 20;
export const RETRY_BUDGET_MIN_PER_SECOND = 10;
export const RETRY_BUDGET_WINDOW_SECONDS = 10;

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
 * unset, the budget alone decides (Istio's maxRetries default is unlimited), so that retries scale with load instead
 * of stopping at Envoy's fixed default of 3.
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
  /** The budget's window: request attempts and retries per second, a ring indexed by the second. */
  private readonly attemptSlots = new Array<number>(RETRY_BUDGET_WINDOW_SECONDS).fill(0);
  private readonly retrySlots = new Array<number>(RETRY_BUDGET_WINDOW_SECONDS).fill(0);
  private attemptsInWindow = 0;
  private retriesInWindow = 0;
  private second: number;

  constructor(
    config?: CircuitBreakers,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.configure(config);
    this.second = Math.floor(now() / 1000);
  }

  /** Moves the window to the current second, forgetting the seconds that left it. */
  private slot(): number {
    const s = Math.floor(this.now() / 1000);
    const steps = Math.min(RETRY_BUDGET_WINDOW_SECONDS, s - this.second);
    for (let i = 1; i <= steps; i++) {
      const k = (this.second + i) % RETRY_BUDGET_WINDOW_SECONDS;
      this.attemptsInWindow -= this.attemptSlots[k]!;
      this.retriesInWindow -= this.retrySlots[k]!;
      this.attemptSlots[k] = 0;
      this.retrySlots[k] = 0;
    }
    if (s > this.second) this.second = s;
    return this.second % RETRY_BUDGET_WINDOW_SECONDS;
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
    const k = this.slot();
    this.attemptSlots[k]!++;
    this.attemptsInWindow++;
    return true;
  }

  endRequest(): void {
    if (this.requests > 0) this.requests--;
  }

  /** How many retries may be in flight at once (an explicit max_retries; otherwise only the budget limits them). */
  retryLimit(): number {
    return this.explicitMaxRetries ?? Number.POSITIVE_INFINITY;
  }

  /** How many retries the budget allows in the current window, those already made included. */
  retryBudget(): number {
    this.slot();
    return RETRY_BUDGET_MIN_PER_SECOND * RETRY_BUDGET_WINDOW_SECONDS + Math.floor((this.attemptsInWindow * RETRY_BUDGET_PERCENT) / 100);
  }

  tryBeginRetry(): boolean {
    const budget = this.retryBudget();
    if (this.retries >= this.retryLimit() || this.retriesInWindow >= budget) {
      this.retryOverflow++;
      return false;
    }
    this.retries++;
    this.retrySlots[this.slot()]!++;
    this.retriesInWindow++;
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
