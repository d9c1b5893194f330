// JWT verification as Istio's RequestAuthentication (Envoy's jwt_authn) does it: compact JWS, issuer → rule, audiences,
// exp/nbf with clock skew, and the signature checked against the rule's JWKS. Pure: the caller passes `now`.
import { constants, createPublicKey, verify, type JsonWebKey, type KeyObject } from 'node:crypto';

/** Tokens longer than this are refused before any parsing (Envoy's default header limit is of the same order). */
export const MAX_JWT_LENGTH = 16 * 1024;
/** Tolerated clock difference for `exp` and `nbf`, in seconds (Envoy's default `clock_skew_seconds`). */
export const JWT_CLOCK_SKEW_SECONDS = 60;
/** Bound on the number of keys considered in one JWKS. */
const MAX_JWKS_KEYS = 64;

/** What verification needs of a RequestAuthentication `jwtRules[]` entry. */
export interface JwtVerifyRule {
  issuer: string;
  audiences: readonly string[];
  /** Inline JWKS (a JSON string); it wins over `jwksUri`. */
  jwks?: string;
  /** Remote JWKS: not fetched offline, so a token of this issuer cannot be verified (fail closed). */
  jwksUri?: string;
}

type Alg = 'RS256' | 'RS384' | 'RS512' | 'PS256' | 'PS384' | 'PS512' | 'ES256' | 'ES384' | 'ES512';

interface AlgSpec {
  hash: 'sha256' | 'sha384' | 'sha512';
  kty: 'RSA' | 'EC';
  pss?: boolean;
  /** EC only: the curve and the raw (r||s) signature length. */
  crv?: string;
  sigLength?: number;
}

const ALGS: Readonly<Record<Alg, AlgSpec>> = {
  RS256: { hash: 'sha256', kty: 'RSA' },
  RS384: { hash: 'sha384', kty: 'RSA' },
  RS512: { hash: 'sha512', kty: 'RSA' },
  PS256: { hash: 'sha256', kty: 'RSA', pss: true },
  PS384: { hash: 'sha384', kty: 'RSA', pss: true },
  PS512: { hash: 'sha512', kty: 'RSA', pss: true },
  ES256: { hash: 'sha256', kty: 'EC', crv: 'P-256', sigLength: 64 },
  ES384: { hash: 'sha384', kty: 'EC', crv: 'P-384', sigLength: 96 },
  ES512: { hash: 'sha512', kty: 'EC', crv: 'P-521', sigLength: 132 },
};

/** One usable public key of a JWKS. */
export interface CompiledJwk {
  kid?: string;
  kty: string;
  alg?: string;
  crv?: string;
  key: KeyObject;
}

/** A rule with its JWKS parsed once, so that verifying a token parses no JSON but the token's own. */
export interface CompiledJwtRule {
  rule: JwtVerifyRule;
  keys: CompiledJwk[];
  /** Why the rule has no usable keys (remote JWKS not fetched, invalid JWKS), when it has none. */
  problem?: string;
}

export type JwtResult =
  | {
      ok: true;
      issuer: string;
      subject: string;
      claims: Record<string, unknown>;
      /** `iss/sub`, as AuthorizationPolicy `requestPrincipals` match it. */
      requestPrincipal: string;
      /** Index (in the rules given) of the rule that accepted the token. */
      ruleIndex: number;
    }
  | {
      ok: false;
      reason: string;
      /** Index of the rule the token's issuer selected, when one did. */
      ruleIndex?: number;
    };

