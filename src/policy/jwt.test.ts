// Tests of JWT verification (RequestAuthentication semantics) with real RS256/ES256/PS256 keys, and of decideAuthz
// with raw tokens: accepted tokens feed requestPrincipals and claims, invalid tokens are denied, no token passes.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { jwksOf, signJwt, testKey } from '../../test/support/jwt-signer.ts';
import { loadManifests } from '../resources/load.ts';
import { decideAuthz, type AuthzRequest } from './authz-decide.ts';
import { buildAuthzModel } from './authz-model.ts';
import { compileJwtRule, MAX_JWT_LENGTH, verifyJwt, type JwtVerifyRule } from './jwt.ts';

const ISS = 'https://issuer.example';
const NOW = Date.UTC(2025, 0, 1, 12, 0, 0);
const sec = (ms: number): number => Math.floor(ms / 1000);
const rsa = testKey('RS256', 'rsa-1');
const ec = testKey('ES256', 'ec-1');
const pss = testKey('PS256', 'pss-1');
const other = testKey('RS256', 'rsa-1');
const claims = (over: Record<string, unknown> = {}): Record<string, unknown> => ({ iss: ISS, sub: 'alice', aud: ['dns'], iat: sec(NOW) - 10, exp: sec(NOW) + 600, ...over });
const rule: JwtVerifyRule = { issuer: ISS, audiences: ['dns'], jwks: jwksOf(rsa, ec, pss) };

function fail(token: string, rules: readonly JwtVerifyRule[] = [rule], now = NOW): string {
  const r = verifyJwt(token, rules, now);
  assert.equal(r.ok, false, 'token should be rejected');
  return r.ok ? '' : r.reason;
}

