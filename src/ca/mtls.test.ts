// A real mutual TLS handshake on loopback between two workloads holding Trellis-issued certificates.
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import type { AddressInfo } from 'node:net';
import { CertificateAuthority } from './certificate-authority.ts';
import { uriSans } from './certificate-client.ts';
import { createCsr } from './csr.ts';
import { exportPrivateKeyPem, generateP256KeyPair } from './keys.ts';
import { parseSpiffeId, type Identity } from './spiffe-id.ts';

async function workload(ca: CertificateAuthority, identity: Identity): Promise<{ key: string; cert: string }> {
  const keys = await generateP256KeyPair();
  const issued = await ca.issue(await createCsr(keys), identity);
  return { key: await exportPrivateKeyPem(keys.privateKey), cert: issued.certChain.join('\n') };
}

/** Accept the peer when its certificate carries the expected SPIFFE ID (SPIFFE peers are not named by host). */
const expectSpiffeId = (id: string) => (_host: string, cert: tls.PeerCertificate) =>
  uriSans(cert).includes(id) ? undefined : new Error(`peer is not ${id}`);

describe('mutual TLS with Trellis certificates', () => {
  let ca: CertificateAuthority;
  let other: CertificateAuthority;
  before(async () => {
    ca = await CertificateAuthority.loadOrCreate({ stateDir: await mkdtemp(join(tmpdir(), 'trellis-ca-')) });
    other = await CertificateAuthority.loadOrCreate({ stateDir: await mkdtemp(join(tmpdir(), 'trellis-ca-')) });
  });

  async function serve(server: { key: string; cert: string }, bundle: string) {
    const seen: string[] = [];
    const errors: Error[] = [];
    const srv = tls.createServer({ ...server, ca: bundle, requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.3' }, (sock) => {
      seen.push(parseSpiffeId(uriSans(sock.getPeerCertificate())[0]!).serviceAccount);
      sock.end('hello ' + seen[seen.length - 1]!);
    });
    srv.on('tlsClientError', (e) => errors.push(e));
    srv.listen(0, '127.0.0.1');
    await once(srv, 'listening');
    return { srv, seen, errors, port: (srv.address() as AddressInfo).port };
  }

  it('completes the handshake and the server reads the client SPIFFE ID', async () => {
    const server = await workload(ca, { namespace: 'shop', serviceAccount: 'db' });
    const client = await workload(ca, { namespace: 'shop', serviceAccount: 'api' });
    const { srv, seen, port } = await serve(server, ca.trustBundle());
    try {
      const sock = tls.connect({ host: '127.0.0.1', port, ...client, ca: ca.trustBundle(), checkServerIdentity: expectSpiffeId('spiffe://cluster.local/ns/shop/sa/db') });
      await once(sock, 'secureConnect');
      assert.equal(sock.authorized, true);
      const chunks: Buffer[] = [];
      sock.on('data', (c: Buffer) => chunks.push(c));
      await once(sock, 'end');
      assert.equal(Buffer.concat(chunks).toString(), 'hello api');
      assert.deepEqual(seen, ['api']);
      sock.destroy();
    } finally {
      srv.close();
    }
  });

  it('refuses a client certificate from a different root', async () => {
    const server = await workload(ca, { namespace: 'shop', serviceAccount: 'db' });
    const intruder = await workload(other, { namespace: 'shop', serviceAccount: 'api' });
    const { srv, seen, errors, port } = await serve(server, ca.trustBundle());
    try {
      const sock = tls.connect({ host: '127.0.0.1', port, ...intruder, ca: ca.trustBundle(), checkServerIdentity: expectSpiffeId('spiffe://cluster.local/ns/shop/sa/db') });
      const [err] = (await Promise.race([once(sock, 'error'), once(sock, 'close').then(() => [new Error('closed')])])) as [Error];
      assert.ok(err);
      assert.deepEqual(seen, []);
      assert.ok(errors.length === 1, 'the server reports the refused client');
      sock.destroy();
    } finally {
      srv.close();
    }
  });

  it('a client refuses a server certificate from a different root', async () => {
    const server = await workload(other, { namespace: 'shop', serviceAccount: 'db' });
    const client = await workload(ca, { namespace: 'shop', serviceAccount: 'api' });
    const { srv, port } = await serve(server, ca.trustBundle());
    try {
      const sock = tls.connect({ host: '127.0.0.1', port, ...client, ca: ca.trustBundle(), checkServerIdentity: expectSpiffeId('spiffe://cluster.local/ns/shop/sa/db') });
      const [err] = (await once(sock, 'error')) as [NodeJS.ErrnoException];
      assert.match(String(err.code), /UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED|UNABLE_TO_GET_ISSUER/);
    } finally {
      srv.close();
    }
  });
});
