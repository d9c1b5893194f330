// `trellis observe` end to end: real proxies (with --observer-port) carry real HTTP between real apps, the control
// plane's relay discovers them over xDS and merges their flows, and the real CLI (a child process) reads the relay.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import http from 'node:http';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Flow } from '../../src/observe/flow.ts';
import { MeshEnv } from '../support/mesh-env.ts';

const ROOT = new URL('../..', import.meta.url).pathname;
const CLI = join(ROOT, 'src/cli/trellis.ts');

const MANIFESTS = `apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: v1
kind: Namespace
metadata: {name: other}
---
apiVersion: v1
kind: Service
metadata: {name: api, namespace: shop}
spec:
  selector: {app: api}
  ports: [{name: http, port: 8080, targetPort: 8080, appProtocol: http}]
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: api-l7, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: api}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: web}}]
    toPorts:
    - ports: [{port: "8080", protocol: TCP}]
      rules:
        http: [{method: GET, path: "/public.*"}]
`;

function get(host: string, path: string): Promise<number> {
  return new Promise((resolve) => {
    const req = http.get({ host, port: 8080, path, headers: { host: 'api.shop.svc.cluster.local' }, agent: false, timeout: 5000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', () => resolve(0));
    req.on('timeout', () => req.destroy());
  });
}

/** Runs `trellis observe ARGS`; with `until`, kills it once stdout satisfies it. */
function observe(args: string[], until?: (out: string) => boolean, timeoutMs = 20_000): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', CLI, 'observe', ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`trellis observe ${args.join(' ')} did not finish in ${timeoutMs} ms\nstdout:\n${out}\nstderr:\n${err}`));
    }, timeoutMs);
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      if (until?.(out)) child.kill('SIGINT');
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, out, err });
    });
  });
}

