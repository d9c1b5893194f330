// Test helper: real signing keys (node:crypto) exported as JWKs, and compact JWS tokens signed with them.
import { constants, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';

export interface TestKey {
  alg: 'RS256' | 'ES256' | 'PS256';
  kid: string;
  privateKey: KeyObject;
  /** The public JWK, with kid and alg. */
  jwk: Record<string, unknown>;
}

export function testKey(alg: TestKey['alg'], kid: string): TestKey {
  const { privateKey, publicKey } = alg === 'ES256' ? generateKeyPairSync('ec', { namedCurve: 'P-256' }) : generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { alg, kid, privateKey, jwk: { ...publicKey.export({ format: 'jwk' }), kid, alg, use: 'sig' } };
}

export function jwksOf(...keys: TestKey[]): string {
  return JSON.stringify({ keys: keys.map((k) => k.jwk) });
}

const b64 = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString('base64url');

/** Signs the claims; `header` overrides or adds header fields (`kid: undefined` leaves the kid out). */
export function signJwt(key: TestKey, claims: Record<string, unknown>, header: Record<string, unknown> = {}): string {
  const h: Record<string, unknown> = { alg: key.alg, typ: 'JWT', kid: key.kid, ...header };
  for (const k of Object.keys(h)) if (h[k] === undefined) delete h[k];
  const input = `${b64(h)}.${b64(claims)}`;
  const data = Buffer.from(input);
  const sig =
    key.alg === 'ES256'
      ? sign('sha256', data, { key: key.privateKey, dsaEncoding: 'ieee-p1363' })
      : key.alg === 'PS256'
        ? sign('sha256', data, { key: key.privateKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_DIGEST })
        : sign('sha256', data, key.privateKey);
  return `${input}.${sig.toString('base64url')}`;
}
