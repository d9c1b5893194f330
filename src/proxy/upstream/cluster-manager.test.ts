// The cluster manager: config updates keep host state, EDS health decides who may be picked, TLS options per
// cluster kind, breakers through the cluster, stats, and close.
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import type { UpstreamHost } from '../contracts.ts';
import { ProxyError } from '../proxy-error.ts';
import { clusterSpec, endpointSet, proxyConfig } from './cluster-fixtures.ts';
import { UpstreamClusterManager, type MeshTlsOptionsFactory } from './cluster-manager.ts';
import { hashKey } from './ring-hash.ts';

const managers: UpstreamClusterManager[] = [];
afterEach(() => {
  for (const m of managers.splice(0)) m.close();
});

function manager(meshTls: MeshTlsOptionsFactory = () => undefined): UpstreamClusterManager {
  const m = new UpstreamClusterManager(meshTls);
  managers.push(m);
  return m;
}

const OD = { consecutive5xx: 2, intervalMs: 10_000, baseEjectionTimeMs: 30_000, maxEjectionPercent: 100 };

function failN(c: { tryBeginRequest(h: UpstreamHost): boolean; endRequest(h: UpstreamHost, o: '5xx'): void }, h: UpstreamHost, n: number): void {
  for (let i = 0; i < n; i++) {
    c.tryBeginRequest(h);
    c.endRequest(h, '5xx');
  }
}

