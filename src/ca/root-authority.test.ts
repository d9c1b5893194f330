// Tests for root-authority.ts: a generated root survives restarts; a user-supplied intermediate chains to the user's root.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, stat, writeFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CertificateAuthority } from './certificate-authority.ts';
import { CaError } from './ca-error.ts';
import { createCsr } from './csr.ts';
import { exportPrivateKeyPem, generateP256KeyPair, P256 } from './keys.ts';
import { generateRoot, randomSerial } from './root-authority.ts';
import { x509 } from './x509.ts';

const identity = { namespace: 'shop', serviceAccount: 'api' };

async function tempDir(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'trellis-ca-'));
}

describe('generated root', () => {
  it('is created on first start, persisted with a 0600 key, and reloaded identically', async () => {
    const stateDir = join(await tempDir(), 'state');
    const a = await CertificateAuthority.loadOrCreate({ stateDir, trustDomain: 'cluster.local' });
    const keyStat = await stat(join(stateDir, 'root-key.pem'));
    assert.equal(keyStat.mode & 0o777, 0o600);
    assert.equal((await stat(stateDir)).mode & 0o777, 0o700);
    const b = await CertificateAuthority.loadOrCreate({ stateDir, trustDomain: 'cluster.local' });
    assert.equal(a.trustBundle(), b.trustBundle());
    assert.equal(a.trustBundle().trim(), (await readFile(join(stateDir, 'root-cert.pem'), 'utf8')).trim());
    const root = new X509Certificate(a.trustBundle());
    assert.equal(root.ca, true);
    assert.equal(root.verify(root.publicKey), true);
    // A certificate issued before the restart verifies against the reloaded bundle.
    const issued = await a.issue(await createCsr(await generateP256KeyPair()), identity);
    assert.ok(new X509Certificate(issued.certChain[0]!).verify(new X509Certificate(b.trustBundle()).publicKey));
  });

  it('refuses a state directory made for another trust domain, and a certificate without its key', async () => {
    const stateDir = await tempDir();
    await CertificateAuthority.loadOrCreate({ stateDir, trustDomain: 'one.example' });
    await assert.rejects(CertificateAuthority.loadOrCreate({ stateDir, trustDomain: 'two.example' }), (e: unknown) => e instanceof CaError && e.code === 'INVALID_STATE');
    await rm(join(stateDir, 'root-key.pem'));
    await assert.rejects(CertificateAuthority.loadOrCreate({ stateDir, trustDomain: 'one.example' }), /root-key\.pem is missing/);
  });
});

describe('user-supplied CA', () => {
  it('signs with the intermediate, includes it in chains and puts the user root in the bundle', async () => {
    const dir = await tempDir();
    const rootKeys = await generateP256KeyPair();
    const root = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: randomSerial(),
      name: 'CN=Example Root',
      keys: rootKeys,
      signingAlgorithm: P256,
      notBefore: new Date(Date.now() - 3600_000),
      notAfter: new Date(Date.now() + 365 * 86400_000),
      extensions: [new x509.BasicConstraintsExtension(true, 1, true), new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign, true), await x509.SubjectKeyIdentifierExtension.create(rootKeys.publicKey)],
    });
    const interKeys = await generateP256KeyPair();
    const inter = await x509.X509CertificateGenerator.create({
      serialNumber: randomSerial(),
      subject: 'CN=Example Intermediate',
      issuer: root.subject,
      publicKey: interKeys.publicKey,
      signingKey: rootKeys.privateKey,
      signingAlgorithm: P256,
      notBefore: new Date(Date.now() - 3600_000),
      notAfter: new Date(Date.now() + 30 * 86400_000),
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        await x509.SubjectKeyIdentifierExtension.create(interKeys.publicKey),
        await x509.AuthorityKeyIdentifierExtension.create(rootKeys.publicKey),
      ],
    });
    const certFile = join(dir, 'ca-chain.pem');
    const keyFile = join(dir, 'ca-key.pem');
    await writeFile(certFile, `${inter.toString('pem')}\n${root.toString('pem')}\n`);
    await writeFile(keyFile, await exportPrivateKeyPem(interKeys.privateKey), { mode: 0o600 });

    const ca = await CertificateAuthority.loadOrCreate({ stateDir: join(dir, 'state'), trustDomain: 'example.org', rootCertFile: certFile, rootKeyFile: keyFile });
    assert.equal(new X509Certificate(ca.trustBundle()).fingerprint256, new X509Certificate(root.toString('pem')).fingerprint256);
    const issued = await ca.issue(await createCsr(await generateP256KeyPair()), identity);
    assert.equal(issued.certChain.length, 2);
    assert.equal(new X509Certificate(issued.certChain[1]!).fingerprint256, new X509Certificate(inter.toString('pem')).fingerprint256);

    const leaf = new x509.X509Certificate(issued.certChain[0]!);
    const builder = new x509.X509ChainBuilder({ certificates: [new x509.X509Certificate(issued.certChain[1]!), new x509.X509Certificate(ca.trustBundle())] });
    const chain = await builder.build(leaf);
    assert.equal(chain.length, 3);
    assert.equal(chain[2]!.subject, 'CN=Example Root');
    assert.equal(await chain[0]!.verify({ publicKey: chain[1]!.publicKey, signatureOnly: true }), true);
    assert.equal(await chain[1]!.verify({ publicKey: chain[2]!.publicKey, signatureOnly: true }), true);
    // The leaf's notAfter never outlives the intermediate.
    assert.ok(leaf.notAfter <= inter.notAfter);
  });

  it('refuses a key that does not belong to the certificate, and a chain that does not end at a root', async () => {
    const dir = await tempDir();
    const { cert } = await generateRoot('example.org');
    const certFile = join(dir, 'root.pem');
    const keyFile = join(dir, 'key.pem');
    await writeFile(certFile, cert.toString('pem'));
    await writeFile(keyFile, await exportPrivateKeyPem((await generateP256KeyPair()).privateKey));
    await assert.rejects(
      CertificateAuthority.loadOrCreate({ stateDir: dir, trustDomain: 'example.org', rootCertFile: certFile, rootKeyFile: keyFile }),
      (e: unknown) => e instanceof CaError && e.code === 'INVALID_CA_MATERIAL' && /not the key/.test(e.message),
    );
    await writeFile(certFile, 'not a pem');
    await assert.rejects(
      CertificateAuthority.loadOrCreate({ stateDir: dir, trustDomain: 'example.org', rootCertFile: certFile, rootKeyFile: keyFile }),
      /holds no PEM CERTIFICATE/,
    );
  });
});
