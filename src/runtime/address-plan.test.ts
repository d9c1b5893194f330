import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { AddressPlan, podAddressAnnotations } from './address-plan.ts';
import { RuntimeError } from './runtime-error.ts';

const dir = mkdtempSync(join(tmpdir(), 'trellis-plan-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function num(ip: string): number {
  return ip.split('.').reduce((n, p) => n * 256 + Number(p), 0);
}

describe('AddressPlan', () => {
  it('gives each pod an aligned block of pod, app and outbound addresses, and Services IPs in their own range', () => {
    const plan = new AddressPlan();
    const a = plan.pod('dns/zone-api-0');
    const b = plan.pod('dns/edge-v1-abc');
    for (const x of [a, b]) {
      assert.match(x.podIp, /^127\.10\.\d+\.\d+$/);
      assert.equal(num(x.podIp) % 4, 0);
      assert.equal(num(x.appIp), num(x.podIp) + 1);
      assert.equal(num(x.outboundIp), num(x.podIp) + 2);
      assert.notEqual(x.podIp, '127.10.0.0');
    }
    assert.notEqual(a.podIp, b.podIp);
    assert.deepEqual(plan.pod('dns/zone-api-0'), a, 'asking again gives the same block');
    const vip = plan.service('dns/zone-api');
    assert.match(vip, /^127\.96\.\d+\.\d+$/);
    assert.equal(plan.service('dns/zone-api'), vip);
    assert.equal(plan.podAt(a.podIp), 'dns/zone-api-0');
    assert.equal(plan.podAt(a.appIp), 'dns/zone-api-0');
    assert.equal(plan.podAt(a.outboundIp), 'dns/zone-api-0');
    assert.equal(plan.podAt('127.0.0.1'), undefined);
    assert.equal(plan.serviceAt(vip), 'dns/zone-api');
    assert.deepEqual(podAddressAnnotations(a), { 'trellis.dev/app-ip': a.appIp, 'trellis.dev/outbound-ip': a.outboundIp });
    // Without a file, a fresh plan still puts a name where its hash says.
    assert.deepEqual(new AddressPlan().pod('dns/zone-api-0'), a);
  });

  it('keeps assignments across restarts through the plan file, and forgets what retain leaves out', () => {
    const file = join(dir, 'plan.json');
    const first = new AddressPlan({ file });
    // Force a collision-resolved assignment, which a hash alone would not reproduce.
    const tiny = { podRange: '127.20.0.0/28', serviceRange: '127.21.0.0/30', file: join(dir, 'tiny.json') };
    const t1 = new AddressPlan(tiny);
    const ips = ['a/1', 'a/2', 'a/3'].map((k) => t1.pod(k).podIp);
    assert.equal(new Set(ips).size, 3);
    assert.throws(() => t1.pod('a/4'), (e: unknown) => e instanceof RuntimeError && e.code === 'ADDRESS_PLAN' && /no free address/.test(e.message));
    t1.save();
    const t2 = new AddressPlan(tiny);
    assert.deepEqual(['a/3', 'a/1', 'a/2'].map((k) => t2.pod(k).podIp), [ips[2], ips[0], ips[1]]);
    assert.deepEqual(t2.warnings, []);

    const p = first.pod('ns/p');
    const s = first.service('ns/s');
    first.save();
    const saved = JSON.parse(readFileSync(file, 'utf8')) as { pods: Record<string, string> };
    assert.equal(saved.pods['ns/p'], p.podIp);
    const second = new AddressPlan({ file });
    second.retain(['ns/p'], []);
    second.save();
    const third = new AddressPlan({ file });
    assert.equal(third.podAt(p.podIp), 'ns/p');
    assert.equal(third.serviceAt(s), undefined, 'the Service was forgotten');
  });

  it('survives a damaged or foreign plan file, dropping entries that do not fit', () => {
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, '{not json');
    const a = new AddressPlan({ file: bad });
    assert.match(a.warnings[0] ?? '', /not valid JSON: .*fresh address plan/);
    const foreign = join(dir, 'foreign.json');
    writeFileSync(foreign, JSON.stringify({ version: 1, pods: { 'x/a': '127.10.0.5', 'x/b': '10.0.0.4', 'x/c': '127.10.0.8', 'x/d': '127.10.0.8' }, services: { 'x/s': 7 } }));
    const b = new AddressPlan({ file: foreign });
    assert.equal(b.warnings.length, 4, b.warnings.join('\n'));
    assert.equal(b.pod('x/c').podIp, '127.10.0.8');
    assert.notEqual(b.pod('x/d').podIp, '127.10.0.8');
  });

  it('refuses ranges outside loopback, holding 127.0.0.1, too small or overlapping', () => {
    const refused = (opts: ConstructorParameters<typeof AddressPlan>[0], re: RegExp) =>
      assert.throws(() => new AddressPlan(opts), (e: unknown) => e instanceof RuntimeError && e.code === 'ADDRESS_PLAN' && re.test(e.message));
    refused({ podRange: '10.0.0.0/16' }, /inside 127\.0\.0\.0\/8/);
    refused({ podRange: '127.0.0.0/16' }, /contains 127\.0\.0\.1/);
    refused({ podRange: '127.10.0.0/30' }, /too small/);
    refused({ podRange: '127.10.0.0/16', serviceRange: '127.10.4.0/24' }, /overlap/);
    refused({ serviceRange: '127.96.0.1/16' }, /host bits/);
  });

  it('hands out addresses that bind without privileges: three listeners on one port, one per address', async () => {
    const plan = new AddressPlan();
    const a = plan.pod('bind/test');
    const servers: Server[] = [];
    after(() => servers.forEach((s) => s.close()));
    const listen = (ip: string, port: number, tag: string) =>
      new Promise<number>((resolve, reject) => {
        const s = createServer((c) => c.end(tag));
        servers.push(s);
        s.once('error', reject);
        s.listen(port, ip, () => resolve((s.address() as { port: number }).port));
      });
    const port = await listen(a.podIp, 0, 'pod');
    await listen(a.appIp, port, 'app');
    await listen(a.outboundIp, port, 'outbound');
    const read = (ip: string) =>
      new Promise<string>((resolve, reject) => {
        const c = connect({ host: ip, port, localAddress: a.appIp });
        let out = '';
        c.setEncoding('utf8').on('data', (d: string) => (out += d)).on('end', () => resolve(out)).on('error', reject);
      });
    assert.deepEqual(await Promise.all([read(a.podIp), read(a.appIp), read(a.outboundIp)]), ['pod', 'app', 'outbound']);
    const vip = plan.service('bind/svc');
    const udp = createSocket('udp4');
    await new Promise<void>((resolve, reject) => udp.once('error', reject).bind(0, vip, () => resolve()));
    assert.equal(udp.address().address, vip);
    udp.close();
  });
});
