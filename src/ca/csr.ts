// Certificate signing requests: creating them on the workload side and validating them strictly on the CA side.
import { CaError } from './ca-error.ts';
import { P256 } from './keys.ts';
import { MAX_PEM_BYTES, pemBlocks } from './pem.ts';
import { x509, type CryptoKeyPair } from './x509.ts';

/** Upper bound on a CSR: a P-256 CSR is well under 1 KiB; this leaves room for a few SANs. */
export const MAX_CSR_BYTES = Math.min(MAX_PEM_BYTES, 8 * 1024);

/** A CSR whose signature and key were checked. Its subject and SANs are informational only: the CA ignores them. */
export interface ValidatedCsr {
  publicKey: x509.PublicKey;
  request: x509.Pkcs10CertificateRequest;
}

/** Creates a PEM CSR for a P-256 key pair. The CA takes the identity from the caller, so the CSR names none. */
export async function createCsr(keys: CryptoKeyPair): Promise<string> {
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({ keys, signingAlgorithm: P256 });
  return csr.toString('pem');
}

/** Parses a PEM CSR and checks it: one CSR, well formed, self-signature valid, ECDSA P-256 key. */
export async function validateCsr(pem: string): Promise<ValidatedCsr> {
  const bad = (why: string, cause?: unknown): CaError => new CaError('INVALID_CSR', `invalid CSR: ${why}`, { cause });
  if (typeof pem !== 'string' || pem.length === 0) throw bad('empty');
  if (Buffer.byteLength(pem) > MAX_CSR_BYTES) throw bad(`larger than ${MAX_CSR_BYTES} bytes`);
  const blocks = pemBlocks(pem, 'CERTIFICATE REQUEST');
  if (blocks.length !== 1) throw bad(`expected exactly one PEM "CERTIFICATE REQUEST" block, found ${blocks.length}`);
  let request: x509.Pkcs10CertificateRequest;
  try {
    request = new x509.Pkcs10CertificateRequest(blocks[0]!);
  } catch (err) {
    throw bad(`does not parse as PKCS#10: ${(err as Error).message}`, err);
  }
  const alg = request.publicKey.algorithm as { name: string; namedCurve?: string };
  if (alg.name !== 'ECDSA' || alg.namedCurve !== 'P-256') {
    const got = alg.name === 'ECDSA' || alg.name === 'ECDH' ? `EC ${alg.namedCurve ?? 'unknown curve'}` : alg.name;
    throw bad(`key must be ECDSA P-256, got ${got}`);
  }
  let verified = false;
  try {
    verified = await request.verify();
  } catch (err) {
    throw bad(`signature cannot be checked: ${(err as Error).message}`, err);
  }
  if (!verified) throw bad('signature does not verify with its public key');
  return { publicKey: request.publicKey, request };
}
