// JWTs signed with node:crypto (ES256 for P-256 keys, RS256 for RSA keys), and the JWKS that verifies them.
import { createHash, createPrivateKey, createPublicKey, sign, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { AppError } from './app-error.ts';
import type { Env } from './env.ts';

export interface SigningKey {
  privateKey: KeyObject;
  alg: 'ES256' | 'RS256';
  /** The RFC 7638 thumbprint of the public key. */
  kid: string;
}

/** The key from JWT_SIGNING_KEY (PEM text, e.g. from a Secret) or the file JWT_SIGNING_KEY_FILE. */
export function signingKeyFromEnv(env: Env): SigningKey {
  const pem = env.JWT_SIGNING_KEY?.trim() ? env.JWT_SIGNING_KEY : env.JWT_SIGNING_KEY_FILE?.trim() ? readKeyFile(env.JWT_SIGNING_KEY_FILE.trim()) : undefined;
  if (!pem) throw new AppError('INVALID_CONFIG', 'set JWT_SIGNING_KEY (a PEM private key) or JWT_SIGNING_KEY_FILE');
  return signingKey(pem);
}

function readKeyFile(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    throw new AppError('INVALID_CONFIG', `JWT_SIGNING_KEY_FILE ${path}: ${(e as Error).message}`);
  }
}

export function signingKey(pem: string): SigningKey {
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(pem);
  } catch (e) {
    throw new AppError('INVALID_CONFIG', `the JWT signing key is not a PEM private key: ${(e as Error).message}`);
  }
  const t = privateKey.asymmetricKeyType;
  const curve = privateKey.asymmetricKeyDetails?.namedCurve;
  if (t === 'ec' && curve === 'prime256v1') return { privateKey, alg: 'ES256', kid: thumbprint(privateKey) };
  if (t === 'rsa') return { privateKey, alg: 'RS256', kid: thumbprint(privateKey) };
  throw new AppError('INVALID_CONFIG', `the JWT signing key must be an EC P-256 or RSA key, not ${t ?? 'unknown'}${curve ? ` ${curve}` : ''}`);
}

/** RFC 7638: SHA-256 over the public key's required members, in lexicographic order. */
function thumbprint(key: KeyObject): string {
  const jwk = createPublicKey(key).export({ format: 'jwk' });
  const members = jwk.kty === 'EC' ? { crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y } : { e: jwk.e, kty: jwk.kty, n: jwk.n };
  return createHash('sha256').update(JSON.stringify(members)).digest('base64url');
}

/** The JWKS (public keys only) that verifies tokens of this key. */
export function jwksOf(k: SigningKey): { keys: Record<string, unknown>[] } {
  return { keys: [{ ...createPublicKey(k.privateKey).export({ format: 'jwk' }), kid: k.kid, alg: k.alg, use: 'sig' }] };
}

const b64 = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString('base64url');

export function signJwt(k: SigningKey, claims: Record<string, unknown>): string {
  const input = `${b64({ alg: k.alg, typ: 'JWT', kid: k.kid })}.${b64(claims)}`;
  const sig = k.alg === 'ES256' ? sign('sha256', Buffer.from(input), { key: k.privateKey, dsaEncoding: 'ieee-p1363' }) : sign('sha256', Buffer.from(input), k.privateKey);
  return `${input}.${sig.toString('base64url')}`;
}

export interface TokenOptions {
  issuer: string;
  audience: string;
  subject: string;
  roles: string[];
  ttlSeconds: number;
}

/** Tokens for one identity, re-signed when less than a third of their lifetime is left. */
export class TokenSource {
  private cached: { token: string; renewAt: number } | undefined;

  constructor(
    private readonly key: SigningKey,
    private readonly o: TokenOptions,
  ) {}

  token(nowMs = Date.now()): string {
    if (this.cached && nowMs < this.cached.renewAt) return this.cached.token;
    const iat = Math.floor(nowMs / 1000);
    const exp = iat + this.o.ttlSeconds;
    const token = signJwt(this.key, { iss: this.o.issuer, sub: this.o.subject, aud: this.o.audience, iat, nbf: iat - 5, exp, roles: this.o.roles });
    this.cached = { token, renewAt: nowMs + (this.o.ttlSeconds * 1000 * 2) / 3 };
    return token;
  }
}
