// Proxyless gRPC servers under Trellis xDS: real grpc-js-xds XdsServers and clients on loopback, per-method
// AuthorizationPolicy enforced by the servers' RBAC filters, and PeerAuthentication STRICT as mTLS with certificates
// from a real Trellis CA, read by grpc-js-xds's file_watcher certificate provider.
import '../support/xds-rbac-env.ts';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { CertificateAuthority } from '../../src/ca/index.ts';
import { buildAuthzModel } from '../../src/policy/authz-model.ts';
import { loadManifests } from '../../src/resources/load.ts';
import type { RoutingModel } from '../../src/routing/model.ts';
import { decodeAny } from '../../src/xds/protos.ts';
import { MeshResources } from '../../src/xds/mesh-resources.ts';
import { SERVER_LISTENER_PREFIX, type MeshSecurity } from '../../src/xds/server-resources.ts';
import { TYPE } from '../../src/xds/type-urls.ts';
import { EchoClient, unary, type EchoServer } from '../support/echo-service.ts';
import { issueCertificateFiles, serverStream, startXdsEchoServer, workloadClient, type XdsWorkload } from '../support/xds-server-harness.ts';
import { startAds, type XdsTestServer } from '../support/xds-harness.ts';

const ECHO = '/trellis.test.v1.Echo';

const POLICIES = `
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: dns}
spec: {mtls: {mode: STRICT}}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: zone-api, namespace: dns}
spec:
  selector: {matchLabels: {app: zone-api}}
  rules:
  - from: [{source: {principals: ["cluster.local/ns/dns/sa/client"]}}]
    to: [{operation: {paths: ["${ECHO}/Unary"]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: zone-admin, namespace: dns}
spec:
  selector: {matchLabels: {app: zone-admin}}
  rules:
  - from: [{source: {principals: ["cluster.local/ns/dns/sa/client"]}}]
    to: [{operation: {paths: ["${ECHO}/*"]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: no-streams, namespace: dns}
spec:
  selector: {matchLabels: {app: zone-admin}}
  action: DENY
  rules:
  - to: [{operation: {paths: ["${ECHO}/ServerStream"]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: web-api, namespace: web}
spec:
  selector: {matchLabels: {app: web-api}}
  rules:
  - to: [{operation: {paths: ["${ECHO}/Unary"]}}]
  - from: [{source: {principals: ["cluster.local/ns/dns/sa/client"]}}]
    to: [{operation: {paths: ["${ECHO}/ServerStream"]}}]
`;

interface Svc {
  name: string;
  namespace: string;
  port: number;
  backend: EchoServer;
}

/** One Service per backend: listener, route, EDS cluster, and the backend as the pod `<ns>/<name>-0` labelled app=<name>. */
function routing(services: Svc[]): RoutingModel {
  const m: RoutingModel = { listeners: [], routeConfigs: [], clusters: [], endpoints: [], edges: [] };
  for (const s of services) {
    const host = `${s.name}.${s.namespace}.svc.cluster.local`;
    const name = `${host}:${s.port}`;
    const clusterName = `outbound|${s.port}||${host}`;
    m.listeners.push({ name, aliases: [`${s.name}.${s.namespace}:${s.port}`], namespaceLocalAliases: [s.name, `${s.name}:${s.port}`], namespace: s.namespace, service: s.name, host, port: s.port, protocol: 'grpc', routeConfig: name });
    m.routeConfigs.push({ name, virtualHosts: [{ name: host, domains: [host, name, s.name, `${s.name}:${s.port}`, `${s.name}.${s.namespace}`, `${s.name}.${s.namespace}:${s.port}`], routes: [{ name: 'default', match: { headers: [] }, action: { type: 'route', clusters: [{ cluster: clusterName, weight: 100 }] } }] }] });
    m.clusters.push({ name: clusterName, host, port: s.port, discovery: 'EDS', lbPolicy: 'ROUND_ROBIN', http2: true, protocol: 'grpc' });
    m.endpoints.push({
      cluster: clusterName,
      endpoints: [{ address: s.backend.address, port: s.backend.port, healthy: true, weight: 1, locality: { region: '', zone: '', subZone: '' }, pod: `${s.namespace}/${s.name}-0`, labels: { app: s.name } }],
    });
  }
  return m;
}

async function rejects(p: Promise<unknown>, code: grpc.status): Promise<grpc.ServiceError> {
  try {
    await p;
  } catch (e) {
    const err = e as grpc.ServiceError;
    assert.equal(err.code, code, `expected ${grpc.status[code]}, got ${grpc.status[err.code]}: ${err.details}`);
    return err;
  }
  assert.fail(`expected ${grpc.status[code]}, the call succeeded`);
}

