// Circuit breakers: Envoy's defaults, configured limits, overflow counters, no negative counts, the retry budget.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CircuitBreaker, DEFAULT_CIRCUIT_BREAKERS } from './circuit-breaker.ts';

function fill(tryBegin: () => boolean, max = 5000): number {
  let n = 0;
  while (n < max && tryBegin()) n++;
  return n;
}

describe('circuit breaker', () => {
  it('uses Envoy’s defaults when unset: 1024 connections, pending and requests', () => {
    const cb = new CircuitBreaker();
    assert.equal(fill(() => cb.tryBeginConnection()), DEFAULT_CIRCUIT_BREAKERS.maxConnections);
    assert.equal(fill(() => cb.tryBeginPending()), 1024);
    assert.equal(fill(() => cb.tryBeginRequest()), 1024);
    const s = cb.stats();
    assert.equal(s.upstream_cx_overflow, 1);
    assert.equal(s.upstream_rq_pending_overflow, 1);
    assert.equal(s.upstream_rq_overflow, 1);
  });

  it('enforces configured limits and frees a slot per end', () => {
    const cb = new CircuitBreaker({ maxConnections: 2, maxPendingRequests: 1, maxRequests: 3 });
    assert.equal(fill(() => cb.tryBeginConnection()), 2);
    assert.equal(fill(() => cb.tryBeginPending()), 1);
    assert.equal(fill(() => cb.tryBeginRequest()), 3);
    cb.endRequest();
    assert.equal(cb.tryBeginRequest(), true);
    assert.equal(cb.tryBeginRequest(), false);
    cb.endConnection();
    assert.equal(cb.tryBeginConnection(), true);
    assert.deepEqual(
      { cx: cb.stats().upstream_cx_active, rq: cb.stats().upstream_rq_active, pending: cb.stats().upstream_rq_pending_active },
      { cx: 2, rq: 3, pending: 1 },
    );
  });

  it('never counts below zero on unmatched ends', () => {
    const cb = new CircuitBreaker({ maxRequests: 1, maxConnections: 1, maxPendingRequests: 1, maxRetries: 1 });
    for (let i = 0; i < 3; i++) {
      cb.endRequest();
      cb.endConnection();
      cb.endPending();
      cb.endRetry();
    }
    const s = cb.stats();
    assert.deepEqual([s.upstream_rq_active, s.upstream_cx_active, s.upstream_rq_pending_active, s.upstream_rq_retry_active], [0, 0, 0, 0]);
    assert.equal(fill(() => cb.tryBeginRequest()), 1, 'the limit did not grow from the extra ends');
  });

  it('keeps counts across a reconfiguration and applies the new limit', () => {
    const cb = new CircuitBreaker({ maxRequests: 4 });
    assert.equal(fill(() => cb.tryBeginRequest()), 4);
    cb.configure({ maxRequests: 2 });
    assert.equal(cb.tryBeginRequest(), false);
    cb.endRequest();
    cb.endRequest();
    assert.equal(cb.tryBeginRequest(), false, '2 still in flight');
    cb.endRequest();
    assert.equal(cb.tryBeginRequest(), true);
  });

  it('allows 10 retries a second over a 10 s window when idle, plus 20% of the attempts, and refills as the window slides', () => {
    let t = 5_000;
    const cb = new CircuitBreaker(undefined, () => t);
    assert.equal(fill(() => cb.tryBeginRetry()), 100, '10/s over 10 s');
    for (let i = 0; i < 100; i++) cb.endRetry();
    assert.equal(cb.tryBeginRetry(), false, 'the budget is over time, not concurrency');
    t += 1000;
    assert.equal(fill(() => cb.tryBeginRequest(), 1000), 1000);
    assert.equal(fill(() => cb.tryBeginRetry()), 200, '20% of 1000 attempts');
    assert.equal(cb.stats().upstream_rq_retry_overflow, 3, 'each refusal counts');
    assert.equal(cb.stats().upstream_rq_retry_active, 200, 'active retries are still counted');
    t += 8000;
    assert.equal(fill(() => cb.tryBeginRetry()), 0, 'the first second is still in the window');
    t += 1000;
    assert.equal(fill(() => cb.tryBeginRetry()), 100, 'the idle second left the window');
  });

  it('absorbs a burst of retries as large as a third of the requests in flight', () => {
    const cb = new CircuitBreaker(undefined, () => 0);
    assert.equal(fill(() => cb.tryBeginRequest(), 600), 600);
    assert.equal(fill(() => cb.tryBeginRetry(), 200), 200);
  });

  it('caps the budget at an explicit max_retries', () => {
    const cb = new CircuitBreaker({ maxRetries: 5 });
    fill(() => cb.tryBeginRequest(), 200);
    assert.equal(cb.retryLimit(), 5);
    assert.equal(fill(() => cb.tryBeginRetry()), 5);
    const none = new CircuitBreaker({ maxRetries: 0 });
    assert.equal(none.tryBeginRetry(), false, 'max_retries 0 turns retries off');
  });
});
