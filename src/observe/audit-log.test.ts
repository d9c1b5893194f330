import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { AuditLog, type AuditRecord } from './audit-log.ts';
import type { Flow, FlowVerdict } from './flow.ts';
import { ObserveError } from './observe-error.ts';

const dirs: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'trellis-audit-'));
  dirs.push(d);
  return d;
}
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function ep(ns: string, pod: string, identity: number, sa: string) {
  return { ID: identity, identity, cluster_name: 'default', namespace: ns, labels: [`k8s:app=${pod}`, `k8s:io.cilium.k8s.policy.serviceaccount=${sa}`], pod_name: pod, workloads: [] };
}

function flow(verdict: FlowVerdict, n = 0): Flow {
  return {
    time: '2026-11-22T06:03:01.141592653Z',
    uuid: `u-${n}`,
    verdict,
    drop_reason_desc: verdict === 'DROPPED' ? 'POLICY_DENIED' : undefined,
    IP: { source: '127.0.1.5', destination: '127.0.2.7', ipVersion: 'IPv4' },
    l4: { TCP: { source_port: 40000 + n, destination_port: 8080 } },
    source: ep('web', 'front-0', 1001, 'front'),
    destination: ep('shop', 'api-0', 1002, 'api'),
    Type: 'L7',
    node_name: 'n1',
    traffic_direction: 'INGRESS',
    is_reply: false,
    l7: { type: 'REQUEST', latency_ns: 0, http: { code: 403, method: 'POST', url: '/shop.Cart/Checkout', protocol: 'HTTP/2', headers: [] } },
    ingress_denied_by: verdict === 'DROPPED' ? [{ kind: 'AuthorizationPolicy', namespace: 'shop', name: 'deny-checkout', labels: [], revision: 1 }] : undefined,
    ingress_allowed_by: verdict === 'AUDIT' ? [{ kind: 'AuthorizationPolicy', namespace: 'shop', name: 'audit-all', labels: [], revision: 1 }] : undefined,
    trellis: { rule: 'shop.yaml:3:5 spec.rules[0]', grpc_status: verdict === 'DROPPED' ? 7 : undefined, transport: 'mtls' },
    Summary: `denied by AuthorizationPolicy shop/deny-checkout #${n}`,
  };
}

const lines = (path: string): Record<string, unknown>[] =>
  readFileSync(path, 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>);