describe('proxyless gRPC servers: RBAC and mTLS from Trellis xDS', { timeout: 30_000 }, () => {
  let dir: string;
  let ca: CertificateAuthority;
  let xds: XdsTestServer;
  let mesh: MeshResources;
  const servers: EchoServer[] = [];
  const clients: grpc.Client[] = [];
  const certs: Record<string, string> = {};
  let currentRouting: RoutingModel;
  let security: MeshSecurity;

  const workload = (id: string, namespace: string, app?: string, sa?: string): XdsWorkload => {
    const w: XdsWorkload = { id, namespace, labels: app ? { app } : {} };
    if (sa) w.certDir = certs[`${namespace}/${sa}`];
    return w;
  };
  const client = (target: string, w: XdsWorkload): grpc.Client => {
    const c = workloadClient(EchoClient, target, xds.port, w);
    clients.push(c);
    return c;
  };

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'trellis-xds-server-'));
    ca = await CertificateAuthority.loadOrCreate({ stateDir: join(dir, 'ca') });
    for (const [ns, sa] of [['dns', 'zone-api'], ['dns', 'zone-admin'], ['dns', 'client'], ['dns', 'other']] as const) {
      certs[`${ns}/${sa}`] = await issueCertificateFiles(ca, join(dir, `${ns}-${sa}`), { namespace: ns, serviceAccount: sa });
    }
    const loaded = loadManifests([{ name: 'policies.yaml', text: POLICIES }]);
    assert.deepEqual(loaded.diagnostics.filter((d) => d.severity === 'error'), []);
    security = {
      authz: buildAuthzModel(loaded.resources),
      serviceAccounts: new Map([
        ['dns/zone-api-0', 'zone-api'],
        ['dns/zone-admin-0', 'zone-admin'],
      ]),
    };
    mesh = new MeshResources();
    xds = await startAds(mesh);
    const [zoneApi, zoneAdmin, webApi] = await Promise.all([
      startXdsEchoServer('zone-api', xds.port, workload('zone-api-0', 'dns', 'zone-api', 'zone-api')),
      startXdsEchoServer('zone-admin', xds.port, workload('zone-admin-0', 'dns', 'zone-admin', 'zone-admin')),
      startXdsEchoServer('web-api', xds.port, workload('web-api-0', 'web', 'web-api')),
      // The servers ask for their listeners before there is a model: they wait, not serving, until it comes.
      new Promise((r) => setTimeout(r, 200)).then(() => {
        mesh.update(routing([]), security);
        xds.ads.push();
      }),
    ]);
    servers.push(zoneApi, zoneAdmin, webApi);
    currentRouting = routing([
      { name: 'zone-api', namespace: 'dns', port: 50051, backend: zoneApi },
      { name: 'zone-admin', namespace: 'dns', port: 50052, backend: zoneAdmin },
      { name: 'web-api', namespace: 'web', port: 8080, backend: webApi },
    ]);
    mesh.update(currentRouting, security);
    xds.ads.push();
  });

  after(async () => {
    for (const c of clients) c.close();
    await Promise.all(servers.map((s) => s.close()));
    await xds?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('serves each XdsServer the listener for its own workload: STRICT as mTLS with RBAC, PERMISSIVE as plaintext', () => {
    // Each server serves (before() waited for that) only once it has accepted its listener.
    const listener = (id: string) => {
      const pushed = new Set(xds.events.flatMap((e) => (e.kind === 'push' && e.node.id === id && e.type === TYPE.listener && e.resources === 1 ? [e.version] : [])));
      assert.equal(pushed.size, 1, `${id} got one server listener`);
      assert.ok(!xds.events.some((e) => e.kind === 'nack' && e.node.id === id), `${id} NACKed nothing`);
      const node = { id, cluster: 'test', namespace: id.startsWith('web') ? 'web' : 'dns', labels: { app: id.slice(0, -2) } };
      const s = servers.find((x) => x.name === node.labels.app)!;
      const r = mesh.get(node, TYPE.listener, `${SERVER_LISTENER_PREFIX}${s.address}:${s.port}`);
      assert.ok(r);
      return decodeAny(r.resource) as { filter_chains: { transport_socket?: unknown; filters: { typed_config: { http_filters: { name: string }[] } }[] }[] };
    };
    const api = listener('zone-api-0');
    assert.ok(api.filter_chains[0]?.transport_socket, 'STRICT: a DownstreamTlsContext');
    assert.deepEqual(api.filter_chains[0]?.filters[0]?.typed_config.http_filters.map((f) => f.name), ['envoy.filters.http.rbac', 'envoy.filters.http.router']);
    const admin = listener('zone-admin-0');
    assert.deepEqual(admin.filter_chains[0]?.filters[0]?.typed_config.http_filters.map((f) => f.name), ['envoy.filters.http.rbac', 'envoy.filters.http.rbac.1', 'envoy.filters.http.router']);
    assert.equal(listener('web-api-0').filter_chains[0]?.transport_socket, undefined, 'PERMISSIVE: plaintext');
  });

  it('allows the one method an ALLOW policy names, for the principal in the client certificate', async () => {
    const c = client('xds:///zone-api.dns:50051', workload('client-0', 'dns', 'client', 'client'));
    const r = await unary(c, { message: 'hi' });
    assert.deepEqual(r, { message: 'hi', server: 'zone-api' });
    await rejects(serverStream(c, { message: 'x', count: 2 }), grpc.status.PERMISSION_DENIED);
  });

  it('denies the same method to a client whose certificate names another service account', async () => {
    const c = client('xds:///zone-api.dns:50051', workload('other-0', 'dns', 'other', 'other'));
    await rejects(unary(c, { message: 'hi' }), grpc.status.PERMISSION_DENIED);
  });

  it('lets a DENY policy win over an ALLOW policy for the same method', async () => {
    const c = client('xds:///zone-admin.dns:50052', workload('client-1', 'dns', 'client', 'client'));
    assert.equal((await unary(c, { message: 'a' })).server, 'zone-admin');
    await rejects(serverStream(c, { message: 'x', count: 2 }), grpc.status.PERMISSION_DENIED);
  });

  it('refuses a plaintext client under STRICT', async () => {
    const before = servers[0]!.calls;
    const c = new EchoClient(`${servers[0]!.address}:${servers[0]!.port}`, grpc.credentials.createInsecure());
    clients.push(c);
    await rejects(unary(c, { message: 'hi' }, new grpc.Metadata(), 2000), grpc.status.UNAVAILABLE);
    assert.equal(servers[0]!.calls, before);
  });

  it('refuses a client without Trellis certificates even through xDS under STRICT', async () => {
    // The Cluster asks for mTLS, but this client's bootstrap has no certificate provider: the Cluster is rejected.
    const c = client('xds:///zone-api.dns:50051', workload('bare-0', 'dns', 'client'));
    await rejects(unary(c, { message: 'hi' }, new grpc.Metadata(), 2000), grpc.status.UNAVAILABLE);
  });

  it('checks the server\'s SPIFFE ID: a server holding another identity than its pod\'s is refused', async () => {
    mesh.update(currentRouting, { ...security, serviceAccounts: new Map([['dns/zone-api-0', 'zone-admin']]) });
    xds.ads.push();
    try {
      const c = client('xds:///zone-api.dns:50051', workload('client-4', 'dns', 'client', 'client'));
      const err = await rejects(unary(c, { message: 'hi' }, new grpc.Metadata(), 2000), grpc.status.UNAVAILABLE);
      assert.match(err.details, /subject alternative name/i);
    } finally {
      mesh.update(currentRouting, security);
      xds.ads.push();
    }
  });

  it('serves PERMISSIVE as plaintext: path rules hold, principal rules never match (fail closed)', async () => {
    const c = client('xds:///web-api.web:8080', workload('client-2', 'dns', 'client', 'client'));
    assert.equal((await unary(c, { message: 'w' })).server, 'web-api');
    await rejects(serverStream(c, { message: 'x' }), grpc.status.PERMISSION_DENIED);
  });

  it('takes a policy change without a restart', async () => {
    const loaded = loadManifests([{ name: 'policies.yaml', text: POLICIES.replace(`paths: ["${ECHO}/Unary"]}}]\n---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: zone-admin`, `paths: ["${ECHO}/Unary", "${ECHO}/ServerStream"]}}]\n---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: zone-admin`) }]);
    const c = client('xds:///zone-api.dns:50051', workload('client-3', 'dns', 'client', 'client'));
    await rejects(serverStream(c, { message: 'x' }), grpc.status.PERMISSION_DENIED);
    mesh.update(currentRouting, { ...security, authz: buildAuthzModel(loaded.resources) });
    xds.ads.push();
    let last: unknown;
    for (let i = 0; i < 50; i++) {
      try {
        assert.equal((await serverStream(c, { message: 'x', count: 2 })).length, 2);
        return;
      } catch (e) {
        last = e;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    throw last;
  });
});
