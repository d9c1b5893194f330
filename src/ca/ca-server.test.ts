// Tests for the gRPC CSR service on loopback: tokens, CSR validation, identity from the token, validity capping.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { certificateServiceDefinition, type CreateCertificateRequest, type CreateCertificateResponse } from './ca-proto.ts';
import { CertificateAuthority } from './certificate-authority.ts';
import { WorkloadCertificateClient } from './certificate-client.ts';
import type { CaServer } from './ca-server.ts';
import { CaError } from './ca-error.ts';
import { createCsr } from './csr.ts';
import { generateP256KeyPair } from './keys.ts';
import { TokenRegistry } from './token-authenticator.ts';
import { x509 } from './x509.ts';

describe('CA gRPC server', () => {
  let ca: CertificateAuthority;
  let server: CaServer;
  const tokens = new TokenRegistry();
  let token: string;
  let raw: grpc.Client;

  before(async () => {
    ca = await CertificateAuthority.loadOrCreate({ stateDir: await mkdtemp(join(tmpdir(), 'trellis-ca-')), workloadTtlMs: 3600_000 });
    server = await ca.startCaServer({ host: '127.0.0.1', port: 0, authenticator: tokens });
    token = tokens.issue({ namespace: 'shop', serviceAccount: 'api' });
    const Client = grpc.makeGenericClientConstructor(certificateServiceDefinition(), 'CertificateService');
    raw = new Client(server.target, grpc.credentials.createSsl(Buffer.from(ca.trustBundle()), null, null, { checkServerIdentity: () => undefined }));
  });
  after(async () => {
    raw.close();
    await server.close();
  });

  function call(request: CreateCertificateRequest, authorization?: string): Promise<CreateCertificateResponse> {
    const md = new grpc.Metadata();
    if (authorization !== undefined) md.set('authorization', authorization);
    const m = certificateServiceDefinition()['CreateCertificate']!;
    return new Promise((resolve, reject) =>
      raw.makeUnaryRequest(m.path, m.requestSerialize, m.responseDeserialize, request, md, (err, res) => (err ? reject(err) : resolve(res as CreateCertificateResponse))),
    );
  }
  const status = (code: grpc.status) => (e: unknown) => (e as grpc.ServiceError).code === code;

  it('listens on loopback only', async () => {
    assert.equal(server.host, '127.0.0.1');
    await assert.rejects(ca.startCaServer({ host: '0.0.0.0', port: 0, authenticator: tokens }), (e: unknown) => e instanceof CaError && e.code === 'INVALID_ARGUMENT');
  });

  it('issues a chain for a good token, over TLS, with the client verifying the CA server identity', async () => {
    const client = new WorkloadCertificateClient({ target: server.target, caTrustBundle: ca.trustBundle(), token, trustDomain: 'cluster.local' });
    try {
      const cert = await client.fetchCertificate();
      assert.equal(cert.spiffeId, 'spiffe://cluster.local/ns/shop/sa/api');
      assert.equal(new X509Certificate(cert.certChainPem).verify(new X509Certificate(ca.trustBundle()).publicKey), true);
      assert.equal(cert.rootCertPem, ca.trustBundle());
    } finally {
      client.close();
    }
  });

  it('answers UNAUTHENTICATED to a missing, unknown, malformed or revoked token', async () => {
    const csr = await createCsr(await generateP256KeyPair());
    const req = { csr, validity_seconds: '0' };
    await assert.rejects(call(req), status(grpc.status.UNAUTHENTICATED));
    await assert.rejects(call(req, 'Bearer ' + 'A'.repeat(43)), status(grpc.status.UNAUTHENTICATED));
    await assert.rejects(call(req, token), status(grpc.status.UNAUTHENTICATED));
    await assert.rejects(call(req, 'Basic ' + token), status(grpc.status.UNAUTHENTICATED));
    const doomed = tokens.issue({ namespace: 'shop', serviceAccount: 'old' });
    assert.equal((await call(req, `Bearer ${doomed}`)).cert_chain.length, 2);
    assert.equal(tokens.revoke(doomed), true);
    await assert.rejects(call(req, `Bearer ${doomed}`), status(grpc.status.UNAUTHENTICATED));
  });

  it('answers INVALID_ARGUMENT to a garbage CSR and a negative validity', async () => {
    await assert.rejects(call({ csr: 'garbage', validity_seconds: '0' }, `Bearer ${token}`), (e: unknown) => status(grpc.status.INVALID_ARGUMENT)(e) && /invalid CSR/.test((e as grpc.ServiceError).details));
    const csr = await createCsr(await generateP256KeyPair());
    await assert.rejects(call({ csr, validity_seconds: '-5' }, `Bearer ${token}`), status(grpc.status.INVALID_ARGUMENT));
  });

  it('refuses an oversized request before reading it', async () => {
    await assert.rejects(call({ csr: 'x'.repeat(1024 * 1024), validity_seconds: '0' }, `Bearer ${token}`), status(grpc.status.RESOURCE_EXHAUSTED));
  });

  it('ignores the identity a CSR claims and certifies the token holder', async () => {
    const csr = await x509.Pkcs10CertificateRequestGenerator.create({
      name: 'CN=spiffe://cluster.local/ns/kube-system/sa/admin',
      keys: await generateP256KeyPair(),
      signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
      extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'url', value: 'spiffe://cluster.local/ns/kube-system/sa/admin' }])],
    });
    const res = await call({ csr: csr.toString('pem'), validity_seconds: '0' }, `Bearer ${token}`);
    assert.equal(new X509Certificate(res.cert_chain[0]!).subjectAltName, 'URI:spiffe://cluster.local/ns/shop/sa/api');
  });

  it('caps the requested validity at the CA maximum and honours shorter ones', async () => {
    const csr = await createCsr(await generateP256KeyPair());
    const long = await call({ csr, validity_seconds: String(365 * 86400) }, `Bearer ${token}`);
    const life = new Date(new X509Certificate(long.cert_chain[0]!).validTo).getTime() - Date.now();
    assert.ok(life <= 3600_000 && life > 3600_000 - 10_000, `life ${life}`);
    const short = await call({ csr, validity_seconds: '120' }, `Bearer ${token}`);
    const shortLife = new Date(new X509Certificate(short.cert_chain[0]!).validTo).getTime() - Date.now();
    assert.ok(shortLife <= 120_000 && shortLife > 110_000, `life ${shortLife}`);
  });

  it('the client refuses a CA server that presents another identity', async () => {
    const client = new WorkloadCertificateClient({
      target: server.target,
      caTrustBundle: ca.trustBundle(),
      token,
      trustDomain: 'cluster.local',
      serverIdentity: { namespace: 'elsewhere', serviceAccount: 'impostor' },
      timeoutMs: 3000,
    });
    try {
      await assert.rejects(client.fetchCertificate(), (e: unknown) => e instanceof CaError && e.code === 'RPC_FAILED');
    } finally {
      client.close();
    }
  });
});
