// The listener manager over real loopback sockets, real mTLS (certificates from a real CA) and the real policy
// runtime over real manifests: nothing listens before the first config; apply() adds, keeps, moves and removes
// listeners and reports what it cannot bind; denied connections are reset with a DROPPED flow naming the policy;
// no policy means deny; HTTP/1, HTTP/2 and TCP are told apart (also inside mTLS) and dispatched; an outbound TCP
// listener reaches an inbound one over mesh mTLS with egress decided per host; limits and drain. The HTTP engine
// and cluster manager are the harness's own small implementations (TestHttpEngine, TestClusters).
import assert from 'node:assert/strict';
import { once } from 'node:events';
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import tls from 'node:tls';
import type { PolicyEnforcer } from '../../src/proxy/contracts.ts';
import { ListenerManager } from '../../src/proxy/listener-manager.ts';
import { MeshTls } from '../../src/proxy/mesh-tls.ts';
import type { ListenerConfig } from '../../src/proxy/proxy-config.ts';
import {
  FlowLog,
  freePort,
  listener,
  proxyConfig,
  readAll,
  SHOP_IPS,
  shopPolicy,
  tcpServer,
  testCa,
  TestClusters,
  TestHttpEngine,
} from '../support/proxy-l4-harness.ts';

const DB_SPIFFE = 'spiffe://cluster.local/ns/shop/sa/db';

