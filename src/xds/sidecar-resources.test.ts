// The listener set of Trellis proxies: inbound chains per PeerAuthentication mode, outbound listeners and merged
// route configurations per client, mesh clusters with mTLS, node mode, and every object encodes as its real proto.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildCluster } from '../model/cluster.ts';
import { buildAuthzModel } from '../policy/authz-model.ts';
import { loadManifests } from '../resources/load.ts';
import { buildRoutingModel } from '../routing/build.ts';
import { MeshResources } from './mesh-resources.ts';
import { decodeAny, encodeAny } from './protos.ts';
import { SidecarIndex } from './sidecar-resources.ts';
import { TYPE } from './type-urls.ts';
import { parseNode, type XdsNode } from './xds-node.ts';
import { fromStruct, readTrellisMetadata } from './xds-struct.ts';

type Obj = Record<string, unknown>;

const MANIFESTS = `apiVersion: v1
kind: Node
metadata: {name: node-1}
spec: {podCIDR: 10.244.1.0/24}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: api, namespace: shop}
spec:
  replicas: 2
  selector: {matchLabels: {app: api}}
  template:
    metadata: {labels: {app: api}}
    spec:
      serviceAccountName: api-sa
      nodeName: node-1
      containers: [{name: api, ports: [{name: http, containerPort: 8080}, {name: admin, containerPort: 9090}]}]
---
apiVersion: v1
kind: Pod
metadata:
  name: db
  namespace: shop
  labels: {app: db}
  annotations: {trellis.dev/outbound-ip: 127.0.0.9, trellis.dev/app-ip: 127.0.0.8}
spec:
  nodeName: node-1
  containers: [{name: redis, ports: [{name: redis, containerPort: 6379}]}]
status: {podIP: 10.244.1.50}
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: web, labels: {app: client, canary: "yes"}}
spec:
  nodeName: node-2
  containers: [{name: c}]
status: {podIP: 10.244.2.7}
---
apiVersion: v1
kind: Service
metadata: {name: api, namespace: shop}
spec:
  clusterIP: 10.96.0.10
  selector: {app: api}
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: shop}
spec:
  selector: {app: db}
  ports: [{name: tcp-redis, port: 6379, targetPort: 6379}]
---
apiVersion: v1
kind: Service
metadata: {name: front, namespace: web}
spec:
  selector: {app: client}
  ports: [{name: http-web, port: 80, targetPort: 8080}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: api, namespace: shop}
spec:
  hosts: [api.shop.svc.cluster.local]
  http:
  - match: [{sourceLabels: {canary: "yes"}}]
    route: [{destination: {host: api.shop.svc.cluster.local}}]
    timeout: 2s
  - route: [{destination: {host: api.shop.svc.cluster.local}}]
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: api, namespace: shop}
spec:
  selector: {matchLabels: {app: api}}
  mtls: {mode: STRICT}
  portLevelMtls: {"9090": {mode: DISABLE}}
`;

function setup() {
  const loaded = loadManifests([{ name: 'mesh.yaml', text: MANIFESTS }]);
  assert.deepEqual(loaded.diagnostics.filter((d) => d.severity === 'error'), []);
  const cluster = buildCluster(loaded.resources);
  const routing = buildRoutingModel(loaded.resources, cluster);
  const authz = buildAuthzModel(loaded.resources);
  const serviceAccounts = new Map([...cluster.pods.values()].map((p) => [p.key, p.serviceAccount] as const));
  const security = { authz, serviceAccounts };
  const inputs = { cluster, resources: loaded.resources };
  return { cluster, routing: routing.model, security, inputs, index: new SidecarIndex(routing.model, inputs, security), mesh: new MeshResources(routing.model, security, inputs) };
}

function node(meta: Record<string, string>, id = 'trellis'): XdsNode {
  const fields: Record<string, { string_value: string }> = {};
  for (const [k, v] of Object.entries(meta)) fields[k] = { string_value: v };
  return parseNode({ id, cluster: 'c', metadata: { fields } });
}

function sidecar(pod: string, ns: string, ip: string, extra: Record<string, string> = {}): XdsNode {
  return node({ TRELLIS_PROXY: 'sidecar', ...extra }, `sidecar~${ip}~${pod}.${ns}~${ns}.svc.cluster.local`);
}

const roundTrip = (type: string, o: Obj): Obj => decodeAny(encodeAny(type, o));
const chains = (l: Obj | undefined): Obj[] => (l?.filter_chains ?? []) as Obj[];

