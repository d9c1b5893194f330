import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setImmediate as tick } from 'node:timers/promises';
import type { Flow } from './flow.ts';
import { FlowRing, type RingEvent } from './flow-ring.ts';
import { ObserveError } from './observe-error.ts';

/** A minimal flow whose uuid names its number, so reads can be checked by content. */
function flow(n: number): Flow {
  const ep = { ID: 0, identity: 0, cluster_name: '', namespace: '', labels: [], pod_name: '', workloads: [] };
  return {
    time: '2026-01-01T00:00:00.000000000Z',
    uuid: `f${n}`,
    verdict: 'FORWARDED',
    IP: { source: '127.0.0.1', destination: '127.0.0.2', ipVersion: 'IPv4' },
    l4: { TCP: { source_port: 1000, destination_port: 80 } },
    source: ep,
    destination: ep,
    Type: 'L3_L4',
    node_name: 'n',
    traffic_direction: 'INGRESS',
    is_reply: false,
    Summary: '',
  };
}

const ids = (fs: Flow[]): string[] => fs.map((f) => f.uuid);

describe('FlowRing', () => {
  it('refuses capacities that are not powers of two', () => {
    for (const bad of [0, 1, 3, 1000, 2.5, -4]) {
      assert.throws(() => new FlowRing(bad), (e: unknown) => e instanceof ObserveError && e.code === 'bad-option');
    }
    assert.equal(new FlowRing().capacity, 4096);
  });

  it('numbers flows from 1 and reads them back in order', () => {
    const r = new FlowRing(8);
    assert.deepEqual(r.since(0), { lost: 0, flows: [], first: 1, next: 0 });
    for (let i = 1; i <= 5; i++) r.push(flow(i));
    assert.equal(r.lastSeq, 5);
    assert.equal(r.oldestSeq, 1);
    const all = r.since(0);
    assert.deepEqual(ids(all.flows), ['f1', 'f2', 'f3', 'f4', 'f5']);
    assert.equal(all.first, 1);
    assert.equal(all.next, 5);
    const tail = r.since(3);
    assert.deepEqual(ids(tail.flows), ['f4', 'f5']);
    assert.equal(tail.first, 4);
    assert.deepEqual(r.since(5).flows, []);
    assert.equal(r.since(5).next, 5);
    // A cursor from the future (another ring) is brought back to the newest flow.
    assert.equal(r.since(99).next, 5);
    assert.equal(r.get(3)?.uuid, 'f3');
    assert.equal(r.get(6), undefined);
  });

  it('overwrites the oldest and tells a lapped reader how many it lost', () => {
    const r = new FlowRing(4);
    for (let i = 1; i <= 10; i++) r.push(flow(i));
    assert.deepEqual(r.status(), { numFlows: 4, maxFlows: 4, seenFlows: 10 });
    assert.equal(r.oldestSeq, 7);
    assert.equal(r.get(6), undefined);
    const read = r.since(2);
    assert.equal(read.lost, 4); // 3, 4, 5 and 6 are gone
    assert.deepEqual(ids(read.flows), ['f7', 'f8', 'f9', 'f10']);
    assert.equal(read.first, 7);
    // A reader that keeps up loses nothing.
    assert.equal(r.since(6).lost, 0);
  });

  it('bounds a read with max and resumes from next', () => {
    const r = new FlowRing(16);
    for (let i = 1; i <= 10; i++) r.push(flow(i));
    const a = r.since(0, 3);
    assert.deepEqual(ids(a.flows), ['f1', 'f2', 'f3']);
    const b = r.since(a.next, 3);
    assert.deepEqual(ids(b.flows), ['f4', 'f5', 'f6']);
    assert.deepEqual(r.since(b.next, 0).flows, []);
  });

  it('last(n) gives the newest n, oldest first, never more than it holds', () => {
    const r = new FlowRing(4);
    assert.deepEqual(r.last(3).flows, []);
    for (let i = 1; i <= 6; i++) r.push(flow(i));
    assert.deepEqual(ids(r.last(2).flows), ['f5', 'f6']);
    const many = r.last(100);
    assert.deepEqual(ids(many.flows), ['f3', 'f4', 'f5', 'f6']);
    assert.equal(many.first, 3);
    assert.equal(many.next, 6);
  });

  it('follow delivers new flows in order outside of push, and close stops it', async () => {
    const r = new FlowRing(64);
    r.push(flow(1));
    const got: RingEvent[] = [];
    const f = r.follow((e) => {
      got.push(e);
    });
    r.push(flow(2));
    r.push(flow(3));
    assert.equal(got.length, 0, 'push does not call followers itself');
    await tick();
    assert.deepEqual(got, [
      { seq: 2, flow: r.get(2) },
      { seq: 3, flow: r.get(3) },
    ]);
    f.close();
    r.push(flow(4));
    await tick();
    assert.equal(got.length, 2);
    assert.equal(f.cursor, 3);
  });

  it('follow from an earlier sequence number replays what is held, with the loss first', async () => {
    const r = new FlowRing(4);
    for (let i = 1; i <= 6; i++) r.push(flow(i));
    const got: RingEvent[] = [];
    const f = r.follow((e) => void got.push(e), { after: 0 });
    await tick();
    assert.deepEqual(got[0], { lost: 2 });
    assert.deepEqual(
      got.slice(1).map((e) => ('seq' in e ? e.seq : -1)),
      [3, 4, 5, 6],
    );
    assert.equal(f.lost, 2);
    f.close();
  });

  it('a slow (async) follower falls behind, learns how many it lost, then continues', async () => {
    const r = new FlowRing(8);
    const got: RingEvent[] = [];
    let release!: () => void;
    const gate = new Promise<void>((res) => (release = res));
    let first = true;
    const f = r.follow(async (e) => {
      got.push(e);
      if (first) {
        first = false;
        await gate;
      }
    });
    r.push(flow(1));
    await tick();
    assert.equal(got.length, 1); // f1 delivered; the follower is now stuck on it
    for (let i = 2; i <= 20; i++) r.push(flow(i)); // the writer never waits for it
    assert.equal(r.lastSeq, 20);
    release();
    await gate;
    for (let i = 0; i < 100 && got.length < 10; i++) await tick(); // an async listener gets one event per turn
    assert.deepEqual(got[1], { lost: 11 }); // 2..12 overwritten; 13..20 are held
    assert.deepEqual(
      got.slice(2).map((e) => ('seq' in e ? e.seq : -1)),
      [13, 14, 15, 16, 17, 18, 19, 20],
    );
    assert.equal(f.lost, 11);
    f.close();
  });

  it('a follower that throws is closed with its error; others keep receiving', async () => {
    const r = new FlowRing(8);
    const boom = new Error('listener failed');
    const bad = r.follow(() => {
      throw boom;
    });
    const good: number[] = [];
    const ok = r.follow((e) => {
      if ('seq' in e) good.push(e.seq);
    });
    r.push(flow(1));
    r.push(flow(2));
    await tick();
    assert.equal(bad.error, boom);
    r.push(flow(3));
    await tick();
    assert.deepEqual(good, [1, 2, 3]);
    ok.close();
  });

  it('push stays O(1) with a large ring: a million pushes, memory bounded by capacity', () => {
    const r = new FlowRing(1024);
    const f = flow(0);
    for (let i = 0; i < 1_000_000; i++) r.push(f);
    assert.equal(r.lastSeq, 1_000_000);
    assert.equal(r.status().numFlows, 1024);
    assert.equal(r.since(0).lost, 1_000_000 - 1024);
  });
});