describe('verifyJwt', () => {
  it('accepts RS256, ES256 and PS256 tokens signed with the JWKS keys, and names the request principal', () => {
    for (const key of [rsa, ec, pss]) {
      const r = verifyJwt(signJwt(key, claims()), [rule], NOW);
      assert.ok(r.ok, `${key.alg}: ${r.ok ? '' : r.reason}`);
      assert.equal(r.issuer, ISS);
      assert.equal(r.subject, 'alice');
      assert.equal(r.requestPrincipal, `${ISS}/alice`);
      assert.deepEqual(r.claims.aud, ['dns']);
    }
  });

  it('finds the key without a kid by trying the keys of the right type, and works with a precompiled rule', () => {
    assert.ok(verifyJwt(signJwt(ec, claims(), { kid: undefined }), [rule], NOW).ok);
    assert.ok(verifyJwt(signJwt(rsa, claims(), { kid: undefined }), [compileJwtRule(rule)], NOW).ok);
    assert.match(fail(signJwt(rsa, claims(), { kid: 'unknown' })), /no RSA key with kid "unknown"/);
  });

  it('rejects expired and not-yet-valid tokens, with a small clock skew', () => {
    assert.match(fail(signJwt(rsa, claims({ exp: sec(NOW) - 120 }))), /expired at/);
    assert.ok(verifyJwt(signJwt(rsa, claims({ exp: sec(NOW) - 30 })), [rule], NOW).ok, 'within the skew');
    assert.match(fail(signJwt(rsa, claims({ nbf: sec(NOW) + 3600 }))), /not valid before/);
    assert.match(fail(signJwt(rsa, claims({ exp: 'tomorrow' }))), /"exp" is not a number/);
  });

  it('rejects a wrong audience and an unknown issuer; no audiences in the rule means any', () => {
    assert.match(fail(signJwt(rsa, claims({ aud: 'billing' }))), /audience "billing" is not one of dns/);
    assert.match(fail(signJwt(rsa, claims({ iss: 'https://evil.example' }))), /issuer "https:\/\/evil.example" is not configured/);
    assert.ok(verifyJwt(signJwt(rsa, claims({ aud: 'billing' })), [{ ...rule, audiences: [] }], NOW).ok);
  });

  it('rejects a bad signature: tampered payload, another key with the same kid, a truncated ES256 signature', () => {
    const t = signJwt(rsa, claims());
    const [h, , s] = t.split('.');
    const forged = `${h ?? ''}.${Buffer.from(JSON.stringify(claims({ sub: 'mallory' }))).toString('base64url')}.${s ?? ''}`;
    assert.match(fail(forged), /signature does not verify/);
    assert.match(fail(signJwt(other, claims())), /signature does not verify/);
    const e = signJwt(ec, claims());
    assert.match(fail(e.slice(0, -4)), /signature does not verify/);
  });

  it('refuses alg none and HMAC, unknown algorithms, crit headers, malformed and oversized tokens', () => {
    const payload = Buffer.from(JSON.stringify(claims())).toString('base64url');
    const none = `${Buffer.from(JSON.stringify({ alg: 'none' })).toString('base64url')}.${payload}.`;
    assert.match(fail(none), /algorithm "none" is refused/);
    assert.match(fail(signJwt(rsa, claims(), { alg: 'HS256' })), /algorithm "HS256" is refused/);
    assert.match(fail(signJwt(rsa, claims(), { alg: 'XX1' })), /unsupported algorithm/);
    assert.match(fail(signJwt(rsa, claims(), { crit: ['exp'] })), /crit/);
    assert.match(fail('not-a-token'), /not a compact JWS/);
    assert.match(fail('a.b.c.d'), /not a compact JWS/);
    assert.match(fail('!!.e30.c2ln'), /header is not base64url/);
    assert.match(fail(signJwt(rsa, claims({ pad: 'x'.repeat(MAX_JWT_LENGTH) }))), /longer than 16384/);
  });

  it('fails closed when the issuer has only a remote JWKS (not fetched) or no usable key', () => {
    assert.match(fail(signJwt(rsa, claims()), [{ issuer: ISS, audiences: [], jwksUri: 'https://issuer.example/jwks' }]), /https:\/\/issuer\.example\/jwks, which is not fetched/);
    assert.match(fail(signJwt(rsa, claims()), [{ issuer: ISS, audiences: [], jwks: '{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}' }]), /no usable RSA or EC signature key/);
    // A private JWK in the JWKS is used only for its public part.
    const priv = { ...(rsa.privateKey.export({ format: 'jwk' }) as Record<string, unknown>), kid: 'rsa-1' };
    assert.ok(verifyJwt(signJwt(rsa, claims()), [{ issuer: ISS, audiences: [], jwks: JSON.stringify({ keys: [priv] }) }], NOW).ok);
  });

  it('picks among several rules of the same issuer the one that accepts the token', () => {
    const rules: JwtVerifyRule[] = [{ issuer: ISS, audiences: ['billing'], jwks: jwksOf(rsa) }, { issuer: ISS, audiences: ['dns'], jwks: jwksOf(ec) }];
    const r = verifyJwt(signJwt(ec, claims()), rules, NOW);
    assert.ok(r.ok);
    assert.equal(r.ruleIndex, 1);
  });
});

const zones = { namespace: 'dns', labels: { app: 'zones' }, ips: ['10.244.0.5'] };
const grpc = (method: string, over: Partial<AuthzRequest> = {}): AuthzRequest => ({
  source: { principal: 'cluster.local/ns/dns/sa/zone-client', ip: '10.244.0.9' },
  destination: { pod: zones, port: 9090 },
  http: { method: 'POST', path: `/dns.v1.ZoneService/${method}`, headers: { 'content-type': 'application/grpc' } },
  now: NOW,
  ...over,
});