/** Parses a rule's JWKS into public keys; keys that are not signature keys or cannot be imported are skipped. */
export function compileJwtRule(rule: JwtVerifyRule): CompiledJwtRule {
  if (rule.jwks === undefined || rule.jwks === '') {
    const problem = rule.jwksUri
      ? `the JWKS of issuer ${rule.issuer} is at ${rule.jwksUri}, which is not fetched: its tokens cannot be verified`
      : `issuer ${rule.issuer} has no JWKS: its tokens cannot be verified`;
    return { rule, keys: [], problem };
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(rule.jwks);
  } catch {
    return { rule, keys: [], problem: `the JWKS of issuer ${rule.issuer} is not JSON` };
  }
  const list = isObject(parsed) && Array.isArray(parsed.keys) ? (parsed.keys as unknown[]) : [];
  const keys: CompiledJwk[] = [];
  for (const k of list.slice(0, MAX_JWKS_KEYS)) {
    if (!isObject(k) || (k.kty !== 'RSA' && k.kty !== 'EC')) continue;
    if (k.use !== undefined && k.use !== 'sig') continue;
    try {
      const key = createPublicKey({ key: publicPart(k), format: 'jwk' });
      const out: CompiledJwk = { kty: k.kty, key };
      if (typeof k.kid === 'string') out.kid = k.kid;
      if (typeof k.alg === 'string') out.alg = k.alg;
      if (typeof k.crv === 'string') out.crv = k.crv;
      keys.push(out);
    } catch {
      // Not an importable public key: skipped, as Envoy skips keys it cannot parse.
    }
  }
  if (keys.length === 0) return { rule, keys, problem: `the JWKS of issuer ${rule.issuer} has no usable RSA or EC signature key` };
  return { rule, keys };
}

/** Only the public members of a JWK: a private JWK must not turn into a usable key by accident. */
function publicPart(k: Record<string, unknown>): JsonWebKey {
  const pick = k.kty === 'RSA' ? ['kty', 'n', 'e'] : ['kty', 'crv', 'x', 'y'];
  const out: Record<string, unknown> = {};
  for (const f of pick) if (typeof k[f] === 'string') out[f] = k[f];
  return out;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

const B64URL = /^[A-Za-z0-9_-]*$/;

function decodeJson(part: string, what: string): Record<string, unknown> | string {
  if (!B64URL.test(part) || part.length === 0) return `the ${what} is not base64url`;
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
  } catch {
    return `the ${what} is not JSON`;
  }
  return isObject(v) ? v : `the ${what} is not a JSON object`;
}

/**
 * Verifies a compact JWS against RequestAuthentication rules. `now` is milliseconds since the epoch. The token's `iss`
 * picks the rule(s); a token no rule accepts is invalid (Istio answers 401). Accepts only asymmetric algorithms.
 */
