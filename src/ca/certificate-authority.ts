// The control plane's handle on the CA: load or create the authority, issue workload certificates, serve the CSR API.
import { CaError } from './ca-error.ts';
import { startCaServer, type CaServer, type CaServerOptions } from './ca-server.ts';
import { validateCsr } from './csr.ts';
import { issueWorkloadCertificate } from './issue-certificate.ts';
import { loadOrCreateRoot, loadUserCa, type SigningAuthority } from './root-authority.ts';
import { spiffeId, type Identity } from './spiffe-id.ts';
import { DEFAULT_TRUST_DOMAIN, validateTrustDomain } from './trust-domain.ts';

export const DEFAULT_WORKLOAD_TTL_MS = 24 * 3600 * 1000;

export interface CertificateAuthorityOptions {
  /** Where a generated root is kept (root-cert.pem, root-key.pem 0600). Unused when a root/intermediate is supplied. */
  stateDir: string;
  trustDomain?: string;
  /** A user-supplied CA: the signing certificate, any further intermediates, and the root last. */
  rootCertFile?: string;
  /** The key of the first certificate in rootCertFile. */
  rootKeyFile?: string;
  /** Lifetime of workload certificates when the caller asks for none (default 24 h). */
  workloadTtlMs?: number;
  /** The longest lifetime a caller may ask for (default: workloadTtlMs). */
  maxWorkloadTtlMs?: number;
}

export interface IssuedCertificate {
  spiffeId: string;
  /** Leaf first, then any intermediates; the root is not included. */
  certChain: string[];
  /** The root the chain ends at. */
  rootCert: string;
  notBefore: Date;
  notAfter: Date;
}

export class CertificateAuthority {
  readonly trustDomain: string;
  readonly workloadTtlMs: number;
  readonly maxWorkloadTtlMs: number;
  readonly #authority: SigningAuthority;

  private constructor(authority: SigningAuthority, workloadTtlMs: number, maxWorkloadTtlMs: number) {
    this.#authority = authority;
    this.trustDomain = authority.trustDomain;
    this.workloadTtlMs = workloadTtlMs;
    this.maxWorkloadTtlMs = maxWorkloadTtlMs;
  }

  static async loadOrCreate(options: CertificateAuthorityOptions): Promise<CertificateAuthority> {
    const trustDomain = validateTrustDomain(options.trustDomain ?? DEFAULT_TRUST_DOMAIN);
    const ttl = options.workloadTtlMs ?? DEFAULT_WORKLOAD_TTL_MS;
    const maxTtl = options.maxWorkloadTtlMs ?? ttl;
    for (const [name, v] of [['workloadTtlMs', ttl], ['maxWorkloadTtlMs', maxTtl]] as const) {
      if (!Number.isSafeInteger(v) || v < 1000) throw new CaError('INVALID_ARGUMENT', `${name} must be an integer of at least 1000 ms, got ${v}`);
    }
    if (maxTtl < ttl) throw new CaError('INVALID_ARGUMENT', `maxWorkloadTtlMs (${maxTtl}) is below workloadTtlMs (${ttl})`);
    if ((options.rootCertFile === undefined) !== (options.rootKeyFile === undefined)) {
      throw new CaError('INVALID_ARGUMENT', 'rootCertFile and rootKeyFile must be given together');
    }
    const authority =
      options.rootCertFile !== undefined && options.rootKeyFile !== undefined
        ? await loadUserCa(options.rootCertFile, options.rootKeyFile, trustDomain)
        : await loadOrCreateRoot(options.stateDir, trustDomain);
    return new CertificateAuthority(authority, ttl, maxTtl);
  }

  /** The SPIFFE ID of an identity in this trust domain. */
  spiffeId(identity: Identity): string {
    return spiffeId(this.trustDomain, identity);
  }

  /** The trust anchors peers should accept, PEM. */
  trustBundle(): string {
    return this.#authority.root.toString('pem') + '\n';
  }

  /**
   * Signs a CSR for an identity the caller has already authenticated. The CSR only contributes its public key:
   * its subject and SANs are ignored. ttlMs defaults to workloadTtlMs and is capped at maxWorkloadTtlMs.
   */
  async issue(csrPem: string, identity: Identity, ttlMs?: number): Promise<IssuedCertificate> {
    const csr = await validateCsr(csrPem);
    const ttl = Math.min(ttlMs ?? this.workloadTtlMs, this.maxWorkloadTtlMs);
    const leaf = await issueWorkloadCertificate({ authority: this.#authority, publicKey: csr.publicKey, identity, ttlMs: ttl });
    return {
      spiffeId: this.spiffeId(identity),
      certChain: [leaf, ...this.#authority.intermediates].map((c) => c.toString('pem')),
      rootCert: this.#authority.root.toString('pem'),
      notBefore: leaf.notBefore,
      notAfter: leaf.notAfter,
    };
  }

  /** Serves trellis.ca.v1.CertificateService over TLS on a loopback address. */
  startCaServer(options: CaServerOptions): Promise<CaServer> {
    return startCaServer(this, options);
  }
}
