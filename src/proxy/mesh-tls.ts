// Mesh mTLS for the proxy: the workload certificate, key and trust roots (from a rotator's directory or pushed in
// memory), server-side termination that refuses peers outside our roots, and client options that check the server's
// SPIFFE ID. Rotation is lossless: every new handshake uses the newest certificate, handshakes under way keep theirs.
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { watch, type FSWatcher } from 'node:fs';
import { readlink } from 'node:fs/promises';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import tls, { type ConnectionOptions, type PeerCertificate, type TLSSocket } from 'node:tls';
import { readCertificateFiles, type CertificateFiles } from '../ca/certificate-files.ts';
import { parseSpiffeId } from '../ca/spiffe-id.ts';
import { pemBlocks } from '../ca/pem.ts';
import { ProxyError } from './proxy-error.ts';

/** ALPN the proxy offers upstream for opaque TCP inside mesh mTLS; the server side then skips protocol sniffing. */
export const TCP_ALPN = 'trellis-tcp';
/** ALPN preference on the server: HTTP/2, then HTTP/1.1, else the first protocol the client offers (TCP). */
const SERVER_ALPN = ['h2', 'http/1.1'];

export interface MeshTlsOptions {
  /** Bound on a handshake (default 10 s). */
  handshakeTimeoutMs?: number;
  /** Directory mode: how often `..data` is checked besides file-system events (default 5 s). */
  pollMs?: number;
  /** Called after each accepted certificate (first load and rotations). */
  onUpdate?: (info: { spiffeId: string; serial: string; notAfter: Date; generation: number }) => void;
  /** Called when a new generation cannot be loaded; the previous certificate stays in force. */
  onError?: (err: unknown) => void;
}

interface Material {
  context: tls.SecureContext;
  spiffeId: string;
  trustDomain: string;
  serial: string;
  notAfter: Date;
  generation: number;
}

interface Pending {
  resolve: (s: TLSSocket) => void;
  reject: (e: Error) => void;
  raw: Socket;
  onClose: () => void;
}

export class MeshTls {
  readonly #o: MeshTlsOptions;
  /** The handshake engine: a tls.Server that never listens; accepted sockets are handed to it. */
  readonly #server: tls.Server;
  readonly #pending = new Map<string, Pending>();
  #m: Material | undefined;
  #generation = 0;
  #watcher: FSWatcher | undefined;
  #poll: NodeJS.Timeout | undefined;
  #debounce: NodeJS.Timeout | undefined;
  #dir: string | undefined;
  #dataLink: string | undefined;
  #reloading: Promise<void> | undefined;
  #again = false;

