// End-to-end tests of `trellis authz check`, in process: per-method gRPC authorization in examples/proxyless-grpc,
// JWTs verified against a file JWKS, and exit code 2 on bad input.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, it } from 'node:test';
import { main } from '../../src/cli/main.ts';
import { jwksOf, signJwt, testKey } from '../support/jwt-signer.ts';

const EXAMPLE = 'examples/proxyless-grpc';
const DELETE = ['--from', 'dns/zone-api-v1', '--to', 'dns/zone-api-v2', '--path', '/dns.v1.ZoneService/DeleteZone'];

async function run(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(args, { out: (l) => out.push(l), err: (l) => err.push(l), readStdin: () => '' });
  return { code, out: out.join('\n'), err: err.join('\n') };
}

interface Verdict {
  verdict: string;
  reason: string;
  source: { principal: string | null; requestPrincipal: string | null };
  destination: { port: number };
  policy: { kind: string; namespace: string; name: string; ruleIndex: number | null; field: string; location: string } | null;
  audit: boolean;
}

const json = (s: string): Verdict => JSON.parse(s) as Verdict;

describe('trellis authz check', () => {
  it('denies DeleteZone to the zone-api service account: no ALLOW rule matches (default deny), exit 0', async () => {
    const r = await run(['authz', 'check', '-f', EXAMPLE, ...DELETE]);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /^DENIED: dns\/zone-api-v1 \(cluster\.local\/ns\/dns\/sa\/zone-api\) → dns\/zone-api-v2:50051 POST \/dns\.v1\.ZoneService\/DeleteZone/);
    assert.match(r.out, /decided by: default deny/);
    const j = json((await run(['authz', 'check', '-f', EXAMPLE, ...DELETE, '-o', 'json'])).out);
    assert.deepEqual([j.verdict, j.reason, j.policy, j.audit, j.destination.port], ['denied', 'no-allow-match', null, false, 50051]);
  });

  it('allows DeleteZone from cluster.local/ns/dns/sa/admin and names the rule with file:line:column', async () => {
    const r = await run(['authz', 'check', '-f', EXAMPLE, ...DELETE, '--principal', 'spiffe://cluster.local/ns/dns/sa/admin', '-o', 'json']);
    assert.equal(r.code, 0, r.err);
    const j = json(r.out);
    assert.equal(j.verdict, 'allowed');
    assert.equal(j.source.principal, 'cluster.local/ns/dns/sa/admin');
    assert.deepEqual({ ...j.policy, location: undefined }, { kind: 'AuthorizationPolicy', namespace: 'dns', name: 'zone-api', ruleIndex: 1, field: 'spec.rules[1]', location: undefined });
    assert.match(j.policy?.location ?? '', /^examples\/proxyless-grpc\/zone-api\.yaml:\d+:\d+$/);
    const text = await run(['authz', 'check', '-f', EXAMPLE, ...DELETE, '--principal', 'cluster.local/ns/dns/sa/admin']);
    assert.match(text.out, /^ALLOWED: /);
    assert.match(text.out, /decided by: AuthorizationPolicy dns\/zone-api spec\.rules\[1\] at examples\/proxyless-grpc\/zone-api\.yaml:\d+:\d+/);
  });

  it('allows ListZones and GetZone to everyone, including a caller outside the mesh', async () => {
    for (const m of ['ListZones', 'GetZone']) {
      const j = json((await run(['authz', 'check', '-f', EXAMPLE, '--from', '192.0.2.7', '--to', 'dns/zone-api-v1', '--path', `/dns.v1.ZoneService/${m}`, '-o', 'json'])).out);
      assert.deepEqual([j.verdict, j.policy?.field, j.source.principal], ['allowed', 'spec.rules[0]', null], m);
    }
  });

  it('exits 2 on bad input: unknown pod, missing --path, bad -o, bad --port', async () => {
    const unknown = await run(['authz', 'check', '-f', EXAMPLE, '--from', 'dns/nope', '--to', 'dns/zone-api-v2', '--path', '/x']);
    assert.equal(unknown.code, 2);
    assert.match(unknown.err, /--from: unknown pod dns\/nope/);
    const noPath = await run(['authz', 'check', '-f', EXAMPLE, '--from', 'dns/zone-api-v1', '--to', 'dns/zone-api-v2']);
    assert.deepEqual([noPath.code, /missing --path/.test(noPath.err)], [2, true]);
    assert.equal((await run(['authz', 'check', '-f', EXAMPLE, ...DELETE, '-o', 'yaml'])).code, 2);
    assert.equal((await run(['authz', 'check', '-f', EXAMPLE, ...DELETE, '--port', '0'])).code, 2);
    assert.equal((await run(['authz', 'check', '-f', 'no/such/dir', ...DELETE])).code, 2);
  });

  describe('with a RequestAuthentication whose JWKS is a file', () => {
    const key = testKey('RS256', 'k1');
    const dir = mkdtempSync(join(tmpdir(), 'trellis-authz-'));
    // Outside the manifest directory: `-f DIR` reads every .json file in it as a manifest.
    const keys = join(mkdtempSync(join(tmpdir(), 'trellis-keys-')), 'jwks.json');
    writeFileSync(keys, jwksOf(key));
    writeFileSync(join(dir, 'zone-api.yaml'), readFileSync(join(EXAMPLE, 'zone-api.yaml'), 'utf8'));
    const ra = (uri: string): string => `apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: zone-api-jwt, namespace: dns}
spec:
  selector: {matchLabels: {app: zone-api}}
  jwtRules:
  - issuer: https://id.example
    audiences: [zone-api]
    jwksUri: ${uri}
`;
    writeFileSync(join(dir, 'jwt.yaml'), ra(pathToFileURL(keys).href));
    const now = 1_750_000_000;
    const token = (claims: Record<string, unknown>): string => signJwt(key, { iss: 'https://id.example', sub: 'ops', aud: 'zone-api', exp: now + 300, ...claims });
    const GET = ['--from', 'dns/zone-api-v1', '--to', 'dns/zone-api-v2', '--path', '/dns.v1.ZoneService/GetZone', '--now', String(now)];

    it('verifies a valid token and reports its request principal', async () => {
      const r = await run(['authz', 'check', '-f', dir, ...GET, '--jwt', token({}), '-o', 'json']);
      assert.equal(r.code, 0, r.err);
      const j = json(r.out);
      assert.deepEqual([j.verdict, j.source.requestPrincipal], ['allowed', 'https://id.example/ops']);
      const h = await run(['authz', 'check', '-f', dir, ...GET, '--header', `authorization=Bearer ${token({})}`]);
      assert.match(h.out, /request principal: https:\/\/id\.example\/ops/);
    });

    it('denies a request with an expired or foreign token, naming the RequestAuthentication rule', async () => {
      for (const t of [token({ exp: now - 3600 }), signJwt(testKey('RS256', 'k1'), { iss: 'https://id.example', aud: 'zone-api' })]) {
        const r = await run(['authz', 'check', '-f', dir, ...GET, '--jwt', t, '-o', 'json']);
        assert.equal(r.code, 0, r.err);
        const j = json(r.out);
        assert.deepEqual([j.verdict, j.reason, j.policy?.kind, j.policy?.name, j.policy?.field], ['denied', 'jwt-invalid', 'RequestAuthentication', 'zone-api-jwt', 'spec.jwtRules[0]']);
        assert.match(j.policy?.location ?? '', /jwt\.yaml:7:5$/);
      }
      const text = await run(['authz', 'check', '-f', dir, ...GET, '--jwt', token({ exp: now - 3600 })]);
      assert.match(text.out, /^DENIED: [^\n]*\n {2}why: invalid JWT \(401\): the token expired at /);
    });

    it('exits 2 with a located error when the JWKS file is missing', async () => {
      const bad = mkdtempSync(join(tmpdir(), 'trellis-authz-'));
      writeFileSync(join(bad, 'jwt.yaml'), ra(pathToFileURL(join(bad, 'missing.json')).href));
      const r = await run(['authz', 'check', '-f', bad, '-f', EXAMPLE, ...GET]);
      assert.equal(r.code, 2);
      assert.match(r.err, /jwt\.yaml:9:14: RequestAuthentication dns\/zone-api-jwt: spec\.jwtRules\[0\]\.jwksUri: JWKS file .*missing\.json: no such file/);
    });
  });
});
