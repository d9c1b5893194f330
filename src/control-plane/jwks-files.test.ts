// Tests of local-mode JWKS: `jwksUri: file:///…` read into the rule (located errors when missing or invalid), remote
// JWKS warned about, and the resolved keys used by compileMeshConfig's authorization model.
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, it } from 'node:test';
import { jwksOf, signJwt, testKey } from '../../test/support/jwt-signer.ts';
import { formatDiagnostic } from '../resources/diagnostics.ts';
import { loadManifests } from '../resources/load.ts';
import { decideAuthz } from '../policy/authz-decide.ts';
import { resolveJwksFiles } from './jwks-files.ts';
import { compileMeshConfig } from './mesh-config.ts';

const key = testKey('ES256', 'k1');
const dir = mkdtempSync(join(tmpdir(), 'trellis-jwks-'));
const good = join(dir, 'jwks.json');
writeFileSync(good, jwksOf(key));
const bad = join(dir, 'bad.json');
writeFileSync(bad, '{"keys": []}');

const manifest = (uri: string, name = 'jwt'): string => `apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: ${name}, namespace: dns}
spec:
  jwtRules:
  - issuer: https://issuer.example
    jwksUri: "${uri}"
`;

describe('resolveJwksFiles', () => {
  it('reads a file:// JWKS into the rule, without changing the input', () => {
    const loaded = loadManifests([{ name: 'ra.yaml', text: manifest(pathToFileURL(good).href) }]);
    assert.deepEqual(loaded.diagnostics, []);
    const r = resolveJwksFiles(loaded.resources);
    assert.deepEqual(r.diagnostics, []);
    const ra = r.resources[0];
    assert.ok(ra?.kind === 'RequestAuthentication');
    assert.equal(ra.spec.jwtRules[0]?.jwks, jwksOf(key));
    const before = loaded.resources[0];
    assert.ok(before?.kind === 'RequestAuthentication');
    assert.equal(before.spec.jwtRules[0]?.jwks, undefined);
  });

  it('reports a missing or invalid file as an error located at the jwksUri field', () => {
    const missing = join(dir, 'nope.json');
    const loaded = loadManifests([
      { name: 'a.yaml', text: manifest(pathToFileURL(missing).href) },
      { name: 'b.yaml', text: manifest(pathToFileURL(bad).href, 'jwt2') },
    ]);
    const r = resolveJwksFiles(loaded.resources);
    assert.deepEqual(r.diagnostics.map(formatDiagnostic), [
      `a.yaml:7:14: RequestAuthentication dns/jwt: spec.jwtRules[0].jwksUri: JWKS file ${missing}: no such file`,
      `b.yaml:7:14: RequestAuthentication dns/jwt2: spec.jwtRules[0].jwksUri: JWKS file ${bad} is not a valid JWKS: "keys" is empty`,
    ]);
    assert.ok(r.diagnostics.every((d) => d.severity === 'error'));
  });

  it('warns that an https JWKS is not fetched, and validation refuses relative file URIs', () => {
    const r = resolveJwksFiles(loadManifests([{ name: 'c.yaml', text: manifest('https://issuer.example/jwks') }]).resources);
    assert.equal(r.diagnostics.length, 1);
    assert.equal(r.diagnostics[0]?.severity, 'warning');
    assert.match(r.diagnostics[0]?.message ?? '', /is not fetched .* cannot be verified and are rejected/);
    const rel = loadManifests([{ name: 'd.yaml', text: manifest('file:jwks.json') }]);
    assert.match(rel.diagnostics.map(formatDiagnostic).join('\n'), /d\.yaml:7:14: .*jwksUri: "file:jwks.json" must be file:\/\/\/absolute\/path/);
  });

  it('compileMeshConfig refuses a configuration whose JWKS file is missing, and verifies tokens with a file JWKS', () => {
    const refused = compileMeshConfig([{ name: 'a.yaml', text: manifest(pathToFileURL(join(dir, 'nope.json')).href) }]);
    assert.equal(refused.ok, false);
    assert.match(refused.ok ? '' : refused.diagnostics.map(formatDiagnostic).join('\n'), /a\.yaml:7:14: .*no such file/);
    const ok = compileMeshConfig([{ name: 'a.yaml', text: manifest(pathToFileURL(good).href) }]);
    assert.ok(ok.ok);
    const now = Date.now();
    const req = { source: { ip: '10.0.0.1' }, destination: { pod: { namespace: 'dns', labels: {} }, port: 80 }, http: { method: 'GET', path: '/' }, now };
    const token = signJwt(key, { iss: 'https://issuer.example', sub: 'bob', exp: Math.floor(now / 1000) + 60 });
    assert.equal(decideAuthz(ok.config.authz, { ...req, jwt: token }).requestPrincipal, 'https://issuer.example/bob');
    assert.equal(decideAuthz(ok.config.authz, { ...req, jwt: signJwt(testKey('ES256', 'k1'), { iss: 'https://issuer.example' }) }).reason, 'jwt-invalid');
  });
});
