// Load balancer distributions: weighted round robin, least request (P2C), random and ring hash, with exclusions.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createLoadBalancer, weightedSchedule, type LbHost } from './load-balancer.ts';
import { HashRing, hashKey, mixHash } from './ring-hash.ts';

interface H extends LbHost {
  name: string;
  weight: number;
  activeRequests: number;
}

const host = (name: string, weight = 1, activeRequests = 0): H => ({ name, weight, activeRequests });

/** A seeded [0, 1) generator (mulberry32), so that distributions are reproducible. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function count(picks: (H | undefined)[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const p of picks) if (p) out[p.name] = (out[p.name] ?? 0) + 1;
  return out;
}

describe('round robin', () => {
  it('is exactly even over equal weights and never repeats a host back to back', () => {
    const hosts = [host('a'), host('b'), host('c')];
    const lb = createLoadBalancer('ROUND_ROBIN', hosts, { random: seeded(1) });
    const picks = Array.from({ length: 300 }, () => lb.pick(undefined, undefined));
    assert.deepEqual(count(picks), { a: 100, b: 100, c: 100 });
    for (let i = 1; i < picks.length; i++) assert.notEqual(picks[i], picks[i - 1]);
  });

  it('follows the weights exactly per cycle and interleaves the heavy host', () => {
    const hosts = [host('a', 1), host('b', 2), host('c', 3)];
    const lb = createLoadBalancer('ROUND_ROBIN', hosts, { random: seeded(2) });
    const picks = Array.from({ length: 600 }, () => lb.pick(undefined, undefined));
    assert.deepEqual(count(picks), { a: 100, b: 200, c: 300 });
    let run = 1;
    for (let i = 1; i < picks.length; i++) {
      run = picks[i] === picks[i - 1] ? run + 1 : 1;
      assert.ok(run < 3, 'weight 3 of 6 is spread out, not sent in a burst');
    }
  });

  it('skips hosts already tried, unless every host was', () => {
    const hosts = [host('a'), host('b'), host('c')];
    const lb = createLoadBalancer('ROUND_ROBIN', hosts, { random: seeded(3) });
    const tried = new Set([hosts[0]!, hosts[1]!]);
    for (let i = 0; i < 20; i++) assert.equal(lb.pick(undefined, tried)?.name, 'c');
    assert.ok(lb.pick(undefined, new Set(hosts)), 'a retry on a fully tried cluster still gets a host');
  });

  it('scales huge weights into a bounded schedule that keeps every host', () => {
    const hosts = [host('a', 1), host('b', 1_000_000)];
    const sched = weightedSchedule(hosts);
    assert.ok(sched.length <= 4096 + 2);
    assert.ok(sched.includes(hosts[0]!));
  });

  it('gives undefined with no hosts', () => {
    assert.equal(createLoadBalancer('ROUND_ROBIN', [] as H[]).pick(undefined, undefined), undefined);
  });
});

describe('least request (P2C)', () => {
  it('prefers the idle host: picked unless both draws miss it', () => {
    const hosts = [host('idle', 1, 0), host('busy1', 1, 10), host('busy2', 1, 10)];
    const lb = createLoadBalancer('LEAST_REQUEST', hosts, { random: seeded(4) });
    const c = count(Array.from({ length: 6000 }, () => lb.pick(undefined, undefined)));
    // P(idle) = 1 - (2/3)^2 = 5/9 with two draws with replacement; round robin would give 1/3.
    assert.ok(c.idle! / 6000 > 0.5 && c.idle! / 6000 < 0.62, `idle got ${c.idle}`);
  });

  it('balances in-flight load when requests pile up on one host', () => {
    const hosts = [host('a'), host('b'), host('c'), host('d')];
    hosts[0]!.activeRequests = 50;
    const lb = createLoadBalancer('LEAST_REQUEST', hosts, { random: seeded(5) });
    for (let i = 0; i < 150; i++) lb.pick(undefined, undefined)!.activeRequests++;
    const [a, ...rest] = hosts.map((h) => h.activeRequests);
    assert.ok(a! - 50 < 20, `the loaded host took few of the new requests (${a! - 50})`);
    for (const r of rest) assert.ok(r > 35 && r < 65, `the others share them evenly (${rest.join(',')})`);
    for (let i = 0; i < 600; i++) lb.pick(undefined, undefined)!.activeRequests++;
    const all = hosts.map((h) => h.activeRequests);
    assert.ok(Math.max(...all) - Math.min(...all) < 25, `in-flight load levels out (${all.join(',')})`);
  });

  it('weighs hosts by (active + 1) / weight when weights differ', () => {
    const hosts = [host('light', 1), host('heavy', 4)];
    const lb = createLoadBalancer('LEAST_REQUEST', hosts, { random: seeded(6) });
    const c = count(Array.from({ length: 5000 }, () => lb.pick(undefined, undefined)));
    assert.ok(c.heavy! > 4 * c.light!, `heavy ${c.heavy} vs light ${c.light}`);
  });

  it('avoids excluded hosts on retries', () => {
    const hosts = [host('a'), host('b'), host('c')];
    const lb = createLoadBalancer('LEAST_REQUEST', hosts, { random: seeded(7) });
    const tried = new Set([hosts[1]!]);
    for (let i = 0; i < 200; i++) assert.notEqual(lb.pick(undefined, tried)?.name, 'b');
  });
});

describe('random', () => {
  it('honours weights', () => {
    const lb = createLoadBalancer('RANDOM', [host('a', 1), host('b', 3)], { random: seeded(8) });
    const c = count(Array.from({ length: 8000 }, () => lb.pick(undefined, undefined)));
    assert.ok(Math.abs(c.b! / 8000 - 0.75) < 0.03, `b got ${c.b}`);
  });
});

describe('ring hash', () => {
  const names = ['10.0.0.1:80', '10.0.0.2:80', '10.0.0.3:80', '10.0.0.4:80', '10.0.0.5:80'];

  it('hashes keys stably and spreads them', () => {
    assert.equal(hashKey('user-42'), hashKey('user-42'));
    assert.equal(hashKey('user-42'), 2581302998009433, 'the same value on every run and machine');
    assert.ok(Number.isSafeInteger(hashKey('x')) && hashKey('x') < 2 ** 52);
    const buckets = new Array<number>(16).fill(0);
    for (let i = 0; i < 16000; i++) buckets[Math.floor((mixHash(i) / 2 ** 52) * 16)]!++;
    for (const b of buckets) assert.ok(b > 800 && b < 1200, `consecutive integers spread evenly (${buckets.join(',')})`);
  });

  it('sends the same key to the same host and spreads keys evenly', () => {
    const hosts = names.map((n) => host(n));
    const lb = createLoadBalancer('RING_HASH', hosts, { keys: names });
    const c: Record<string, number> = {};
    for (let i = 0; i < 10000; i++) {
      const h = hashKey(`session-${i}`);
      const first = lb.pick(h, undefined)!;
      assert.equal(lb.pick(h, undefined), first);
      c[first.name] = (c[first.name] ?? 0) + 1;
    }
    for (const n of names) assert.ok(c[n]! > 1400 && c[n]! < 2600, `even spread: ${JSON.stringify(c)}`);
  });

  it('moves only the removed host’s keys when a host leaves', () => {
    const hosts = names.map((n) => host(n));
    const before = createLoadBalancer('RING_HASH', hosts, { keys: names });
    const left = hosts.slice(0, 4);
    const after = createLoadBalancer('RING_HASH', left, { keys: names.slice(0, 4) });
    let moved = 0;
    for (let i = 0; i < 5000; i++) {
      const h = hashKey(`k${i}`);
      const a = before.pick(h, undefined)!;
      const b = after.pick(h, undefined)!;
      if (a.name === names[4]) continue;
      if (a !== b) moved++;
    }
    assert.equal(moved, 0, 'keys of the hosts that stayed keep their host');
  });

  it('gives entries in proportion to weight, within min and max ring sizes', () => {
    const hosts = [host('a', 1), host('b', 2)];
    const ring = new HashRing(hosts, ['a', 'b']);
    assert.ok(ring.size >= 1024 && ring.size < 2048, `default minimum 1024 (${ring.size})`);
    const c = count(Array.from({ length: 9000 }, (_, i) => ring.pick(hashKey(String(i)))));
    assert.ok(Math.abs(c.b! / 9000 - 2 / 3) < 0.05, `b takes about 2/3 (${c.b})`);
    assert.ok(new HashRing(hosts, ['a', 'b'], { minimumRingSize: 10_000_000, maximumRingSize: 3000 }).size <= 3002);
    assert.ok(new HashRing(hosts, ['a', 'b'], { minimumRingSize: 64 }).size < 100);
  });

  it('walks past hosts already tried', () => {
    const hosts = names.map((n) => host(n));
    const lb = createLoadBalancer('RING_HASH', hosts, { keys: names });
    const h = hashKey('sticky');
    const first = lb.pick(h, undefined)!;
    const second = lb.pick(h, new Set([first]))!;
    assert.notEqual(second, first);
    assert.equal(lb.pick(h, new Set([first])), second, 'the fallback is deterministic too');
  });
});
