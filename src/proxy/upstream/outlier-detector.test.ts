// Outlier detection through a real cluster and real timers: consecutive 5xx and gateway failures eject, ejection
// time grows with each ejection, max_ejection_percent holds, ejected hosts come back, and no host means no pick.
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import type { OutlierDetection } from '../../routing/model.ts';
import type { UpstreamHost } from '../contracts.ts';
import { clusterSpec, endpointSet, waitFor } from './cluster-fixtures.ts';
import { Cluster } from './upstream-cluster.ts';

const open: Cluster[] = [];
afterEach(() => {
  for (const c of open.splice(0)) c.close();
});

function cluster(addrs: string[], od: Partial<OutlierDetection> = {}): Cluster {
  const outlierDetection: OutlierDetection = { consecutive5xx: 5, intervalMs: 10_000, baseEjectionTimeMs: 30_000, maxEjectionPercent: 100, ...od };
  const c = new Cluster(clusterSpec('outbound|80||api', { outlierDetection }), endpointSet('outbound|80||api', addrs), { tlsOptions: () => undefined });
  open.push(c);
  return c;
}

function fail(c: Cluster, h: UpstreamHost, n: number, outcome: '5xx' | 'gateway-error' | 'connect-failure' = '5xx'): void {
  for (let i = 0; i < n; i++) {
    assert.ok(c.tryBeginRequest(h));
    c.endRequest(h, outcome);
  }
}

function picks(c: Cluster, n: number): Set<UpstreamHost | undefined> {
  return new Set(Array.from({ length: n }, () => c.pick({})));
}

describe('outlier detection', () => {
  it('ejects a host after N consecutive 5xx, and a success in between resets the count', () => {
    const c = cluster(['127.0.0.1', '127.0.0.2', '127.0.0.3']);
    const bad = c.host('127.0.0.2', 8080)!;
    fail(c, bad, 4);
    assert.ok(c.tryBeginRequest(bad));
    c.endRequest(bad, 'success');
    fail(c, bad, 4);
    assert.equal(bad.available, true, '4 + 4 with a success between is not 5 in a row');
    fail(c, bad, 1);
    assert.equal(bad.available, false);
    const seen = picks(c, 60);
    assert.equal(seen.has(bad), false, 'an ejected host takes no traffic');
    assert.equal(seen.size, 2);
    const s = c.stats();
    assert.equal(s.ejections_active, 1);
    assert.equal(s.ejections_enforced_consecutive_5xx, 1);
    assert.equal(s.hosts.find((h) => h.address === '127.0.0.2')?.health, 'ejected');
  });

  it('ejects on consecutive gateway failures (connect failures count), and count 0 turns a detector off', () => {
    const c = cluster(['127.0.0.1', '127.0.0.2'], { consecutive5xx: 0, consecutiveGatewayErrors: 3 });
    const [a, b] = [c.host('127.0.0.1', 8080)!, c.host('127.0.0.2', 8080)!];
    fail(c, a, 10, '5xx');
    assert.equal(a.available, true, 'consecutive5xx 0: plain 5xx never eject');
    fail(c, b, 2, 'gateway-error');
    fail(c, b, 1, '5xx');
    fail(c, b, 2, 'connect-failure');
    assert.equal(b.available, true, 'a 500 between gateway errors resets their count');
    fail(c, b, 1, 'connect-failure');
    assert.equal(b.available, false);
    assert.equal(c.stats().ejections_enforced_consecutive_gateway_failure, 1);
  });

  it('returns an ejected host at the sweep after base_ejection_time, and ejects it longer the next time', async () => {
    const c = cluster(['127.0.0.1', '127.0.0.2'], { consecutive5xx: 2, intervalMs: 10, baseEjectionTimeMs: 80 });
    const h = c.host('127.0.0.1', 8080)!;
    fail(c, h, 2);
    assert.equal(h.available, false);
    const first = await waitFor(() => h.available, 2000, 'first return');
    assert.ok(first >= 75 && first < 400, `first ejection lasted ${first.toFixed(0)} ms (base 80)`);
    assert.ok(picks(c, 10).has(h), 'back in the rotation');
    fail(c, h, 2);
    assert.equal(h.available, false);
    const second = await waitFor(() => h.available, 2000, 'second return');
    assert.ok(second >= 155, `second ejection lasted ${second.toFixed(0)} ms (2 × base)`);
    assert.equal(c.stats().hosts.find((x) => x.address === '127.0.0.1')?.ejections, 2);
  });

  it('never ejects past max_ejection_percent, but always one host when none is ejected', () => {
    const three = cluster(['127.0.0.1', '127.0.0.2', '127.0.0.3'], { maxEjectionPercent: 10 });
    const hosts = three.allHosts();
    fail(three, hosts[0]!, 5);
    assert.equal(hosts[0]!.available, false, 'the first outlier goes even though 1 of 3 is over 10%');
    fail(three, hosts[1]!, 5);
    assert.equal(hosts[1]!.available, true, 'a second one would make 2 of 3');
    assert.equal(three.stats().ejections_overflow, 1);
    assert.ok(picks(three, 30).has(hosts[1]), 'the overflowed host still takes traffic');

    const four = cluster(['127.0.0.1', '127.0.0.2', '127.0.0.3', '127.0.0.4'], { maxEjectionPercent: 50 });
    for (const h of four.allHosts()) fail(four, h, 5);
    assert.equal(four.stats().ejections_active, 2, '50% of 4');

    const none = cluster(['127.0.0.1', '127.0.0.2'], { maxEjectionPercent: 0 });
    fail(none, none.allHosts()[0]!, 5);
    assert.equal(none.stats().ejections_active, 0, '0% ejects nothing');
  });

  it('fails closed when every host is ejected (no panic with outlier detection, as Istio configures Envoy)', () => {
    const c = cluster(['127.0.0.1']);
    fail(c, c.allHosts()[0]!, 5);
    assert.equal(c.pick({}), undefined);
    assert.equal(c.stats().upstream_cx_none_healthy, 1);
    assert.equal(c.stats().panic, false);
  });

  it('keeps a dead host of three out while two are up', () => {
    const c = cluster(['127.0.0.1', '127.0.0.2', '127.0.0.3'], { maxEjectionPercent: 10 });
    const dead = c.host('127.0.0.3', 8080)!;
    // Under load the dead one fails every request it gets until it is ejected, then gets none.
    let sentToDead = 0;
    for (let i = 0; i < 300; i++) {
      const h = c.pick({})!;
      assert.ok(c.tryBeginRequest(h));
      if (h === dead) sentToDead++;
      c.endRequest(h, h === dead ? 'connect-failure' : 'success');
    }
    assert.equal(sentToDead, 5, 'exactly consecutive_5xx requests reached it');
    assert.equal(dead.available, false);
  });

  it('returns every ejected host when detection is removed from the cluster', () => {
    const c = cluster(['127.0.0.1', '127.0.0.2']);
    const h = c.allHosts()[0]!;
    fail(c, h, 5);
    assert.equal(h.available, false);
    c.update(clusterSpec('outbound|80||api'), endpointSet('outbound|80||api', ['127.0.0.1', '127.0.0.2']));
    assert.equal(h.available, true);
    assert.equal(picks(c, 10).has(h), true);
  });
});
