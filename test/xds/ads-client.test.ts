// The proxy's xDS client against the real AdsServer over loopback gRPC, for delta and SotW: initial fetch,
// pushes, NACK keeping the last good state, removals, subscription changes, control plane down and back, bounds.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { afterEach, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { AdsClient, type AdsClientOptions, type ResourceSet } from '../../src/xds/ads-client.ts';
import { AdsServer, type XdsEvent } from '../../src/xds/ads-server.ts';
import { encodeAny } from '../../src/xds/protos.ts';
import type { ResourceProvider, VersionedResource } from '../../src/xds/resource-provider.ts';
import { TYPE, WILDCARD_TYPES, type TypeUrl } from '../../src/xds/type-urls.ts';
import type { XdsNode } from '../../src/xds/xds-node.ts';

const { cluster: CDS, endpoint: EDS, listener: LDS, route: RDS } = TYPE;

/** Each Envoy message carries the test's content string in one field, so a change of content changes the bytes. */
function build(type: TypeUrl, name: string, content: string): Record<string, unknown> {
  switch (type) {
    case CDS:
      return { name, alt_stat_name: content };
    case EDS:
      return { cluster_name: name, endpoints: [{ locality: { region: content } }] };
    case LDS:
      return { name, stat_prefix: content };
    case RDS:
      return { name, virtual_hosts: [{ name: content, domains: ['*'] }] };
    default:
      throw new Error(`no test resource for ${type as string}`);
  }
}

/** Reads back the content string from a decoded resource. */
function contentOf(type: string, r: Record<string, unknown> | undefined): string | undefined {
  if (!r) return undefined;
  const first = (v: unknown): Record<string, unknown> | undefined => (Array.isArray(v) ? (v[0] as Record<string, unknown>) : undefined);
  switch (type) {
    case CDS:
      return r.alt_stat_name as string;
    case EDS:
      return (first(r.endpoints)?.locality as { region?: string } | undefined)?.region;
    case LDS:
      return r.stat_prefix as string;
    default:
      return first(r.virtual_hosts)?.name as string;
  }
}

class TestProvider implements ResourceProvider {
  private readonly data = new Map<TypeUrl, Map<string, string>>();

  set(type: TypeUrl, name: string, content: string): this {
    let m = this.data.get(type);
    if (!m) this.data.set(type, (m = new Map<string, string>()));
    m.set(name, content);
    return this;
  }

  delete(type: TypeUrl, name: string): void {
    this.data.get(type)?.delete(name);
  }

  get(_node: XdsNode, type: TypeUrl, name: string): VersionedResource | undefined {
    const c = this.data.get(type)?.get(name);
    if (c === undefined) return undefined;
    return { name, version: createHash('sha256').update(c).digest('hex').slice(0, 12), resource: encodeAny(type, build(type, name, c)) };
  }

  list(node: XdsNode, type: TypeUrl): VersionedResource[] {
    if (!WILDCARD_TYPES.has(type)) return [];
    return [...(this.data.get(type)?.keys() ?? [])].sort().map((n) => this.get(node, type, n) as VersionedResource);
  }
}

function seeded(): TestProvider {
  const p = new TestProvider();
  for (const n of ['c1', 'c2']) p.set(CDS, n, `${n}.v1`);
  for (const n of ['c1', 'c2', 'c3']) p.set(EDS, n, `e-${n}.v1`);
  for (const n of ['l1', 'l2']) p.set(LDS, n, `${n}.v1`);
  for (const n of ['r1', 'r2']) p.set(RDS, n, `${n}.v1`);
  return p;
}

