// The proxy's config source against a real ADS server: the first complete config is applied; a listener that does
// not translate is NACKed (the server sees the NACK with the located error) and the running config stays; the next
// good version is applied. Both Delta and SotW.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { pino } from 'pino';
import { compileMeshConfig } from '../../src/control-plane/mesh-config.ts';
import type { ProxyConfig } from '../../src/proxy/proxy-config.ts';
import { XdsConfigSource } from '../../src/proxy/xds-config-source.ts';
import { AdsServer, type XdsEvent } from '../../src/xds/ads-server.ts';
import { MeshResources } from '../../src/xds/mesh-resources.ts';
import { encodeAny } from '../../src/xds/protos.ts';
import type { ResourceProvider, VersionedResource } from '../../src/xds/resource-provider.ts';
import { TYPE, type TypeUrl } from '../../src/xds/type-urls.ts';
import type { XdsNode } from '../../src/xds/xds-node.ts';

const MANIFESTS = `apiVersion: v1
kind: Pod
metadata: {name: api, namespace: shop, labels: {app: api}}
spec:
  serviceAccountName: api
  containers: [{name: api, image: x, ports: [{name: http, containerPort: 8080}]}]
status: {podIP: 127.60.1.1}
---
apiVersion: v1
kind: Service
metadata: {name: api, namespace: shop}
spec:
  selector: {app: api}
  ports: [{name: http, port: 8080, targetPort: 8080, appProtocol: http}]
`;

/** Serves the mesh, except that while `broken` is set the inbound listener comes without an address. */
class BreakableProvider implements ResourceProvider {
  broken = false;
  constructor(private readonly mesh: MeshResources) {}
  private patch(r: VersionedResource | undefined): VersionedResource | undefined {
    if (!r || !this.broken || !r.name.startsWith('inbound|')) return r;
    return { name: r.name, version: 'broken', resource: encodeAny(TYPE.listener, { name: r.name, filter_chains: [] }) };
  }
  get(node: XdsNode, type: TypeUrl, name: string): VersionedResource | undefined {
    const r = this.mesh.get(node, type, name);
    return type === TYPE.listener ? this.patch(r) : r;
  }
  list(node: XdsNode, type: TypeUrl): VersionedResource[] {
    const all = this.mesh.list(node, type);
    return type === TYPE.listener ? all.map((r) => this.patch(r) as VersionedResource) : all;
  }
}

const cleanups: (() => void)[] = [];
after(() => {
  for (const c of cleanups.splice(0).reverse()) c();
});

async function serve(): Promise<{ port: number; provider: BreakableProvider; ads: AdsServer; events: XdsEvent[] }> {
  const compiled = compileMeshConfig([{ name: 'mesh.yaml', text: MANIFESTS }]);
  assert.ok(compiled.ok);
  const cfg = compiled.config;
  const mesh = new MeshResources();
  mesh.update(cfg.routing, { authz: cfg.authz }, { cluster: cfg.cluster, resources: cfg.resources });
  const provider = new BreakableProvider(mesh);
  const events: XdsEvent[] = [];
  const ads = new AdsServer({ provider, onEvent: (e) => events.push(e) });
  const server = new grpc.Server();
  ads.register(server);
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  cleanups.push(() => server.forceShutdown());
  return { port, provider, ads, events };
}

async function until(pred: () => boolean, what: string, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

for (const protocol of ['delta', 'sotw'] as const) {
  describe(`proxy config source (${protocol})`, () => {
    it('applies the first complete config, NACKs a broken listener and keeps the last good config, then takes the fix', async () => {
      const { port, provider, ads, events } = await serve();
      const applied: ProxyConfig[] = [];
      const source = new XdsConfigSource({
        target: `127.0.0.1:${port}`,
        node: { id: 'sidecar~127.60.1.1~api.shop~shop.svc.cluster.local', cluster: 'api.shop', metadata: { TRELLIS_PROXY: 'sidecar', NAMESPACE: 'shop', POD_NAME: 'api', OUTBOUND_IP: '127.60.3.1' } },
        protocol,
        backoff: { baseMs: 50, maxMs: 200 },
        logger: pino({ level: 'silent' }),
        apply: (c) => {
          applied.push(c);
          return [];
        },
      });
      cleanups.push(() => source.close());
      source.start();
      await until(() => source.complete, 'the first complete config');
      const good = source.config;
      assert.ok(good);
      assert.deepEqual(good.listeners.map((l) => l.name).sort(), ['inbound|127.60.1.1|8080', 'outbound|127.60.3.1|8080']);
      assert.ok(good.policy, 'the policy snapshot arrived');

      provider.broken = true;
      const refused = once(source, 'refused');
      const count = applied.length;
      ads.push();
      const [r] = (await refused) as [{ typeUrl: string; errors: string[] }];
      assert.equal(r.typeUrl, TYPE.listener);
      assert.match(r.errors.join('\n'), /Listener inbound\|127\.60\.1\.1\|8080: address: needs a socket address/);
      await until(() => events.some((e) => e.kind === 'nack' && e.type === TYPE.listener), 'the server to see the NACK');
      const nack = events.find((e) => e.kind === 'nack');
      assert.ok(nack && nack.kind === 'nack' && /needs a socket address/.test(nack.message));
      await source.settled();
      assert.equal(applied.length, count, 'nothing was applied');
      assert.equal(source.config, good, 'the last good config stays');

      provider.broken = false;
      ads.push();
      await until(() => applied.length > count, 'the fixed config');
      await source.settled();
      assert.deepEqual(source.config?.listeners.map((l) => l.name).sort(), ['inbound|127.60.1.1|8080', 'outbound|127.60.3.1|8080']);
    });
  });
}