describe('ListenerManager', () => {
  const meshes: Record<'db' | 'api' | 'web', MeshTls> = { db: new MeshTls(), api: new MeshTls(), web: new MeshTls() };
  const shop = shopPolicy();
  let policy: PolicyEnforcer | undefined = shop;
  let app: Awaited<ReturnType<typeof tcpServer>>;
  let clusters: TestClusters;
  const flows = new FlowLog();
  const engine = new TestHttpEngine();
  let lm: ListenerManager;
  let apiProxy: ListenerManager;

  const inbound = (name: string, extra: Partial<ListenerConfig> = {}): ListenerConfig =>
    listener({ name, direction: 'inbound', address: { host: SHOP_IPS.db, port: 0 }, pod: 'shop/db', mtls: 'PERMISSIVE', tcpCluster: 'inbound|db', ...extra });

  before(async () => {
    const ca = await testCa();
    for (const [sa, m] of Object.entries(meshes)) m.update(await ca.issue('shop', sa));
    app = await tcpServer('127.0.0.1', (s) => {
      s.on('data', (d: Buffer) => s.write(d));
      s.on('end', () => s.end());
    });
    clusters = new TestClusters(meshes.api);
    clusters.add('inbound|db', [{ address: '127.0.0.1', port: app.port }], { local: true });
    lm = new ListenerManager({ tls: meshes.db, policy: () => policy, clusters, http: engine, flows, firstByteMs: 100, detectTimeoutMs: 1000, removedDrainMs: 300 });
    apiProxy = new ListenerManager({ tls: meshes.api, policy: () => policy, clusters, http: engine, flows, firstByteMs: 100, detectTimeoutMs: 1000 });
  });
  after(async () => {
    await lm.close();
    await apiProxy.close();
    await app.close();
    for (const m of Object.values(meshes)) m.close();
  });

  const connectAs = (from: string, port: number, opts: Partial<net.NetConnectOpts> = {}): net.Socket =>
    net.connect({ host: SHOP_IPS.db, port, localAddress: from, ...opts } as net.NetConnectOpts);

  it('listens on nothing before the first config (fail closed)', async () => {
    const port = await freePort(SHOP_IPS.db);
    const fresh = new ListenerManager({ tls: meshes.db, policy: () => policy, clusters, http: engine, flows });
    assert.equal(fresh.ready, false);
    assert.deepEqual(fresh.status(), []);
    const r = await readAll(net.connect(port, SHOP_IPS.db));
    assert.equal(r.error, 'ECONNREFUSED');
    await fresh.close();
  });

  it('applies listeners: adds, keeps a listener whose address stays, moves, removes (draining), reports bind failures', async () => {
    const portA = await freePort(SHOP_IPS.db);
    const portB = await freePort(SHOP_IPS.db);
    const blocker = await tcpServer(SHOP_IPS.db, () => {});
    const a = inbound('a', { address: { host: SHOP_IPS.db, port: portA } });
    const b = inbound('b', { address: { host: SHOP_IPS.db, port: portB } });
    const clash = inbound('clash', { address: { host: SHOP_IPS.db, port: blocker.port } });
    const errors = await lm.apply(proxyConfig([a, b, clash]));
    assert.deepEqual(errors.map((e) => e.code), ['bind-failed']);
    assert.match(errors[0]!.message, /listener clash: cannot bind/);
    assert.equal(lm.ready, false, 'not ready while a listener of the config is unbound');
    assert.deepEqual(lm.status().map((s) => [s.name, s.port]), [['a', portA], ['b', portB]]);
    await blocker.close();

    // A connection on b stays up while b's settings change (same address: the socket is kept).
    const held = connectAs(SHOP_IPS.api, portB);
    held.write('one');
    assert.equal(((await once(held, 'data')) as [Buffer])[0].toString(), 'one');
    assert.deepEqual(await lm.apply(proxyConfig([a, { ...b, mtls: 'STRICT' }])), []);
    assert.equal(lm.ready, true);
    held.write('two');
    assert.equal(((await once(held, 'data')) as [Buffer])[0].toString(), 'two');
    // New connections on b get the new setting: STRICT refuses plaintext.
    assert.equal((await readAll(connectAs(SHOP_IPS.api, portB).end('x'))).error, 'ECONNRESET');

    // Remove b: it stops accepting at once, its open connection is closed after removedDrainMs.
    assert.deepEqual(await lm.apply(proxyConfig([a])), []);
    assert.equal((await readAll(connectAs(SHOP_IPS.api, portB))).error, 'ECONNREFUSED');
    const t0 = Date.now();
    await readAll(held, 3000);
    assert.ok(Date.now() - t0 >= 150, 'the removed listener drained its connection before closing it');

    // Move a to another port: the new one is bound before the old one stops.
    const portC = await freePort(SHOP_IPS.db);
    assert.deepEqual(await lm.apply(proxyConfig([{ ...a, address: { host: SHOP_IPS.db, port: portC } }])), []);
    assert.equal((await readAll(connectAs(SHOP_IPS.api, portA))).error, 'ECONNREFUSED');
    const c = connectAs(SHOP_IPS.api, portC);
    c.end('moved');
    assert.equal((await readAll(c)).text, 'moved');
    await lm.apply(proxyConfig([]));
    assert.deepEqual(lm.status(), []);
  });

  describe('policy at connection time', () => {
    let port: number;
    before(async () => {
      assert.deepEqual(await lm.apply(proxyConfig([inbound('inbound|db')])), []);
      port = lm.portOf('inbound|db')!;
    });

    it('forwards an allowed connection with a FORWARDED flow naming the allowing policy, then a closing flow with bytes', async () => {
      flows.flows.length = 0;
      const c = connectAs(SHOP_IPS.api, port);
      c.end('\x00ping');
      assert.equal((await readAll(c)).text, '\x00ping');
      const f = await flows.waitFor((x) => x.verdict === 'FORWARDED' && x.trellis?.bytes_received === undefined);
      assert.equal(f.traffic_direction, 'INGRESS');
      assert.equal(f.Type, 'L3_L4');
      assert.equal(f.source.pod_name, 'api');
      assert.equal(f.source.namespace, 'shop');
      assert.ok(f.source.labels.includes('k8s:app=api'), f.source.labels.join(','));
      assert.equal(f.destination.pod_name, 'db');
      assert.deepEqual(f.ingress_allowed_by?.map((p) => `${p.kind} ${p.namespace}/${p.name}`), ['NetworkPolicy shop/db-ingress']);
      assert.equal(f.IP.source, SHOP_IPS.api);
      assert.equal(f.l4.TCP?.destination_port, port);
      assert.equal(f.trellis?.transport, 'plaintext');
      const closing = await flows.waitFor((x) => x.trellis?.bytes_received !== undefined);
      assert.equal(closing.trellis?.bytes_received, 5);
      assert.equal(closing.trellis?.bytes_sent, 5);
      assert.equal(closing.trellis?.upstream, `127.0.0.1:${app.port}`);
    });

    it('resets a denied connection and reports it DROPPED with the denying policy', async () => {
      flows.flows.length = 0;
      const r = await readAll(connectAs(SHOP_IPS.other, port).end('\x00secret'));
      assert.equal(r.error, 'ECONNRESET');
      assert.equal(r.text, '');
      const f = await flows.waitFor((x) => x.verdict === 'DROPPED');
      assert.equal(f.drop_reason_desc, 'POLICY_DENIED');
      assert.equal(f.source.pod_name, 'other');
      assert.deepEqual(f.ingress_denied_by?.map((p) => `${p.kind} ${p.namespace}/${p.name}`), ['CiliumNetworkPolicy shop/no-other']);
      assert.match(f.trellis?.rule ?? '', /spec\.ingressDeny\[0\]/);
      assert.equal(lm.status()[0]!.counters.denied, 1);

      // Default deny: no policy allows web, so no policy is named.
      const r2 = await readAll(connectAs(SHOP_IPS.web, port).end('\x00x'));
      assert.equal(r2.error, 'ECONNRESET');
      const f2 = await flows.waitFor((x) => x.verdict === 'DROPPED' && x.source.pod_name === 'web');
      assert.equal(f2.ingress_denied_by, undefined);
      assert.match(f2.Summary, /denied by default/);
    });

    it('denies everything while there is no policy snapshot (NO_CONFIGURATION)', async () => {
      flows.flows.length = 0;
      policy = undefined;
      try {
        const r = await readAll(connectAs(SHOP_IPS.api, port).end('\x00x'));
        assert.equal(r.error, 'ECONNRESET');
        const f = await flows.waitFor((x) => x.verdict === 'DROPPED');
        assert.equal(f.drop_reason_desc, 'NO_CONFIGURATION_AVAILABLE_TO_PERFORM_POLICY_DECISION');
      } finally {
        policy = shop;
      }
    });

    it('refuses an address borrowing another workload identity over mTLS', async () => {
      flows.flows.length = 0;
      const c = tls.connect({ socket: connectAs(SHOP_IPS.api, port), ...meshes.web.clientOptions(['trellis-tcp'], [DB_SPIFFE]) });
      c.on('secureConnect', () => c.write('x'));
      const r = await readAll(c);
      assert.equal(r.text, '');
      const f = await flows.waitFor((x) => x.verdict === 'DROPPED');
      assert.match(f.Summary, /identity mismatch/);
      assert.equal(f.trellis?.transport, 'mtls');
    });
  });

  describe('protocol dispatch', () => {
    let port: number;
    before(async () => {
      assert.deepEqual(await lm.apply(proxyConfig([inbound('inbound|db')])), []);
      port = lm.portOf('inbound|db')!;
    });

    it('HTTP/1.1 plaintext goes to the HTTP engine', async () => {
      const body = await new Promise<string>((resolve, reject) => {
        const req = http.get({ host: SHOP_IPS.db, port, localAddress: SHOP_IPS.api, path: '/h1', agent: false }, (res) => {
          let b = '';
          res.on('data', (d: Buffer) => (b += d.toString()));
          res.on('end', () => resolve(b));
        });
        req.on('error', reject);
      });
      assert.equal(body, 'http1 plaintext - /h1');
    });

    for (const secure of [false, true]) {
      it(`HTTP/2 ${secure ? 'inside mTLS (ALPN h2)' : 'prior knowledge'} goes to the HTTP engine`, async () => {
        const session = http2.connect(`http://${SHOP_IPS.db}:${port}`, {
          createConnection: () =>
            secure
              ? tls.connect({ socket: connectAs(SHOP_IPS.api, port), ...meshes.api.clientOptions(['h2'], [DB_SPIFFE]) })
              : net.connect({ host: SHOP_IPS.db, port, localAddress: SHOP_IPS.api }),
        });
        try {
          const req = session.request({ ':path': '/h2' });
          let b = '';
          req.on('data', (d: Buffer) => (b += d.toString()));
          await once(req, 'end');
          assert.equal(b, secure ? 'http2 mtls spiffe://cluster.local/ns/shop/sa/api /h2' : 'http2 plaintext - /h2');
        } finally {
          session.close();
        }
      });
    }

    it('a silent (server-first) client on an auto listener is proxied as TCP after the first-byte timeout', async () => {
      const silentApp = await tcpServer('127.0.0.1', (s) => s.end('220 hello from a server-first app\r\n'));
      clusters.add('inbound|smtp', [{ address: '127.0.0.1', port: silentApp.port }], { local: true });
      await lm.apply(proxyConfig([inbound('inbound|db'), inbound('smtp', { tcpCluster: 'inbound|smtp' })]));
      try {
        const t0 = Date.now();
        const r = await readAll(connectAs(SHOP_IPS.api, lm.portOf('smtp')!));
        assert.equal(r.text, '220 hello from a server-first app\r\n');
        assert.ok(Date.now() - t0 >= 90, 'waited for the first-byte timeout');
      } finally {
        await silentApp.close();
      }
    });

    it('caps connections per listener', async () => {
      const limited = inbound('limited', { limits: { ...inbound('x').limits, maxConnections: 1 } });
      await lm.apply(proxyConfig([limited]));
      const p = lm.portOf('limited')!;
      const first = connectAs(SHOP_IPS.api, p);
      first.write('\x00a');
      await once(first, 'data');
      const r = await readAll(connectAs(SHOP_IPS.api, p).end('\x00b'));
      assert.equal(r.error, 'ECONNRESET');
      first.destroy();
    });
  });

  describe('outbound TCP to an inbound listener over mesh mTLS', () => {
    it('carries bytes both ways with flows on both sides; egress is decided for the picked host', async () => {
      await lm.apply(proxyConfig([inbound('inbound|db', { mtls: 'STRICT' })]));
      const dbPort = lm.portOf('inbound|db')!;
      clusters.add('outbound|db', [{ address: SHOP_IPS.db, port: dbPort, pod: 'shop/db' }], { mtls: { subjectAltNames: [DB_SPIFFE] } });
      const out = (pod: 'api' | 'web'): ListenerConfig =>
        listener({ name: `outbound|${pod}`, direction: 'outbound', address: { host: '127.0.0.1', port: 0 }, pod: `shop/${pod}`, sourceAddress: SHOP_IPS[pod], protocol: 'tcp', tcpCluster: 'outbound|db' });
      await apiProxy.apply(proxyConfig([out('api'), out('web')]));
      flows.flows.length = 0;
      const c = net.connect({ host: '127.0.0.1', port: apiProxy.portOf('outbound|api')!, allowHalfOpen: true });
      c.end('\x00through the mesh');
      assert.equal((await readAll(c)).text, '\x00through the mesh');
      const egress = await flows.waitFor((f) => f.traffic_direction === 'EGRESS' && f.verdict === 'FORWARDED');
      assert.equal(egress.source.pod_name, 'api');
      assert.equal(egress.destination.pod_name, 'db');
      assert.equal(egress.l4.TCP?.destination_port, dbPort);
      const ingress = await flows.waitFor((f) => f.traffic_direction === 'INGRESS' && f.verdict === 'FORWARDED' && f.l4.TCP?.destination_port === dbPort);
      assert.equal(ingress.trellis?.transport, 'mtls');
      assert.equal(ingress.source.pod_name, 'api', 'the inbound side sees the source pod (bound source address + certificate)');
      assert.equal(ingress.auth_type, 'SPIRE');

      // web may not egress: reset before any upstream connection, DROPPED on the egress side.
      flows.flows.length = 0;
      const r = await readAll(net.connect({ host: '127.0.0.1', port: apiProxy.portOf('outbound|web')! }).end('\x00x'));
      assert.equal(r.error, 'ECONNRESET');
      const dropped = await flows.waitFor((f) => f.verdict === 'DROPPED');
      assert.equal(dropped.traffic_direction, 'EGRESS');
      assert.equal(dropped.source.pod_name, 'web');
      assert.equal(dropped.destination.pod_name, 'db');
      await sleep(50);
      assert.equal(flows.flows.filter((f) => f.traffic_direction === 'INGRESS' && f.l4.TCP?.destination_port === dbPort).length, 0, 'nothing reached the inbound side');
    });
  });

  it('drains: stops accepting, asks the HTTP engine to drain, closes what is left at the deadline', async () => {
    const d = new ListenerManager({ tls: meshes.db, policy: () => policy, clusters, http: engine, flows, firstByteMs: 100, detectTimeoutMs: 1000 });
    await d.apply(proxyConfig([inbound('inbound|db')]));
    const port = d.portOf('inbound|db')!;
    const c = connectAs(SHOP_IPS.api, port);
    c.write('\x00hold');
    await once(c, 'data');
    const t0 = Date.now();
    const drained = d.drain(300);
    assert.equal(d.ready, false);
    await sleep(20);
    assert.equal((await readAll(connectAs(SHOP_IPS.api, port))).error, 'ECONNREFUSED');
    await drained;
    assert.ok(Date.now() - t0 >= 280, 'TCP connections were given until the deadline');
    await readAll(c, 1000);
    assert.ok(c.destroyed);
    assert.deepEqual(engine.drains.slice(-1), [300]);
    await d.close();
  });
});
