// Keeps a workload's certificate files fresh: fetch, write a generation, and renew at half-life with jitter.
import { CaError } from './ca-error.ts';
import type { WorkloadCertificate } from './certificate-client.ts';
import { writeCertificateFiles } from './certificate-files.ts';

export interface CertificateSource {
  fetchCertificate(validityMs?: number): Promise<WorkloadCertificate>;
}

export interface CertificateRotatorOptions {
  source: CertificateSource;
  /** Where cert-chain.pem, key.pem and root-cert.pem are kept (see certificate-files.ts). */
  dir: string;
  /** Requested lifetime; the CA's default when absent. */
  validityMs?: number;
  /** Renewal happens between (1 - jitter) and 1 times half the remaining lifetime (default 0.1). */
  jitter?: number;
  onRotate?: (cert: WorkloadCertificate) => void;
  onError?: (err: unknown) => void;
}

const MIN_RETRY_MS = 250;
const MAX_RETRY_MS = 30_000;

export class CertificateRotator {
  readonly #o: CertificateRotatorOptions;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;
  #current: WorkloadCertificate | undefined;
  #failures = 0;

  constructor(options: CertificateRotatorOptions) {
    const jitter = options.jitter ?? 0.1;
    if (!(jitter >= 0 && jitter < 1)) throw new CaError('INVALID_ARGUMENT', `jitter must be in [0, 1), got ${jitter}`);
    this.#o = { ...options, jitter };
  }

  get current(): WorkloadCertificate | undefined {
    return this.#current;
  }

  /** Fetches and writes the first certificate (failing if that fails), then keeps renewing until stop(). */
  async start(): Promise<WorkloadCertificate> {
    const cert = await this.#rotate();
    this.#scheduleRenewal(cert);
    return cert;
  }

  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
  }

  /** Milliseconds from receipt until renewal: half the lifetime left at receipt, minus up to jitter of it. */
  static renewalDelay(cert: WorkloadCertificate, jitter: number, random = Math.random()): number {
    const remaining = cert.notAfter.getTime() - cert.receivedAt.getTime();
    return Math.max(0, (remaining / 2) * (1 - jitter * random));
  }

  async #rotate(): Promise<WorkloadCertificate> {
    const cert = await this.#o.source.fetchCertificate(this.#o.validityMs);
    await writeCertificateFiles(this.#o.dir, { certChainPem: cert.certChainPem, keyPem: cert.keyPem, rootCertPem: cert.rootCertPem });
    this.#current = cert;
    this.#o.onRotate?.(cert);
    return cert;
  }

  #scheduleRenewal(cert: WorkloadCertificate): void {
    const due = cert.receivedAt.getTime() + CertificateRotator.renewalDelay(cert, this.#o.jitter ?? 0.1);
    this.#arm(Math.max(0, due - Date.now()));
  }

  #arm(delayMs: number): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => {
      this.#rotate().then(
        (cert) => {
          this.#failures = 0;
          this.#scheduleRenewal(cert);
        },
        (err: unknown) => {
          this.#o.onError?.(err);
          // Retry with backoff, but never sleep past the moment the current certificate expires.
          const backoff = Math.min(MAX_RETRY_MS, MIN_RETRY_MS * 2 ** this.#failures++);
          const left = (this.#current?.notAfter.getTime() ?? Infinity) - Date.now();
          this.#arm(Math.max(MIN_RETRY_MS, Math.min(backoff, left / 4)));
        },
      );
    }, delayMs);
  }
}
