// The signing authority: a generated root persisted in a state directory, or a user-supplied root or intermediate.
import { randomBytes } from 'node:crypto';
import { mkdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { CaError } from './ca-error.ts';
import { writeFileAtomic } from './atomic-file.ts';
import { exportPrivateKeyPem, generateP256KeyPair, importSigningKey, keyMatchesCertificate, P256, type SigningKey } from './keys.ts';
import { pemBlocks, readPemFile } from './pem.ts';
import { validateTrustDomain } from './trust-domain.ts';
import { x509 } from './x509.ts';

export const ROOT_CERT_FILE = 'root-cert.pem';
export const ROOT_KEY_FILE = 'root-key.pem';
/** Lifetime of a root Trellis generates itself. */
export const GENERATED_ROOT_LIFETIME_MS = 10 * 365 * 24 * 3600 * 1000;
const MAX_CHAIN_LENGTH = 8;

/** The certificate and key that sign workload certificates, with the chain up to the trust anchor. */
export interface SigningAuthority {
  trustDomain: string;
  /** The certificate whose key signs (the root itself, or a user-supplied intermediate). */
  signingCert: x509.X509Certificate;
  signingKey: SigningKey;
  /** Certificates between the signing certificate and the root: signingCert first when it is an intermediate. Excludes the root. */
  intermediates: x509.X509Certificate[];
  /** The trust anchor: a self-signed root. */
  root: x509.X509Certificate;
}

/** A fresh self-signed P-256 root for a trust domain. */
export async function generateRoot(trustDomain: string, now = new Date()): Promise<{ cert: x509.X509Certificate; keyPem: string }> {
  validateTrustDomain(trustDomain);
  const keys = await generateP256KeyPair();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name: [{ O: [trustDomain] }, { CN: ['Trellis Root CA'] }],
    notBefore: new Date(now.getTime() - 60_000),
    notAfter: new Date(now.getTime() + GENERATED_ROOT_LIFETIME_MS),
    keys,
    signingAlgorithm: P256,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      new x509.SubjectAlternativeNameExtension([{ type: 'url', value: `spiffe://${trustDomain}` }]),
    ],
  });
  return { cert, keyPem: await exportPrivateKeyPem(keys.privateKey) };
}

/**
 * Loads the root from stateDir, or generates and persists one on first start (key 0600, directory 0700).
 * A key without a certificate is an interrupted first start (the key is written first) and is replaced;
 * a certificate without its key is refused.
 */
export async function loadOrCreateRoot(stateDir: string, trustDomain: string): Promise<SigningAuthority> {
  validateTrustDomain(trustDomain);
  await mkdir(stateDir, { recursive: true, mode: 0o700 });
  const certPath = join(stateDir, ROOT_CERT_FILE);
  const keyPath = join(stateDir, ROOT_KEY_FILE);
  const certExists = await exists(certPath);
  if (!certExists) {
    const { cert, keyPem } = await generateRoot(trustDomain);
    await writeFileAtomic(keyPath, keyPem, 0o600);
    await writeFileAtomic(certPath, cert.toString('pem') + '\n', 0o644);
  } else if (!(await exists(keyPath))) {
    throw new CaError('INVALID_STATE', `${certPath} exists but its key ${keyPath} is missing; restore the key or remove both to make a new root`);
  }
  const authority = await loadUserCa(certPath, keyPath, trustDomain);
  if (authority.intermediates.length > 0) throw new CaError('INVALID_STATE', `${certPath} must hold a self-signed root`);
  const sans = authority.root.getExtension(x509.SubjectAlternativeNameExtension)?.names.items ?? [];
  const foreign = sans.find((n) => n.type === 'url' && n.value.startsWith('spiffe://') && n.value !== `spiffe://${trustDomain}`);
  if (foreign) {
    throw new CaError('INVALID_STATE', `the root in ${stateDir} belongs to trust domain ${foreign.value.slice(9)}, not ${trustDomain}`);
  }
  return authority;
}

/**
 * Loads a user-supplied CA. certFile holds the signing certificate first, then any further intermediates, and
 * ends with the self-signed root; a root alone is fine too. keyFile holds the signing certificate's key.
 */
export async function loadUserCa(certFile: string, keyFile: string, trustDomain: string, now = new Date()): Promise<SigningAuthority> {
  validateTrustDomain(trustDomain);
  const certPem = await readPemFile(certFile, 'CA certificate file');
  const keyPem = await readPemFile(keyFile, 'CA key file');
  const blocks = pemBlocks(certPem, 'CERTIFICATE');
  if (blocks.length === 0) throw new CaError('INVALID_CA_MATERIAL', `${certFile} holds no PEM CERTIFICATE`);
  if (blocks.length > MAX_CHAIN_LENGTH) throw new CaError('INVALID_CA_MATERIAL', `${certFile} holds more than ${MAX_CHAIN_LENGTH} certificates`);
  const certs = blocks.map((b, i) => {
    try {
      return new x509.X509Certificate(b);
    } catch (err) {
      throw new CaError('INVALID_CA_MATERIAL', `${certFile}: certificate ${i + 1} does not parse: ${(err as Error).message}`, { cause: err });
    }
  });
  const signingCert = certs[0]!;
  const root = certs[certs.length - 1]!;
  for (const [i, cert] of certs.entries()) {
    const where = `${certFile}: certificate ${i + 1} (${cert.subject})`;
    const bc = cert.getExtension(x509.BasicConstraintsExtension);
    if (!bc?.ca) throw new CaError('INVALID_CA_MATERIAL', `${where} is not a CA certificate (basicConstraints CA:true)`);
    const ku = cert.getExtension(x509.KeyUsagesExtension);
    if (ku && (ku.usages & x509.KeyUsageFlags.keyCertSign) === 0) throw new CaError('INVALID_CA_MATERIAL', `${where} lacks keyUsage keyCertSign`);
    if (now < cert.notBefore || now > cert.notAfter) {
      throw new CaError('INVALID_CA_MATERIAL', `${where} is not valid now (${cert.notBefore.toISOString()} to ${cert.notAfter.toISOString()})`);
    }
    const issuer = certs[i + 1] ?? cert;
    if (cert.issuer !== issuer.subject || !(await cert.verify({ publicKey: issuer.publicKey, signatureOnly: true }))) {
      const what = issuer === cert ? 'is not a self-signed root (the file must end with the root)' : `is not signed by certificate ${i + 2}`;
      throw new CaError('INVALID_CA_MATERIAL', `${where} ${what}`);
    }
  }
  const signingKey = await importSigningKey(keyPem);
  if (!keyMatchesCertificate(signingKey.keyObject, signingCert)) {
    throw new CaError('INVALID_CA_MATERIAL', `${keyFile} is not the key of the first certificate in ${certFile}`);
  }
  return { trustDomain, signingCert, signingKey, intermediates: certs.slice(0, -1), root };
}

/** A positive 127-bit serial number, hex encoded, with no leading zero byte. */
export function randomSerial(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0]! & 0x7f) | 0x01;
  return bytes.toString('hex');
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}

