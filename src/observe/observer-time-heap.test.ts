import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { TimeHeap } from './observer-time-heap.ts';

describe('TimeHeap', () => {
  it('pops in time order whatever the push order', () => {
    const h = new TimeHeap<number>();
    const ts = Array.from({ length: 200 }, (_, i) => (i * 7919) % 200);
    for (const t of ts) h.push({ t: BigInt(t), at: 0, msg: t });
    assert.equal(h.size, 200);
    const out: number[] = [];
    for (let x = h.pop(); x; x = h.pop()) out.push(x.msg);
    assert.deepEqual(out, [...ts].sort((a, b) => a - b));
    assert.equal(h.peek(), undefined);
  });
});
