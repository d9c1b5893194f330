// Tests for rotation: with a 2 s lifetime, renewal at about half-life; files change; key and certificate always match.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate, createPrivateKey, createPublicKey } from 'node:crypto';
import { mkdtemp, readFile, readlink, stat } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { CertificateAuthority } from './certificate-authority.ts';
import { WorkloadCertificateClient, type WorkloadCertificate } from './certificate-client.ts';
import { readCertificateFiles } from './certificate-files.ts';
import { CertificateRotator } from './certificate-rotator.ts';
import { TokenRegistry } from './token-authenticator.ts';

function matches(certPem: string, keyPem: string): boolean {
  const fromCert = new X509Certificate(certPem).publicKey.export({ type: 'spki', format: 'der' });
  const fromKey = createPublicKey(createPrivateKey(keyPem)).export({ type: 'spki', format: 'der' });
  return fromCert.equals(fromKey);
}

describe('CertificateRotator', () => {
  it('renews at about half-life, rewrites the files, and never shows a key that does not match the certificate', async () => {
    const ca = await CertificateAuthority.loadOrCreate({ stateDir: await mkdtemp(join(tmpdir(), 'trellis-ca-')), workloadTtlMs: 2000 });
    const tokens = new TokenRegistry();
    const server = await ca.startCaServer({ host: '127.0.0.1', port: 0, authenticator: tokens });
    const client = new WorkloadCertificateClient({
      target: server.target,
      caTrustBundle: ca.trustBundle(),
      token: tokens.issue({ namespace: 'shop', serviceAccount: 'api' }),
      trustDomain: 'cluster.local',
    });
    const dir = join(await mkdtemp(join(tmpdir(), 'trellis-certs-')), 'certs');
    const rotations: WorkloadCertificate[] = [];
    const errors: unknown[] = [];
    const rotator = new CertificateRotator({ source: client, dir, validityMs: 2000, jitter: 0.1, onRotate: (c) => rotations.push(c), onError: (e) => errors.push(e) });
    try {
      const first = await rotator.start();
      assert.equal(first.spiffeId, 'spiffe://cluster.local/ns/shop/sa/api');
      assert.equal((await stat(join(dir, 'key.pem'))).mode & 0o777, 0o600);
      assert.equal(await readlink(join(dir, 'cert-chain.pem')), join('..data', 'cert-chain.pem'));

      // Read continuously while rotations happen.
      const deadline = Date.now() + 3300;
      let reads = 0;
      const seenCerts = new Set<string>();
      while (Date.now() < deadline) {
        const files = await readCertificateFiles(dir);
        assert.ok(matches(files.certChainPem, files.keyPem), 'one generation always matches');
        // The fixed paths, as grpc-js-xds's file_watcher reads them: a pair read within one generation matches.
        const before = await readlink(join(dir, '..data'));
        const [cert, key] = await Promise.all([readFile(join(dir, 'cert-chain.pem'), 'utf8'), readFile(join(dir, 'key.pem'), 'utf8')]);
        if ((await readlink(join(dir, '..data'))) === before) assert.ok(matches(cert, key), 'fixed paths match within a generation');
        seenCerts.add(cert);
        reads++;
        await sleep(5);
      }
      assert.deepEqual(errors, []);
      assert.ok(rotations.length >= 3, `expected at least 2 renewals, got ${rotations.length - 1}`);
      assert.ok(seenCerts.size >= 3, `the files changed ${seenCerts.size - 1} times`);
      assert.ok(reads > 50);
      // Renewal happens at 45-50% of the lifetime left at receipt (plus scheduling and issuing time).
      for (let i = 1; i < rotations.length; i++) {
        const prev = rotations[i - 1]!;
        const life = prev.notAfter.getTime() - prev.receivedAt.getTime();
        const gap = rotations[i]!.receivedAt.getTime() - prev.receivedAt.getTime();
        assert.ok(gap >= life * 0.45 - 50 && gap <= life * 0.5 + 400, `renewed after ${gap} ms of a ${life} ms lifetime`);
      }
      const onDisk = await readCertificateFiles(dir);
      assert.equal(onDisk.certChainPem, rotations[rotations.length - 1]!.certChainPem);
      assert.equal(onDisk.rootCertPem, ca.trustBundle());

      // grpc-js's own file watcher (what grpc-js-xds's file_watcher plugin uses) loads the files.
      const watcher = new grpc.experimental.FileWatcherCertificateProvider({
        certificateFile: join(dir, 'cert-chain.pem'),
        privateKeyFile: join(dir, 'key.pem'),
        caCertificateFile: join(dir, 'root-cert.pem'),
        refreshIntervalMs: 1000,
      });
      const update = await new Promise<grpc.experimental.IdentityCertificateUpdate | null>((resolve) => {
        const l = (u: grpc.experimental.IdentityCertificateUpdate | null) => {
          watcher.removeIdentityCertificateListener(l);
          resolve(u);
        };
        watcher.addIdentityCertificateListener(l);
      });
      assert.ok(update);
    } finally {
      rotator.stop();
      client.close();
      await server.close();
    }
  });

  it('computes the renewal delay from the lifetime left at receipt, with jitter only ever making it earlier', () => {
    const receivedAt = new Date(1_000_000);
    const cert = { receivedAt, notAfter: new Date(1_000_000 + 86_400_000) } as WorkloadCertificate;
    assert.equal(CertificateRotator.renewalDelay(cert, 0.1, 0), 43_200_000);
    assert.equal(CertificateRotator.renewalDelay(cert, 0.1, 1), 43_200_000 * 0.9);
  });
});
