// examples/dns-pipeline zone-web, in process on loopback: its REST API over a real zone-api, the JWT it sends as a
// per-RPC credential (checked against the example's JWKS), and how gRPC refusals become HTTP statuses.
import * as grpc from '@grpc/grpc-js';
import assert from 'node:assert/strict';
import { createPublicKey, verify, type JsonWebKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { signingKey } from '../../examples/dns-pipeline/apps/lib/jwt.ts';
import { silentLogger } from '../../examples/dns-pipeline/apps/lib/log.ts';
import { ZoneServiceClient } from '../../examples/dns-pipeline/apps/lib/protos.ts';
import { startZoneApi, type ZoneApi } from '../../examples/dns-pipeline/apps/zone-api/server.ts';
import { startZoneWeb, type ZoneWeb, type ZoneWebConfig } from '../../examples/dns-pipeline/apps/zone-web/server.ts';
import { EXAMPLE_DIR, tempDir } from './dns-pipeline-support.ts';

const HOST = '127.0.5.40';
const PEM = readFileSync(join(EXAMPLE_DIR, 'keys/demo-signing-key.pem'), 'utf8');
const JWKS = JSON.parse(readFileSync(join(EXAMPLE_DIR, 'keys/jwks.json'), 'utf8')) as { keys: (JsonWebKey & { kid: string; alg: string })[] };

function webConfig(zoneApi: string): ZoneWebConfig {
  return {
    host: HOST,
    port: 0,
    zoneApi,
    key: signingKey(PEM),
    token: { issuer: 'https://zone-web.dns.example', audience: 'zone-api', subject: 'zone-web', roles: ['editor'], ttlSeconds: 300 },
    callTimeoutMs: 5000,
  };
}

/** Verifies an ES256 token against the example's JWKS and returns its claims. */
function verified(token: string): Record<string, unknown> {
  const [h, p, s] = token.split('.') as [string, string, string];
  const header = JSON.parse(Buffer.from(h, 'base64url').toString()) as { alg: string; kid: string };
  const jwk = JWKS.keys.find((k) => k.kid === header.kid);
  assert.ok(jwk, `no key ${header.kid} in keys/jwks.json`);
  assert.equal(header.alg, 'ES256');
  const ok = verify('sha256', Buffer.from(`${h}.${p}`), { key: createPublicKey({ key: jwk, format: 'jwk' }), dsaEncoding: 'ieee-p1363' }, Buffer.from(s, 'base64url'));
  assert.ok(ok, 'the signature verifies with keys/jwks.json');
  return JSON.parse(Buffer.from(p, 'base64url').toString()) as Record<string, unknown>;
}

describe('dns-pipeline zone-web', () => {
  const dir = tempDir('dns-zone-web-');
  let api: ZoneApi;
  let web: ZoneWeb;
  let strictWeb: ZoneWeb;
  /** A stand-in zone-api that records the authorization it gets and refuses as the mesh would. */
  const seen: string[] = [];
  const mesh = new grpc.Server();
  const base = (): string => `http://${HOST}:${web.port}`;

  before(async () => {
    api = await startZoneApi({ host: HOST, port: 0, dataDir: dir.path, maxRecords: 10_000, compactBytes: 1 << 20, seedZones: ['example.com'] }, silentLogger);
    web = await startZoneWeb(webConfig(`${HOST}:${api.port}`), silentLogger);
    mesh.addService(ZoneServiceClient.service, {
      ListZones: (call: grpc.ServerUnaryCall<object, unknown>, cb: grpc.sendUnaryData<unknown>) => {
        seen.push(String(call.metadata.get('authorization')[0] ?? ''));
        cb({ code: grpc.status.UNAUTHENTICATED, details: 'Jwt verification fails' });
      },
      DeleteZone: (call: grpc.ServerUnaryCall<object, unknown>, cb: grpc.sendUnaryData<unknown>) => {
        seen.push(String(call.metadata.get('authorization')[0] ?? ''));
        cb({ code: grpc.status.PERMISSION_DENIED, details: 'RBAC: access denied' });
      },
    });
    const port = await new Promise<number>((resolve, reject) => mesh.bindAsync(`${HOST}:0`, grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
    strictWeb = await startZoneWeb(webConfig(`${HOST}:${port}`), silentLogger);
  });

  after(async () => {
    await web.close();
    await strictWeb.close();
    mesh.forceShutdown();
    await api.close();
    dir.remove();
  });

  it('serves the editor page and a health endpoint', async () => {
    const page = await fetch(`${base()}/`);
    assert.equal(page.status, 200);
    assert.match(await page.text(), /<title>Zones/);
    assert.equal((await fetch(`${base()}/healthz`)).status, 200);
  });

  it('lists zones, upserts records and streams them back as JSON', async () => {
    const zones = (await (await fetch(`${base()}/api/zones`)).json()) as { zones: { name: string; recordCount: number }[] };
    assert.deepEqual(zones.zones.map((z) => [z.name, z.recordCount]), [['example.com', 9]]);
    const res = await fetch(`${base()}/api/zones/example.com/records`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ changes: [{ op: 'delete', record: { name: 'www.example.com', type: 'A', data: '192.0.2.10' } }, { op: 'upsert', record: { name: 'www.example.com', type: 'A', ttl: 60, data: '192.0.2.11' } }] }),
    });
    assert.equal(res.status, 200);
    assert.deepEqual(((await res.json()) as { upserted: number; deleted: number }).deleted, 1);
    const all = (await (await fetch(`${base()}/api/zones/example.com/records?limit=all`)).json()) as { records: { name: string; type: string; data: string }[]; truncated: boolean };
    assert.equal(all.truncated, false);
    assert.deepEqual(all.records.filter((r) => r.name === 'www.example.com' && r.type === 'A').map((r) => r.data), ['192.0.2.11']);
    const two = (await (await fetch(`${base()}/api/zones/example.com/records?limit=2`)).json()) as { records: unknown[]; truncated: boolean };
    assert.deepEqual([two.records.length, two.truncated], [2, true]);
  });

  it('answers bad requests with 4xx and a JSON error', async () => {
    const cases: [string, RequestInit, number, string][] = [
      ['/api/zones/nope.example/records', {}, 404, 'NOT_FOUND'],
      ['/api/zones/bad..zone/records', {}, 400, 'INVALID_ARGUMENT'],
      ['/api/zones/example.com/records', { method: 'PUT', headers: { 'content-type': 'application/json' }, body: '{"changes":[{"op":"upsert","record":{"name":"x.example.org","type":"A","data":"192.0.2.1"}}]}' }, 400, 'INVALID_ARGUMENT'],
      ['/api/zones/example.com/records', { method: 'PUT', headers: { 'content-type': 'text/plain' }, body: 'x' }, 415, 'UNSUPPORTED_MEDIA_TYPE'],
      ['/api/zones/example.com/records', { method: 'PUT', headers: { 'content-type': 'application/json' }, body: 'x'.repeat(1024 * 1024 + 1) }, 413, 'PAYLOAD_TOO_LARGE'],
      ['/api/zones/example.com', { method: 'POST' }, 405, 'METHOD_NOT_ALLOWED'],
      ['/elsewhere', {}, 404, 'NOT_FOUND'],
    ];
    for (const [path, init, status, code] of cases) {
      const res = await fetch(`${base()}${path}`, init);
      assert.equal(res.status, status, path);
      assert.equal(((await res.json()) as { error: { code: string } }).error.code, code, path);
    }
  });

  it('sends its own editor JWT as the per-RPC credential, or the caller\'s bearer token; refusals become 401 and 403', async () => {
    const web2 = `http://${HOST}:${strictWeb.port}`;
    const list = await fetch(`${web2}/api/zones`);
    assert.equal(list.status, 401);
    const del = await fetch(`${web2}/api/zones/example.com`, { method: 'DELETE' });
    assert.equal(del.status, 403);
    assert.deepEqual(await del.json(), { error: { code: 'PERMISSION_DENIED', message: 'RBAC: access denied' } });
    const own = /^Bearer (.+)$/.exec(seen[0] ?? '')?.[1] ?? '';
    const claims = verified(own);
    assert.deepEqual([claims.iss, claims.aud, claims.sub, claims.roles], ['https://zone-web.dns.example', 'zone-api', 'zone-web', ['editor']]);
    assert.ok(typeof claims.exp === 'number' && claims.exp > Date.now() / 1000);
    assert.equal(seen[1], seen[0], 'the token is reused while it is fresh');
    await fetch(`${web2}/api/zones/example.com`, { method: 'DELETE', headers: { authorization: 'Bearer aaa.bbb.ccc' } });
    assert.equal(seen[2], 'Bearer aaa.bbb.ccc');
  });
});
