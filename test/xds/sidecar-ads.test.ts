// A Trellis proxy over a real ADS stream (grpc-js on loopback): it is served its policy snapshot, listeners,
// route configurations, clusters and endpoints, and what it receives translates into a running ProxyConfig.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { compileMeshConfig } from '../../src/control-plane/mesh-config.ts';
import { translateResources } from '../../src/proxy/xds-translate.ts';
import { AdsServer } from '../../src/xds/ads-server.ts';
import { MeshResources } from '../../src/xds/mesh-resources.ts';
import { decodePolicySnapshot } from '../../src/xds/policy-snapshot.ts';
import { decodeAny } from '../../src/xds/protos.ts';
import { TYPE } from '../../src/xds/type-urls.ts';
import { openDelta, openSotw, resourceName, type DiscoveryResponse, type RawNode, type SotwStream } from '../support/ads-raw-client.ts';

const MANIFESTS = `apiVersion: apps/v1
kind: Deployment
metadata: {name: api, namespace: shop}
spec:
  replicas: 2
  selector: {matchLabels: {app: api}}
  template:
    metadata: {labels: {app: api}}
    spec:
      nodeName: node-1
      containers: [{name: api, ports: [{name: grpc, containerPort: 50051}]}]
---
apiVersion: v1
kind: Service
metadata: {name: api, namespace: shop}
spec:
  selector: {app: api}
  ports: [{name: grpc, port: 50051, targetPort: grpc}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: api, namespace: shop}
spec:
  podSelector: {matchLabels: {app: api}}
  ingress: [{from: [{podSelector: {}}]}]
`;

const cleanups: (() => void)[] = [];
after(() => {
  for (const c of cleanups.splice(0).reverse()) c();
});

async function serve(): Promise<{ port: number; pods: string[] }> {
  const compiled = compileMeshConfig([{ name: 'mesh.yaml', text: MANIFESTS }]);
  assert.ok(compiled.ok);
  const cfg = compiled.config;
  const mesh = new MeshResources();
  mesh.update(cfg.routing, { authz: cfg.authz }, { cluster: cfg.cluster, resources: cfg.resources });
  const ads = new AdsServer({ provider: mesh });
  const server = new grpc.Server();
  ads.register(server);
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  cleanups.push(() => server.forceShutdown());
  return { port, pods: [...cfg.cluster.pods.values()].map((p) => `${p.name}~${p.ips[0] ?? ''}`).sort() };
}

function proxyNode(pod: string, ip: string): RawNode {
  // The app listens on 127.0.0.1 (APP_IP's default): outbound listeners bind elsewhere, or the app's own port would clash.
  return { id: `sidecar~${ip}~${pod}.shop~shop.svc.cluster.local`, metadata: { fields: { TRELLIS_PROXY: { stringValue: 'sidecar' }, NAMESPACE: { stringValue: 'shop' }, OUTBOUND_IP: { stringValue: '127.0.0.6' } } } };
}

const decoded = (r: DiscoveryResponse): Record<string, unknown>[] => r.resources.map((a) => decodeAny(a));

describe('Trellis proxy over ADS', () => {
  it('gets its policy snapshot and listener set, which translate into a ProxyConfig', async () => {
    const { port, pods } = await serve();
    const [pod, ip] = (pods[0] ?? '').split('~') as [string, string];
    const s: SotwStream = openSotw(port);
    cleanups.push(() => s.close());
    const node = proxyNode(pod, ip);
    const pds = await s.request({ node, type_url: TYPE.policy }, 5000);
    assert.deepEqual(pds.resources.map(resourceName), ['mesh']);
    const policy = decodePolicySnapshot(decoded(pds)[0] ?? {});
    assert.deepEqual(policy.resources.map((r) => r.kind).sort(), ['Deployment', 'NetworkPolicy', 'Service']);
    const cds = await s.request({ type_url: TYPE.cluster }, 5000);
    const eds = await s.request({ type_url: TYPE.endpoint, resource_names: ['outbound|50051||api.shop.svc.cluster.local'] }, 5000);
    const lds = await s.request({ type_url: TYPE.listener }, 5000);
    assert.deepEqual(lds.resources.map(resourceName).sort(), [`inbound|${ip}|50051`, 'outbound|127.0.0.6|50051']);
    const listeners = decoded(lds);
    const rdsNames = listeners.flatMap((l) => JSON.stringify(l).match(/outbound\|50051\|shop[^"]*/g) ?? []);
    const rds = await s.request({ type_url: TYPE.route, resource_names: [...new Set(rdsNames)] }, 5000);
    const result = translateResources({ listeners, routes: decoded(rds), clusters: decoded(cds), endpoints: decoded(eds), policy });
    assert.ok(result.ok, result.ok ? '' : result.errors.join('\n'));
    const inbound = result.config.listeners.find((l) => l.direction === 'inbound');
    assert.deepEqual([inbound?.protocol, inbound?.mtls, inbound?.pod], ['http', 'PERMISSIVE', `shop/${pod}`]);
    assert.equal(result.config.endpoints.get('outbound|50051||api.shop.svc.cluster.local')?.endpoints.length, 2);
    assert.equal(result.config.clusters.get('outbound|50051||api.shop.svc.cluster.local')?.http2, true);
    assert.equal(result.config.policy?.trustDomain, 'cluster.local');
  });

  it('serves the snapshot over delta xDS, and nothing of it to proxyless nodes', async () => {
    const { port, pods } = await serve();
    const [pod, ip] = (pods[1] ?? '').split('~') as [string, string];
    const d = openDelta(port);
    cleanups.push(() => d.close());
    const r = await d.request({ node: proxyNode(pod, ip), type_url: TYPE.policy, resource_names_subscribe: ['*'] }, 5000);
    assert.deepEqual(r.resources.map((x) => x.name), ['mesh']);
    const s = openSotw(port);
    cleanups.push(() => s.close());
    const proxyless = await s.request({ node: { id: 'grpc-client', metadata: { fields: { NAMESPACE: { stringValue: 'shop' } } } }, type_url: TYPE.policy }, 5000);
    assert.deepEqual(proxyless.resources, []);
    const lds = await s.request({ type_url: TYPE.listener }, 5000);
    assert.deepEqual(lds.resources.map(resourceName), ['api.shop.svc.cluster.local:50051'], 'proxyless nodes keep their api_listeners');
  });
});
