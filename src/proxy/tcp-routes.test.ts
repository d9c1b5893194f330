// Tests of TCP route selection: SNI (exact and wildcard), destination subnets, source labels and namespace, first
// match wins, fallback to the listener's tcpCluster, and weights. Endpoints come from the real policy runtime.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { listener, shopPolicy, SHOP_IPS, TestClusters } from '../../test/support/proxy-l4-harness.ts';
import type { ConnectionInfo } from './contracts.ts';
import type { ListenerConfig } from './proxy-config.ts';
import { pickTcpCluster, usesSni } from './tcp-routes.ts';

const shop = shopPolicy();
const clusters = new TestClusters();
for (const n of ['a', 'b', 'c', 'default']) clusters.add(n, []);

function info(l: ListenerConfig, from: keyof typeof SHOP_IPS, localIp: string, sni?: string): ConnectionInfo {
  const i: ConnectionInfo = {
    id: 1,
    listener: l,
    remote: { ip: SHOP_IPS[from], port: 40000 },
    local: { ip: localIp, port: 443 },
    transport: 'plaintext',
    source: shop.endpointForIp(SHOP_IPS[from]),
    destination: shop.endpointForIp(localIp),
    admission: { allowed: true, audit: false, message: '' },
    acceptedAt: 0n,
  };
  if (sni !== undefined) i.sni = sni;
  return i;
}

describe('pickTcpCluster', () => {
  const l = listener({
    name: 'out',
    direction: 'outbound',
    address: { host: '127.0.0.1', port: 443 },
    protocol: 'tcp',
    tcpCluster: 'default',
    tcpRoutes: [
      { name: 'exact', sniHosts: ['db.example.com'], clusters: [{ cluster: 'a', weight: 100 }] },
      { name: 'wild', sniHosts: ['*.example.com'], clusters: [{ cluster: 'b', weight: 100 }] },
      { name: 'subnet', destinationSubnets: ['10.9.0.0/16'], sourceLabels: { app: 'web' }, clusters: [{ cluster: 'c', weight: 100 }] },
    ],
  });
  const pick = (from: keyof typeof SHOP_IPS, ip: string, sni?: string): string | undefined => pickTcpCluster(l, info(l, from, ip, sni), clusters)?.spec.name;

  it('matches SNI exactly, then by wildcard; the bare domain does not match *.', () => {
    assert.equal(usesSni(l), true);
    assert.equal(pick('api', '10.1.1.1', 'db.example.com'), 'a');
    assert.equal(pick('api', '10.1.1.1', 'x.example.com'), 'b');
    assert.equal(pick('api', '10.1.1.1', 'example.com'), 'default');
  });

  it('matches destination subnets together with source labels, else falls back to tcpCluster', () => {
    assert.equal(pick('web', '10.9.3.4'), 'c');
    assert.equal(pick('api', '10.9.3.4'), 'default', 'source labels do not match');
    assert.equal(pick('web', '10.8.3.4'), 'default', 'outside the subnet');
  });

  it('splits by weight', () => {
    const w = listener({ name: 'w', direction: 'outbound', address: { host: '127.0.0.1', port: 1 }, protocol: 'tcp', tcpRoutes: [{ name: 'split', clusters: [{ cluster: 'a', weight: 80 }, { cluster: 'b', weight: 20 }] }] });
    const counts: Record<string, number> = { a: 0, b: 0 };
    for (let i = 0; i < 2000; i++) counts[pickTcpCluster(w, info(w, 'api', '10.0.0.1'), clusters)!.spec.name]!++;
    assert.ok(counts.a! > 1450 && counts.a! < 1750, JSON.stringify(counts));
    assert.equal(usesSni(w), false);
  });

  it('nothing routes: undefined', () => {
    const n = listener({ name: 'n', direction: 'outbound', address: { host: '127.0.0.1', port: 1 }, protocol: 'tcp', tcpRoutes: [{ name: 's', sniHosts: ['x.y'], clusters: [{ cluster: 'a', weight: 1 }] }] });
    assert.equal(pickTcpCluster(n, info(n, 'api', '10.0.0.1'), clusters), undefined);
  });
});
