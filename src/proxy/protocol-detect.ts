// Protocol detection on an accepted connection: peek at the first bytes without consuming them (read, then unshift)
// and tell a TLS ClientHello, HTTP/2 prior knowledge, HTTP/1.x and opaque TCP apart. Works the same on a TLS socket
// after termination, to detect the protocol inside mTLS. Every wait and every peek is bounded.
//
// Server-first protocols (MySQL, SMTP, …) send nothing until the server speaks. A caller that may fall back to TCP
// (`auto` listeners, PERMISSIVE plaintext) passes a short `firstByteMs`: DEFAULT_FIRST_BYTE_MS is 100 ms, the value
// Istio used for its protocol detection timeout. A connection that stays silent that long is `silent`, and the
// caller treats it as TCP. Client-first traffic is never delayed by it: detection ends as soon as the bytes decide.
import type { Duplex } from 'node:stream';

export type DetectedProtocol = 'tls' | 'http1' | 'http2' | 'tcp';

export interface Detection {
  /** `silent`: nothing arrived in time; `closed`: the stream ended or failed before sending anything. */
  protocol: DetectedProtocol | 'silent' | 'closed';
  /** Bytes peeked (and pushed back). */
  peeked: number;
  /** The SNI of a TLS ClientHello, when `sni` was asked for and the hello carried one. */
  sni?: string;
}

export interface DetectOptions {
  /** Stop waiting for the first byte after this (server-first protocols); default: wait up to timeoutMs. */
  firstByteMs?: number;
  /** Overall bound (default 5 s): bytes that still decide nothing by then are `tcp`; no bytes at all are `silent`. */
  timeoutMs?: number;
  /** Read the whole first TLS record to extract the SNI (at most MAX_CLIENT_HELLO_BYTES). */
  sni?: boolean;
}

export const DEFAULT_FIRST_BYTE_MS = 100;
export const DEFAULT_DETECT_TIMEOUT_MS = 5000;
/** A TLS record is at most 16 KiB plus its 5-byte header. */
export const MAX_CLIENT_HELLO_BYTES = 16_384 + 5;

const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
const H1_TOKENS = ['GET ', 'POST ', 'PUT ', 'DELETE ', 'HEAD ', 'OPTIONS ', 'PATCH ', 'CONNECT ', 'TRACE '].map((t) => Buffer.from(t, 'latin1'));
/** The longest prefix any decision needs. */
const DECISIVE_BYTES = H2_PREFACE.length;

/** `token` starts `buf`, or `buf` is a prefix of `token`: 1 full match, 0 still possible, -1 no. */
function prefixMatch(buf: Buffer, token: Buffer): 1 | 0 | -1 {
  const n = Math.min(buf.length, token.length);
  for (let i = 0; i < n; i++) if (buf[i] !== token[i]) return -1;
  return buf.length >= token.length ? 1 : 0;
}

/** Classifies the first bytes of a stream; undefined means more bytes are needed to decide. */
export function classify(buf: Buffer): DetectedProtocol | undefined {
  if (buf.length === 0) return undefined;
  if (buf[0] === 0x16) {
    if (buf.length < 3) return buf.length === 2 && buf[1] !== 0x03 ? 'tcp' : undefined;
    return buf[1] === 0x03 && buf[2]! <= 0x04 ? 'tls' : 'tcp';
  }
  let pending = false;
  const h2 = prefixMatch(buf, H2_PREFACE);
  if (h2 === 1) return 'http2';
  if (h2 === 0) pending = true;
  for (const t of H1_TOKENS) {
    const m = prefixMatch(buf, t);
    if (m === 1) return 'http1';
    if (m === 0) pending = true;
  }
  return pending ? undefined : 'tcp';
}

/**
 * The SNI (host_name) of a complete TLS ClientHello record; undefined if the record is not a ClientHello, is
 * incomplete, malformed, or has no SNI. Only reads inside the buffer.
 */
