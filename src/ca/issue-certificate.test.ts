// Tests for issuing: the exact SPIFFE SAN, P-256, lifetime, leaf extensions, CSR validation and SPIFFE ID parsing.
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate, generateKeyPairSync } from 'node:crypto';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CertificateAuthority } from './certificate-authority.ts';
import { CaError } from './ca-error.ts';
import { createCsr } from './csr.ts';
import { CLOCK_SKEW_MS } from './issue-certificate.ts';
import { generateP256KeyPair } from './keys.ts';
import { parseSpiffeId, spiffeId } from './spiffe-id.ts';
import { x509 } from './x509.ts';

const identity = { namespace: 'shop', serviceAccount: 'api' };
let ca: CertificateAuthority;

before(async () => {
  ca = await CertificateAuthority.loadOrCreate({ stateDir: await mkdtemp(join(tmpdir(), 'trellis-ca-')), workloadTtlMs: 3600_000, maxWorkloadTtlMs: 7200_000 });
});

const isCode = (code: string) => (e: unknown) => e instanceof CaError && e.code === code;

describe('issue', () => {
  it('issues a P-256 leaf with exactly one SPIFFE URI SAN, the TTL and leaf extensions, verifying against the bundle', async () => {
    const t0 = Date.now();
    const issued = await ca.issue(await createCsr(await generateP256KeyPair()), identity);
    assert.equal(issued.spiffeId, 'spiffe://cluster.local/ns/shop/sa/api');
    const leaf = new x509.X509Certificate(issued.certChain[0]!);
    const sans = leaf.getExtension(x509.SubjectAlternativeNameExtension)!;
    assert.deepEqual(sans.names.toJSON(), [{ type: 'url', value: 'spiffe://cluster.local/ns/shop/sa/api' }]);
    assert.equal(sans.critical, true); // the subject is empty
    assert.deepEqual(leaf.publicKey.algorithm, { name: 'ECDSA', namedCurve: 'P-256' });
    const bc = leaf.getExtension(x509.BasicConstraintsExtension)!;
    assert.equal(bc.ca, false);
    assert.equal(bc.critical, true);
    assert.equal(leaf.getExtension(x509.KeyUsagesExtension)!.usages, x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment);
    assert.deepEqual([...leaf.getExtension(x509.ExtendedKeyUsageExtension)!.usages], [x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]);
    const root = new x509.X509Certificate(ca.trustBundle());
    const rootSki = root.getExtension(x509.SubjectKeyIdentifierExtension)!.keyId;
    assert.equal(leaf.getExtension(x509.AuthorityKeyIdentifierExtension)!.keyId, rootSki);
    assert.equal(leaf.getExtension(x509.SubjectKeyIdentifierExtension)!.keyId, Buffer.from(await leaf.publicKey.getKeyIdentifier()).toString('hex'));
    // Lifetime: one hour from now, backdated by the clock-skew allowance.
    const ttl = leaf.notAfter.getTime() - t0;
    assert.ok(ttl > 3600_000 - 5000 && ttl <= 3600_000 + 5000, `ttl ${ttl}`);
    assert.ok(Math.abs(t0 - CLOCK_SKEW_MS - leaf.notBefore.getTime()) < 5000);
    // Node agrees: signed by the bundle's root, and the root is its issuer.
    const nodeLeaf = new X509Certificate(issued.certChain[0]!);
    const nodeRoot = new X509Certificate(ca.trustBundle());
    assert.equal(nodeLeaf.verify(nodeRoot.publicKey), true);
    assert.equal(nodeLeaf.checkIssued(nodeRoot), true);
    assert.equal(nodeLeaf.ca, false);
    assert.equal(nodeLeaf.subjectAltName, 'URI:spiffe://cluster.local/ns/shop/sa/api');
  });

  it('caps the lifetime at the maximum', async () => {
    const issued = await ca.issue(await createCsr(await generateP256KeyPair()), identity, 100 * 3600_000);
    const life = issued.notAfter.getTime() - Date.now();
    assert.ok(life <= 7200_000 && life > 7200_000 - 10_000, `life ${life}`);
  });

  it('takes the identity from the caller, not from the SANs the CSR claims', async () => {
    const keys = await generateP256KeyPair();
    const csr = await x509.Pkcs10CertificateRequestGenerator.create({
      name: 'CN=admin',
      keys,
      signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
      extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'url', value: 'spiffe://cluster.local/ns/kube-system/sa/admin' }, { type: 'dns', value: 'evil.example' }])],
    });
    const issued = await ca.issue(csr.toString('pem'), identity);
    assert.equal(new X509Certificate(issued.certChain[0]!).subjectAltName, 'URI:spiffe://cluster.local/ns/shop/sa/api');
    assert.ok(!new X509Certificate(issued.certChain[0]!).subject); // the CSR's CN=admin is not copied
  });

  it('refuses garbage, two CSRs, a non-P-256 key and a broken signature', async () => {
    await assert.rejects(ca.issue('hello', identity), isCode('INVALID_CSR'));
    await assert.rejects(ca.issue('-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----', identity), isCode('INVALID_CSR'));
    const good = await createCsr(await generateP256KeyPair());
    await assert.rejects(ca.issue(good + good, identity), /exactly one/);
    await assert.rejects(ca.issue('x'.repeat(100_000), identity), /larger than/);
    const p384 = await x509.Pkcs10CertificateRequestGenerator.create({
      keys: await globalThis.crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-384' }, true, ['sign', 'verify']),
      signingAlgorithm: { name: 'ECDSA', hash: 'SHA-384' },
    });
    await assert.rejects(ca.issue(p384.toString('pem'), identity), /ECDSA P-256, got EC P-384/);
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const rsaKeys = {
      privateKey: await globalThis.crypto.subtle.importKey('pkcs8', rsa.privateKey.export({ type: 'pkcs8', format: 'der' }), { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' }, true, ['sign']),
      publicKey: await globalThis.crypto.subtle.importKey('spki', rsa.publicKey.export({ type: 'spki', format: 'der' }), { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' }, true, ['verify']),
    };
    const rsaCsr = await x509.Pkcs10CertificateRequestGenerator.create({ keys: rsaKeys, signingAlgorithm: { name: 'RSASSA-PKCS1-v1_5' } });
    await assert.rejects(ca.issue(rsaCsr.toString('pem'), identity), /ECDSA P-256, got RSASSA-PKCS1-v1_5/);
    // Flip a byte in the signature (the last bytes of the DER).
    const der = Buffer.from(new x509.Pkcs10CertificateRequest(good).rawData);
    der[der.length - 3] = der[der.length - 3]! ^ 0x01;
    const tampered = x509.PemConverter.encode(der, 'CERTIFICATE REQUEST');
    await assert.rejects(ca.issue(tampered, identity), (e: unknown) => isCode('INVALID_CSR')(e) && /signature/.test((e as Error).message));
  });

  it('refuses identities that are not Kubernetes names', async () => {
    const csr = await createCsr(await generateP256KeyPair());
    await assert.rejects(ca.issue(csr, { namespace: 'Shop', serviceAccount: 'api' }), isCode('INVALID_IDENTITY'));
    await assert.rejects(ca.issue(csr, { namespace: 'shop', serviceAccount: 'a/b' }), isCode('INVALID_IDENTITY'));
  });
});

describe('SPIFFE IDs', () => {
  it('builds and parses workload IDs', () => {
    assert.equal(spiffeId('cluster.local', identity), 'spiffe://cluster.local/ns/shop/sa/api');
    assert.equal(ca.spiffeId({ namespace: 'default', serviceAccount: 'my.sa' }), 'spiffe://cluster.local/ns/default/sa/my.sa');
    assert.deepEqual(parseSpiffeId('spiffe://example.org/ns/shop/sa/api'), { trustDomain: 'example.org', namespace: 'shop', serviceAccount: 'api' });
  });

  it('refuses anything that is not exactly a workload ID', () => {
    for (const bad of [
      'https://cluster.local/ns/a/sa/b',
      'spiffe://cluster.local/ns/a/sa/b/c',
      'spiffe://cluster.local/ns/a',
      'spiffe://Cluster.local/ns/a/sa/b',
      'spiffe://cluster.local:443/ns/a/sa/b',
      'spiffe://cluster.local/ns/a/sa/b?x=1',
      'spiffe://cluster.local/ns/../sa/b',
      'spiffe://user@cluster.local/ns/a/sa/b',
    ]) {
      assert.throws(() => parseSpiffeId(bad), isCode('INVALID_SPIFFE_ID'), bad);
    }
    assert.throws(() => spiffeId('bad domain', identity), isCode('INVALID_TRUST_DOMAIN'));
  });
});