describe('trellis observe against the relay and real proxies', () => {
  let env: MeshEnv;
  let app: http.Server;
  let relay: string;

  before(async () => {
    env = await MeshEnv.start({
      subnet: 54,
      observer: true,
      pods: [
        { name: 'web', namespace: 'shop', ports: [{ port: 8081, name: 'http' }] },
        { name: 'api', namespace: 'shop', ports: [{ port: 8080, name: 'http' }] },
        { name: 'intruder', namespace: 'other', ports: [{ port: 8082, name: 'http' }] },
      ],
      manifests: MANIFESTS,
    });
    app = http.createServer((_req, res) => res.end('ok'));
    await new Promise<void>((r) => app.listen(8080, env.pod('api').appIp, r));
    relay = env.cp.relayAddress ?? '';
    assert.match(relay, /^127\.0\.0\.1:\d+$/);
    // Every proxy announced its Observer address over xDS and became a relay peer.
    const deadline = Date.now() + 10_000;
    while ((env.cp.relay?.peers().length ?? 0) < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(env.cp.relay?.peers().map((p) => p.name).sort(), ['other/intruder', 'shop/api', 'shop/web']);
    assert.equal(await get(env.pod('web').outboundIp, '/public/a'), 200);
    assert.equal(await get(env.pod('web').outboundIp, '/private/b'), 403);
    await get(env.pod('intruder').outboundIp, '/public/c');
    await env.waitFlow('api', (f) => f.l7?.http?.url.includes('/private/b') === true);
  });

  after(async () => {
    app?.close();
    await env?.stop();
  });

  it('compact: flows from every proxy, each line naming the policy that allowed or denied it', async () => {
    const r = await observe(['--server', relay, '--last', '200']);
    assert.equal(r.code, 0, r.err);
    const lines = r.out.trim().split('\n');
    const allowed = lines.find((l) => l.includes('/public/a') && l.includes('[shop/api]'));
    assert.ok(allowed, r.out);
    assert.match(allowed, /FORWARDED/);
    assert.match(allowed, /allowed by CiliumNetworkPolicy shop\/api-l7/);
    const denied = lines.find((l) => l.includes('/private/b') && l.includes('[shop/api]'));
    assert.ok(denied, r.out);
    assert.match(denied, /DROPPED/);
    assert.match(denied, /denied/);
    assert.ok(lines.some((l) => l.includes('[shop/web]')), 'the client-side proxy is merged in too');
    const intruder = lines.find((l) => l.includes('[shop/api]') && l.includes('other/intruder'));
    assert.ok(intruder, r.out);
    assert.match(intruder, /DROPPED \(POLICY_DENIED\); denied/);
    const times = lines.map((l) => /^(\w{3} \d\d \d\d:\d\d:\d\d\.\d{3})/.exec(l)?.[1] ?? '');
    assert.deepEqual(times, [...times].sort(), 'in time order');
  });

  it('json with filters: the flow records themselves, only those asked for', async () => {
    const r = await observe(['--server', relay, '--all', '--verdict', 'DROPPED', '--to-pod', 'shop/api', '-o', 'json']);
    assert.equal(r.code, 0, r.err);
    const flows = r.out.trim().split('\n').map((l) => JSON.parse(l) as Flow);
    assert.ok(flows.length >= 1);
    for (const f of flows) {
      assert.equal(f.verdict, 'DROPPED');
      assert.equal(`${f.destination.namespace}/${f.destination.pod_name}`, 'shop/api');
    }
    assert.ok(flows.some((f) => f.l7?.http?.url.includes('/private/b') === true && f.source.pod_name === 'web'));
    const ok = await observe(['--server', relay, '--all', '--http-status', '2+', '--http-method', 'get', '-n', 'shop', '-o', 'json']);
    const okFlows = ok.out.trim().split('\n').map((l) => JSON.parse(l) as Flow);
    assert.ok(okFlows.length >= 1);
    assert.ok(okFlows.every((f) => (f.l7?.http?.code ?? 0) >= 200 && (f.l7?.http?.code ?? 0) < 300));
    const pb = await observe(['--server', relay, '--last', '2', '--from-namespace', 'other', '-o', 'jsonpb']);
    const events = pb.out.trim().split('\n').map((l) => JSON.parse(l) as { flow?: Flow; node_name?: string; node_status?: unknown });
    const withFlow = events.filter((e) => e.flow);
    assert.equal(withFlow.length, 2);
    assert.ok(withFlow.every((e) => e.flow?.source.namespace === 'other' && typeof e.node_name === 'string' && e.node_name !== ''));
    const table = await observe(['--server', relay, '--last', '3', '-o', 'table']);
    assert.match(table.out.split('\n')[0] ?? '', /^TIMESTAMP\s+SOURCE\s+DESTINATION\s+TYPE\s+VERDICT\s+POLICY\s+SUMMARY/);
    assert.equal(table.out.trim().split('\n').length, 4);
  });

  it('--follow streams new flows as they happen', async () => {
    let done = false;
    const seen = observe(['--server', relay, '--follow', '--http-path', '^/public/follow$'], (out) => out.includes('/public/follow')).finally(() => (done = true));
    // The CLI needs a moment to start; requests repeat until it has seen one (each is a new flow).
    while (!done) {
      assert.equal(await get(env.pod('web').outboundIp, '/public/follow'), 200);
      await new Promise((r) => setTimeout(r, 500));
    }
    const r = await seen;
    assert.match(r.out, /\/public\/follow/);
  });

  it('bad flags exit 2 with a clear message', async () => {
    const r = await observe(['--server', relay, '--to-ip', '10.0.0.0/99']);
    assert.equal(r.code, 2);
    assert.match(r.err, /bad filter: destination_ip "10\.0\.0\.0\/99"/);
    const down = await observe(['--server', '127.0.0.1:1']);
    assert.equal(down.code, 1, 'an unreachable server is not bad input');
    assert.match(down.err, /cannot observe flows at 127\.0\.0\.1:1/);
  });
});