describe('cluster manager', () => {
  it('keeps ejection, requests in flight and health of hosts that stay across an update', () => {
    const m = manager();
    m.update(proxyConfig([{ spec: clusterSpec('api', { outlierDetection: OD }), endpoints: endpointSet('api', ['127.0.0.1', '127.0.0.2', '127.0.0.3']) }]));
    const c = m.get('api')!;
    const [a, b, gone] = [c.host('127.0.0.1', 8080)!, c.host('127.0.0.2', 8080)!, c.host('127.0.0.3', 8080)!];
    failN(c, a, 2);
    assert.equal(a.available, false);
    assert.ok(c.tryBeginRequest(b) && c.tryBeginRequest(b));
    m.update(proxyConfig([{ spec: clusterSpec('api', { outlierDetection: OD, lbPolicy: 'LEAST_REQUEST' }), endpoints: endpointSet('api', ['127.0.0.1', '127.0.0.2', '127.0.0.4']) }]));
    assert.equal(m.get('api'), c, 'the same cluster, updated in place');
    assert.equal(c.host('127.0.0.1', 8080), a);
    assert.equal(a.available, false, 'still ejected');
    assert.equal(c.host('127.0.0.2', 8080)?.activeRequests, 2, 'requests in flight carried over');
    assert.equal(c.host('127.0.0.3', 8080), undefined);
    assert.ok(c.host('127.0.0.4', 8080));
    const picked = new Set(Array.from({ length: 40 }, () => c.pick({})));
    assert.equal(picked.has(a), false);
    assert.equal(picked.has(gone), false, 'a removed host is never picked');
    c.endRequest(gone, '5xx'); // a request to the removed host finishes late: no effect on the cluster
    assert.equal(c.stats().ejections_active, 1);
    c.endRequest(b, 'success');
    c.endRequest(b, 'success');
    c.endRequest(b, 'success');
    assert.equal(b.activeRequests, 0, 'never negative');
  });

  it('never picks hosts EDS lists as not ready, even when they are the majority', () => {
    const m = manager();
    const eps = (readyB: boolean) => endpointSet('api', ['127.0.0.1', { address: '127.0.0.2', healthy: readyB }, { address: '127.0.0.3', healthy: false }]);
    m.update(proxyConfig([{ spec: clusterSpec('api'), endpoints: eps(false) }]));
    const c = m.get('api')!;
    assert.deepEqual(new Set(Array.from({ length: 20 }, () => c.pick({})?.address)), new Set(['127.0.0.1']));
    assert.equal(c.stats().panic, false);
    m.update(proxyConfig([{ spec: clusterSpec('api'), endpoints: eps(true) }]));
    assert.deepEqual(new Set(Array.from({ length: 20 }, () => c.pick({})?.address)), new Set(['127.0.0.1', '127.0.0.2']));
    m.update(proxyConfig([{ spec: clusterSpec('api'), endpoints: endpointSet('api', [{ address: '127.0.0.1', healthy: false }]) }]));
    assert.equal(c.pick({}), undefined, 'no ready host: no pick');
  });

  it('follows endpoint weights and ring hash through the cluster', () => {
    const m = manager();
    m.update(
      proxyConfig([
        { spec: clusterSpec('w'), endpoints: endpointSet('w', [{ address: '127.0.0.1', weight: 1 }, { address: '127.0.0.2', weight: 3 }]) },
        { spec: clusterSpec('r', { lbPolicy: 'RING_HASH', outlierDetection: OD }), endpoints: endpointSet('r', ['127.0.0.1', '127.0.0.2', '127.0.0.3']) },
      ]),
    );
    const w = m.get('w')!;
    const counts = new Map<string, number>();
    for (let i = 0; i < 400; i++) {
      const a = w.pick({})!.address;
      counts.set(a, (counts.get(a) ?? 0) + 1);
    }
    assert.deepEqual([counts.get('127.0.0.1'), counts.get('127.0.0.2')], [100, 300]);
    const r = m.get('r')!;
    const keys = Array.from({ length: 300 }, (_, i) => hashKey(`user-${i}`));
    const before = keys.map((k) => r.pick({ hash: k }));
    const victim = r.host('127.0.0.3', 8080)!;
    failN(r, victim, 2);
    const after = keys.map((k) => r.pick({ hash: k }));
    for (let i = 0; i < keys.length; i++) {
      if (before[i] === victim) assert.notEqual(after[i], victim);
      else assert.equal(after[i], before[i], 'keys of hosts still up do not move');
    }
  });

  it('applies circuit breakers per cluster and counts refusals', () => {
    const m = manager();
    m.update(proxyConfig([{ spec: clusterSpec('cb', { circuitBreakers: { maxRequests: 2, maxConnections: 1, maxPendingRequests: 1 } }), endpoints: endpointSet('cb', ['127.0.0.1']) }]));
    const c = m.get('cb')!;
    const h = c.pick({})!;
    assert.equal(c.tryBeginRequest(h) && c.tryBeginRequest(h), true);
    assert.equal(c.tryBeginRequest(h), false);
    assert.equal(h.activeRequests, 2, 'a refused request is not counted on the host');
    assert.equal(c.tryBeginConnection(h), true);
    assert.equal(c.tryBeginConnection(h), false);
    assert.equal(c.tryBeginPending(), true);
    assert.equal(c.tryBeginPending(), false);
    c.endPending();
    assert.equal(c.tryBeginRetry(), true);
    c.endRetry();
    const s = c.stats();
    assert.equal(s.upstream_rq_overflow, 1);
    assert.equal(s.upstream_cx_overflow, 1);
    assert.equal(s.upstream_rq_pending_overflow, 1);
    assert.equal(s.hosts[0]!.rq_active, 2);
    assert.equal(s.hosts[0]!.cx_active, 1);
  });

  it('gives mesh TLS options with the cluster’s SPIFFE IDs, none for local or plaintext clusters, and fails closed without a certificate', () => {
    const calls: [string[], string[]][] = [];
    let hasCert = true;
    const m = manager((alpn, ids) => {
      calls.push([alpn, ids]);
      return hasCert ? { ALPNProtocols: alpn } : undefined;
    });
    const sans = ['spiffe://cluster.local/ns/shop/sa/api'];
    m.update(
      proxyConfig([
        { spec: clusterSpec('mesh', { mtls: { subjectAltNames: sans } }), endpoints: endpointSet('mesh', ['127.0.0.1']) },
        { spec: clusterSpec('local', { local: true, mtls: { subjectAltNames: sans } }), endpoints: endpointSet('local', ['127.0.0.1']) },
        { spec: clusterSpec('plain'), endpoints: endpointSet('plain', ['127.0.0.1']) },
        { spec: clusterSpec('ext', { tls: { mode: 'SIMPLE', sni: 'api.example.com' } }), endpoints: endpointSet('ext', ['127.0.0.1']) },
      ]),
    );
    const mesh = m.get('mesh')!;
    assert.deepEqual(m.tlsOptions(mesh, mesh.pick({})!, ['h2']), { ALPNProtocols: ['h2'] });
    assert.deepEqual(calls, [[['h2'], sans]]);
    assert.equal(m.tlsOptions(m.get('local')!, mesh.pick({})!, ['h2']), undefined);
    assert.equal(m.tlsOptions(m.get('plain')!, mesh.pick({})!, ['h2']), undefined);
    const ext = m.tlsOptions(m.get('ext')!, mesh.pick({})!, ['http/1.1']);
    assert.equal(ext?.servername, 'api.example.com');
    assert.equal(ext?.rejectUnauthorized, true);
    hasCert = false;
    assert.throws(() => m.tlsOptions(mesh, mesh.pick({})!, ['h2']), (e: unknown) => e instanceof ProxyError && e.code === 'no-certificate');
  });

  it('reaches a LOGICAL_DNS cluster’s name, removes clusters, reports stats and ignores updates after close', () => {
    const m = manager();
    m.update(
      proxyConfig([
        { spec: clusterSpec('ext', { discovery: 'LOGICAL_DNS', dns: { host: 'localhost', port: 9443 } }) },
        { spec: clusterSpec('api', { outlierDetection: OD }), endpoints: endpointSet('api', [{ address: '127.0.0.1', pod: 'shop/api-0' }]) },
      ]),
    );
    const ext = m.get('ext')!.pick({})!;
    assert.deepEqual([ext.address, ext.port], ['localhost', 9443]);
    const api = m.get('api')!;
    const h = api.pick({})!;
    assert.equal(h.pod, 'shop/api-0');
    api.tryBeginRequest(h);
    api.endRequest(h, '5xx');
    const stats = m.stats().find((s) => s.name === 'api')!;
    assert.equal(stats.upstream_rq_total, 1);
    assert.deepEqual(
      { ...stats.hosts[0]!, last_health_check_failure: undefined },
      { address: '127.0.0.1', port: 8080, pod: 'shop/api-0', weight: 1, health: 'healthy', rq_active: 0, rq_total: 1, rq_error: 1, cx_active: 0, ejections: 0, ejected: false, consecutive_5xx: 1, health_checks: 0, last_health_check_failure: undefined },
    );
    m.update(proxyConfig([{ spec: clusterSpec('api', { outlierDetection: OD }), endpoints: endpointSet('api', ['127.0.0.1']) }]));
    assert.equal(m.get('ext'), undefined);
    m.close();
    m.update(proxyConfig([{ spec: clusterSpec('x'), endpoints: endpointSet('x', ['127.0.0.1']) }]));
    assert.equal(m.get('x'), undefined);
    assert.deepEqual(m.stats(), []);
  });
});
