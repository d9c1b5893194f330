// Per-node mode end to end: one `trellis proxy --mode node` process serves two pods of node n1 (alpha and beta, each
// with its own pod, app and outbound addresses from annotations), talking to pods behind sidecars elsewhere (srv and
// cli) over mesh mTLS in both directions. The same request gets different verdicts for the two pods sharing the
// node proxy: outbound, the server's sidecar sees which pod a connection comes from (the node proxy binds each pod's
// IP); inbound, the node proxy enforces the destination pod's own policy.
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { Flow } from '../../src/observe/flow.ts';
import { MeshEnv } from '../support/mesh-env.ts';

const SUBNET = 55;
const NODE = 'n1';
const PORT = 8080;

const MANIFESTS = `${['srv', 'alpha', 'beta'].map((app) => `apiVersion: v1
kind: Service
metadata: {name: ${app}, namespace: default}
spec:
  selector: {app: ${app}}
  ports: [{name: http, port: ${PORT}, targetPort: ${PORT}, appProtocol: http}]
`).join('---\n')}---
# srv (behind a sidecar): alpha may GET anything, beta only /public.
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: srv-l7, namespace: default}
spec:
  endpointSelector: {matchLabels: {app: srv}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: alpha}}]
    toPorts: [{ports: [{port: "${PORT}", protocol: TCP}], rules: {http: [{method: GET}]}}]
  - fromEndpoints: [{matchLabels: {app: beta}}]
    toPorts: [{ports: [{port: "${PORT}", protocol: TCP}], rules: {http: [{method: GET, path: "/public/.*"}]}}]
---
# alpha (on the node): cli may GET anything.
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: alpha-l7, namespace: default}
spec:
  endpointSelector: {matchLabels: {app: alpha}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: cli}}]
    toPorts: [{ports: [{port: "${PORT}", protocol: TCP}], rules: {http: [{method: GET}]}}]
---
# beta (on the same node): cli may GET only /public.
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: beta-l7, namespace: default}
spec:
  endpointSelector: {matchLabels: {app: beta}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: cli}}]
    toPorts: [{ports: [{port: "${PORT}", protocol: TCP}], rules: {http: [{method: GET, path: "/public/.*"}]}}]
`;

interface Reply {
  status: number;
  body: string;
}

/** GET through a pod's outbound listener, with the Service name as Host. */
function get(outboundIp: string, host: string, path: string): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: outboundIp, port: PORT, path, headers: { host: `${host}:${PORT}` }, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.setTimeout(10_000, () => req.destroy(new Error('client timeout')));
    req.on('error', reject);
    req.end();
  });
}

describe('per-node proxy: two pods on one node, talking to sidecar pods elsewhere', { timeout: 60_000 }, () => {
  let env: MeshEnv;
  const apps: http.Server[] = [];

  before(async () => {
    env = await MeshEnv.start({
      subnet: SUBNET,
      pods: [
        { name: 'srv', labels: { app: 'srv' }, ports: [{ port: PORT, name: 'http' }] },
        { name: 'cli', labels: { app: 'cli' } },
        { name: 'alpha', labels: { app: 'alpha' }, ports: [{ port: PORT, name: 'http' }], nodeName: NODE, proxy: false },
        { name: 'beta', labels: { app: 'beta' }, ports: [{ port: PORT, name: 'http' }], nodeName: NODE, proxy: false },
      ],
      manifests: MANIFESTS,
    });
    for (const name of ['srv', 'alpha', 'beta']) {
      const server = http.createServer((req, res) => res.end(`${name} ${req.url}`));
      await new Promise<void>((r) => server.listen(PORT, env.pod(name).appIp, r));
      assert.equal((server.address() as AddressInfo).port, PORT);
      apps.push(server);
    }
    await env.startNodeProxy(NODE);
  });

  after(async () => {
    for (const s of apps) s.closeAllConnections();
    await Promise.all(apps.map((s) => new Promise<void>((r) => s.close(() => r()))));
    await env?.stop();
  });

  const dropped = (f: Flow): boolean => f.verdict === 'DROPPED' && f.l7?.type === 'REQUEST';
  // The node proxy holds a certificate per service account of its pods (one --workload-token each) and presents, per
  // listener inbound and per source pod outbound, the one of the pod the connection belongs to.

  it('outbound from the node: the server sidecar enforces its policy for each node pod by its own identity', async () => {
    const alpha = env.pod('alpha');
    const beta = env.pod('beta');
    assert.deepEqual(await get(alpha.outboundIp, 'srv', '/private/a'), { status: 200, body: 'srv /private/a' });
    assert.deepEqual(await get(beta.outboundIp, 'srv', '/public/b'), { status: 200, body: 'srv /public/b' });
    const denied = await get(beta.outboundIp, 'srv', '/private/b');
    assert.equal(denied.status, 403);
    assert.match(denied.body, /srv-l7/);
    const f = await env.waitFlow('srv', (x) => dropped(x) && x.l7?.http?.url?.includes('/private/b') === true);
    assert.equal(f.source?.pod_name, 'beta');
    assert.equal(f.destination?.pod_name, 'srv');
  });

  it('inbound to the node: the node proxy enforces the destination pod’s own policy', async () => {
    const cli = env.pod('cli');
    assert.deepEqual(await get(cli.outboundIp, 'alpha', '/private/c'), { status: 200, body: 'alpha /private/c' });
    assert.deepEqual(await get(cli.outboundIp, 'beta', '/public/c'), { status: 200, body: 'beta /public/c' });
    const denied = await get(cli.outboundIp, 'beta', '/private/c');
    assert.equal(denied.status, 403);
    assert.match(denied.body, /beta-l7/);
    const f = await env.waitFlow(`node/${NODE}`, (x) => dropped(x) && x.l7?.http?.url?.includes('/private/c') === true);
    assert.equal(f.source?.pod_name, 'cli');
    assert.equal(f.destination?.pod_name, 'beta');
    // The node proxy carried both pods' traffic: forwarded requests to alpha and from alpha are in its flows.
    const flows = await env.flows(`node/${NODE}`, 1000);
    assert.ok(flows.some((x) => x.verdict === 'FORWARDED' && x.is_reply === true && x.source?.pod_name === 'alpha'), 'a reply flow from alpha');
  });
});
