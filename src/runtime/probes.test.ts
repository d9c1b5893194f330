import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage } from 'node:http';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import type { ProbeHandler } from '../resources/kinds-container.ts';
import { decodeHealthStatus, runProbe, type ProbeTarget } from './probes.ts';

const HOST = '127.0.0.1';
const target = (ports: ProbeTarget['ports'] = []): ProbeTarget => ({ host: HOST, ports });
const http = (path: string, port: number | string, headers: { name: string; value: string }[] = [], host?: string): ProbeHandler => ({ type: 'httpGet', path, port, scheme: 'HTTP', httpHeaders: headers, ...(host ? { host } : {}) });

let seen: IncomingMessage[] = [];
const web = createHttpServer((req, res) => {
  seen.push(req);
  const url = req.url ?? '';
  if (url === '/ok') res.end('fine');
  else if (url === '/bad') res.writeHead(503).end('down');
  else if (url === '/moved') res.writeHead(302, { location: '/ok' }).end();
  else if (url === '/loop') res.writeHead(302, { location: '/loop' }).end();
  else if (url === '/away') res.writeHead(302, { location: 'http://192.0.2.1/x' }).end();
  else if (url === '/big') res.end(Buffer.alloc(1 << 20, 'a'));
  else if (url === '/echo') res.end(`${req.headers['user-agent'] ?? ''}|${String(req.headers['x-probe'])}|${req.headers.host ?? ''}`);
  else if (url === '/slow') setTimeout(() => res.end(), 5000).unref();
  else res.writeHead(404).end();
});
let webPort = 0;

function listen(s: Server | ReturnType<typeof createHttpServer>): Promise<number> {
  return new Promise((resolve) => s.listen(0, HOST, () => resolve((s.address() as AddressInfo).port)));
}

before(async () => {
  webPort = await listen(web);
});
after(() => {
  web.closeAllConnections();
  web.close();
});

describe('httpGet probe', () => {
  it('succeeds on 2xx/3xx, fails on other codes, follows same-host redirects only', async () => {
    assert.equal((await runProbe(http('/ok', webPort), target(), 1000)).result, 'success');
    assert.deepEqual(await runProbe(http('/bad', webPort), target(), 1000), { result: 'failure', message: 'HTTP probe failed with statuscode: 503' });
    assert.deepEqual(await runProbe(http('/missing', webPort), target(), 1000), { result: 'failure', message: 'HTTP probe failed with statuscode: 404' });
    seen = [];
    assert.deepEqual(await runProbe(http('/moved', webPort), target(), 1000), { result: 'success', message: 'fine' });
    assert.deepEqual(seen.map((r) => r.url), ['/moved', '/ok']);
    seen = [];
    const away = await runProbe(http('/away', webPort), target(), 1000);
    assert.equal(away.result, 'success');
    assert.match(away.message, /terminated redirects/);
    assert.deepEqual(seen.map((r) => r.url), ['/away'], 'the other host is never contacted');
    const loop = await runProbe(http('/loop', webPort), target(), 2000);
    assert.equal(loop.result, 'failure');
    assert.match(loop.message, /stopped after 10 redirects/);
  });

  it('sends the kubelet headers and custom ones, resolves named ports, reads at most 10 KiB', async () => {
    const r = await runProbe(http('/echo', 'web', [{ name: 'X-Probe', value: 'yes' }, { name: 'Host', value: 'api.local' }]), target([{ name: 'web', containerPort: webPort, protocol: 'TCP' }]), 1000);
    assert.deepEqual(r, { result: 'success', message: 'kube-probe/1.31|yes|api.local' });
    const missing = await runProbe(http('/ok', 'nope'), target(), 1000);
    assert.deepEqual(missing, { result: 'failure', message: 'no TCP port named "nope" in the container' });
    const big = await runProbe(http('/big', webPort), target(), 2000);
    assert.equal(big.result, 'success');
    assert.equal(big.message.length, 10 * 1024);
  });

  it('times out, and never probes a host off loopback', async () => {
    const t0 = Date.now();
    const slow = await runProbe(http('/slow', webPort), target(), 200);
    assert.equal(slow.result, 'failure');
    assert.match(slow.message, /timeout/);
    assert.ok(Date.now() - t0 < 1500);
    const off = await runProbe(http('/ok', 80, [], '192.0.2.7'), target(), 200);
    assert.equal(off.result, 'failure');
    assert.match(off.message, /not a loopback address/);
  });
});

describe('tcpSocket probe', () => {
  it('succeeds when the port accepts and fails when nothing listens', async () => {
    const s = createServer((c) => c.destroy());
    const port = await listen(s);
    assert.equal((await runProbe({ type: 'tcpSocket', port }, target(), 500)).result, 'success');
    await new Promise((r) => s.close(r));
    const closed = await runProbe({ type: 'tcpSocket', port }, target(), 500);
    assert.equal(closed.result, 'failure');
    assert.match(closed.message, /ECONNREFUSED/);
  });
});

