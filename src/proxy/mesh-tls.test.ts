// Tests of MeshTls with certificates from real CAs: material checks, termination that refuses foreign and missing
// client certificates, client-side SPIFFE ID checks, and following a rotator directory's generations.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import tls, { type TLSSocket } from 'node:tls';
import { writeCertificateFiles } from '../ca/certificate-files.ts';
import { tcpServer, testCa, type IssuedFiles, type TestCa } from '../../test/support/proxy-l4-harness.ts';
import { MeshTls, singleSpiffeUri } from './mesh-tls.ts';
import { ProxyError } from './proxy-error.ts';

const H = '127.0.0.1';

describe('MeshTls', () => {
  let ca: TestCa;
  let foreign: TestCa;
  let server: IssuedFiles;
  let client: IssuedFiles;
  before(async () => {
    ca = await testCa();
    foreign = await testCa('other.local');
    server = await ca.issue('shop', 'db');
    client = await ca.issue('shop', 'api');
  });

  it('refuses material that does not hold together', async () => {
    const m = new MeshTls();
    const other = await ca.issue('shop', 'x');
    const refuse = (files: Parameters<MeshTls['update']>[0], re: RegExp): void =>
      assert.throws(() => m.update(files), (e: unknown) => e instanceof ProxyError && e.code === 'no-certificate' && re.test(e.message));
    refuse({ ...server, keyPem: other.keyPem }, /key does not match/);
    refuse({ ...server, rootCertPem: (await foreign.issue('a', 'b')).rootCertPem }, /does not end at one of the roots/);
    refuse({ ...server, certChainPem: '' }, /no certificate/);
    assert.equal(m.ready, false);
    assert.throws(() => m.secureContext(), ProxyError);
    m.update(server);
    assert.equal(m.spiffeId, 'spiffe://cluster.local/ns/shop/sa/db');
    assert.equal(m.trustDomain, 'cluster.local');
    assert.equal(m.generation, 1);
    m.close();
  });

  it('singleSpiffeUri wants exactly one URI SAN, a spiffe one', () => {
    assert.equal(singleSpiffeUri('URI:spiffe://td/ns/a/sa/b'), 'spiffe://td/ns/a/sa/b');
    assert.equal(singleSpiffeUri('DNS:x, URI:spiffe://td/ns/a/sa/b'), 'spiffe://td/ns/a/sa/b');
    assert.equal(singleSpiffeUri('URI:spiffe://td/ns/a/sa/b, URI:spiffe://td/ns/a/sa/c'), undefined);
    assert.equal(singleSpiffeUri('URI:https://x'), undefined);
    assert.equal(singleSpiffeUri(undefined), undefined);
  });

  describe('termination and client checks', () => {
    const mesh = new MeshTls({ handshakeTimeoutMs: 2000 });
    let srv: Awaited<ReturnType<typeof tcpServer>>;
    const results: { ok?: TLSSocket; err?: Error }[] = [];
    before(async () => {
      mesh.update(server);
      srv = await tcpServer(H, (s) => {
        mesh.terminate(s).then(
          (t) => {
            results.push({ ok: t });
            t.end(`hello ${mesh.peerSpiffeId(t) ?? '?'}`);
          },
          (err: Error) => results.push({ err }),
        );
      });
    });
    after(async () => {
      mesh.close();
      await srv.close();
    });

    async function connect(opts: tls.ConnectionOptions): Promise<{ text: string; error?: string }> {
      const c = tls.connect({ host: H, port: srv.port, ...opts });
      const chunks: Buffer[] = [];
      c.on('data', (d: Buffer) => chunks.push(d));
      try {
        await Promise.race([once(c, 'end'), once(c, 'close')]);
        return { text: Buffer.concat(chunks).toString() };
      } catch (e) {
        return { text: Buffer.concat(chunks).toString(), error: (e as Error).message };
      } finally {
        c.destroy();
      }
    }

    it('accepts a mesh peer and reads its SPIFFE ID; the client checks the server is who it expects', async () => {
      const m = new MeshTls();
      m.update(client);
      const r = await connect(m.clientOptions(['trellis-tcp'], ['spiffe://cluster.local/ns/shop/sa/db']));
      assert.equal(r.text, 'hello spiffe://cluster.local/ns/shop/sa/api');
      m.close();
    });

    it('a client refuses a server whose SPIFFE ID is not the expected one', async () => {
      const m = new MeshTls();
      m.update(client);
      const r = await connect(m.clientOptions(['trellis-tcp'], ['spiffe://cluster.local/ns/shop/sa/web']));
      assert.equal(r.text, '');
      assert.match(r.error ?? '', /expected spiffe:\/\/cluster.local\/ns\/shop\/sa\/web/);
      m.close();
    });

    it('with no expected IDs, a client accepts only its own trust domain', async () => {
      // The client trusts both roots, so only the trust-domain check can refuse the foreign server.
      const foreignServer = await foreign.issue('shop', 'db');
      const fm = new MeshTls();
      fm.update({ ...foreignServer, rootCertPem: `${foreignServer.rootCertPem}\n${server.rootCertPem}` });
      const fsrv = await tcpServer(H, (s) => void fm.terminate(s).then((t) => t.end('x'), () => {}));
      const m = new MeshTls();
      m.update({ ...client, rootCertPem: client.rootCertPem + foreignServer.rootCertPem }); // no newline between: still two roots
      try {
        const c = tls.connect({ host: H, port: fsrv.port, ...m.clientOptions(['h2'], []) });
        const [err] = (await once(c, 'error')) as [Error];
        assert.match(err.message, /an identity in trust domain cluster.local/);
        c.destroy();
      } finally {
        m.close();
        fm.close();
        await fsrv.close();
      }
    });

    it('refuses a client certificate from a foreign CA, and a client with no certificate', async () => {
      const before = results.length;
      const intruder = await foreign.issue('shop', 'api');
      const r1 = await connect({ key: intruder.keyPem, cert: intruder.certChainPem, ca: server.rootCertPem, checkServerIdentity: () => undefined });
      assert.equal(r1.text, '');
      const r2 = await connect({ ca: server.rootCertPem, checkServerIdentity: () => undefined });
      assert.equal(r2.text, '');
      for (let i = 0; i < 100 && results.length < before + 2; i++) await sleep(10);
      const mine = results.slice(before);
      assert.equal(mine.length, 2);
      assert.ok(mine.every((x) => x.err !== undefined && x.ok === undefined));
    });

    it('offers the client its own protocol when it offers neither h2 nor http/1.1', async () => {
      const m = new MeshTls();
      m.update(client);
      const c = tls.connect({ host: H, port: srv.port, ...m.clientOptions(['trellis-tcp'], []) });
      await once(c, 'secureConnect');
      assert.equal(c.alpnProtocol, 'trellis-tcp');
      c.destroy();
      const c2 = tls.connect({ host: H, port: srv.port, ...m.clientOptions(['http/1.1', 'h2'], []) });
      await once(c2, 'secureConnect');
      assert.equal(c2.alpnProtocol, 'h2');
      c2.destroy();
      m.close();
    });
  });

  it('follows a rotator directory: a new generation is picked up and served to new handshakes', async () => {
    const dir = join(await mkdtemp(join(tmpdir(), 'trellis-mesh-')), 'certs');
    await writeCertificateFiles(dir, server);
    const updates: string[] = [];
    const mesh = await MeshTls.fromDirectory(dir, { pollMs: 200, onUpdate: (u) => updates.push(u.serial) });
    const srv = await tcpServer(H, (s) => void mesh.terminate(s).then((t) => t.end('ok'), () => {}));
    const cm = new MeshTls();
    cm.update(client);
    const serialSeen = async (): Promise<string> => {
      const c = tls.connect({ host: H, port: srv.port, ...cm.clientOptions(['trellis-tcp'], []) });
      await once(c, 'secureConnect');
      const serial = c.getPeerCertificate().serialNumber;
      c.destroy();
      return serial;
    };
    try {
      const first = await serialSeen();
      assert.equal(first, mesh.serial);
      const next = await ca.issue('shop', 'db');
      await writeCertificateFiles(dir, next);
      for (let i = 0; i < 200 && mesh.generation < 2; i++) await sleep(10);
      assert.equal(mesh.generation, 2);
      const second = await serialSeen();
      assert.notEqual(second, first);
      assert.equal(second, mesh.serial);
      assert.deepEqual(updates, [first, second]);
    } finally {
      mesh.close();
      cm.close();
      await srv.close();
    }
  });

  it('fromDirectory fails with no-certificate on an empty directory', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'trellis-mesh-empty-'));
    await assert.rejects(MeshTls.fromDirectory(dir), (e: unknown) => e instanceof ProxyError && e.code === 'no-certificate');
  });
});
