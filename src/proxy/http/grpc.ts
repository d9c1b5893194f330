// gRPC on the wire for the HTTP engine: status codes, the HTTP↔gRPC status mapping, grpc-timeout parsing and
// formatting, grpc-message percent-encoding, and a streaming checker of the 5-byte message prefixes (no buffering).

export const GrpcStatus = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  UNAUTHENTICATED: 16,
} as const;

/** `application/grpc`, `application/grpc+proto`, `application/grpc;…` (not grpc-web, which is another protocol). */
export function isGrpcContentType(ct: string | undefined): boolean {
  if (ct === undefined || ct.length < 16 || !ct.startsWith('application/grpc')) return false;
  if (ct.length === 16) return true;
  const c = ct.charCodeAt(16);
  return c === 43 /* + */ || c === 59 /* ; */;
}

/** The gRPC status a local reply with this HTTP status carries (gRPC's HTTP-to-gRPC mapping, as Envoy applies it). */
export function grpcStatusForHttp(status: number): number {
  switch (status) {
    case 400:
      return GrpcStatus.INTERNAL;
    case 401:
      return GrpcStatus.UNAUTHENTICATED;
    case 403:
      return GrpcStatus.PERMISSION_DENIED;
    case 404:
      return GrpcStatus.UNIMPLEMENTED;
    case 429:
    case 502:
    case 503:
    case 504:
      return GrpcStatus.UNAVAILABLE;
    case 431:
      return GrpcStatus.RESOURCE_EXHAUSTED;
    default:
      return status >= 200 && status < 300 ? GrpcStatus.OK : GrpcStatus.UNKNOWN;
  }
}

/** An HTTP status for a gRPC status, for a fault abort given only as a gRPC code and sent to a non-gRPC client. */
export function httpStatusForGrpc(code: number): number {
  switch (code) {
    case GrpcStatus.OK:
      return 200;
    case GrpcStatus.UNAUTHENTICATED:
      return 401;
    case GrpcStatus.PERMISSION_DENIED:
      return 403;
    case GrpcStatus.UNIMPLEMENTED:
    case GrpcStatus.NOT_FOUND:
      return 404;
    case GrpcStatus.RESOURCE_EXHAUSTED:
      return 429;
    case GrpcStatus.UNAVAILABLE:
      return 503;
    case GrpcStatus.DEADLINE_EXCEEDED:
      return 504;
    default:
      return 500;
  }
}

const UNIT_MS: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 0.001, n: 0.000001 };

/** `grpc-timeout` (1–8 digits and a unit) in milliseconds; undefined when absent or malformed (then ignored). */
export function parseGrpcTimeout(value: string | string[] | undefined): number | undefined {
  if (typeof value !== 'string') return undefined;
  const n = value.length;
  if (n < 2 || n > 9) return undefined;
  const unit = UNIT_MS[value[n - 1]!];
  if (unit === undefined) return undefined;
  let digits = 0;
  for (let i = 0; i < n - 1; i++) {
    const c = value.charCodeAt(i) - 48;
    if (c < 0 || c > 9) return undefined;
    digits = digits * 10 + c;
  }
  return digits * unit;
}

/** Formats a remaining deadline for the upstream, rounded up to whole milliseconds (at most 8 digits). */
export function formatGrpcTimeout(ms: number): string {
  const whole = Math.max(1, Math.ceil(ms));
  if (whole < 100_000_000) return `${whole}m`;
  const s = Math.ceil(whole / 1000);
  return s < 100_000_000 ? `${s}S` : `${Math.ceil(s / 3600)}H`;
}

/** grpc-message percent-encoding: UTF-8 bytes outside printable ASCII, and `%`, become `%XX`. */
export function encodeGrpcMessage(text: string): string {
  let plain = true;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x20 || c > 0x7e || c === 0x25) {
      plain = false;
      break;
    }
  }
  if (plain) return text;
  let out = '';
  for (const b of Buffer.from(text, 'utf8')) out += b < 0x20 || b > 0x7e || b === 0x25 ? `%${b < 16 ? '0' : ''}${b.toString(16).toUpperCase()}` : String.fromCharCode(b);
  return out;
}

/** The gRPC status in a header block (trailers-only responses and trailers), or undefined. */
export function grpcStatusOf(headers: Readonly<Record<string, unknown>> | undefined): number | undefined {
  const v = headers?.['grpc-status'];
  if (typeof v !== 'string' || v.length === 0 || v.length > 2) return undefined;
  const n = Number(v);
  return Number.isInteger(n) ? n : undefined;
}

/**
 * Follows the length-prefixed messages of one gRPC stream as bytes flow by, without holding any: each message's
 * 5-byte prefix (compressed flag, 32-bit big-endian length) is checked against the size bound and the encoding.
 */
export class GrpcFrameChecker {
  private remaining = 0;
  private prefixPos = 0;
  private length = 0;

  constructor(
    private readonly maxMessageBytes: number,
    /** A `grpc-encoding` other than identity was declared: the compressed flag is allowed. */
    private readonly compressionDeclared: boolean,
  ) {}

  /** 0 while the stream is well formed, else the gRPC status to fail it with (RESOURCE_EXHAUSTED or INTERNAL). */
  push(chunk: Buffer): number {
    const n = chunk.length;
    let i = 0;
    while (i < n) {
      if (this.remaining > 0) {
        const take = Math.min(this.remaining, n - i);
        this.remaining -= take;
        i += take;
        continue;
      }
      const b = chunk[i++]!;
      if (this.prefixPos === 0) {
        if (b > 1 || (b === 1 && !this.compressionDeclared)) return GrpcStatus.INTERNAL;
        this.length = 0;
      } else {
        this.length = this.length * 256 + b;
      }
      if (++this.prefixPos === 5) {
        this.prefixPos = 0;
        if (this.length > this.maxMessageBytes) return GrpcStatus.RESOURCE_EXHAUSTED;
        this.remaining = this.length;
      }
    }
    return 0;
  }

  /** At end of stream: 0 when the last message was complete, else INTERNAL (a truncated message). */
  finish(): number {
    return this.remaining > 0 || this.prefixPos > 0 ? GrpcStatus.INTERNAL : 0;
  }
}