export function clientHelloSni(buf: Buffer): string | undefined {
  if (buf.length < 9 || buf[0] !== 0x16) return undefined;
  const recordEnd = 5 + buf.readUInt16BE(3);
  if (buf.length < recordEnd || buf[5] !== 0x01) return undefined;
  const helloEnd = Math.min(recordEnd, 9 + ((buf[6]! << 16) | buf.readUInt16BE(7)));
  let p = 9 + 2 + 32; // version, random
  if (p + 1 > helloEnd) return undefined;
  p += 1 + buf[p]!; // session id
  if (p + 2 > helloEnd) return undefined;
  p += 2 + buf.readUInt16BE(p); // cipher suites
  if (p + 1 > helloEnd) return undefined;
  p += 1 + buf[p]!; // compression methods
  if (p + 2 > helloEnd) return undefined;
  const extEnd = Math.min(helloEnd, p + 2 + buf.readUInt16BE(p));
  p += 2;
  while (p + 4 <= extEnd) {
    const type = buf.readUInt16BE(p);
    const len = buf.readUInt16BE(p + 2);
    p += 4;
    if (p + len > extEnd) return undefined;
    if (type === 0) {
      // server_name: list length, then entries of (type, length, name); host_name is type 0.
      let q = p + 2;
      const listEnd = Math.min(p + len, p + 2 + buf.readUInt16BE(p));
      while (q + 3 <= listEnd) {
        const nameType = buf[q]!;
        const nameLen = buf.readUInt16BE(q + 1);
        q += 3;
        if (q + nameLen > listEnd) return undefined;
        if (nameType === 0) {
          const name = buf.toString('latin1', q, q + nameLen).toLowerCase();
          return /^[a-z0-9.*_-]{1,253}$/.test(name) ? name : undefined;
        }
        q += nameLen;
      }
      return undefined;
    }
    p += len;
  }
  return undefined;
}

/**
 * Peeks at the first bytes of `socket` and pushes them back, so the next reader sees the stream untouched. The
 * socket must not be flowing and must have no other reader while this runs.
 */
export function detectProtocol(socket: Duplex, options: DetectOptions = {}): Promise<Detection> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_DETECT_TIMEOUT_MS;
  const firstByteMs = Math.min(options.firstByteMs ?? timeoutMs, timeoutMs);
  const limit = options.sni === true ? MAX_CLIENT_HELLO_BYTES : DECISIVE_BYTES;
  const start = Date.now();
  return new Promise<Detection>((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;

    const finish = (protocol: Detection['protocol'], sni?: string): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.removeListener('readable', onReadable);
      socket.removeListener('close', onClose);
      socket.removeListener('error', onClose);
      if (size > 0 && !socket.destroyed) socket.unshift(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size));
      const d: Detection = { protocol, peeked: size };
      if (sni !== undefined) d.sni = sni;
      resolve(d);
    };
    const decide = (ended: boolean): void => {
      const head = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size);
      chunks.length = 0;
      chunks.push(head);
      const p = classify(head);
      if (p === 'tls' && options.sni === true) {
        const need = head.length >= 5 ? Math.min(5 + head.readUInt16BE(3), MAX_CLIENT_HELLO_BYTES) : MAX_CLIENT_HELLO_BYTES;
        if (head.length >= need || ended) finish('tls', clientHelloSni(head));
        return;
      }
      if (p !== undefined) finish(p);
      else if (ended || size >= limit) finish('tcp');
    };
    const onReadable = (): void => {
      const before = size;
      let c: Buffer | null;
      // Bounded: stop reading once the bytes can decide; what is left stays in the socket's buffer.
      while (size < limit && (c = socket.read() as Buffer | null) !== null) {
        chunks.push(c);
        size += c.length;
      }
      if (size === before) {
        // `readable` is only emitted with data buffered or at the end of the stream: this is the end.
        if (size === 0) finish('closed');
        else decide(true);
        return;
      }
      if (before === 0 && firstByteMs < timeoutMs) {
        clearTimeout(timer);
        timer = setTimeout(onTimeout, Math.max(0, timeoutMs - (Date.now() - start)));
      }
      decide(false);
    };
    const onClose = (): void => finish(size > 0 ? 'tcp' : 'closed');
    const onTimeout = (): void => finish(size > 0 ? 'tcp' : 'silent');
    let timer = setTimeout(onTimeout, firstByteMs);
    socket.on('readable', onReadable);
    socket.on('close', onClose);
    socket.on('error', onClose);
  });
}
