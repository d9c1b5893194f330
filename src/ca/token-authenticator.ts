// Caller authentication for the CA: the Authenticator interface and the local-mode bootstrap TokenRegistry.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Metadata } from '@grpc/grpc-js';
import { CaError } from './ca-error.ts';
import { validateIdentity, type Identity } from './spiffe-id.ts';

/** Turns a call's metadata into the caller's identity, or throws CaError UNAUTHENTICATED. Kubernetes will plug in service-account tokens here. */
export interface Authenticator {
  authenticate(metadata: Metadata): Identity | Promise<Identity>;
}

/** Longest authorization header accepted; a registry token is 43 characters. */
const MAX_AUTHORIZATION_LENGTH = 1024;
const TOKEN_BYTES = 32;

/** The bearer token in `authorization: Bearer <token>`, or CaError UNAUTHENTICATED. */
export function bearerToken(metadata: Metadata): string {
  const values = metadata.get('authorization');
  if (values.length === 0) throw new CaError('UNAUTHENTICATED', 'missing authorization metadata (expected "Bearer <token>")');
  if (values.length > 1) throw new CaError('UNAUTHENTICATED', 'more than one authorization metadata value');
  const value = values[0];
  if (typeof value !== 'string' || value.length > MAX_AUTHORIZATION_LENGTH) throw new CaError('UNAUTHENTICATED', 'malformed authorization metadata');
  const m = /^Bearer +([A-Za-z0-9._~+/=-]+)$/i.exec(value.trim());
  if (!m) throw new CaError('UNAUTHENTICATED', 'authorization metadata must be "Bearer <token>"');
  return m[1]!;
}

/**
 * Per-workload bootstrap tokens for local mode: 32 random bytes, base64url. Only SHA-256 digests are kept; a
 * presented token is found by its digest and then compared in constant time, so neither the lookup nor the
 * comparison reveals how much of a guess was right.
 */
export class TokenRegistry implements Authenticator {
  readonly #byDigest = new Map<string, { digest: Buffer; identity: Identity }>();

  /** Issues a new token for the identity; an identity may hold several tokens. */
  issue(identity: Identity): string {
    validateIdentity(identity);
    const token = randomBytes(TOKEN_BYTES).toString('base64url');
    const digest = sha256(token);
    this.#byDigest.set(digest.toString('hex'), { digest, identity: { namespace: identity.namespace, serviceAccount: identity.serviceAccount } });
    return token;
  }

  /** Revokes one token; true if it was known. */
  revoke(token: string): boolean {
    return this.#byDigest.delete(sha256(token).toString('hex'));
  }

  /** Revokes every token of an identity; returns how many there were. */
  revokeIdentity(identity: Identity): number {
    let n = 0;
    for (const [key, entry] of this.#byDigest) {
      if (entry.identity.namespace === identity.namespace && entry.identity.serviceAccount === identity.serviceAccount) {
        this.#byDigest.delete(key);
        n++;
      }
    }
    return n;
  }

  /** The identity a token stands for, or CaError UNAUTHENTICATED. */
  identityOf(token: string): Identity {
    const digest = sha256(token);
    const entry = this.#byDigest.get(digest.toString('hex'));
    if (!entry || !timingSafeEqual(entry.digest, digest)) throw new CaError('UNAUTHENTICATED', 'unknown or revoked token');
    return { ...entry.identity };
  }

  authenticate(metadata: Metadata): Identity {
    return this.identityOf(bearerToken(metadata));
  }
}

function sha256(s: string): Buffer {
  return createHash('sha256').update(s, 'utf8').digest();
}
