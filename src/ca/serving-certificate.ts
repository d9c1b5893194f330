// The CA server's own TLS identity: a certificate the CA issues to itself and renews at half-life, fed to grpc-js.
import type { experimental } from '@grpc/grpc-js';
import { createCsr } from './csr.ts';
import { exportPrivateKeyPem, generateP256KeyPair } from './keys.ts';
import type { Identity } from './spiffe-id.ts';
import type { IssuedCertificate } from './certificate-authority.ts';

/** The identity the CA server presents; clients check the server's SPIFFE ID against it. */
export const CA_SERVER_IDENTITY: Identity = { namespace: 'trellis-system', serviceAccount: 'trellis-ca' };

type Issue = (csrPem: string, identity: Identity) => Promise<IssuedCertificate>;
type Update = experimental.IdentityCertificateUpdate;
type Listener = experimental.IdentityCertificateUpdateListener;

export class ServingCertificateProvider implements experimental.CertificateProvider {
  readonly #issue: Issue;
  readonly #onError: (err: unknown) => void;
  readonly #identityListeners = new Set<Listener>();
  #latest: Update | null = null;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;

  readonly #identity: Identity;

  private constructor(issue: Issue, onError: (err: unknown) => void, identity: Identity) {
    this.#issue = issue;
    this.#onError = onError;
    this.#identity = identity;
  }

  /** Issues the first serving certificate; later ones follow at half-life until close(). */
  static async start(issue: Issue, onError: (err: unknown) => void, identity: Identity = CA_SERVER_IDENTITY): Promise<ServingCertificateProvider> {
    const p = new ServingCertificateProvider(issue, onError, identity);
    await p.#renew();
    return p;
  }

  async #renew(): Promise<void> {
    const keys = await generateP256KeyPair();
    const issuedAt = Date.now();
    const issued = await this.#issue(await createCsr(keys), this.#identity);
    if (this.#closed) return;
    this.#latest = { certificate: Buffer.from(issued.certChain.join('\n') + '\n'), privateKey: Buffer.from(await exportPrivateKeyPem(keys.privateKey)) };
    for (const l of this.#identityListeners) l(this.#latest);
    this.#schedule(Math.max(1000, (issued.notAfter.getTime() - issuedAt) / 2));
  }

  #schedule(delayMs: number): void {
    if (this.#closed) return;
    this.#timer = setTimeout(() => {
      this.#renew().catch((err: unknown) => {
        this.#onError(err);
        this.#schedule(5000);
      });
    }, delayMs);
    this.#timer.unref();
  }

  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
  }

  addIdentityCertificateListener(listener: Listener): void {
    this.#identityListeners.add(listener);
    // Asynchronously: grpc-js registers its own watcher only after this call returns.
    const latest = this.#latest;
    queueMicrotask(() => {
      if (this.#identityListeners.has(listener)) listener(latest);
    });
  }

  removeIdentityCertificateListener(listener: Listener): void {
    this.#identityListeners.delete(listener);
  }

  // The CA server does not ask for client certificates: callers authenticate with tokens.
  addCaCertificateListener(listener: experimental.CaCertificateUpdateListener): void {
    queueMicrotask(() => listener(null));
  }

  removeCaCertificateListener(): void {}
}
