// Istio authorization end to end through real proxies: AuthorizationPolicy ALLOW by principal (the caller's SPIFFE
// identity from its mTLS certificate) and gRPC method, DENY winning over ALLOW, AUDIT marking flows and writing the
// audit log, RequestAuthentication with a JWT (inline JWKS) over HTTP, and per-RPC credentials from grpc-js call
// credentials. The server's proxy decides; clients see 403/401 or PERMISSION_DENIED/UNAUTHENTICATED naming the policy.
import * as grpc from '@grpc/grpc-js';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import type { AuditRecord } from '../../src/observe/audit-log.ts';
import type { Flow } from '../../src/observe/flow.ts';
import { EchoClient, startEchoServer, type EchoServer } from '../support/echo-service.ts';
import { jwksOf, signJwt, testKey } from '../support/jwt-signer.ts';
import { MeshEnv } from '../support/mesh-env.ts';

const SUBNET = 48;
const ISS = 'https://issuer.test';
const SVC = '/trellis.test.v1.Echo';
const AUTHORITY = 'zones.dns.svc.cluster.local';
const key = testKey('ES256', 'k1');
const stranger = testKey('ES256', 'k1');

const MANIFESTS = `apiVersion: v1
kind: Service
metadata: {name: zones, namespace: dns}
spec:
  selector: {app: zones}
  ports:
  - {name: grpc, port: 9090, targetPort: 9090, appProtocol: grpc}
  - {name: http, port: 8080, targetPort: 8080, appProtocol: http}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: zones-rw, namespace: dns}
spec:
  selector: {matchLabels: {app: zones}}
  rules:
  - from: [{source: {principals: ["cluster.local/ns/dns/sa/admin"]}}]
    to: [{operation: {paths: ["${SVC}/*"]}}]
  - from: [{source: {principals: ["cluster.local/ns/dns/sa/ci"]}}]
    to: [{operation: {paths: ["${SVC}/Unary", "${SVC}/ServerStream"]}}]
  - from: [{source: {requestPrincipals: ["${ISS}/*"]}}]
    when: [{key: "request.auth.claims[role]", values: [editor]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: no-stream-from-ci, namespace: dns}
spec:
  selector: {matchLabels: {app: zones}}
  action: DENY
  rules:
  - from: [{source: {principals: ["*/sa/ci"]}}]
    to: [{operation: {paths: ["*/ServerStream"]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: audit-admin-unary, namespace: dns}
spec:
  selector: {matchLabels: {app: zones}}
  action: AUDIT
  rules:
  - from: [{source: {principals: ["cluster.local/ns/dns/sa/admin"]}}]
    to: [{operation: {paths: ["*/Unary"]}}]
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt, namespace: dns}
spec:
  selector: {matchLabels: {app: zones}}
  jwtRules:
  - issuer: "${ISS}"
    audiences: [zones]
    jwks: '${jwksOf(key)}'
`;

const token = (k: typeof key, role: string): string => signJwt(k, { iss: ISS, sub: 'alice', aud: 'zones', role, exp: Math.floor(Date.now() / 1000) + 600 });

interface Result {
  code: grpc.status;
  details: string;
}

function call(host: string, method: 'Unary' | 'ServerStream' | 'ClientStream', credentials?: grpc.CallCredentials): Promise<Result> {
  const client = new EchoClient(`${host}:9090`, grpc.credentials.createInsecure(), { 'grpc.default_authority': AUTHORITY });
  const opts: grpc.CallOptions = { deadline: Date.now() + 5000, ...(credentials ? { credentials } : {}) };
  const c = client as unknown as Record<string, (...a: unknown[]) => unknown>;
  return new Promise<Result>((resolve) => {
    const done = (e: grpc.ServiceError | null): void => {
      client.close();
      resolve(e ? { code: e.code, details: e.details } : { code: grpc.status.OK, details: '' });
    };
    if (method === 'Unary') return void c.Unary!({ message: 'hi' }, opts, done);
    if (method === 'ClientStream') {
      const s = c.ClientStream!(opts, done) as grpc.ClientWritableStream<object>;
      s.write({ message: 'a' });
      return void s.end();
    }
    const s = c.ServerStream!({ message: 'hi', count: 2 }, opts) as grpc.ClientReadableStream<object>;
    s.on('data', () => {});
    s.on('error', done);
    s.on('end', () => done(null));
  });
}

/** Per-RPC credentials: grpc-js adds `authorization: Bearer …` to each call's metadata. */
const bearer = (jwt: string): grpc.CallCredentials =>
  grpc.credentials.createFromMetadataGenerator((_params, cb) => {
    const md = new grpc.Metadata();
    md.set('authorization', `Bearer ${jwt}`);
    cb(null, md);
  });

function get(host: string, path: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host, port: 8080, path, headers: { host: AUTHORITY, ...headers }, agent: false, timeout: 5000 }, (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (d: string) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      })
      .on('error', reject);
  });
}