describe('AuditLog', () => {
  it('writes denied and audited flows as JSON lines and skips forwarded ones', async () => {
    const path = join(tempDir(), 'sub', 'audit.log');
    const log = await AuditLog.open({ path, trustDomain: 'cluster.local' });
    log.push(flow('DROPPED', 1));
    log.push(flow('FORWARDED', 2));
    log.push(flow('AUDIT', 3));
    await log.close();
    assert.equal(statSync(path).mode & 0o777, 0o600);
    const got = lines(path);
    assert.equal(got.length, 2);
    assert.deepEqual(got[0], {
      time: '2026-11-22T06:03:01.141592653Z',
      uuid: 'u-1',
      verdict: 'DENIED',
      source: { namespace: 'web', pod: 'front-0', identity: 1001, principal: 'spiffe://cluster.local/ns/web/sa/front', ip: '127.0.1.5', port: 40001 },
      destination: { namespace: 'shop', pod: 'api-0', identity: 1002, principal: 'spiffe://cluster.local/ns/shop/sa/api', ip: '127.0.2.7', port: 8080 },
      protocol: 'HTTP/2',
      message: 'denied by AuthorizationPolicy shop/deny-checkout #1',
      direction: 'ingress',
      method: 'POST',
      path: '/shop.Cart/Checkout',
      code: 403,
      grpcStatus: 7,
      policy: { kind: 'AuthorizationPolicy', namespace: 'shop', name: 'deny-checkout' },
      rule: 'shop.yaml:3:5 spec.rules[0]',
      dropReason: 'POLICY_DENIED',
    });
    assert.equal(got[1]?.verdict, 'AUDIT');
    assert.deepEqual(got[1]?.policy, { kind: 'AuthorizationPolicy', namespace: 'shop', name: 'audit-all' });
    assert.equal(log.stats().written, 2);
  });

  it('names the caller as the source of a reply flow (an audited request that completed)', async () => {
    const path = join(tempDir(), 'audit.log');
    const log = await AuditLog.open({ path, trustDomain: 'td' });
    const f = flow('AUDIT', 4);
    Object.assign(f, { is_reply: true, source: f.destination, destination: f.source, IP: { source: '127.0.2.7', destination: '127.0.1.5', ipVersion: 'IPv4' }, l4: { TCP: { source_port: 8080, destination_port: 40004 } } });
    log.push(f);
    await log.close();
    const [rec] = lines(path) as unknown as AuditRecord[];
    assert.deepEqual(rec?.source, { namespace: 'web', pod: 'front-0', identity: 1001, principal: 'spiffe://td/ns/web/sa/front', ip: '127.0.1.5', port: 40004 });
    assert.deepEqual(rec?.destination, { namespace: 'shop', pod: 'api-0', identity: 1002, principal: 'spiffe://td/ns/shop/sa/api', ip: '127.0.2.7', port: 8080 });
  });

  it('does not name a plaintext source principal it could not authenticate', async () => {
    const path = join(tempDir(), 'audit.log');
    const log = await AuditLog.open({ path, trustDomain: 'td' });
    const f = flow('DROPPED');
    f.trellis = { transport: 'plaintext' };
    log.push(f);
    await log.close();
    const [rec] = lines(path) as unknown as AuditRecord[];
    assert.equal(rec?.source.principal, undefined);
    assert.equal(rec?.destination.principal, 'spiffe://td/ns/shop/sa/api');
  });

  it('appends to an existing file and takes caller-built records', async () => {
    const path = join(tempDir(), 'audit.log');
    const a = await AuditLog.open({ path });
    a.push(flow('DROPPED', 1));
    await a.close();
    const b = await AuditLog.open({ path });
    const rec: AuditRecord = {
      time: 't',
      verdict: 'DENIED',
      source: { namespace: 'a', pod: 'p', identity: 1, ip: '127.0.0.1' },
      destination: { namespace: 'b', pod: 'q', identity: 2, ip: '127.0.0.2', port: 5432 },
      protocol: 'TCP',
      message: 'denied by NetworkPolicy b/db (default deny)',
    };
    assert.equal(b.record(rec), true);
    await b.close();
    assert.equal(b.record(rec), false, 'a closed log takes nothing');
    const got = lines(path);
    assert.equal(got.length, 2);
    assert.deepEqual(got[1], rec);
  });

  it('rotates by size and keeps N old files, newest records in the live file', async () => {
    const dir = tempDir();
    const path = join(dir, 'audit.log');
    const log = await AuditLog.open({ path, maxBytes: 2048, keep: 2 });
    for (let i = 0; i < 60; i++) log.push(flow('DROPPED', i));
    await log.flush();
    for (let i = 60; i < 70; i++) log.push(flow('DROPPED', i));
    await log.close();
    const s = log.stats();
    assert.equal(s.written, 70);
    assert.ok(s.rotations >= 3, `rotations ${s.rotations}`);
    assert.ok(existsSync(`${path}.1`) && existsSync(`${path}.2`));
    assert.equal(existsSync(`${path}.3`), false);
    const live = lines(path);
    const r1 = lines(`${path}.1`);
    const r2 = lines(`${path}.2`);
    for (const f of [path, `${path}.1`, `${path}.2`]) assert.ok(statSync(f).size <= 2048, `${f} is ${statSync(f).size} bytes`);
    // Order across files: .2 then .1 then the live file, consecutive, ending with the last record.
    const uuids = [...r2, ...r1, ...live].map((r) => r.uuid);
    assert.equal(uuids.at(-1), 'u-69');
    const first = Number(String(uuids[0]).slice(2));
    assert.deepEqual(
      uuids,
      uuids.map((_, i) => `u-${first + i}`),
    );
  });

  it('drops and counts when the queue is full, without blocking the caller', async () => {
    const path = join(tempDir(), 'audit.log');
    const log = await AuditLog.open({ path, maxQueue: 5 });
    for (let i = 0; i < 20; i++) log.push(flow('DROPPED', i));
    assert.equal(log.stats().queued, 5);
    assert.equal(log.stats().dropped, 15);
    await log.close();
    assert.equal(lines(path).length, 5);
    assert.equal(log.stats().written, 5);
  });

  it('survives its directory vanishing: counts the loss, then writes again once it is back', async () => {
    const dir = tempDir();
    const path = join(dir, 'logs', 'audit.log');
    const log = await AuditLog.open({ path, maxBytes: 1024, keep: 1 });
    log.push(flow('DROPPED', 1));
    await log.flush();
    rmSync(join(dir, 'logs'), { recursive: true });
    for (let i = 2; i < 10; i++) log.push(flow('DROPPED', i)); // past maxBytes: a rotation, then a reopen that fails
    await log.flush();
    const s = log.stats();
    assert.ok(s.errors >= 1, JSON.stringify(s));
    assert.ok(s.dropped >= 1, JSON.stringify(s));
    await mkdir(join(dir, 'logs'));
    log.push(flow('DROPPED', 99));
    await log.close();
    assert.equal(lines(path).at(-1)?.uuid, 'u-99');
  });

  it('refuses bad options and unopenable paths with ObserveError', async () => {
    await assert.rejects(AuditLog.open({ path: join(tempDir(), 'a.log'), keep: -1 }), (e: unknown) => e instanceof ObserveError && e.code === 'bad-option');
    await assert.rejects(AuditLog.open({ path: join(tempDir(), 'a.log'), maxBytes: 10 }), (e: unknown) => e instanceof ObserveError && e.code === 'bad-option');
    await assert.rejects(AuditLog.open({ path: '/dev/null/audit.log' }), (e: unknown) => e instanceof ObserveError && e.code === 'open-failed');
  });
});
