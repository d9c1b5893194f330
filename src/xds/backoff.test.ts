// Jittered exponential backoff: growth, ceiling, jitter range and reset.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Backoff } from './backoff.ts';

describe('Backoff', () => {
  it('doubles from the base up to the maximum, at the top of the range when the draw is high', () => {
    const b = new Backoff({ baseMs: 100, maxMs: 1000, random: () => 0.999999 });
    assert.deepEqual(Array.from({ length: 7 }, () => b.next()), [100, 200, 400, 800, 1000, 1000, 1000]);
  });

  it('never goes below half the ceiling (no zero delays), whatever the draw', () => {
    const low = new Backoff({ baseMs: 100, maxMs: 1000, random: () => 0 });
    assert.deepEqual(Array.from({ length: 6 }, () => low.next()), [50, 100, 200, 400, 500, 500]);
    const wild = new Backoff({ baseMs: 10, maxMs: 40, random: () => 7 });
    assert.deepEqual([wild.next(), wild.next(), wild.next()], [10, 20, 40], 'a draw outside [0, 1) is clamped');
  });

  it('spreads delays with the real random source within [ceiling/2, ceiling]', () => {
    const b = new Backoff({ baseMs: 1000, maxMs: 1000 });
    const seen = new Set<number>();
    for (let i = 0; i < 200; i++) {
      const d = b.next();
      assert.ok(d >= 500 && d <= 1000, `${d} in range`);
      seen.add(d);
    }
    assert.ok(seen.size > 20, 'jittered, not constant');
  });

  it('starts over after reset', () => {
    const b = new Backoff({ baseMs: 10, maxMs: 10_000, random: () => 0.999999 });
    b.next();
    b.next();
    assert.equal(b.next(), 40);
    b.reset();
    assert.equal(b.next(), 10);
  });

  it('defaults to 500 ms .. 30 s and clamps nonsense settings', () => {
    const d = new Backoff({ random: () => 0.999999 });
    assert.equal(d.baseMs, 500);
    assert.equal(d.maxMs, 30_000);
    let last = 0;
    for (let i = 0; i < 20; i++) last = d.next();
    assert.equal(last, 30_000);
    const odd = new Backoff({ baseMs: -5, maxMs: 0 });
    assert.equal(odd.baseMs, 1);
    assert.equal(odd.maxMs, 1);
    assert.ok(odd.next() >= 1);
  });
});