const cleanups: (() => void | Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A request as the server received it (the fields the protocol rules are about). */
interface SeenRequest {
  node?: { id?: string } | null;
  type_url?: string;
  version_info?: string;
  resource_names?: string[];
  response_nonce?: string;
  error_detail?: { message?: string } | null;
  resource_names_subscribe?: string[];
  resource_names_unsubscribe?: string[];
  initial_resource_versions?: Record<string, string>;
}

interface ControlPlane {
  ads: AdsServer;
  events: XdsEvent[];
  /** Every request received, in order, recorded by a server interceptor in front of the real AdsServer. */
  requests: SeenRequest[];
  port: number;
  stop(): Promise<void>;
}

async function controlPlane(provider: TestProvider, port = 0): Promise<ControlPlane> {
  const events: XdsEvent[] = [];
  const requests: SeenRequest[] = [];
  const ads = new AdsServer({ provider, onEvent: (e) => events.push(e) });
  const record: grpc.ServerInterceptor = (_method, call) =>
    new grpc.ServerInterceptingCall(call, {
      start: (next) =>
        next({
          onReceiveMessage: (msg: SeenRequest, nextMsg: (m: SeenRequest) => void) => {
            requests.push(msg);
            nextMsg(msg);
          },
        }),
    });
  const server = new grpc.Server({ interceptors: [record] });
  ads.register(server);
  const bound = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  let stopped = false;
  const stop = (): Promise<void> => {
    if (!stopped) server.forceShutdown();
    stopped = true;
    return Promise.resolve();
  };
  cleanups.push(stop);
  return { ads, events, requests, port: bound, stop };
}

interface Update {
  typeUrl: string;
  set: ResourceSet;
}

interface TestClient {
  c: AdsClient;
  updates: Update[];
  /** The handler's verdict; the default accepts everything. */
  validate: (typeUrl: string, set: ResourceSet) => string[];
  content(type: string, name: string): string | undefined;
  names(type: string): string[];
}

function client(protocol: 'delta' | 'sotw', port: number, extra: Partial<AdsClientOptions> = {}): TestClient {
  const c = new AdsClient({
    target: `127.0.0.1:${port}`,
    protocol,
    node: { id: `sidecar~10.0.0.1~web-1.shop~shop.svc.cluster.local`, cluster: 'web', metadata: { NAMESPACE: 'shop', LABELS: { app: 'web' }, REPLICAS: 3, MESH: true } },
    backoff: { baseMs: 20, maxMs: 100 },
    ...extra,
  });
  cleanups.push(() => c.close());
  const t: TestClient = {
    c,
    updates: [],
    validate: () => [],
    content: (type, name) => contentOf(type, c.resources(type).get(name)?.resource),
    names: (type) => [...c.resources(type).keys()].sort(),
  };
  c.onUpdate((typeUrl, set) => {
    t.updates.push({ typeUrl, set });
    return t.validate(typeUrl, set);
  });
  return t;
}

async function waitFor(cond: () => boolean, what: string, timeoutMs = 4000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Watches the four types the way a proxy does (registered out of order on purpose) and waits for all four ACKs. */
async function fetched(t: TestClient): Promise<void> {
  t.c.watch(RDS, ['r1']);
  t.c.watch(LDS, '*');
  t.c.watch(EDS, ['c1', 'c2']);
  t.c.watch(CDS, '*');
  t.c.start();
  await waitFor(() => [CDS, EDS, LDS, RDS].every((ty) => t.c.status()[ty]?.ackedAt), 'the initial fetch');
}

const serverAcked = (cp: ControlPlane, type: TypeUrl): number => cp.events.filter((e) => e.kind === 'ack' && e.type === type).length;

for (const protocol of ['delta', 'sotw'] as const) {
  describe(`AdsClient over ${protocol} ADS`, { timeout: 30_000 }, () => {
    it('fetches wildcard LDS/CDS and named RDS/EDS, applied clusters first, and identifies its node', async () => {
      const cp = await controlPlane(seeded());
      const t = client(protocol, cp.port);
      let connected = 0;
      t.c.on('connected', () => connected++);
      await fetched(t);
      assert.deepEqual(t.updates.slice(0, 4).map((u) => u.typeUrl), [CDS, EDS, LDS, RDS], 'make before break');
      assert.deepEqual(t.names(CDS), ['c1', 'c2']);
      assert.deepEqual(t.names(EDS), ['c1', 'c2'], 'only the named endpoints');
      assert.deepEqual(t.names(LDS), ['l1', 'l2']);
      assert.deepEqual(t.names(RDS), ['r1']);
      assert.equal(t.content(CDS, 'c2'), 'c2.v1');
      assert.equal(t.content(EDS, 'c1'), 'e-c1.v1');
      assert.equal(t.content(RDS, 'r1'), 'r1.v1');
      assert.ok(t.c.connected);
      assert.equal(connected, 1);
      for (const type of [CDS, EDS, LDS, RDS]) {
        await waitFor(() => serverAcked(cp, type) >= 1, `the server sees the ${type} ACK`);
        const st = t.c.status()[type];
        const ack = cp.events.find((e) => e.kind === 'ack' && e.type === type);
        assert.ok(st && ack?.kind === 'ack');
        assert.equal(st.nonce, ack.nonce);
        assert.ok(st.version.length > 0);
        assert.equal(st.lastError, undefined);
      }
      // The node goes on the first request only; each type's first request carries its subscription.
      assert.deepEqual(cp.requests.map((r) => Boolean(r.node?.id)).indexOf(true), 0);
      assert.equal(cp.requests.filter((r) => r.node?.id).length, 1);
      const firstOf = (type: string): SeenRequest | undefined => cp.requests.find((r) => r.type_url === type);
      const asked = (type: string): string[] | undefined => (protocol === 'delta' ? firstOf(type)?.resource_names_subscribe : firstOf(type)?.resource_names);
      assert.deepEqual([asked(CDS), asked(EDS), asked(LDS), asked(RDS)], [['*'], ['c1', 'c2'], ['*'], ['r1']]);
      // Each ACK echoes its response's nonce without error_detail (SotW: with the response's version_info).
      for (const type of [CDS, EDS, LDS, RDS]) {
        const st = t.c.status()[type];
        const ack = cp.requests.find((r) => r.type_url === type && r.response_nonce === st?.nonce);
        assert.ok(ack, `an ACK request for ${type}`);
        assert.equal(ack.error_detail ?? null, null);
        if (protocol === 'sotw') assert.equal(ack.version_info, st?.version);
      }
      const node = cp.ads.status()[0]?.node;
      assert.equal(node?.namespace, 'shop');
      assert.deepEqual(node?.labels, { app: 'web' });
      assert.equal(node?.pod, 'shop/web-1');
    });

    it('applies a pushed update, keeping unchanged resources as they were', async () => {
      const provider = seeded();
      const cp = await controlPlane(provider);
      const t = client(protocol, cp.port);
      await fetched(t);
      const before = t.c.resources(CDS);
      const versionBefore = t.c.status()[CDS]?.version;
      const acks: string[] = [];
      t.c.on('ack', (a) => acks.push(a.typeUrl));
      provider.set(CDS, 'c1', 'c1.v2');
      cp.ads.push();
      await waitFor(() => t.content(CDS, 'c1') === 'c1.v2', 'the pushed cluster');
      const after = t.c.resources(CDS);
      assert.notEqual(t.c.status()[CDS]?.version, versionBefore);
      assert.equal(after.get('c2'), before.get('c2'), 'an unchanged resource is the same entry');
      assert.notEqual(after.get('c1'), before.get('c1'));
      assert.equal(before.get('c1') && contentOf(CDS, before.get('c1')?.resource), 'c1.v1', 'a set handed out never changes');
      assert.deepEqual(acks, [CDS]);
      assert.equal(t.updates.at(-1)?.typeUrl, CDS);
    });

    it('NACKs a rejected update with every error, keeps the last good state, then applies the next good one', async () => {
      const provider = seeded();
      const cp = await controlPlane(provider);
      const t = client(protocol, cp.port);
      t.validate = (type, set) => (type === LDS ? [...set].filter(([, e]) => contentOf(LDS, e.resource)?.startsWith('bad')).map(([n]) => `${n}: bad listener`) : []);
      await fetched(t);
      const good = t.c.status()[LDS];
      const nacks: string[][] = [];
      t.c.on('nack', (n) => nacks.push(n.errors));
      provider.set(LDS, 'l1', 'bad.1');
      provider.set(LDS, 'l2', 'l2.v2');
      provider.set(LDS, 'l3', 'bad.3');
      cp.ads.push();
      await waitFor(() => cp.events.some((e) => e.kind === 'nack' && e.type === LDS), 'the server to see the NACK');
      const nack = cp.events.find((e) => e.kind === 'nack');
      assert.ok(nack?.kind === 'nack');
      assert.equal(nack.message, 'l1: bad listener; l3: bad listener');
      assert.deepEqual(nacks, [['l1: bad listener', 'l3: bad listener']]);
      assert.deepEqual(t.names(LDS), ['l1', 'l2'], 'the accepted state is untouched');
      assert.equal(t.content(LDS, 'l1'), 'l1.v1');
      assert.equal(t.content(LDS, 'l2'), 'l2.v1');
      const st = t.c.status()[LDS];
      assert.equal(st?.version, good?.version);
      assert.equal(st?.nonce, good?.nonce);
      assert.equal(st?.lastError, 'l1: bad listener; l3: bad listener');
      const nackReq = cp.requests.find((r) => r.type_url === LDS && r.error_detail);
      assert.equal(nackReq?.error_detail?.message, 'l1: bad listener; l3: bad listener');
      assert.equal(nackReq?.response_nonce, nack.nonce);
      if (protocol === 'sotw') assert.equal(nackReq?.version_info, good?.version, 'a SotW NACK names the last good version');
      // Only l1 and l3 are fixed; l2's change from the rejected update comes along with them.
      const acksBefore = serverAcked(cp, LDS);
      provider.set(LDS, 'l1', 'l1.v3');
      provider.delete(LDS, 'l3');
      cp.ads.push();
      await waitFor(() => serverAcked(cp, LDS) > acksBefore, 'the ACK of the good update');
      assert.equal(t.content(LDS, 'l1'), 'l1.v3');
      assert.equal(t.content(LDS, 'l2'), 'l2.v2');
      assert.deepEqual(t.names(LDS), ['l1', 'l2']);
      assert.equal(t.c.status()[LDS]?.lastError, undefined);
      assert.notEqual(t.c.status()[LDS]?.version, good?.version);
    });

    it('NACKs when the handler throws', async () => {
      const provider = seeded();
      const cp = await controlPlane(provider);
      const t = client(protocol, cp.port);
      await fetched(t);
      t.validate = () => {
        throw new Error('boom');
      };
      provider.set(CDS, 'c9', 'c9.v1');
      cp.ads.push();
      await waitFor(() => cp.events.some((e) => e.kind === 'nack' && e.type === CDS), 'the NACK');
      assert.match(t.c.status()[CDS]?.lastError ?? '', /update handler failed: boom/);
      assert.deepEqual(t.names(CDS), ['c1', 'c2']);
    });

    it('removes deleted resources, and follows subscription changes on the live stream', async () => {
      const provider = seeded();
      const cp = await controlPlane(provider);
      const t = client(protocol, cp.port);
      await fetched(t);
      provider.delete(CDS, 'c2');
      provider.delete(LDS, 'l2');
      provider.delete(EDS, 'c2');
      cp.ads.push();
      await waitFor(() => t.names(CDS).length === 1 && t.names(LDS).length === 1, 'the removals');
      assert.deepEqual(t.names(CDS), ['c1']);
      assert.deepEqual(t.names(LDS), ['l1']);
      if (protocol === 'delta') await waitFor(() => t.names(EDS).join() === 'c1', 'removed_resources for EDS');
      else assert.deepEqual(t.names(EDS), ['c1', 'c2'], 'SotW EDS names only what exists; a name goes away when unsubscribed');
      // The proxy follows CDS: it now wants endpoints for c1 and c3, and routes r2 instead of r1.
      t.c.watch(EDS, ['c1', 'c3']);
      t.c.watch(RDS, ['r2']);
      await waitFor(() => t.names(EDS).join() === 'c1,c3' && t.names(RDS).join() === 'r2', 'the new subscription');
      assert.equal(t.content(EDS, 'c3'), 'e-c3.v1');
      const change = cp.requests.find((r) => r.type_url === EDS && (r.resource_names_subscribe ?? r.resource_names ?? []).includes('c3'));
      if (protocol === 'delta') {
        assert.deepEqual(change?.resource_names_subscribe, ['c3']);
        assert.deepEqual(change?.resource_names_unsubscribe, ['c2']);
      } else assert.deepEqual(change?.resource_names, ['c1', 'c3']);
      const subs = cp.ads.status()[0]?.types.get(EDS);
      assert.deepEqual([...(subs?.names ?? [])].sort(), ['c1', 'c3'], 'the server sees the new names');
      // Wildcard to explicit names and back.
      provider.set(LDS, 'l4', 'l4.v1');
      t.c.watch(LDS, ['l4']);
      await waitFor(() => t.names(LDS).join() === 'l4', 'explicit listener names');
      t.c.watch(LDS, '*');
      await waitFor(() => t.names(LDS).join() === 'l1,l4', 'the wildcard again');
    });

    it('keeps its state while the control plane is down and resubscribes when it is back on the same port', async () => {
      const provider = seeded();
      const cp = await controlPlane(provider);
      const t = client(protocol, cp.port);
      await fetched(t);
      const disconnects: Error[] = [];
      let connects = 0;
      t.c.on('disconnected', (e) => disconnects.push(e));
      t.c.on('connected', () => connects++);
      const updates = t.updates.length;
      const held = Object.fromEntries([CDS, EDS, LDS, RDS].map((ty) => [ty, t.c.status()[ty]?.version]));
      await cp.stop();
      await waitFor(() => disconnects.length === 1, 'the disconnect');
      assert.equal(t.c.connected, false);
      assert.ok(disconnects[0] instanceof Error);
      await new Promise((r) => setTimeout(r, 150)); // a few failed reconnects
      assert.deepEqual([t.names(CDS), t.names(EDS), t.names(LDS), t.names(RDS)], [['c1', 'c2'], ['c1', 'c2'], ['l1', 'l2'], ['r1']], 'the last good state stays');
      assert.equal(t.updates.length, updates, 'nothing is applied while down');
      assert.equal(disconnects.length, 1, 'failed attempts are not new disconnects');
      provider.set(CDS, 'c1', 'c1.v9');
      provider.set(LDS, 'l3', 'l3.v1');
      const cp2 = await controlPlane(provider, cp.port);
      await waitFor(() => t.content(CDS, 'c1') === 'c1.v9' && t.names(LDS).includes('l3'), 'the new state after the restart');
      await waitFor(() => [CDS, EDS, LDS, RDS].every((ty) => serverAcked(cp2, ty) >= 1), 'every type ACKed on the new stream');
      assert.ok(t.c.connected);
      assert.equal(connects, 1);
      assert.equal(t.content(EDS, 'c2'), 'e-c2.v1');
      const pushed = (type: TypeUrl): number | undefined => {
        const e = cp2.events.find((x) => x.kind === 'push' && x.type === type);
        return e?.kind === 'push' ? e.resources : undefined;
      };
      assert.equal(cp2.requests[0]?.node?.id, 'sidecar~10.0.0.1~web-1.shop~shop.svc.cluster.local', 'a new stream names its node again');
      for (const type of [CDS, EDS, LDS, RDS]) {
        const first = cp2.requests.find((r) => r.type_url === type);
        assert.equal(first?.response_nonce ?? '', '', 'no nonce from the old stream');
        if (protocol === 'sotw') assert.equal(first?.version_info, held[type], 'SotW resumes from the last ACKed version');
        else assert.deepEqual(Object.keys(first?.initial_resource_versions ?? {}).sort(), type === CDS || type === EDS ? ['c1', 'c2'] : type === LDS ? ['l1', 'l2'] : ['r1']);
      }
      if (protocol === 'delta') {
        // initial_resource_versions told the new server what the client holds: only what changed is sent.
        assert.equal(pushed(CDS), 1);
        assert.equal(pushed(EDS), 0);
        assert.equal(pushed(LDS), 1);
      } else {
        assert.equal(pushed(CDS), 2, 'SotW resends the full state');
      }
      // The EDS and RDS sets were unchanged: their handler is not called again for them.
      assert.deepEqual(new Set(t.updates.slice(updates).map((u) => u.typeUrl)), new Set([CDS, LDS]));
    });
  });
}

describe('AdsClient bounds and lifecycle', { timeout: 20_000 }, () => {
  it('NACKs a response with more resources than the per-type bound, without calling the handler', async () => {
    const cp = await controlPlane(seeded());
    const t = client('delta', cp.port, { maxResourcesPerType: 1 });
    t.c.watch(CDS, '*');
    t.c.start();
    await waitFor(() => cp.events.some((e) => e.kind === 'nack'), 'the NACK');
    const nack = cp.events.find((e) => e.kind === 'nack');
    assert.match(nack?.kind === 'nack' ? nack.message : '', /exceed the limit of 1/);
    assert.equal(t.updates.length, 0);
    assert.equal(t.c.status()[CDS]?.resources, 0);
    assert.throws(() => t.c.watch(EDS, ['a', 'b']), { code: 'bad-watch' });
    assert.throws(() => t.c.watch(EDS, ['*']), { code: 'bad-watch' });
    assert.throws(() => new AdsClient({ target: '127.0.0.1:1', node: { id: 'n', metadata: { f: () => 1 } } }), { code: 'bad-node' });
  });

  it('refuses a message beyond max_receive_message_length and keeps retrying with backoff', async () => {
    const cp = await controlPlane(seeded());
    const t = client('sotw', cp.port, { maxMessageBytes: 64 });
    t.c.watch(CDS, '*');
    t.c.start();
    await waitFor(() => cp.events.filter((e) => e.kind === 'connect').length >= 3, 'several attempts');
    assert.equal(t.updates.length, 0);
    assert.equal(t.c.status()[CDS]?.ackedAt, undefined);
  });

  it('retries a control plane that is not there yet, and close() stops everything', async () => {
    const probe = await controlPlane(seeded());
    const port = probe.port;
    await probe.stop();
    const t = client('delta', port);
    t.c.watch(CDS, '*');
    t.c.start();
    await new Promise((r) => setTimeout(r, 120));
    assert.equal(t.c.connected, false);
    const cp = await controlPlane(seeded(), port);
    await waitFor(() => t.c.status()[CDS]?.ackedAt !== undefined, 'the late control plane');
    t.c.close();
    await waitFor(() => cp.ads.status().length === 0, 'the stream to go away');
    assert.equal(t.c.connected, false);
    t.c.start(); // a closed client stays closed
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(cp.ads.status().length, 0);
  });
});