describe('grpc probe', () => {
  const statuses: Record<string, number> = { '': 1, zones: 2 };
  // Deserialized to an object: grpc-js treats a falsy request as no request at all.
  const decodeService = (b: Buffer) => ({ service: b.length === 0 ? '' : b.subarray(2, 2 + (b[1] ?? 0)).toString() });
  const check = { path: '/grpc.health.v1.Health/Check', requestStream: false, responseStream: false, requestSerialize: (x: Buffer) => x, requestDeserialize: decodeService, responseSerialize: (n: number) => Buffer.from([0x08, n]), responseDeserialize: (b: Buffer) => b };
  const health = new grpc.Server();
  const bare = new grpc.Server();
  let healthPort = 0;
  let barePort = 0;
  before(async () => {
    health.addService({ Check: check }, {
      Check: (call: grpc.ServerUnaryCall<{ service: string }, number>, cb: grpc.sendUnaryData<number>) => {
        if (call.request.service === 'hang') return;
        const st = statuses[call.request.service];
        if (st === undefined) cb({ code: grpc.status.NOT_FOUND, details: 'unknown service' });
        else cb(null, st);
      },
    });
    const bind = (s: grpc.Server) => new Promise<number>((resolve, reject) => s.bindAsync(`${HOST}:0`, grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
    healthPort = await bind(health);
    barePort = await bind(bare);
  });
  after(() => {
    health.forceShutdown();
    bare.forceShutdown();
  });

  it('reads SERVING as success and everything else as failure', async () => {
    assert.deepEqual(await runProbe({ type: 'grpc', port: healthPort }, target(), 1000), { result: 'success', message: '' });
    assert.deepEqual(await runProbe({ type: 'grpc', port: healthPort, service: 'zones' }, target(), 1000), { result: 'failure', message: 'service unhealthy (responded with "NOT_SERVING")' });
    assert.deepEqual(await runProbe({ type: 'grpc', port: healthPort, service: 'other' }, target(), 1000), { result: 'failure', message: 'rpc error: code = NOT_FOUND desc = unknown service' });
    assert.match((await runProbe({ type: 'grpc', port: barePort }, target(), 1000)).message, /does not implement the grpc health protocol/);
    assert.match((await runProbe({ type: 'grpc', port: healthPort, service: 'hang' }, target(), 200)).message, /timeout/);
  });

  it('decodes health responses field by field, skipping unknown fields', () => {
    assert.equal(decodeHealthStatus(Buffer.from([])), 0);
    assert.equal(decodeHealthStatus(Buffer.from([0x12, 0x01, 0x41, 0x08, 0x01])), 1);
    assert.throws(() => decodeHealthStatus(Buffer.from([0x08])), /truncated/);
  });
});

describe('exec probe', () => {
  const dir = mkdtempSync(join(tmpdir(), 'trellis-exec-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const node = process.execPath;

  it('succeeds on exit 0 with the container env and cwd, fails otherwise', async () => {
    const okr = await runProbe({ type: 'exec', command: [node, '-e', 'process.stdout.write(process.env.ZONE + " " + process.cwd())'] }, { ...target(), env: { ZONE: 'example.com' }, cwd: dir }, 2000);
    assert.deepEqual(okr, { result: 'success', message: `example.com ${dir}` });
    const bad = await runProbe({ type: 'exec', command: [node, '-e', 'console.error("nope"); process.exit(3)'] }, target(), 2000);
    assert.deepEqual(bad, { result: 'failure', message: 'command exited with code 3: nope' });
    const missing = await runProbe({ type: 'exec', command: [join(dir, 'no-such-binary')] }, target(), 2000);
    assert.equal(missing.result, 'failure');
    assert.match(missing.message, /ENOENT/);
  });

  it('kills the whole command on timeout, children included', async () => {
    const pidFile = join(dir, 'child.pid');
    const script = `const c = require('child_process').spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' }); require('fs').writeFileSync(${JSON.stringify(pidFile)}, String(c.pid)); setInterval(() => {}, 1000);`;
    const r = await runProbe({ type: 'exec', command: [node, '-e', script] }, target(), 700);
    assert.deepEqual(r, { result: 'failure', message: 'command timed out after 700ms' });
    assert.ok(existsSync(pidFile));
    const pid = Number(readFileSync(pidFile, 'utf8'));
    const deadline = Date.now() + 2000;
    let alive = true;
    while (alive && Date.now() < deadline) {
      try {
        process.kill(pid, 0);
        await new Promise((res) => setTimeout(res, 20));
      } catch {
        alive = false;
      }
    }
    assert.equal(alive, false, 'the grandchild is gone');
  });
});
