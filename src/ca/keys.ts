// Key pairs: P-256 generation for workloads, PEM import/export, and key-to-certificate matching.
import { createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { CaError } from './ca-error.ts';
import { crypto, x509, type CryptoKey, type CryptoKeyPair, type SigningAlgorithm } from './x509.ts';

/** ECDSA P-256 with SHA-256: the only workload key type Trellis issues for. */
export const P256 = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

export interface SigningKey {
  key: CryptoKey;
  /** The algorithm @peculiar/x509 signs with. */
  signingAlgorithm: SigningAlgorithm;
  /** The same key as a Node KeyObject, for matching against certificates. */
  keyObject: KeyObject;
}

export async function generateP256KeyPair(): Promise<CryptoKeyPair> {
  return crypto.subtle.generateKey(P256, true, ['sign', 'verify']);
}

/** PKCS#8 PEM of a private key. */
export async function exportPrivateKeyPem(key: CryptoKey): Promise<string> {
  const der = await crypto.subtle.exportKey('pkcs8', key);
  return x509.PemConverter.encode(der, 'PRIVATE KEY');
}

/** Imports a CA signing key (PKCS#8, SEC1 or PKCS#1 PEM): ECDSA P-256/P-384 or RSA. */
export async function importSigningKey(pem: string): Promise<SigningKey> {
  let keyObject: KeyObject;
  try {
    keyObject = createPrivateKey({ key: pem, format: 'pem' });
  } catch (err) {
    throw new CaError('INVALID_CA_MATERIAL', `CA private key is not a readable unencrypted PEM key: ${(err as Error).message}`, { cause: err });
  }
  const pkcs8 = keyObject.export({ type: 'pkcs8', format: 'der' });
  const type = keyObject.asymmetricKeyType;
  if (type === 'ec') {
    const curve = keyObject.asymmetricKeyDetails?.namedCurve;
    const namedCurve = curve === 'prime256v1' ? 'P-256' : curve === 'secp384r1' ? 'P-384' : undefined;
    if (!namedCurve) throw new CaError('INVALID_CA_MATERIAL', `CA key curve ${curve ?? 'unknown'} is not supported (P-256 or P-384)`);
    const hash = namedCurve === 'P-256' ? 'SHA-256' : 'SHA-384';
    const key = await crypto.subtle.importKey('pkcs8', pkcs8, { name: 'ECDSA', namedCurve }, false, ['sign']);
    return { key, signingAlgorithm: { name: 'ECDSA', hash }, keyObject };
  }
  if (type === 'rsa') {
    const algorithm = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };
    const key = await crypto.subtle.importKey('pkcs8', pkcs8, algorithm, false, ['sign']);
    return { key, signingAlgorithm: algorithm, keyObject };
  }
  throw new CaError('INVALID_CA_MATERIAL', `CA key type ${type ?? 'unknown'} is not supported (ECDSA or RSA)`);
}

/** True if the private key belongs to the certificate's public key. */
export function keyMatchesCertificate(privateKey: KeyObject | string, cert: x509.X509Certificate): boolean {
  const spki = createPublicKey(privateKey).export({ type: 'spki', format: 'der' });
  return Buffer.from(cert.publicKey.rawData).equals(spki);
}