  constructor(options: MeshTlsOptions = {}) {
    this.#o = options;
    this.#server = tls.createServer({
      requestCert: true,
      rejectUnauthorized: true,
      minVersion: 'TLSv1.3',
      handshakeTimeout: options.handshakeTimeoutMs ?? 10_000,
      ALPNCallback: ({ protocols }) => {
        for (const p of SERVER_ALPN) if (protocols.includes(p)) return p;
        return protocols[0];
      },
    });
    this.#server.on('secureConnection', (s: TLSSocket) => this.#settle(s, undefined));
    this.#server.on('tlsClientError', (err: Error, s: TLSSocket) => this.#settle(s, err));
  }

  /** Loads the current generation from a CertificateRotator directory and follows its rotations until close(). */
  static async fromDirectory(dir: string, options: MeshTlsOptions = {}): Promise<MeshTls> {
    const m = new MeshTls(options);
    m.#dir = dir;
    try {
      m.update(await readCertificateFiles(dir));
      m.#dataLink = await readlink(join(dir, '..data'));
    } catch (err) {
      if (err instanceof ProxyError) throw err;
      throw new ProxyError('no-certificate', `cannot load the workload certificate from ${dir}: ${(err as Error).message}`);
    }
    m.#follow(dir);
    return m;
  }

  get ready(): boolean {
    return this.#m !== undefined;
  }
  get spiffeId(): string | undefined {
    return this.#m?.spiffeId;
  }
  get trustDomain(): string | undefined {
    return this.#m?.trustDomain;
  }
  /** Serial number (hex) of the certificate new handshakes present. */
  get serial(): string | undefined {
    return this.#m?.serial;
  }
  get generation(): number {
    return this.#generation;
  }

  /**
   * Installs a certificate (a WorkloadCertificate has the same three PEM fields). Refuses, with ProxyError
   * `no-certificate`, material that does not parse, has no single SPIFFE URI SAN, does not match its key, does not
   * chain to the roots, or has expired; the previous certificate then stays in force.
   */
  update(cert: CertificateFiles): void {
    const chain = pemBlocks(cert.certChainPem, 'CERTIFICATE');
    const roots = pemBlocks(cert.rootCertPem, 'CERTIFICATE');
    const bad = (why: string): ProxyError => new ProxyError('no-certificate', `workload certificate refused: ${why}`);
    if (chain.length === 0 || roots.length === 0) throw bad('no certificate or no root in the PEM');
    let leaf: X509Certificate;
    let context: tls.SecureContext;
    try {
      const certs = chain.map((p) => new X509Certificate(p));
      const rootCerts = roots.map((p) => new X509Certificate(p));
      leaf = certs[0]!;
      if (!leaf.checkPrivateKey(createPrivateKey(cert.keyPem))) throw bad('the key does not match the certificate');
      for (let i = 0; i + 1 < certs.length; i++) if (!certs[i]!.verify(certs[i + 1]!.publicKey)) throw bad(`chain certificate ${i} is not signed by the next`);
      const last = certs[certs.length - 1]!;
      if (!rootCerts.some((r) => last.verify(r.publicKey))) throw bad('the chain does not end at one of the roots');
      if (new Date(leaf.validTo).getTime() <= Date.now()) throw bad(`it expired at ${leaf.validTo}`);
      // PEM blocks one by one: concatenated files need not end in a newline.
      const options: tls.SecureContextOptions = { key: cert.keyPem, cert: chain.join('\n'), ca: roots, minVersion: 'TLSv1.3' };
      context = tls.createSecureContext(options);
      this.#server.setSecureContext(options);
    } catch (err) {
      if (err instanceof ProxyError) throw err;
      throw bad((err as Error).message);
    }
    const id = singleSpiffeUri(leaf.subjectAltName);
    if (id === undefined) throw bad('it does not carry exactly one spiffe:// URI SAN');
    let trustDomain: string;
    try {
      trustDomain = parseSpiffeId(id).trustDomain;
    } catch (err) {
      throw bad((err as Error).message);
    }
    const m: Material = { context, spiffeId: id, trustDomain, serial: leaf.serialNumber, notAfter: new Date(leaf.validTo), generation: ++this.#generation };
    this.#m = m;
    this.#o.onUpdate?.({ spiffeId: m.spiffeId, serial: m.serial, notAfter: m.notAfter, generation: m.generation });
  }

  /** The current context (our chain, key and roots); throws ProxyError `no-certificate` before the first update. */
  secureContext(): tls.SecureContext {
    if (!this.#m) throw new ProxyError('no-certificate', 'no workload certificate yet');
    return this.#m.context;
  }

  /**
   * Terminates mesh mTLS on an accepted socket (whose first bytes may have been peeked and unshifted). Resolves with
   * the TLS socket once the peer has presented a certificate that chains to our roots; rejects otherwise (the
   * handshake failed, timed out, or the socket closed), and the socket is then destroyed.
   */
  terminate(raw: Socket): Promise<TLSSocket> {
    if (!this.#m) {
      raw.destroy();
      return Promise.reject(new ProxyError('no-certificate', 'no workload certificate yet'));
    }
    const key = tupleKey(raw);
    if (key === undefined || this.#pending.has(key)) {
      raw.destroy();
      return Promise.reject(new Error('socket closed before the TLS handshake'));
    }
    return new Promise<TLSSocket>((resolve, reject) => {
      const onClose = (): void => {
        if (this.#pending.get(key)?.raw !== raw) return;
        this.#pending.delete(key);
        reject(new Error('connection closed during the TLS handshake'));
      };
      this.#pending.set(key, { resolve, reject, raw, onClose });
      raw.once('close', onClose);
      this.#server.emit('connection', raw);
    });
  }

  #settle(s: TLSSocket, err: Error | undefined): void {
    const key = tupleKey(s);
    const p = key === undefined ? undefined : this.#pending.get(key);
    if (p === undefined || key === undefined) {
      if (err === undefined) s.destroy(); // not ours (cannot happen: the server never listens)
      return;
    }
    this.#pending.delete(key);
    p.raw.removeListener('close', p.onClose);
    if (err !== undefined) {
      s.destroy();
      p.reject(err);
    } else p.resolve(s);
  }

  /**
   * Options to originate mesh mTLS: present our certificate, require a server that chains to our roots and whose
   * single URI SAN is one of `expectedSpiffeIds` (or any identity in our trust domain when the list is empty). No
   * host name check: mesh peers are named by SPIFFE ID. An arrow property, so it can be handed around as a function.
   */
  readonly clientOptions = (alpn: string[], expectedSpiffeIds: string[]): ConnectionOptions => {
    const m = this.#m;
    if (!m) throw new ProxyError('no-certificate', 'no workload certificate yet');
    const prefix = `spiffe://${m.trustDomain}/`;
    return {
      secureContext: m.context,
      ALPNProtocols: alpn,
      minVersion: 'TLSv1.3',
      rejectUnauthorized: true,
      checkServerIdentity: (_host: string, cert: PeerCertificate): Error | undefined => {
        const id = singleSpiffeUri(cert.subjectaltname);
        if (id === undefined) return new ProxyError('peer-identity', 'the server certificate does not carry exactly one spiffe:// URI SAN');
        const ok = expectedSpiffeIds.length === 0 ? id.startsWith(prefix) : expectedSpiffeIds.includes(id);
        if (ok) return undefined;
        const want = expectedSpiffeIds.length === 0 ? `an identity in trust domain ${m.trustDomain}` : expectedSpiffeIds.join(' or ');
        return new ProxyError('peer-identity', `the server is ${id}, expected ${want}`);
      },
    };
  };

  /** The verified peer's SPIFFE ID (see the module function peerSpiffeId). */
  peerSpiffeId(socket: TLSSocket): string | undefined {
    return peerSpiffeId(socket);
  }

  /** Stops following the directory and fails handshakes under way. */
  close(): void {
    this.#watcher?.close();
    clearInterval(this.#poll);
    clearTimeout(this.#debounce);
    this.#watcher = undefined;
    for (const p of this.#pending.values()) p.raw.destroy();
  }

  #follow(dir: string): void {
    try {
      this.#watcher = watch(dir, () => this.#scheduleReload());
      this.#watcher.on('error', () => {
        this.#watcher?.close();
        this.#watcher = undefined;
      });
    } catch {
      this.#watcher = undefined; // polling still runs
    }
    this.#poll = setInterval(() => this.#scheduleReload(), this.#o.pollMs ?? 5000);
    this.#poll.unref();
  }

  #scheduleReload(): void {
    clearTimeout(this.#debounce);
    this.#debounce = setTimeout(() => {
      if (this.#reloading !== undefined) {
        this.#again = true;
        return;
      }
      this.#reloading = this.#reload().finally(() => {
        this.#reloading = undefined;
        if (this.#again) {
          this.#again = false;
          this.#scheduleReload();
        }
      });
    }, 20);
    this.#debounce.unref();
  }

  /** Reloads when `..data` points at a new generation (one readlink per check). */
  async #reload(): Promise<void> {
    const dir = this.#dir;
    if (dir === undefined) return;
    try {
      const link = await readlink(join(dir, '..data'));
      if (link === this.#dataLink) return;
      this.update(await readCertificateFiles(dir));
      this.#dataLink = link;
    } catch (err) {
      this.#o.onError?.(err);
    }
  }
}

/** The one `spiffe://` URI SAN in a Node subjectAltName string; undefined when there is none or more than one URI. */
export function singleSpiffeUri(subjectAltName: string | undefined): string | undefined {
  if (!subjectAltName) return undefined;
  let found: string | undefined;
  let uris = 0;
  for (const part of subjectAltName.split(', ')) {
    if (!part.startsWith('URI:')) continue;
    uris++;
    found = part.slice(4);
  }
  return uris === 1 && found !== undefined && found.startsWith('spiffe://') ? found : undefined;
}

/** The URI SAN `spiffe://…` of a verified peer's leaf certificate (exactly one), else undefined. */
export function peerSpiffeId(socket: TLSSocket): string | undefined {
  if (!socket.authorized) return undefined;
  return singleSpiffeUri(socket.getPeerCertificate().subjectaltname);
}

function tupleKey(s: { remoteAddress?: string | undefined; remotePort?: number | undefined; localAddress?: string | undefined; localPort?: number | undefined }): string | undefined {
  if (s.remoteAddress === undefined || s.remotePort === undefined) return undefined;
  return `${s.remoteAddress}|${s.remotePort}|${s.localAddress ?? ''}|${s.localPort ?? 0}`;
}