describe('Istio authorization end to end: AuthorizationPolicy, RequestAuthentication, per-RPC credentials', () => {
  let env: MeshEnv;
  let echo: EchoServer;
  let app: http.Server;
  let auditDir = '';

  before(async () => {
    auditDir = await mkdtemp(join(tmpdir(), 'trellis-audit-'));
    env = await MeshEnv.start({
      subnet: SUBNET,
      pods: [
        { name: 'zones', namespace: 'dns', ports: [{ port: 9090, name: 'grpc' }, { port: 8080, name: 'http' }] },
        { name: 'admin', namespace: 'dns' },
        { name: 'ci', namespace: 'dns' },
        { name: 'ui', namespace: 'dns' },
      ],
      manifests: MANIFESTS,
      proxyArgs: (p) => (p.name === 'zones' ? ['--audit-log', join(auditDir, 'zones.jsonl')] : []),
    });
    const zones = env.pod('zones').appIp;
    echo = await startEchoServer('zones', zones, new grpc.Server(), 9090);
    app = http.createServer((req, res) => res.end(`zones saw ${req.url}`));
    await new Promise<void>((r) => app.listen(8080, zones, r));
  });

  after(async () => {
    app?.close();
    await echo?.close();
    await env?.stop();
    if (auditDir) await rm(auditDir, { recursive: true, force: true });
  });

  const known = async (): Promise<Set<string>> => new Set((await env.flows('zones', 1000)).map((f) => f.uuid));
  const l7 = (seenBefore: Set<string>, from: string, method: string) => (f: Flow): boolean =>
    !seenBefore.has(f.uuid) && f.Type === 'L7' && f.l7?.http?.url.endsWith(`${SVC}/${method}`) === true && (f.is_reply ? f.destination : f.source).pod_name === from;

  it('ALLOW by principal and gRPC method: admin may call every method, ci only Unary and ServerStream', async () => {
    const before = await known();
    const calls = echo.calls;
    assert.equal((await call(env.pod('admin').outboundIp, 'ClientStream')).code, grpc.status.OK);
    assert.equal((await call(env.pod('ci').outboundIp, 'Unary')).code, grpc.status.OK);
    assert.equal(echo.calls, calls + 2);
    const denied = await call(env.pod('ci').outboundIp, 'ClientStream');
    assert.equal(denied.code, grpc.status.PERMISSION_DENIED);
    assert.match(denied.details, /RBAC: access denied/);
    assert.equal(echo.calls, calls + 2, 'a denied call reached the app');

    const ok = await env.waitFlow('zones', l7(before, 'admin', 'ClientStream'));
    assert.equal(ok.verdict, 'FORWARDED');
    assert.deepEqual([ok.ingress_allowed_by?.[0]?.kind, ok.ingress_allowed_by?.[0]?.name], ['AuthorizationPolicy', 'zones-rw']);
    assert.match(ok.trellis?.rule ?? '', /spec\.rules\[0\]/);
    const ci = await env.waitFlow('zones', l7(before, 'ci', 'Unary'));
    assert.match(ci.trellis?.rule ?? '', /spec\.rules\[1\]/);
    const no = await env.waitFlow('zones', l7(before, 'ci', 'ClientStream'));
    assert.equal(no.verdict, 'DROPPED');
    assert.equal(no.traffic_direction, 'INGRESS');
    assert.equal(no.trellis?.grpc_status, grpc.status.PERMISSION_DENIED);
    // A caller with no identity-based allowance and no token is denied too.
    assert.equal((await call(env.pod('ui').outboundIp, 'Unary')).code, grpc.status.PERMISSION_DENIED);
  });

  it('DENY wins over ALLOW: ci may not call ServerStream although zones-rw allows it', async () => {
    const before = await known();
    const r = await call(env.pod('ci').outboundIp, 'ServerStream');
    assert.equal(r.code, grpc.status.PERMISSION_DENIED);
    assert.match(r.details, /AuthorizationPolicy dns\/no-stream-from-ci/);
    const f = await env.waitFlow('zones', l7(before, 'ci', 'ServerStream'));
    assert.equal(f.verdict, 'DROPPED');
    assert.equal(f.drop_reason_desc, 'POLICY_DENIED');
    assert.deepEqual([f.ingress_denied_by?.[0]?.kind, f.ingress_denied_by?.[0]?.name], ['AuthorizationPolicy', 'no-stream-from-ci']);
    // admin's ServerStream is not denied.
    assert.equal((await call(env.pod('admin').outboundIp, 'ServerStream')).code, grpc.status.OK);
  });

  it('AUDIT marks the flow and writes the audit log; denials are logged as well', async () => {
    const before = await known();
    assert.equal((await call(env.pod('admin').outboundIp, 'Unary')).code, grpc.status.OK);
    const f = await env.waitFlow('zones', l7(before, 'admin', 'Unary'));
    assert.equal(f.verdict, 'AUDIT');
    assert.equal(f.ingress_allowed_by?.[0]?.name, 'zones-rw');
    // ci's Unary is not audited.
    assert.equal((await call(env.pod('ci').outboundIp, 'Unary')).code, grpc.status.OK);
    const plain = await env.waitFlow('zones', l7(before, 'ci', 'Unary'));
    assert.equal(plain.verdict, 'FORWARDED');

    const path = join(auditDir, 'zones.jsonl');
    let lines: AuditRecord[] = [];
    for (let i = 0; i < 50; i++) {
      lines = (await readFile(path, 'utf8').catch(() => '')).split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as AuditRecord);
      if (lines.some((l) => l.uuid === f.uuid)) break;
      await sleep(100);
    }
    const audit = lines.find((l) => l.uuid === f.uuid);
    assert.ok(audit, `the AUDIT flow is not in the audit log (${lines.length} lines)`);
    assert.equal(audit.verdict, 'AUDIT');
    assert.equal(audit.direction, 'ingress');
    assert.equal(audit.source.pod, 'admin');
    assert.equal(audit.destination.pod, 'zones');
    assert.equal(audit.method, 'POST');
    assert.match(audit.path ?? '', /\/trellis\.test\.v1\.Echo\/Unary$/);
    assert.equal(audit.grpcStatus, grpc.status.OK);
    assert.ok(!lines.some((l) => l.verdict === 'AUDIT' && l.source.pod === 'ci'), 'an unaudited call was logged');
    const denial = lines.find((l) => l.verdict === 'DENIED' && l.policy?.name === 'no-stream-from-ci');
    assert.ok(denial, 'the DENY of the previous test is not in the audit log');
    assert.equal(denial.grpcStatus, grpc.status.PERMISSION_DENIED);
    assert.equal(denial.dropReason, 'POLICY_DENIED');
  });

  it('RequestAuthentication over HTTP: an editor token is allowed, no token is 403, an invalid token 401', async () => {
    const ui = env.pod('ui').outboundIp;
    const before = await known();
    const ok = await get(ui, '/jwt/editor', { authorization: `Bearer ${token(key, 'editor')}` });
    assert.deepEqual(ok, { status: 200, body: 'zones saw /jwt/editor' });
    const none = await get(ui, '/jwt/none');
    assert.equal(none.status, 403);
    assert.match(none.body, /RBAC: access denied/);
    const viewer = await get(ui, '/jwt/viewer', { authorization: `Bearer ${token(key, 'viewer')}` });
    assert.equal(viewer.status, 403);
    const forged = await get(ui, '/jwt/forged', { authorization: `Bearer ${token(stranger, 'editor')}` });
    assert.equal(forged.status, 401);
    assert.match(forged.body, /Jwt verification fails.*RequestAuthentication dns\/jwt/);
    const garbage = await get(ui, '/jwt/garbage', { authorization: 'Bearer not.a.jwt' });
    assert.equal(garbage.status, 401);

    const http7 = (path: string) => (f: Flow): boolean => !before.has(f.uuid) && f.Type === 'L7' && f.l7?.http?.url.endsWith(path) === true;
    const allowed = await env.waitFlow('zones', http7('/jwt/editor'));
    assert.equal(allowed.verdict, 'FORWARDED');
    assert.match(allowed.trellis?.rule ?? '', /spec\.rules\[2\]/);
    const bad = await env.waitFlow('zones', http7('/jwt/forged'));
    assert.equal(bad.verdict, 'DROPPED');
    assert.equal(bad.l7?.http?.code, 401);
    assert.deepEqual([bad.ingress_denied_by?.[0]?.kind, bad.ingress_denied_by?.[0]?.name], ['RequestAuthentication', 'jwt']);
  });

  it('per-RPC credentials: grpc-js call credentials add authorization: Bearer to each call', async () => {
    const ui = env.pod('ui').outboundIp;
    const calls = echo.calls;
    assert.equal((await call(ui, 'Unary', bearer(token(key, 'editor')))).code, grpc.status.OK);
    assert.equal((await call(ui, 'ClientStream', bearer(token(key, 'editor')))).code, grpc.status.OK);
    assert.equal(echo.calls, calls + 2);
    const viewer = await call(ui, 'Unary', bearer(token(key, 'viewer')));
    assert.equal(viewer.code, grpc.status.PERMISSION_DENIED);
    const forged = await call(ui, 'Unary', bearer(token(stranger, 'editor')));
    assert.equal(forged.code, grpc.status.UNAUTHENTICATED);
    assert.match(forged.details, /Jwt verification fails/);
    assert.equal((await call(ui, 'Unary')).code, grpc.status.PERMISSION_DENIED, 'without credentials');
    assert.equal(echo.calls, calls + 2);
  });
});
