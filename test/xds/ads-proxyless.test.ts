// Proxyless gRPC against the Trellis ADS server: real grpc-js-xds clients, real grpc-js servers, loopback only.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type * as grpc from '@grpc/grpc-js';
import type { RoutingModel } from '../../src/routing/model.ts';
import { MeshResources } from '../../src/xds/mesh-resources.ts';
import { EchoClient, startEchoServer, unary, type EchoServer } from '../support/echo-service.ts';
import { startAds, xdsClient, type XdsTestServer } from '../support/xds-harness.ts';

function model(backends: EchoServer[], weights?: number[]): RoutingModel {
  const host = 'zone-api.dns.svc.cluster.local';
  const port = 50051;
  const clusterName = (subset: string) => `outbound|${port}|${subset}|${host}`;
  const subsets = weights ? backends.map((b) => b.name) : [''];
  return {
    listeners: [{ name: `${host}:${port}`, aliases: [`zone-api.dns:${port}`], namespaceLocalAliases: ['zone-api', `zone-api:${port}`], namespace: 'dns', service: 'zone-api', host, port, protocol: 'grpc', routeConfig: `${host}:${port}` }],
    routeConfigs: [{ name: `${host}:${port}`, virtualHosts: [{ name: host, domains: [host, `${host}:${port}`, 'zone-api', `zone-api:${port}`, `zone-api.dns`, `zone-api.dns:${port}`], routes: [{ name: 'default', match: { headers: [] }, action: { type: 'route', clusters: subsets.map((s, i) => ({ cluster: clusterName(s), weight: weights?.[i] ?? 100 })) } }] }] }],
    clusters: subsets.map((s) => ({ name: clusterName(s), host, port, ...(s ? { subset: s } : {}), discovery: 'EDS' as const, lbPolicy: 'ROUND_ROBIN' as const, http2: true, protocol: 'grpc' as const })),
    endpoints: subsets.map((s) => ({
      cluster: clusterName(s),
      endpoints: backends.filter((b) => !s || b.name === s).map((b) => ({ address: b.address, port: b.port, healthy: true, weight: 1, locality: { region: '', zone: '', subZone: '' }, labels: {} })),
    })),
    edges: [],
  };
}

describe('proxyless gRPC through Trellis xDS', () => {
  let backends: EchoServer[];
  let xds: XdsTestServer;
  let mesh: MeshResources;
  const clients: grpc.Client[] = [];

  before(async () => {
    backends = await Promise.all(['a', 'b', 'c'].map((n) => startEchoServer(n)));
    mesh = new MeshResources(model(backends));
    xds = await startAds(mesh);
  });
  after(async () => {
    for (const c of clients) c.close();
    await Promise.all(backends.map((b) => b.close()));
    await xds.close();
  });

  it('routes xds:///zone-api round robin over three backends', async () => {
    const c = xdsClient(EchoClient, 'xds:///zone-api', xds.port, { id: 'client-1', namespace: 'dns' });
    clients.push(c);
    // Until every subchannel is READY, round robin spreads over fewer backends; wait for all three first.
    const warm = new Set<string>();
    for (let i = 0; i < 50 && warm.size < 3; i++) warm.add((await unary(c, { message: 'warm' })).server);
    const seen = new Map<string, number>();
    for (let i = 0; i < 30; i++) {
      const r = await unary(c, { message: `m${i}` });
      seen.set(r.server, (seen.get(r.server) ?? 0) + 1);
    }
    assert.deepEqual([...seen.keys()].sort(), ['a', 'b', 'c']);
    for (const n of seen.values()) assert.equal(n, 10);
    const acks = xds.events.filter((e) => e.kind === 'ack' && e.node.id === 'client-1').map((e) => (e.kind === 'ack' ? e.type : ''));
    for (const t of ['Listener', 'RouteConfiguration', 'Cluster', 'ClusterLoadAssignment']) assert.ok(acks.some((a) => a.endsWith(t)), `ACK for ${t}`);
  });

  it('resolves the canonical name too', async () => {
    const c = xdsClient(EchoClient, 'xds:///zone-api.dns.svc.cluster.local:50051', xds.port, { id: 'client-2', namespace: 'other' });
    clients.push(c);
    const r = await unary(c, { message: 'x' });
    assert.ok(['a', 'b', 'c'].includes(r.server));
  });

  it('applies a 90/10 split within 3 points over 2,000 calls', async () => {
    mesh.update(model(backends, [90, 10, 0]));
    xds.ads.push();
    const c = xdsClient(EchoClient, 'xds:///zone-api', xds.port, { id: 'client-3', namespace: 'dns' });
    clients.push(c);
    await unary(c, { message: 'warm' });
    const counts = { a: 0, b: 0, c: 0 } as Record<string, number>;
    for (let i = 0; i < 2000; i++) counts[(await unary(c, { message: 'x' })).server]! += 1;
    assert.ok(Math.abs((counts.a ?? 0) / 20 - 90) <= 3, `a got ${(counts.a ?? 0) / 20}%`);
    assert.ok(Math.abs((counts.b ?? 0) / 20 - 10) <= 3, `b got ${(counts.b ?? 0) / 20}%`);
    assert.equal(counts.c, 0);
  });
});
