// Control plane loss end to end: with traffic flowing through a client proxy and two server proxies, the control
// plane goes away. The proxies keep serving on their last good config. A new control plane then starts on the same
// xDS and CA ports with changed manifests (a header-based route to v2, and an AuthorizationPolicy denying a path),
// and both the client-side and the server-side proxies resync within seconds, without a single failed request.
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { MeshEnv } from '../support/mesh-env.ts';

const HOST = 'api.shop.svc.cluster.local';

const BASE = `apiVersion: v1
kind: Service
metadata: {name: api, namespace: shop}
spec:
  selector: {app: api}
  ports: [{name: http, port: 8080, targetPort: 8080, appProtocol: http}]
---
apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata: {name: api, namespace: shop}
spec:
  host: api
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
`;

const BEFORE = `${BASE}---
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: {name: api, namespace: shop}
spec:
  hosts: [api]
  http:
  - route: [{destination: {host: api, subset: v1}}]
`;

const CHANGED = `${BASE}---
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: {name: api, namespace: shop}
spec:
  hosts: [api]
  http:
  - match: [{headers: {end-user: {exact: jason}}}]
    route: [{destination: {host: api, subset: v2}}]
  - route: [{destination: {host: api, subset: v1}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: no-blocked, namespace: shop}
spec:
  selector: {matchLabels: {app: api}}
  action: DENY
  rules: [{to: [{operation: {paths: ["/blocked"]}}]}]
`;

function get(agent: http.Agent, host: string, path: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host, port: 8080, path, agent, headers: { host: HOST, ...headers }, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error('client timeout')));
    req.on('error', reject);
  });
}

/** Whether anything accepts TCP connections on host:port. */
function listening(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

describe('control plane loss: proxies serve on their last good config and resync when it returns', () => {
  let env: MeshEnv;
  const apps: http.Server[] = [];
  const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });

  before(async () => {
    env = await MeshEnv.start({
      subnet: 52,
      pods: [
        { name: 'web', namespace: 'shop', ports: [] },
        { name: 'api-v1', namespace: 'shop', labels: { app: 'api', version: 'v1' }, ports: [{ port: 8080, name: 'http' }] },
        { name: 'api-v2', namespace: 'shop', labels: { app: 'api', version: 'v2' }, ports: [{ port: 8080, name: 'http' }] },
      ],
      manifests: BEFORE,
    });
    for (const name of ['api-v1', 'api-v2']) {
      const app = http.createServer((req, res) => res.end(name));
      await new Promise<void>((r) => app.listen(8080, env.pod(name).appIp, r));
      apps.push(app);
    }
  });

  after(async () => {
    agent.destroy();
    for (const a of apps) a.close();
    await env?.stop();
  });

  it('keeps serving through the outage, then takes the changed manifests from the new control plane', async () => {
    const ip = env.pod('web').outboundIp;
    const jason = { 'end-user': 'jason' };
    assert.equal((await get(agent, ip, '/', jason)).body, 'api-v1', 'before: everyone goes to v1');
    assert.equal((await get(agent, ip, '/blocked')).status, 200, 'before: /blocked is allowed');

    // Steady traffic for the whole test: every response is recorded with the time it came.
    let running = true;
    const results: { at: number; status: number; body: string }[] = [];
    const failures: string[] = [];
    const loops = Array.from({ length: 8 }, async () => {
      while (running) {
        try {
          const r = await get(agent, ip, '/steady');
          results.push({ at: Date.now(), ...r });
          if (r.status !== 200 || r.body !== 'api-v1') failures.push(`${r.status} ${r.body}`);
        } catch (e) {
          failures.push((e as Error).message);
        }
      }
    });
    try {
      await sleep(300);
      const xdsPort = env.cp.xdsPort;
      await env.stopControlPlane();
      const downAt = Date.now();
      assert.equal(await listening('127.0.0.1', xdsPort), false, 'the control plane is down');
      await sleep(2000);
      for (const p of ['web', 'api-v1', 'api-v2']) assert.equal((await fetch(`${env.proxy(p).adminUrl}/ready`)).status, 200, `${p} stays ready`);
      const during = results.filter((r) => r.at > downAt).length;
      assert.ok(during > 20, `requests kept flowing while the control plane was down (${during})`);
      assert.equal((await get(agent, ip, '/', jason)).body, 'api-v1', 'the last good config is still in force');

      await env.startControlPlane(CHANGED);
      const upAt = Date.now();
      assert.equal(env.cp.xdsPort, xdsPort, 'the same xDS port');
      // The client proxy's routes resync: jason goes to v2.
      let routed = 0;
      while (Date.now() - upAt < 15_000) {
        if ((await get(agent, ip, '/', jason)).body === 'api-v2') {
          routed = Date.now() - upAt;
          break;
        }
        await sleep(100);
      }
      assert.ok(routed > 0, 'the header route from the new control plane took effect at the client proxy');
      // The server proxies' policy resyncs: /blocked is denied at api-v1.
      let denied = 0;
      while (Date.now() - upAt < 15_000) {
        const r = await get(agent, ip, '/blocked');
        if (r.status === 403) {
          assert.match(r.body, /no-blocked/);
          denied = Date.now() - upAt;
          break;
        }
        await sleep(100);
      }
      assert.ok(denied > 0, 'the AuthorizationPolicy from the new control plane took effect at the server proxy');
      assert.ok(Math.max(routed, denied) < 10_000, `resynced within seconds (route ${routed} ms, policy ${denied} ms)`);
      assert.equal((await get(agent, ip, '/')).body, 'api-v1', 'others still go to v1');
      await sleep(300);
    } finally {
      running = false;
      await Promise.all(loops);
    }
    assert.deepEqual(failures.slice(0, 10), [], `${failures.length} of ${results.length + failures.length} steady requests failed`);
    assert.ok(results.length > 100, `steady traffic ran (${results.length})`);
  });
});