export function verifyJwt(token: string, rules: readonly (JwtVerifyRule | CompiledJwtRule)[], now: number): JwtResult {
  if (token.length > MAX_JWT_LENGTH) return { ok: false, reason: `the token is longer than ${MAX_JWT_LENGTH} characters` };
  const parts = token.split('.');
  if (parts.length !== 3) return { ok: false, reason: 'the token is not a compact JWS (three base64url parts separated by dots)' };
  const [h, p, s] = parts as [string, string, string];
  const header = decodeJson(h, 'header');
  if (typeof header === 'string') return { ok: false, reason: header };
  const alg = header.alg;
  if (typeof alg !== 'string') return { ok: false, reason: 'the header has no "alg"' };
  if (alg === 'none' || /^HS/i.test(alg)) return { ok: false, reason: `algorithm "${alg}" is refused: only RS*, PS* and ES* signatures are accepted` };
  if (!Object.hasOwn(ALGS, alg)) return { ok: false, reason: `unsupported algorithm "${alg}"` };
  const spec = ALGS[alg as Alg];
  if (header.crit !== undefined) return { ok: false, reason: 'the header has "crit" extensions, which are not understood' };
  const kid = typeof header.kid === 'string' ? header.kid : undefined;
  const payload = decodeJson(p, 'payload');
  if (typeof payload === 'string') return { ok: false, reason: payload };
  if (!B64URL.test(s) || s.length === 0) return { ok: false, reason: 'the signature is missing or not base64url' };
  const signature = Buffer.from(s, 'base64url');

  const iss = payload.iss;
  if (typeof iss !== 'string' || iss === '') return { ok: false, reason: 'the token has no "iss" claim' };
  const candidates: number[] = [];
  rules.forEach((r, i) => {
    if (ruleOf(r).issuer === iss) candidates.push(i);
  });
  if (candidates.length === 0) return { ok: false, reason: `issuer ${JSON.stringify(iss)} is not configured in any RequestAuthentication rule` };

  const nowSec = now / 1000;
  if (payload.exp !== undefined) {
    if (typeof payload.exp !== 'number') return { ok: false, reason: '"exp" is not a number', ruleIndex: first(candidates) };
    if (nowSec > payload.exp + JWT_CLOCK_SKEW_SECONDS) return { ok: false, reason: `the token expired at ${isoTime(payload.exp)}`, ruleIndex: first(candidates) };
  }
  if (payload.nbf !== undefined) {
    if (typeof payload.nbf !== 'number') return { ok: false, reason: '"nbf" is not a number', ruleIndex: first(candidates) };
    if (nowSec + JWT_CLOCK_SKEW_SECONDS < payload.nbf) return { ok: false, reason: `the token is not valid before ${isoTime(payload.nbf)}`, ruleIndex: first(candidates) };
  }
  const auds = typeof payload.aud === 'string' ? [payload.aud] : Array.isArray(payload.aud) ? payload.aud.filter((a): a is string => typeof a === 'string') : [];
  const data = Buffer.from(`${h}.${p}`, 'ascii');

  let failure: { reason: string; ruleIndex: number } | undefined;
  for (const i of candidates) {
    const entry = rules[i];
    if (!entry) continue;
    const rule = ruleOf(entry);
    if (rule.audiences.length > 0 && !rule.audiences.some((a) => auds.includes(a))) {
      failure ??= { reason: `audience ${JSON.stringify(payload.aud ?? null)} is not one of ${rule.audiences.join(', ')}`, ruleIndex: i };
      continue;
    }
    const compiled = 'keys' in entry ? entry : compileJwtRule(entry);
    if (compiled.keys.length === 0) {
      failure ??= { reason: compiled.problem ?? `issuer ${iss} has no keys`, ruleIndex: i };
      continue;
    }
    const keys = compiled.keys.filter((k) => keyFits(k, alg, spec) && (kid === undefined || k.kid === undefined || k.kid === kid));
    if (keys.length === 0) {
      failure ??= { reason: kid !== undefined ? `no ${spec.kty} key with kid ${JSON.stringify(kid)} in the JWKS of issuer ${iss}` : `no ${spec.kty} key for ${alg} in the JWKS of issuer ${iss}`, ruleIndex: i };
      continue;
    }
    if (keys.some((k) => signatureValid(data, signature, k.key, spec))) {
      const sub = typeof payload.sub === 'string' ? payload.sub : '';
      return { ok: true, issuer: iss, subject: sub, claims: payload, requestPrincipal: `${iss}/${sub}`, ruleIndex: i };
    }
    failure ??= { reason: 'the signature does not verify', ruleIndex: i };
  }
  return failure ? { ok: false, ...failure } : { ok: false, reason: 'the token is not accepted' };
}

function ruleOf(r: JwtVerifyRule | CompiledJwtRule): JwtVerifyRule {
  return 'keys' in r ? r.rule : r;
}

function first(xs: readonly number[]): number {
  return xs[0] ?? 0;
}

function isoTime(sec: number): string {
  const d = new Date(sec * 1000);
  return Number.isNaN(d.getTime()) ? String(sec) : d.toISOString();
}

function keyFits(k: CompiledJwk, alg: string, spec: AlgSpec): boolean {
  if (k.kty !== spec.kty) return false;
  if (k.alg !== undefined && k.alg !== alg) return false;
  if (spec.crv !== undefined && k.crv !== spec.crv) return false;
  return true;
}

function signatureValid(data: Buffer, sig: Buffer, key: KeyObject, spec: AlgSpec): boolean {
  try {
    if (spec.kty === 'EC') {
      if (sig.length !== spec.sigLength) return false;
      return verify(spec.hash, data, { key, dsaEncoding: 'ieee-p1363' }, sig);
    }
    if (spec.pss) return verify(spec.hash, data, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_DIGEST }, sig);
    return verify(spec.hash, data, key, sig);
  } catch {
    return false;
  }
}