function model(jwks: string) {
  const text = `apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt, namespace: dns}
spec:
  selector: {matchLabels: {app: zones}}
  jwtRules:
  - issuer: "${ISS}"
    audiences: [dns]
    jwks: '${jwks}'
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: zones, namespace: dns}
spec:
  selector: {matchLabels: {app: zones}}
  rules:
  - to: [{operation: {paths: ["/dns.v1.ZoneService/GetZone"]}}]
  - from: [{source: {requestPrincipals: ["${ISS}/alice"]}}]
    to: [{operation: {paths: ["/dns.v1.ZoneService/DeleteZone"]}}]
    when: [{key: "request.auth.claims[role]", values: [owner]}]
`;
  const r = loadManifests([{ name: 'p.yaml', text }]);
  assert.deepEqual(r.diagnostics.filter((d) => d.severity === 'error'), []);
  return buildAuthzModel(r.resources);
}

describe('decideAuthz with a raw JWT', () => {
  const m = model(jwksOf(rsa, ec));
  const good = signJwt(ec, claims({ role: 'owner' }));

  it('allows a request whose verified token matches requestPrincipals and claims', () => {
    const d = decideAuthz(m, grpc('DeleteZone', { jwt: good }));
    assert.deepEqual([d.verdict, d.reason, d.policy?.field, d.requestPrincipal], ['allow', 'allowed-by-policy', 'spec.rules[1]', `${ISS}/alice`]);
    assert.equal(decideAuthz(m, grpc('DeleteZone', { jwt: signJwt(rsa, claims({ role: 'reader' })) })).reason, 'no-allow-match');
  });

  it('takes the token from authorization: Bearer when none is given explicitly', () => {
    const d = decideAuthz(m, grpc('DeleteZone', { http: { method: 'POST', path: '/dns.v1.ZoneService/DeleteZone', headers: { Authorization: `Bearer ${good}` } } }));
    assert.equal(d.verdict, 'allow');
    const q = decideAuthz(m, grpc('DeleteZone', { http: { method: 'POST', path: `/dns.v1.ZoneService/DeleteZone?access_token=${good}` } }));
    assert.equal(q.verdict, 'allow');
  });

  it('denies a request with an invalid token (401), even to a method open to all, naming the RequestAuthentication rule', () => {
    for (const bad of [signJwt(other, claims({ role: 'owner' })), signJwt(ec, claims({ exp: sec(NOW) - 3600 })), signJwt(ec, claims({ aud: 'x' })), 'garbage']) {
      const d = decideAuthz(m, grpc('GetZone', { jwt: bad }));
      assert.deepEqual([d.verdict, d.reason, d.policy?.kind, d.policy?.name], ['deny', 'jwt-invalid', 'RequestAuthentication', 'jwt'], bad);
      assert.match(d.message, /^invalid JWT \(401\): /);
    }
    const d = decideAuthz(m, grpc('GetZone', { jwt: signJwt(other, claims()) }));
    assert.equal(d.policy?.field, 'spec.jwtRules[0]');
    assert.deepEqual(d.policy?.location, { file: 'p.yaml', line: 7, column: 5 });
    assert.equal(decideAuthz(m, grpc('GetZone', { jwt: good, now: undefined })).reason, 'jwt-invalid', 'no clock: fail closed');
  });

  it('lets a request without a token through RequestAuthentication, with no request principal', () => {
    const get = decideAuthz(m, grpc('GetZone'));
    assert.deepEqual([get.verdict, get.requestPrincipal], ['allow', undefined]);
    const del = decideAuthz(m, grpc('DeleteZone', { http: { method: 'POST', path: '/dns.v1.ZoneService/DeleteZone', headers: { authorization: 'Basic YTpi' } } }));
    assert.deepEqual([del.verdict, del.reason], ['deny', 'no-allow-match']);
  });

  it('ignores a token when no RequestAuthentication applies to the workload', () => {
    const d = decideAuthz(m, grpc('GetZone', { jwt: 'garbage', destination: { pod: { namespace: 'dns', labels: { app: 'other' } }, port: 9090 } }));
    assert.deepEqual([d.verdict, d.reason], ['allow', 'no-allow-policies']);
  });
});