describe('sidecar resources', () => {
  const s = setup();
  const api = [...s.cluster.pods.values()].filter((p) => p.labels.app === 'api').sort((a, b) => (a.key < b.key ? -1 : 1));
  const api0 = api[0]!;
  const apiIp = api0.ips[0]!;

  it('reads the node contract: mode, node name, app and outbound addresses', () => {
    const n = sidecar(api0.name, 'shop', apiIp, { APP_IP: '127.0.0.3', OUTBOUND_IP: '127.0.0.4' });
    assert.deepEqual(n.proxy, { mode: 'sidecar', appIp: '127.0.0.3', outboundIp: '127.0.0.4' });
    assert.equal(n.pod, `shop/${api0.name}`);
    const served = s.index.servedPods(n);
    assert.deepEqual(served.map((p) => [p.pod.key, p.ip, p.appIp, p.outboundIp]), [[api0.key, apiIp, '127.0.0.3', '127.0.0.4']]);
    // A node without TRELLIS_PROXY keeps the proxyless shape exactly.
    assert.equal('proxy' in node({ NAMESPACE: 'shop' }), false);
    assert.deepEqual(s.index.servedPods(sidecar('nope', 'shop', '10.0.0.1')), []);
    assert.deepEqual(s.index.servedPods(node({ TRELLIS_PROXY: 'gateway' })), []);
  });

  it('builds inbound listeners whose filter chains follow PeerAuthentication, with STATIC clusters to the app', () => {
    const v = s.index.view(sidecar(api0.name, 'shop', apiIp));
    const strict = v.listeners.get(`inbound|${apiIp}|8080`);
    assert.ok(strict);
    assert.deepEqual(chains(strict).map((c) => (c.filter_chain_match as Obj).transport_protocol), ['tls']);
    assert.ok(chains(strict)[0]?.transport_socket, 'STRICT terminates mTLS');
    assert.deepEqual(readTrellisMetadata(strict.metadata), { direction: 'inbound', pod: api0.key, protocol: 'http', mtls: 'STRICT' });
    const hcm = ((chains(strict)[0]?.filters as Obj[])[0]?.typed_config ?? {}) as Obj;
    assert.deepEqual((hcm.http_filters as Obj[]).map((f) => f.name), ['trellis.policy', 'envoy.filters.http.fault', 'envoy.filters.http.router']);
    const policy = (hcm.http_filters as Obj[])[0]?.typed_config as Obj;
    assert.deepEqual(fromStruct(policy.value), { direction: 'inbound' });
    // The admin port is not in a Service: auto-detected, and DISABLE there by port-level mTLS.
    const admin = v.listeners.get(`inbound|${apiIp}|9090`);
    assert.deepEqual(chains(admin).map((c) => c.name), ['inbound-plaintext-http', 'inbound-plaintext-tcp']);
    assert.equal(readTrellisMetadata(admin?.metadata).protocol, 'auto');
    const c = v.clusters.get(`inbound|8080|${api0.key}`);
    assert.equal(c?.type, 'STATIC');
    const lb = ((((c?.load_assignment as Obj).endpoints as Obj[])[0]?.lb_endpoints as Obj[])[0]?.endpoint as Obj).address as Obj;
    assert.deepEqual(lb.socket_address, { address: '127.0.0.1', port_value: 8080 });
    // db has no PeerAuthentication: PERMISSIVE takes both transports; TCP by its Service's port name.
    const db = s.index.view(sidecar('db', 'shop', '10.244.1.50'));
    const redis = db.listeners.get('inbound|10.244.1.50|6379');
    assert.deepEqual(chains(redis).map((c) => c.name), ['inbound-mtls-tcp', 'inbound-plaintext-tcp']);
    assert.deepEqual(((db.clusters.get('inbound|6379|shop/db')?.load_assignment as Obj).endpoints as Obj[]).length, 1);
    assert.match(JSON.stringify(db.clusters.get('inbound|6379|shop/db')), /127\.0\.0\.8/, 'the app-ip annotation wins');
  });

  it('builds one outbound listener per Service port, merging virtual hosts as each client sees them', () => {
    const v = s.index.view(sidecar(api0.name, 'shop', apiIp));
    const out80 = v.listeners.get('outbound|127.0.0.1|80');
    assert.deepEqual(readTrellisMetadata(out80?.metadata), { direction: 'outbound', pod: api0.key, sourceAddress: apiIp, protocol: 'http' });
    const rds = ((chains(out80)[0]?.filters as Obj[])[0]?.typed_config as Obj).rds as Obj;
    const rc = v.routes.get(rds.route_config_name as string);
    assert.ok(rc, `${String(rds.route_config_name)} is served`);
    assert.match(rc.name as string, /^outbound\|80\|shop\|[0-9a-f]{8}$/);
    const vhs = rc.virtual_hosts as Obj[];
    assert.deepEqual(vhs.map((vh) => vh.name), ['api.shop.svc.cluster.local:80', 'front.web.svc.cluster.local:80']);
    const apiDomains = vhs[0]?.domains as string[];
    for (const d of ['api', 'api:80', 'api.shop', 'api.shop.svc.cluster.local', '10.96.0.10', '10.96.0.10:80']) assert.ok(apiDomains.includes(d), d);
    assert.ok(!(vhs[1]?.domains as string[]).includes('front'), 'short names only for their own namespace');
    // api pods are not canary: the sourceLabels route is left out for them.
    assert.equal((vhs[0]?.routes as Obj[]).length, 1);
    const client = s.index.view(sidecar('client', 'web', '10.244.2.7'));
    const crc = [...client.routes.values()].find((r) => (r.name as string).startsWith('outbound|80|web'));
    assert.equal(((crc?.virtual_hosts as Obj[])[0]?.routes as Obj[]).length, 2, 'the canary client gets its sourceLabels route');
    assert.ok(!((crc?.virtual_hosts as Obj[])[0]?.domains as string[]).includes('api'));
    // TCP port: tcp_proxy to the one Service's cluster.
    const redis = v.listeners.get('outbound|127.0.0.1|6379');
    assert.equal(readTrellisMetadata(redis?.metadata).protocol, 'tcp');
    assert.equal(((chains(redis)[0]?.filters as Obj[])[0]?.typed_config as Obj).cluster, 'outbound|6379||db.shop.svc.cluster.local');
  });

  it('serves every pod of a node in node mode, and leaves out outbound listeners whose address is taken', () => {
    const v = s.index.view(node({ TRELLIS_PROXY: 'node', NODE_NAME: 'node-1' }));
    assert.deepEqual(v.pods.map((p) => p.pod.key), [...api.map((p) => p.key), 'shop/db'].sort());
    assert.ok(v.listeners.has('outbound|127.0.0.9|80'), 'db binds its annotated outbound address');
    assert.ok(v.listeners.has(`inbound|${api[1]!.ips[0]!}|8080`));
    // Both api pods default to 127.0.0.1: the second one's outbound listeners would collide and are left out.
    assert.ok(v.warnings.some((w) => w.includes(api[1]!.key) && w.includes('127.0.0.1:80')), v.warnings.join('\n'));
  });

  it('marks mesh clusters for mTLS with the endpoints’ SPIFFE IDs and keeps what Envoy cannot say in metadata', () => {
    const c = s.index.meshCluster('outbound|80||api.shop.svc.cluster.local');
    const tls = ((c?.transport_socket as Obj).typed_config as Obj).common_tls_context as Obj;
    assert.deepEqual((tls.validation_context as Obj).match_subject_alt_names, [{ exact: 'spiffe://cluster.local/ns/shop/sa/api-sa' }]);
    assert.deepEqual(readTrellisMetadata(c?.metadata), { host: 'api.shop.svc.cluster.local', port: 80, protocol: 'http', mesh: true });
  });

  it('encodes every served object as its real proto, and MeshResources serves proxies apart from proxyless nodes', () => {
    const n = sidecar(api0.name, 'shop', apiIp);
    const v = s.index.view(n);
    for (const l of v.listeners.values()) assert.deepEqual(readTrellisMetadata(roundTrip(TYPE.listener, l).metadata), readTrellisMetadata(l.metadata));
    for (const r of v.routes.values()) assert.equal(roundTrip(TYPE.route, r).name, r.name);
    for (const name of s.index.meshClusterNames()) assert.equal(roundTrip(TYPE.cluster, s.index.meshCluster(name)!).name, name);
    const lds = s.mesh.list(n, TYPE.listener).map((r) => r.name);
    assert.deepEqual(lds, [...v.listeners.keys()].sort());
    const cds = s.mesh.list(n, TYPE.cluster).map((r) => r.name);
    assert.ok(cds.includes(`inbound|8080|${api0.key}`) && cds.includes('outbound|80||api.shop.svc.cluster.local'));
    const route = v.routes.keys().next().value as string;
    assert.equal(s.mesh.get(n, TYPE.route, route)?.name, route);
    assert.deepEqual(s.mesh.list(n, TYPE.policy).map((r) => r.name), ['mesh']);
    assert.equal(s.mesh.get(n, TYPE.endpoint, 'outbound|80||api.shop.svc.cluster.local')?.name, 'outbound|80||api.shop.svc.cluster.local');
    // A proxyless node still gets api_listeners by name, and no policy snapshot.
    const proxyless = node({ NAMESPACE: 'shop' });
    assert.ok(s.mesh.list(proxyless, TYPE.listener).some((r) => r.name === 'api.shop.svc.cluster.local:80'));
    assert.deepEqual(s.mesh.list(proxyless, TYPE.policy), []);
    assert.equal(s.mesh.get(proxyless, TYPE.listener, `inbound|${apiIp}|8080`), undefined);
  });
});
