// Signing a workload certificate: one SPIFFE URI SAN, short lifetime, leaf extensions, backdated for clock skew.
import { CaError } from './ca-error.ts';
import { randomSerial, type SigningAuthority } from './root-authority.ts';
import { spiffeId, type Identity } from './spiffe-id.ts';
import { x509 } from './x509.ts';

/** notBefore is set this far in the past so peers with slightly slow clocks accept a fresh certificate. */
export const CLOCK_SKEW_MS = 60_000;
/** The shortest lifetime the CA issues; shorter requests are raised to it. */
export const MIN_WORKLOAD_TTL_MS = 1_000;

export interface IssueParams {
  authority: SigningAuthority;
  /** The public key from a validated CSR. */
  publicKey: x509.PublicKey;
  /** The authenticated caller's identity: the only source of the certificate's SPIFFE ID. */
  identity: Identity;
  ttlMs: number;
  now?: Date;
}

/** Signs a leaf certificate for the identity; its notAfter never passes the signing certificate's. */
export async function issueWorkloadCertificate(p: IssueParams): Promise<x509.X509Certificate> {
  const { authority } = p;
  const id = spiffeId(authority.trustDomain, p.identity);
  if (!Number.isFinite(p.ttlMs) || p.ttlMs <= 0) throw new CaError('INVALID_ARGUMENT', `certificate lifetime must be positive, got ${p.ttlMs} ms`);
  const now = p.now ?? new Date();
  const ttl = Math.max(MIN_WORKLOAD_TTL_MS, Math.floor(p.ttlMs));
  const notAfter = new Date(Math.min(now.getTime() + ttl, authority.signingCert.notAfter.getTime()));
  if (notAfter <= now) throw new CaError('ISSUE_FAILED', `the signing certificate expired at ${authority.signingCert.notAfter.toISOString()}`);
  const notBefore = new Date(Math.max(now.getTime() - CLOCK_SKEW_MS, authority.signingCert.notBefore.getTime()));
  const issuerSki = authority.signingCert.getExtension(x509.SubjectKeyIdentifierExtension);
  const aki = issuerSki
    ? new x509.AuthorityKeyIdentifierExtension(issuerSki.keyId)
    : await x509.AuthorityKeyIdentifierExtension.create(authority.signingCert.publicKey);
  try {
    return await x509.X509CertificateGenerator.create({
      serialNumber: randomSerial(),
      // SPIFFE X509-SVIDs identify by URI SAN; with an empty subject the SAN extension must be critical (RFC 5280 4.2.1.6).
      subject: '',
      issuer: authority.signingCert.subjectName,
      notBefore,
      notAfter,
      publicKey: p.publicKey,
      signingKey: authority.signingKey.key,
      signingAlgorithm: authority.signingKey.signingAlgorithm,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
        aki,
        await x509.SubjectKeyIdentifierExtension.create(p.publicKey),
        new x509.SubjectAlternativeNameExtension([{ type: 'url', value: id }], true),
      ],
    });
  } catch (err) {
    throw new CaError('ISSUE_FAILED', `signing the certificate for ${id} failed: ${(err as Error).message}`, { cause: err });
  }
}
