// The workload side of the CSR API: make a P-256 key and CSR, call the CA over TLS with a bearer token, check the answer.
import * as grpc from '@grpc/grpc-js';
import type { PeerCertificate } from 'node:tls';
import { CaError } from './ca-error.ts';
import { certificateServiceDefinition, type CreateCertificateRequest, type CreateCertificateResponse } from './ca-proto.ts';
import { createCsr } from './csr.ts';
import { exportPrivateKeyPem, generateP256KeyPair, keyMatchesCertificate } from './keys.ts';
import { pemBlocks } from './pem.ts';
import { CA_SERVER_IDENTITY } from './serving-certificate.ts';
import { parseSpiffeId, spiffeId, type Identity } from './spiffe-id.ts';
import { x509 } from './x509.ts';

export interface WorkloadCertificateClientOptions {
  /** host:port of the CA server. */
  target: string;
  /** PEM roots that the CA server's certificate must chain to (the CA's trust bundle). */
  caTrustBundle: string;
  token: string;
  trustDomain: string;
  /** The identity the CA server must present (default trellis-system/trellis-ca). */
  serverIdentity?: Identity;
  /** Per-call deadline (default 10 s). */
  timeoutMs?: number;
}

export interface WorkloadCertificate {
  spiffeId: string;
  /** PEM: leaf first, then any intermediates. */
  certChainPem: string;
  /** PEM, PKCS#8. */
  keyPem: string;
  /** PEM: the root the chain ends at. */
  rootCertPem: string;
  notBefore: Date;
  notAfter: Date;
  /** When the client received it; rotation is timed from here. */
  receivedAt: Date;
}

const MAX_CHAIN = 8;

export class WorkloadCertificateClient {
  readonly #client: grpc.Client;
  readonly #options: WorkloadCertificateClientOptions;
  readonly #roots: x509.X509Certificate[];

  constructor(options: WorkloadCertificateClientOptions) {
    this.#options = options;
    this.#roots = pemBlocks(options.caTrustBundle, 'CERTIFICATE').map((b) => new x509.X509Certificate(b));
    if (this.#roots.length === 0) throw new CaError('INVALID_ARGUMENT', 'caTrustBundle holds no PEM certificate');
    const expected = spiffeId(options.trustDomain, options.serverIdentity ?? CA_SERVER_IDENTITY);
    const credentials = grpc.credentials.createSsl(Buffer.from(options.caTrustBundle), null, null, {
      // The server is identified by its SPIFFE ID, not a host name.
      checkServerIdentity: (_host: string, cert: PeerCertificate) =>
        uriSans(cert).includes(expected) ? undefined : new CaError('UNAUTHENTICATED', `CA server is not ${expected}`),
    });
    const Client = grpc.makeGenericClientConstructor(certificateServiceDefinition(), 'CertificateService');
    this.#client = new Client(options.target, credentials, { 'grpc.max_receive_message_length': 64 * 1024 });
  }

  /** Generates a fresh key, has it certified, and checks the chain before returning it. */
  async fetchCertificate(validityMs?: number): Promise<WorkloadCertificate> {
    const keys = await generateP256KeyPair();
    const keyPem = await exportPrivateKeyPem(keys.privateKey);
    const request: CreateCertificateRequest = {
      csr: await createCsr(keys),
      validity_seconds: String(validityMs === undefined ? 0 : Math.max(1, Math.ceil(validityMs / 1000))),
    };
    const response = await this.#call(request);
    const receivedAt = new Date();
    return this.#check(response, keyPem, receivedAt);
  }

  close(): void {
    this.#client.close();
  }

  #call(request: CreateCertificateRequest): Promise<CreateCertificateResponse> {
    const metadata = new grpc.Metadata();
    metadata.set('authorization', `Bearer ${this.#options.token}`);
    const deadline = Date.now() + (this.#options.timeoutMs ?? 10_000);
    const method = certificateServiceDefinition()['CreateCertificate']!;
    return new Promise((resolve, reject) => {
      this.#client.makeUnaryRequest<CreateCertificateRequest, CreateCertificateResponse>(
        method.path,
        (r) => method.requestSerialize(r),
        (b) => method.responseDeserialize(b) as CreateCertificateResponse,
        request,
        metadata,
        { deadline },
        (err, res) => {
          if (err) {
            const code = err.code === grpc.status.UNAUTHENTICATED ? 'UNAUTHENTICATED' : err.code === grpc.status.INVALID_ARGUMENT ? 'INVALID_ARGUMENT' : 'RPC_FAILED';
            reject(new CaError(code, `CreateCertificate failed: ${err.details || err.message}`, { cause: err }));
          } else resolve(res!);
        },
      );
    });
  }

  async #check(response: CreateCertificateResponse, keyPem: string, receivedAt: Date): Promise<WorkloadCertificate> {
    const pems = response.cert_chain;
    if (pems.length < 2 || pems.length > MAX_CHAIN) throw new CaError('RPC_FAILED', `CA returned a chain of ${pems.length} certificates`);
    const certs = pems.map((p) => new x509.X509Certificate(p));
    const leaf = certs[0]!;
    const root = certs[certs.length - 1]!;
    if (!this.#roots.some((r) => Buffer.from(r.rawData).equals(Buffer.from(root.rawData)))) {
      throw new CaError('RPC_FAILED', 'the chain the CA returned does not end at a root in the trust bundle');
    }
    for (let i = 0; i + 1 < certs.length; i++) {
      if (!(await certs[i]!.verify({ publicKey: certs[i + 1]!.publicKey, signatureOnly: true }))) {
        throw new CaError('RPC_FAILED', `certificate ${i + 1} of the returned chain is not signed by the next`);
      }
    }
    if (!keyMatchesCertificate(keyPem, leaf)) throw new CaError('RPC_FAILED', 'the returned certificate is not for our key');
    const uris = (leaf.getExtension(x509.SubjectAlternativeNameExtension)?.names.items ?? []).filter((n) => n.type === 'url');
    if (uris.length !== 1) throw new CaError('RPC_FAILED', 'the returned certificate does not carry exactly one URI SAN');
    const id = parseSpiffeId(uris[0]!.value);
    if (id.trustDomain !== this.#options.trustDomain) throw new CaError('RPC_FAILED', `the returned certificate is for trust domain ${id.trustDomain}`);
    return {
      spiffeId: uris[0]!.value,
      certChainPem: pems.slice(0, -1).map((p) => p.trim() + '\n').join(''),
      keyPem,
      rootCertPem: root.toString('pem') + '\n',
      notBefore: leaf.notBefore,
      notAfter: leaf.notAfter,
      receivedAt,
    };
  }
}

/** The URI SANs of a Node peer certificate. */
export function uriSans(cert: PeerCertificate): string[] {
  return (cert.subjectaltname ?? '')
    .split(', ')
    .filter((s) => s.startsWith('URI:'))
    .map((s) => s.slice(4));
}
