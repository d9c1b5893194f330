import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RestartBackoff, shouldRestart } from './restart-backoff.ts';

describe('RestartBackoff', () => {
  it('restarts at once, then waits 10 s doubling to 5 min', () => {
    let t = 0;
    const b = new RestartBackoff({ now: () => t });
    const waits: number[] = [];
    for (let i = 0; i < 9; i++) {
      b.started();
      t += 1000; // crashes after a second
      const w = b.exited();
      waits.push(w / 1000);
      t += w;
    }
    assert.deepEqual(waits, [0, 10, 20, 40, 80, 160, 300, 300, 300]);
  });

  it('starts over after 10 minutes of running, not before', () => {
    let t = 0;
    const b = new RestartBackoff({ now: () => t });
    for (let i = 0; i < 4; i++) {
      b.started();
      t += 1000;
      t += b.exited();
    }
    assert.equal(b.pendingMs, 80_000);
    b.started();
    t += 599_999;
    assert.equal(b.exited(), 80_000, 'just under 10 minutes keeps the backoff');
    t += 160_000;
    b.started();
    t += 600_000;
    assert.equal(b.exited(), 0, '10 minutes of running resets it');
    b.started();
    t += 5;
    assert.equal(b.exited(), 10_000);
  });

  it('scales every duration', () => {
    let t = 0;
    const b = new RestartBackoff({ now: () => t, timeScale: 0.001 });
    b.started();
    assert.equal(b.exited(), 0);
    b.started();
    assert.equal(b.exited(), 10);
    b.started();
    t += 600;
    assert.equal(b.exited(), 0, 'reset after 600 ms at scale 0.001');
    assert.throws(() => new RestartBackoff({ timeScale: 0 }), RangeError);
  });
});

describe('shouldRestart', () => {
  it('follows restartPolicy, and restarts probe kills unless Never', () => {
    assert.equal(shouldRestart('Always', 0), true);
    assert.equal(shouldRestart('OnFailure', 0), false);
    assert.equal(shouldRestart('OnFailure', 1), true);
    assert.equal(shouldRestart('OnFailure', null), true, 'killed by a signal');
    assert.equal(shouldRestart('Never', 1), false);
    assert.equal(shouldRestart('OnFailure', 0, 'liveness'), true);
    assert.equal(shouldRestart('Never', 137, 'liveness'), false);
  });
});
