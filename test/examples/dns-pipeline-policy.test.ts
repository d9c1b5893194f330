// examples/dns-pipeline's manifests through the `trellis` CLI, in process: they validate and lint clean, the
// pipeline's flows are allowed, intruder's are denied, and only editor/admin JWTs may change or delete zones.
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parse, parseAllDocuments } from 'yaml';
import { main } from '../../src/cli/main.ts';
import { signingKey, TokenSource } from '../../examples/dns-pipeline/apps/lib/jwt.ts';
import { EXAMPLE_DIR } from './dns-pipeline-support.ts';

const M = join(EXAMPLE_DIR, 'manifests');

async function run(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(args, { out: (l) => out.push(l), err: (l) => err.push(l), readStdin: () => '' });
  return { code, out: out.join('\n'), err: err.join('\n') };
}

interface FlowVerdict {
  verdict: string;
  ingress: { reason: string; rule?: { kind: string; name: string } };
}

async function flow(from: string, to: string, port: number, o: { path?: string; protocol?: string } = {}): Promise<FlowVerdict> {
  const args = ['policy', 'check', '-f', M, '--from', from, '--to', to, '--port', String(port), '-o', 'json'];
  if (o.protocol) args.push('--protocol', o.protocol);
  if (o.path) args.push('--http-method', 'POST', '--http-path', o.path);
  const r = await run(args);
  assert.equal(r.code, 0, r.err);
  return JSON.parse(r.out) as FlowVerdict;
}

const KEY = signingKey(readFileSync(join(EXAMPLE_DIR, 'keys/demo-signing-key.pem'), 'utf8'));
const token = (roles: string[]): string => new TokenSource(KEY, { issuer: 'https://zone-web.dns.example', audience: 'zone-api', subject: 'alice', roles, ttlSeconds: 600 }).token();

async function authz(from: string, to: string, method: string, jwt?: string): Promise<{ verdict: string; reason: string; policy: { name: string; field: string } | null }> {
  const args = ['authz', 'check', '-f', M, '--from', from, '--to', to, '--path', method, '-o', 'json'];
  if (jwt) args.push('--jwt', jwt);
  const r = await run(args);
  assert.equal(r.code, 0, r.err);
  return JSON.parse(r.out) as { verdict: string; reason: string; policy: { name: string; field: string } | null };
}

const Z = '/dns.v1.ZoneService/';

