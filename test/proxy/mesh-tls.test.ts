// Mesh mTLS on an inbound listener, end to end over loopback with certificates from real CAs and the real policy
// runtime: STRICT refuses plaintext and a certificate from a foreign CA; PERMISSIVE accepts both and the flows say
// which; DISABLE passes TLS through untouched; and rotating the certificates under a steady stream of new
// connections fails none, with every connection begun after the rotation seeing the new certificate.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import tls from 'node:tls';
import { ListenerManager } from '../../src/proxy/listener-manager.ts';
import { MeshTls } from '../../src/proxy/mesh-tls.ts';
import type { InboundMtls } from '../../src/proxy/proxy-config.ts';
import { FlowLog, listener, proxyConfig, readAll, SHOP_IPS, shopPolicy, tcpServer, testCa, TestClusters, TestHttpEngine, type TestCa } from '../support/proxy-l4-harness.ts';

const DB_SPIFFE = 'spiffe://cluster.local/ns/shop/sa/db';

describe('mesh mTLS on inbound listeners', () => {
  let ca: TestCa;
  const db = new MeshTls();
  const api = new MeshTls();
  const intruder = new MeshTls();
  const flows = new FlowLog();
  let appSeen: Buffer[] = [];
  let app: Awaited<ReturnType<typeof tcpServer>>;
  let lm: ListenerManager;
  const ports: Partial<Record<InboundMtls, number>> = {};

  before(async () => {
    ca = await testCa();
    const foreign = await testCa();
    const dbCert = await ca.issue('shop', 'db');
    db.update(dbCert);
    api.update(await ca.issue('shop', 'api'));
    // The intruder trusts our root too (so its own side of the handshake completes) but holds a foreign certificate.
    const forged = await foreign.issue('shop', 'api');
    intruder.update({ ...forged, rootCertPem: `${forged.rootCertPem}\n${dbCert.rootCertPem}` });
    app = await tcpServer('127.0.0.1', (s) => {
      s.on('data', (d: Buffer) => {
        appSeen.push(d);
        s.write(d);
      });
      s.on('end', () => s.end());
    });
    const clusters = new TestClusters();
    clusters.add('inbound|db', [{ address: '127.0.0.1', port: app.port }], { local: true });
    const shop = shopPolicy();
    lm = new ListenerManager({ tls: db, policy: () => shop, clusters, http: new TestHttpEngine(), flows, firstByteMs: 100, detectTimeoutMs: 1000 });
    const modes: InboundMtls[] = ['STRICT', 'PERMISSIVE', 'DISABLE'];
    const errors = await lm.apply(
      proxyConfig(modes.map((mtls) => listener({ name: mtls, direction: 'inbound', address: { host: SHOP_IPS.db, port: 0 }, pod: 'shop/db', mtls, tcpCluster: 'inbound|db' }))),
    );
    assert.deepEqual(errors, []);
    for (const m of modes) ports[m] = lm.portOf(m)!;
  });
  after(async () => {
    await lm.close();
    await app.close();
    for (const m of [db, api, intruder]) m.close();
  });

  const plain = (port: number): net.Socket => net.connect({ host: SHOP_IPS.db, port, localAddress: SHOP_IPS.api });
  const mtls = (port: number, as: MeshTls = api): tls.TLSSocket => tls.connect({ socket: plain(port), ...as.clientOptions(['trellis-tcp'], [DB_SPIFFE]) });

  it('STRICT: mTLS from a mesh peer passes, with its identity in the flow', async () => {
    flows.flows.length = 0;
    const c = mtls(ports.STRICT!);
    await once(c, 'secureConnect');
    c.end('\x00strict ok');
    assert.equal((await readAll(c)).text, '\x00strict ok');
    const f = await flows.waitFor((x) => x.verdict === 'FORWARDED' && x.l4.TCP?.destination_port === ports.STRICT);
    assert.equal(f.trellis?.transport, 'mtls');
    assert.equal(f.auth_type, 'SPIRE');
    assert.equal(f.source.pod_name, 'api');
  });

  it('STRICT: plaintext is refused with a reset and a DROPPED AUTH_REQUIRED flow; nothing reaches the app', async () => {
    flows.flows.length = 0;
    appSeen = [];
    const r = await readAll(plain(ports.STRICT!).end('\x00let me in'));
    assert.equal(r.error, 'ECONNRESET');
    const f = await flows.waitFor((x) => x.verdict === 'DROPPED');
    assert.equal(f.drop_reason_desc, 'AUTH_REQUIRED');
    assert.equal(f.trellis?.transport, 'plaintext');
    assert.equal(f.source.pod_name, 'api');
    assert.equal(appSeen.length, 0);
  });

  it('STRICT: a client certificate from a foreign CA is refused in the handshake', async () => {
    flows.flows.length = 0;
    appSeen = [];
    const c = mtls(ports.STRICT!, intruder);
    c.on('secureConnect', () => c.write('\x00sneaky'));
    // TLS 1.3: the client's side of the handshake is done before the server checks its certificate; the server then
    // closes the connection, and the client gets nothing.
    const r = await readAll(c);
    assert.equal(r.text, '');
    const f = await flows.waitFor((x) => x.verdict === 'DROPPED');
    assert.equal(f.drop_reason_desc, 'AUTH_REQUIRED');
    assert.match(f.Summary, /TLS handshake failed/);
    assert.equal(appSeen.length, 0);
    assert.ok(lm.status().find((s) => s.name === 'STRICT')!.counters.tlsFailed >= 1);
  });

  it('PERMISSIVE: accepts plaintext and mTLS, and the flows record which', async () => {
    flows.flows.length = 0;
    const p = plain(ports.PERMISSIVE!);
    p.end('\x00plain');
    assert.equal((await readAll(p)).text, '\x00plain');
    const m = mtls(ports.PERMISSIVE!);
    m.end('\x00secure');
    assert.equal((await readAll(m)).text, '\x00secure');
    const admitted = flows.flows.filter((x) => x.verdict === 'FORWARDED' && x.trellis?.bytes_received === undefined);
    assert.deepEqual(admitted.map((x) => x.trellis?.transport).sort(), ['mtls', 'plaintext']);
    assert.deepEqual(admitted.map((x) => x.auth_type).sort(), ['DISABLED', 'SPIRE']);
  });

  it('DISABLE: TLS is not terminated but passed to the app as opaque bytes', async () => {
    appSeen = [];
    const c = mtls(ports.DISABLE!);
    c.on('error', () => {});
    for (let i = 0; i < 100 && appSeen.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
    c.destroy();
    assert.equal(appSeen[0]?.[0], 0x16, 'the app received the ClientHello');
  });

  it('rotates certificates under a steady stream of new connections with no failure', async () => {
    const port = ports.STRICT!;
    const oldSerial = db.serial!;
    // A long-lived connection opened before the rotation keeps working after it.
    const held = mtls(port);
    await once(held, 'secureConnect');
    held.write('\x00before');
    await once(held, 'data');

    const results: { startedAfterRotation: boolean; serial?: string; error?: string }[] = [];
    let rotated = false;
    let stop = false;
    const worker = async (): Promise<void> => {
      while (!stop) {
        const startedAfterRotation = rotated;
        const c = mtls(port);
        try {
          await once(c, 'secureConnect');
          const serial = c.getPeerCertificate().serialNumber;
          c.end('\x00ping');
          const r = await readAll(c, 2000);
          results.push(r.text === '\x00ping' && r.error === undefined ? { startedAfterRotation, serial } : { startedAfterRotation, error: r.error ?? `got ${JSON.stringify(r.text)}` });
        } catch (e) {
          results.push({ startedAfterRotation, error: (e as Error).message });
          c.destroy();
        }
      }
    };
    const workers = [worker(), worker(), worker(), worker()];
    await new Promise((r) => setTimeout(r, 400));
    // Both sides rotate: the server's certificate (what new handshakes present) and the client's.
    const [nextDb, nextApi] = await Promise.all([ca.issue('shop', 'db'), ca.issue('shop', 'api')]);
    db.update(nextDb);
    api.update(nextApi);
    rotated = true;
    await new Promise((r) => setTimeout(r, 400));
    stop = true;
    await Promise.all(workers);

    const failures = results.filter((r) => r.error !== undefined);
    assert.deepEqual(failures, [], 'no connection failed');
    const before = results.filter((r) => !r.startedAfterRotation);
    const after = results.filter((r) => r.startedAfterRotation);
    assert.ok(before.length >= 5 && after.length >= 5, `${before.length} connections before, ${after.length} after`);
    // A connection begun just before the rotation may have its handshake read after it: either certificate is fine.
    assert.ok(before.filter((r) => r.serial === oldSerial).length >= 5, 'connections before the rotation saw the old certificate');
    assert.notEqual(db.serial, oldSerial);
    assert.ok(after.every((r) => r.serial === db.serial), 'every connection begun after the rotation saw the new certificate');

    held.write('\x00after');
    const [d] = (await once(held, 'data')) as [Buffer];
    assert.equal(d.toString(), '\x00after');
    held.destroy();
  });
});
