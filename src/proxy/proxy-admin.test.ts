// Tests of the proxy admin server over real HTTP on loopback, reading a real ListenerManager (with the harness's
// own HTTP engine and static clusters) and a real flow ring: readiness before and after the first config and while
// draining, stats, the config dump without secrets, flows with a bounded count, Prometheus text, errors and bounds.
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { Counter, Registry } from 'prom-client';
import { FlowLog, listener, proxyConfig, readAll, TestClusters, TestHttpEngine } from '../../test/support/proxy-l4-harness.ts';
import { FlowRing } from '../observe/flow-ring.ts';
import type { Resource } from '../resources/kinds.ts';
import { ListenerManager } from './listener-manager.ts';
import { MeshTls } from './mesh-tls.ts';
import { startProxyAdmin, type ProxyAdmin } from './proxy-admin.ts';
import { ProxyError } from './proxy-error.ts';

describe('proxy admin server', () => {
  const ring = new FlowRing(8);
  const flows = new FlowLog();
  const mesh = new MeshTls();
  const clusters = new TestClusters();
  clusters.add('inbound|app', [{ address: '127.0.0.1', port: 1 }]);
  const lm = new ListenerManager({ tls: mesh, policy: () => undefined, clusters, http: new TestHttpEngine(), flows: { report: (f) => (flows.report(f), ring.push(f)) } });
  const registry = new Registry();
  new Counter({ name: 'istio_tcp_connections_opened_total', help: 'x', registers: [registry] }).inc(3);
  let admin: ProxyAdmin;
  let drains = 0;

  before(async () => {
    admin = await startProxyAdmin({
      port: 0,
      listeners: lm,
      drain: () => {
        drains++;
        return lm.drain(100);
      },
      clusterStats: () => [{ name: 'inbound|app', membership_total: 1, panic: false, hosts: [{ address: '127.0.0.1', port: 1, rq_total: 7, ejected: true }] }],
      metrics: { text: () => registry.metrics(), contentType: registry.contentType },
      xdsStatus: () => ({ lds: { version: '7', status: 'ACKED' } }),
      extra: () => ({ certificate: { spiffeId: 'spiffe://cluster.local/ns/shop/sa/db' } }),
      flows: (n) => ring.last(n).flows,
    });
  });
  after(async () => {
    await admin.close();
    await lm.close();
    mesh.close();
  });

  const get = async (path: string, init?: RequestInit): Promise<{ status: number; text: string; type: string }> => {
    const r = await fetch(`${admin.url}${path}`, { ...init, signal: AbortSignal.timeout(3000) });
    return { status: r.status, text: await r.text(), type: r.headers.get('content-type') ?? '' };
  };

  it('is not ready before the first config, and ready once its listeners are bound', async () => {
    const r = await get('/ready');
    assert.equal(r.status, 503);
    assert.equal(r.text, 'PRE_INITIALIZING\n');
    const cfg = proxyConfig([
      listener({
        name: 'inbound|app',
        direction: 'inbound',
        address: { host: '127.0.0.1', port: 0 },
        mtls: 'PERMISSIVE',
        tcpCluster: 'inbound|app',
        httpFilters: [{ name: 'trellis.extension', module: './f.js', config: { apiKey: 'hunter2' } }],
      }),
    ]);
    const resources = [{ kind: 'NetworkPolicy' }, { kind: 'NetworkPolicy' }, { kind: 'Pod' }] as unknown as Resource[];
    assert.deepEqual(await lm.apply({ ...cfg, policy: { version: 'v9', trustDomain: 'cluster.local', resources } }), []);
    const ready = await get('/ready');
    assert.equal(ready.status, 200);
    assert.equal(ready.text, 'LIVE\n');
  });

  it('/stats shows server, listener and cluster counters', async () => {
    // One connection, denied (no policy snapshot): it shows in the counters.
    await readAll(net.connect(lm.portOf('inbound|app')!, '127.0.0.1').end('\x00x'));
    const r = await get('/stats');
    assert.equal(r.status, 200);
    assert.match(r.text, /^server\.state: LIVE$/m);
    assert.match(r.text, /^listener_manager\.total_listeners_active: 1$/m);
    assert.match(r.text, /^listener\.inbound\|app\.downstream_cx_total: 1$/m);
    assert.match(r.text, /^listener\.inbound\|app\.downstream_cx_denied: 1$/m);
    assert.match(r.text, /^cluster\.inbound\|app\.membership_total: 1$/m);
    assert.match(r.text, /^cluster\.inbound\|app\.panic: 0$/m);
    assert.match(r.text, /^cluster\.inbound\|app\.host\.127\.0\.0\.1:1\.ejected: 1$/m);
  });

  it('/config_dump shows the config without secrets, the policy as counts, and the xDS status', async () => {
    const r = await get('/config_dump');
    assert.equal(r.status, 200);
    assert.match(r.type, /application\/json/);
    assert.doesNotMatch(r.text, /hunter2/);
    const body = JSON.parse(r.text) as { certificate: unknown; xds: unknown; config: { listeners: { name: string; httpFilters: { config: unknown }[] }[]; clusters: object; policy: unknown } };
    assert.equal(body.config.listeners[0]!.name, 'inbound|app');
    assert.equal(body.config.listeners[0]!.httpFilters[0]!.config, '<1 keys, not shown>');
    assert.deepEqual(body.config.policy, { version: 'v9', trustDomain: 'cluster.local', rootNamespace: null, resources: 3, kinds: { NetworkPolicy: 2, Pod: 1 } });
    assert.deepEqual(body.xds, { lds: { version: '7', status: 'ACKED' } });
    assert.deepEqual(body.certificate, { spiffeId: 'spiffe://cluster.local/ns/shop/sa/db' });
  });

  it('/flows?last=N returns the last N flows, bounded; bad N is a 400', async () => {
    const r = await get('/flows?last=1');
    const list = JSON.parse(r.text) as { verdict: string; drop_reason_desc: string }[];
    assert.equal(list.length, 1);
    assert.equal(list[0]!.verdict, 'DROPPED');
    assert.equal(list[0]!.drop_reason_desc, 'NO_CONFIGURATION_AVAILABLE_TO_PERFORM_POLICY_DECISION');
    assert.equal((JSON.parse((await get('/flows?last=9999999')).text) as unknown[]).length, ring.status().numFlows);
    assert.equal((await get('/flows?last=-1')).status, 400);
    assert.equal((await get('/flows?last=abc')).status, 400);
  });

  it('/metrics and /stats/prometheus serve the supplied Prometheus text', async () => {
    for (const p of ['/metrics', '/stats/prometheus']) {
      const r = await get(p);
      assert.equal(r.status, 200);
      assert.match(r.text, /^istio_tcp_connections_opened_total 3$/m);
    }
  });

  it('refuses other methods and unknown paths, and binds loopback only', async () => {
    assert.equal((await get('/stats', { method: 'POST' })).status, 405);
    assert.equal((await get('/drain')).status, 405);
    assert.equal((await get('/nope')).status, 404);
    await assert.rejects(startProxyAdmin({ host: '0.0.0.0', port: 0, listeners: lm, drain: () => {} }), (e: unknown) => e instanceof ProxyError && e.code === 'bind-failed');
    await assert.rejects(startProxyAdmin({ port: admin.port, listeners: lm, drain: () => {} }), (e: unknown) => e instanceof ProxyError && /EADDRINUSE/.test(e.message));
  });

  it('POST /drain answers at once, starts draining, and /ready turns 503', async () => {
    const r = await get('/drain', { method: 'POST', body: 'ignored' });
    assert.equal(r.status, 200);
    assert.equal(drains, 1);
    const ready = await get('/ready');
    assert.equal(ready.status, 503);
    assert.equal(ready.text, 'DRAINING\n');
    await get('/drain', { method: 'POST' });
    assert.equal(drains, 1, 'a second drain request does not start another drain');
  });
});
