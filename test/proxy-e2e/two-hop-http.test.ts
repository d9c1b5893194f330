// Two real proxies between a real client and server, over mesh mTLS: an HTTP/1.1 request goes client → client-side
// proxy (outbound) → server-side proxy (inbound, STRICT by default) → app, and the L7 policy at the server decides.
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, it } from 'node:test';
import { MeshEnv } from '../support/mesh-env.ts';

const MANIFESTS = `apiVersion: v1
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

function get(host: string, port: number, path: string, authority: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host, port, path, headers: { host: authority }, agent: false }, (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (d: string) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      })
      .on('error', reject);
  });
}

describe('two-hop HTTP/1.1 through client and server proxies', () => {
  let env: MeshEnv;
  let app: http.Server;

  before(async () => {
    env = await MeshEnv.start({
      subnet: 41,
      pods: [
        { name: 'web', namespace: 'shop', ports: [{ port: 8081, name: 'http' }] },
        { name: 'api', namespace: 'shop', ports: [{ port: 8080, name: 'http' }] },
      ],
      manifests: MANIFESTS,
    });
    app = http.createServer((req, res) => res.end(`api saw ${req.method} ${req.url} from ${String(req.headers['x-forwarded-for'] ?? '?')}`));
    await new Promise<void>((r) => app.listen(8080, env.pod('api').appIp, r));
  });

  after(async () => {
    app?.close();
    await env?.stop();
  });

  it('an allowed request reaches the app, and both proxies record it with the deciding policy', async () => {
    const r = await get(env.pod('web').outboundIp, 8080, '/public/x', 'api.shop.svc.cluster.local');
    assert.equal(r.status, 200);
    assert.match(r.body, /^api saw GET \/public\/x/);
    const inbound = await env.waitFlow('api', (f) => f.Type === 'L7' && f.l7?.http?.url.includes('/public/x') === true);
    assert.equal(inbound.verdict, 'FORWARDED');
    assert.equal(inbound.traffic_direction, 'INGRESS');
    // The completed request is a reply flow (Hubble's is_reply): from the server back to the client.
    assert.equal(inbound.is_reply, true);
    assert.equal(inbound.destination.pod_name, 'web');
    assert.equal(inbound.l7?.http?.code, 200);
    assert.equal(inbound.trellis?.transport, 'mtls');
    assert.equal(inbound.ingress_allowed_by?.[0]?.name, 'api-l7');
    const outbound = await env.waitFlow('web', (f) => f.Type === 'L7' && f.l7?.http?.url.includes('/public/x') === true);
    assert.equal(outbound.traffic_direction, 'EGRESS');
    assert.equal(outbound.source.pod_name, 'api');
  });

  it('a request the L7 rule does not allow gets 403 naming the policy, and a DROPPED flow', async () => {
    const r = await get(env.pod('web').outboundIp, 8080, '/private', 'api');
    assert.equal(r.status, 403);
    assert.match(r.body, /CiliumNetworkPolicy shop\/api-l7/);
    const f = await env.waitFlow('api', (x) => x.Type === 'L7' && x.verdict === 'DROPPED' && x.l7?.http?.url.includes('/private') === true);
    assert.equal(f.ingress_denied_by?.[0]?.kind, 'CiliumNetworkPolicy');
  });

  it('the proxies report Istio request metrics', async () => {
    const text = await env.metrics('api');
    assert.match(text, /istio_requests_total\{[^}]*reporter="destination"[^}]*source_workload="web"[^}]*response_code="200"/);
  });
});