describe('dns-pipeline manifests', () => {
  it('validate and lint clean', async () => {
    const v = await run(['validate', '-f', M]);
    assert.equal(v.code, 0, v.err);
    assert.match(v.out, /^\d+ object\(s\) valid$/);
    const lint = await run(['policy', 'lint', '--strict', '-f', M]);
    assert.equal(lint.code, 0, lint.out);
    assert.match(lint.err, /^0 finding\(s\)/);
  });

  it('allow the pipeline: publisher reads and watches, pushes to both edge versions; loadgen reads; DNS from anywhere', async () => {
    for (const [from, to, port, path] of [
      ['dns/zone-publisher', 'dns/zone-api', 9090, `${Z}GetZone`],
      ['dns/zone-publisher', 'dns/zone-api', 9090, `${Z}WatchZones`],
      ['dns/zone-publisher', 'dns/edge-v1', 9091, '/dns.v1.EdgeService/PushZone'],
      ['dns/zone-publisher', 'dns/edge-v2', 9091, '/dns.v1.EdgeService/PushZone'],
      ['dns/loadgen', 'dns/zone-api', 9090, `${Z}ListZones`],
      ['dns/loadgen', 'dns/zone-api', 9090, `${Z}GetZone`],
      ['dns/zone-web', 'dns/zone-api', 9090, `${Z}UpsertRecords`],
      ['dns/intruder', 'dns/zone-api', 9090, '/grpc.health.v1.Health/Check'],
    ] as const) {
      assert.equal((await flow(from, to, port, { path })).verdict, 'allowed', `${from} → ${to} ${path}`);
    }
    assert.equal((await flow('dns/loadgen', 'dns/zone-web', 8080)).verdict, 'allowed');
    for (const protocol of ['UDP', 'TCP']) assert.equal((await flow('203.0.113.9', 'dns/edge-v2', 5353, { protocol })).verdict, 'allowed', protocol);
  });

  it('deny at L7 what the publisher and intruder may not call (403, PERMISSION_DENIED to gRPC)', async () => {
    for (const [from, to, port, path] of [
      ['dns/zone-publisher', 'dns/zone-api', 9090, `${Z}ListZones`],
      ['dns/zone-publisher', 'dns/zone-api', 9090, `${Z}UpsertRecords`],
      ['dns/zone-publisher', 'dns/zone-api', 9090, `${Z}DeleteZone`],
      ['dns/loadgen', 'dns/zone-api', 9090, `${Z}UpsertRecords`],
      ['dns/intruder', 'dns/zone-api', 9090, `${Z}DeleteZone`],
      ['dns/intruder', 'dns/zone-api', 9090, `${Z}UpsertRecords`],
      ['dns/intruder', 'dns/edge-v1', 9091, '/dns.v1.EdgeService/PushZone'],
    ] as const) {
      const d = await flow(from, to, port, { path });
      assert.deepEqual([d.verdict, d.ingress.reason, d.ingress.rule?.kind], ['denied', 'l7-denied', 'CiliumNetworkPolicy'], `${from} → ${to} ${path}`);
    }
    const l4 = await flow('dns/intruder', 'dns/zone-api', 8080);
    assert.deepEqual([l4.verdict, l4.ingress.reason], ['denied', 'default-deny']);
  });

  it('let only an editor JWT change records and only an admin JWT delete a zone', async () => {
    const editor = token(['editor']);
    const admin = token(['editor', 'admin']);
    assert.equal((await authz('dns/zone-web', 'dns/zone-api', `${Z}UpsertRecords`, editor)).verdict, 'allowed');
    assert.equal((await authz('dns/zone-web', 'dns/zone-api', `${Z}UpsertRecords`)).verdict, 'denied');
    assert.equal((await authz('dns/zone-web', 'dns/zone-api', `${Z}DeleteZone`, editor)).verdict, 'denied');
    const del = await authz('dns/zone-web', 'dns/zone-api', `${Z}DeleteZone`, admin);
    assert.deepEqual([del.verdict, del.policy?.name, del.policy?.field], ['allowed', 'zone-api', 'spec.rules[2]']);
    // Another workload, even with an admin token, and a token not signed by zone-web's key.
    assert.equal((await authz('dns/intruder', 'dns/zone-api', `${Z}DeleteZone`, admin)).verdict, 'denied');
    const otherKey = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
    const forged = new TokenSource(signingKey(otherKey), { issuer: 'https://zone-web.dns.example', audience: 'zone-api', subject: 'mallory', roles: ['editor', 'admin'], ttlSeconds: 60 }).token();
    const f = await authz('dns/zone-web', 'dns/zone-api', `${Z}DeleteZone`, forged);
    assert.deepEqual([f.verdict, f.reason], ['denied', 'jwt-invalid']);
    assert.equal((await authz('dns/intruder', 'dns/edge-v1', '/dns.v1.EdgeService/PushZone')).verdict, 'denied');
    assert.equal((await authz('dns/zone-publisher', 'dns/edge-v2', '/dns.v1.EdgeService/PushZone')).verdict, 'allowed');
  });

  it('carry the key material consistently: the inline JWKS, keys/jwks.json and the Secret match the demo key', () => {
    const jwks = readFileSync(join(EXAMPLE_DIR, 'keys/jwks.json'), 'utf8').trim();
    const security = parseAllDocuments(readFileSync(join(M, 'security.yaml'), 'utf8')).map((d) => d.toJS() as { kind: string; spec: { jwtRules?: { jwks: string }[] } });
    assert.equal(security.find((d) => d.kind === 'RequestAuthentication')?.spec.jwtRules?.[0]?.jwks, jwks);
    const secret = parseAllDocuments(readFileSync(join(M, 'configmaps.yaml'), 'utf8')).map((d) => d.toJS() as { kind: string; stringData?: Record<string, string> }).find((d) => d.kind === 'Secret');
    assert.equal(secret?.stringData?.['signing-key.pem'], readFileSync(join(EXAMPLE_DIR, 'keys/demo-signing-key.pem'), 'utf8'));
    assert.equal((parse(jwks) as { keys: { kid: string }[] }).keys[0]?.kid, KEY.kid);
  });
});
