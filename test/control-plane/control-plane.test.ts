// The control plane as a process would run it: real files watched, real ADS, a real grpc-js-xds client,
// the admin API over HTTP, and the proxy-status/proxy-config commands.
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type * as grpc from '@grpc/grpc-js';
import { pino } from 'pino';
import { main } from '../../src/cli/main.ts';
import { ControlPlane } from '../../src/control-plane/control-plane.ts';
import { EchoClient, startEchoServer, unary, type EchoServer } from '../support/echo-service.ts';
import { xdsClient } from '../support/xds-harness.ts';

const PODS = [
  { name: 'zone-api-a', ip: '127.0.1.21' },
  { name: 'zone-api-b', ip: '127.0.1.22' },
];

function manifests(pods: typeof PODS, servicePort = 50051): string {
  const docs = [
    'apiVersion: v1\nkind: Namespace\nmetadata: {name: dns}',
    `apiVersion: v1\nkind: Service\nmetadata: {name: zone-api, namespace: dns}\nspec:\n  selector: {app: zone-api}\n  ports:\n  - {name: grpc, port: ${servicePort}, targetPort: grpc}`,
    ...pods.map((p) => `apiVersion: v1\nkind: Pod\nmetadata: {name: ${p.name}, namespace: dns, labels: {app: zone-api}}\nspec:\n  containers:\n  - name: api\n    ports: [{name: grpc, containerPort: 50051}]\nstatus: {podIP: ${p.ip}}`),
  ];
  return docs.join('\n---\n');
}

async function untilTrue(f: () => Promise<boolean> | boolean, ms: number): Promise<number> {
  const start = Date.now();
  while (Date.now() - start < ms) {
    if (await f()) return Date.now() - start;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`condition not met within ${ms} ms`);
}

describe('trellis control-plane', () => {
  const dir = mkdtempSync(join(tmpdir(), 'trellis-cp-'));
  const file = join(dir, 'zone-api.yaml');
  let cp: ControlPlane;
  let backends: EchoServer[];
  let client: grpc.Client;

  before(async () => {
    writeFileSync(file, manifests(PODS));
    backends = await Promise.all(PODS.map((p) => startEchoServer(p.name, p.ip, undefined, 50051)));
    cp = new ControlPlane({ paths: [dir], stateDir: join(dir, 'state'), xdsPort: 0, adminPort: 0, caPort: 0, debounceMs: 50, logger: pino({ level: 'silent' }) });
    await cp.start();
    client = xdsClient(EchoClient, 'xds:///zone-api', cp.xdsPort, { id: 'sidecar~127.0.1.9~client.dns~dns.svc.cluster.local', namespace: 'dns' });
  });
  after(async () => {
    client.close();
    await cp.stop();
    await Promise.all(backends.map((b) => b.close()));
  });

  it('serves the Service from files to a proxyless client, over both pods', async () => {
    const seen = new Set<string>();
    for (let i = 0; i < 40 && seen.size < 2; i++) seen.add((await unary(client, { message: 'hi' })).server);
    assert.deepEqual([...seen].sort(), ['zone-api-a', 'zone-api-b']);
  });

  it('refuses a bad edit with located errors and keeps the last good configuration', async () => {
    writeFileSync(file, manifests(PODS, 99999));
    await untilTrue(() => cp.lastReload?.applied === false, 3000);
    const ready = (await (await fetch(`${cp.adminUrl ?? ''}/readyz`)).json()) as { ready: boolean; lastReload: { applied: boolean; errors: string[] } };
    assert.equal(ready.ready, true, 'the last good configuration still serves');
    assert.equal(ready.lastReload.applied, false);
    assert.match(ready.lastReload.errors.join('\n'), /zone-api\.yaml:\d+:\d+: Service dns\/zone-api: spec\.ports\[0\]\.port: must be an integer 1-65535/);
    const r = await unary(client, { message: 'still here' });
    assert.ok(r.server.startsWith('zone-api-'));
  });

  it('applies a good edit live: a removed pod gets no traffic within a second', async () => {
    const t0 = Date.now();
    writeFileSync(file, manifests(PODS.slice(0, 1)));
    await untilTrue(async () => {
      const servers = new Set<string>();
      for (let i = 0; i < 6; i++) servers.add((await unary(client, { message: 'x' })).server);
      return servers.size === 1 && servers.has('zone-api-a');
    }, 3000);
    const elapsed = Date.now() - t0;
    assert.ok(elapsed < 1000 + 200, `took ${elapsed} ms`);
    for (let i = 0; i < 20; i++) assert.equal((await unary(client, { message: 'x' })).server, 'zone-api-a');
  });

  it('reports sync status, config dumps and metrics on the admin API', async () => {
    const base = cp.adminUrl ?? '';
    const sync = (await (await fetch(`${base}/debug/syncz`)).json()) as { node: string; namespace: string; types: Record<string, { status: string }> }[];
    const me = sync.find((s) => s.node.startsWith('sidecar~127.0.1.9'));
    assert.ok(me, 'the client is listed');
    assert.equal(me.namespace, 'dns');
    for (const t of ['LDS', 'RDS', 'CDS', 'EDS']) assert.equal(me.types[t]?.status, 'SYNCED', t);
    const dump = (await (await fetch(`${base}/debug/config_dump?node=${encodeURIComponent(me.node)}`)).json()) as { resources: Record<string, { name: string }[]> }[];
    assert.deepEqual(dump[0]?.resources.LDS?.map((r) => r.name), ['zone-api']);
    assert.deepEqual(dump[0]?.resources.CDS?.map((r) => r.name), ['outbound|50051||zone-api.dns.svc.cluster.local']);
    const metrics = await (await fetch(`${base}/metrics`)).text();
    assert.match(metrics, /pilot_xds_pushes\{type="CDS"\} \d+/);
    assert.match(metrics, /trellis_config_reloads_total\{result="refused"\} 1/);
    assert.match(metrics, /pilot_proxy_convergence_time_count\{type="EDS"\} [1-9]/);
    assert.equal((await fetch(`${base}/debug/config_dump?node=nobody`)).status, 404);
  });

  it('shows the same through `trellis proxy-status` and `trellis proxy-config`', async () => {
    const out: string[] = [];
    const io = { out: (l: string) => out.push(l), err: () => undefined, readStdin: () => '' };
    assert.equal(await main(['proxy-status', '--admin', cp.adminUrl ?? ''], io), 0);
    assert.match(out[0] ?? '', /^NAME\s+NAMESPACE\s+STREAM\s+CDS\s+LDS\s+EDS\s+RDS$/);
    assert.ok(out.some((l) => /sidecar~127\.0\.1\.9\S*\s+dns\s+sotw\s+SYNCED\s+SYNCED\s+SYNCED\s+SYNCED/.test(l)), out.join('\n'));
    out.length = 0;
    const node = 'sidecar~127.0.1.9~client.dns~dns.svc.cluster.local';
    assert.equal(await main(['proxy-config', node, '--admin', cp.adminUrl ?? '', '-o', 'yaml'], io), 0);
    assert.match(out.join('\n'), /outbound\|50051\|\|zone-api\.dns\.svc\.cluster\.local/);
    assert.equal(await main(['proxy-status', '--admin', 'http://127.0.0.1:1'], io), 2);
  });
});
