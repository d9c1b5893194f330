// Protocol conformance of the ADS server against Envoy's "xDS REST and gRPC protocol" rules, driven by a raw
// AggregatedDiscoveryService client that sets every request field itself, over a provider the test changes.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, afterEach, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { AdsServer, type TypeSyncState, type XdsEvent } from '../../src/xds/ads-server.ts';
import { encodeAny } from '../../src/xds/protos.ts';
import type { ResourceProvider, VersionedResource } from '../../src/xds/resource-provider.ts';
import { TYPE, WILDCARD_TYPES, type TypeUrl } from '../../src/xds/type-urls.ts';
import type { XdsNode } from '../../src/xds/xds-node.ts';
import { openDelta, openSotw, rawNode, resourceName, type DeltaDiscoveryResponse, type DeltaStream, type DiscoveryResponse, type SotwStream } from '../support/ads-raw-client.ts';

const { cluster: CDS, endpoint: EDS, listener: LDS, route: RDS } = TYPE;
const SECRET = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret';

/** Real Envoy messages, each with one field that carries the test's `content`, so a change changes the bytes. */
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
      throw new Error(`no test content for ${type}`);
  }
}

/** A provider whose content the test sets: name → content per type; versions are content hashes. */
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

  version(type: TypeUrl, name: string): string {
    const c = this.data.get(type)?.get(name);
    assert.ok(c !== undefined, `${name} exists`);
    return createHash('sha256').update(c).digest('hex').slice(0, 16);
  }

  get(_node: XdsNode, type: TypeUrl, name: string): VersionedResource | undefined {
    const c = this.data.get(type)?.get(name);
    if (c === undefined) return undefined;
    return { name, version: this.version(type, name), resource: encodeAny(type, build(type, name, c)) };
  }

  list(node: XdsNode, type: TypeUrl): VersionedResource[] {
    if (!WILDCARD_TYPES.has(type)) return [];
    return [...(this.data.get(type)?.keys() ?? [])].sort().map((n) => this.get(node, type, n) as VersionedResource);
  }
}

function seeded(): TestProvider {
  return new TestProvider()
    .set(CDS, 'c1', 'c1.v1')
    .set(CDS, 'c2', 'c2.v1')
    .set(EDS, 'c1', 'e1.v1')
    .set(EDS, 'c2', 'e2.v1')
    .set(EDS, 'c3', 'e3.v1')
    .set(LDS, 'l1', 'l1.v1')
    .set(LDS, 'l2', 'l2.v1')
    .set(RDS, 'r1', 'r1.v1')
    .set(RDS, 'r2', 'r2.v1');
}

interface Harness {
  provider: TestProvider;
  ads: AdsServer;
  port: number;
  events: XdsEvent[];
  sotw(): SotwStream;
  delta(): DeltaStream;
  /** The server's per-type state for the stream of node `id`. */
  state(id: string, type: TypeUrl): TypeSyncState | undefined;
}

const cleanups: (() => void | Promise<void>)[] = [];

async function runCleanups(): Promise<void> {
  for (const c of cleanups.splice(0).reverse()) await c();
}
afterEach(runCleanups);
after(runCleanups);

async function harness(opts: { maxNamesPerType?: number; maxStreams?: number; provider?: TestProvider } = {}): Promise<Harness> {
  const provider = opts.provider ?? seeded();
  const events: XdsEvent[] = [];
  const ads = new AdsServer({ provider, onEvent: (e) => events.push(e), ...(opts.maxNamesPerType ? { maxNamesPerType: opts.maxNamesPerType } : {}), ...(opts.maxStreams ? { maxStreams: opts.maxStreams } : {}) });
  const server = new grpc.Server();
  ads.register(server);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  cleanups.push(() => server.forceShutdown());
  const track = <S extends { close(): void }>(s: S): S => {
    cleanups.push(() => s.close());
    return s;
  };
  return {
    provider,
    ads,
    port,
    events,
    sotw: () => track(openSotw(port)),
    delta: () => track(openDelta(port)),
    state: (id, type) => ads.status().find((s) => s.node.id === id)?.types.get(type),
  };
}

const names = (r: DiscoveryResponse): string[] => r.resources.map(resourceName).sort();
const deltaNames = (r: DeltaDiscoveryResponse): string[] => r.resources.map((x) => x.name).sort();

/** SotW ACK of a response, keeping the subscription. */
function ack(s: SotwStream, r: DiscoveryResponse, resourceNames: string[]): void {
  s.send({ type_url: r.type_url, version_info: r.version_info, response_nonce: r.nonce, resource_names: resourceNames });
}

/** Waits until the server has processed the ACK or NACK of `nonce` (requests on one stream are handled in order). */
async function answered(h: Harness, node: string, nonce: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (h.events.some((e) => (e.kind === 'ack' || e.kind === 'nack') && e.node.id === node && e.nonce === nonce)) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`no ACK/NACK of nonce ${nonce} from ${node}`);
}

describe('ADS state of the world', () => {
  it('answers the first request of every type, even an empty one, with its own version and a fresh nonce', async () => {
    const h = await harness();
    const s = h.sotw();
    const node = rawNode('n1');
    const cds = await s.request({ node, type_url: CDS });
    const eds = await s.request({ type_url: EDS, resource_names: [] });
    const lds = await s.request({ type_url: LDS, resource_names: ['l1'] });
    const rds = await s.request({ type_url: RDS });
    assert.deepEqual([cds, eds, lds, rds].map((r) => r.type_url), [CDS, EDS, LDS, RDS]);
    assert.deepEqual(names(cds), ['c1', 'c2']);
    assert.deepEqual(names(eds), []);
    assert.deepEqual(names(lds), ['l1']);
    assert.deepEqual(names(rds), []);
    for (const r of [cds, eds, lds, rds]) {
      assert.ok(r.version_info.length > 0, 'a version');
      assert.ok(r.nonce.length > 0, 'a nonce');
      for (const any of r.resources) assert.equal(any.type_url, r.type_url);
    }
    assert.equal(new Set([cds, eds, lds, rds].map((r) => r.nonce)).size, 4, 'nonces are never reused on a stream');
    assert.notEqual(cds.version_info, lds.version_info, 'each type has its own version');
    // Only the first request on a stream carries the node; the server keeps it.
    assert.equal(h.ads.status()[0]?.node.id, 'n1');
    assert.deepEqual(h.events.filter((e) => e.kind === 'push').length, 4);
  });

  it('records an ACK (same nonce, no error_detail) as the acked version and sends nothing back', async () => {
    const h = await harness();
    const s = h.sotw();
    const r = await s.request({ node: rawNode('n1'), type_url: LDS, resource_names: ['l1'] });
    assert.equal(h.state('n1', LDS)?.ackedVersion, undefined);
    ack(s, r, ['l1']);
    assert.deepEqual(await s.drain(), [], 'an ACK is not answered');
    const st = h.state('n1', LDS);
    assert.equal(st?.ackedVersion, r.version_info);
    assert.equal(st?.sentVersion, r.version_info);
    assert.equal(st?.nack, undefined);
    assert.ok(h.events.some((e) => e.kind === 'ack' && e.type === LDS && e.version === r.version_info && e.nonce === r.nonce));
  });

  it('records a NACK, keeps the last good version as acked, resends nothing until content changes', async () => {
    const h = await harness();
    const s = h.sotw();
    const v1 = await s.request({ node: rawNode('n1'), type_url: CDS });
    ack(s, v1, []);
    await answered(h, 'n1', v1.nonce);
    h.provider.set(CDS, 'c1', 'c1.v2');
    h.ads.push();
    const v2 = await s.next();
    assert.notEqual(v2.version_info, v1.version_info);
    // NACK: the previous good version, the nonce of the rejected response, and error_detail.
    s.send({ type_url: CDS, version_info: v1.version_info, response_nonce: v2.nonce, resource_names: [], error_detail: { code: 3, message: 'bad cluster c1' } });
    assert.deepEqual(await s.drain(), [], 'a NACK is not answered with the same content');
    const st = h.state('n1', CDS);
    assert.equal(st?.ackedVersion, v1.version_info, 'acked stays the last good version');
    assert.equal(st?.sentVersion, v2.version_info);
    assert.deepEqual(st?.nack, { version: v2.version_info, nonce: v2.nonce, message: 'bad cluster c1' });
    const nack = h.events.find((e) => e.kind === 'nack');
    assert.ok(nack && nack.kind === 'nack' && nack.version === v2.version_info && nack.message === 'bad cluster c1' && nack.node.id === 'n1');
    // A push without a change does not retry the rejected version.
    h.ads.push();
    assert.deepEqual(await s.drain(), []);
    // A real change does, and its ACK clears the NACK.
    h.provider.set(CDS, 'c1', 'c1.v3');
    h.ads.push();
    const v3 = await s.next();
    assert.notEqual(v3.version_info, v2.version_info);
    ack(s, v3, []);
    await answered(h, 'n1', v3.nonce);
    assert.equal(h.state('n1', CDS)?.ackedVersion, v3.version_info);
    assert.equal(h.state('n1', CDS)?.nack, undefined);
  });

  it('ignores requests with a stale nonce', async () => {
    const h = await harness();
    const s = h.sotw();
    const r1 = await s.request({ node: rawNode('n1'), type_url: EDS, resource_names: ['c1'] });
    h.provider.set(EDS, 'c1', 'e1.v2');
    h.ads.push();
    const r2 = await s.next();
    // The client answers r1 late, and with a new name: r1's nonce is stale now, so no response and no ACK.
    s.send({ type_url: EDS, version_info: r1.version_info, response_nonce: r1.nonce, resource_names: ['c1', 'c2'] });
    assert.deepEqual(await s.drain(), []);
    assert.equal(h.events.filter((e) => e.kind === 'ack' || e.kind === 'nack').length, 0);
    assert.equal(h.state('n1', EDS)?.ackedVersion, undefined);
    assert.deepEqual([...(h.state('n1', EDS)?.names ?? [])], ['c1']);
    // The same request with the current nonce is an ACK of r2 that also subscribes to c2.
    const r3 = await s.request({ type_url: EDS, version_info: r2.version_info, response_nonce: r2.nonce, resource_names: ['c1', 'c2'] });
    assert.deepEqual(names(r3), ['c1', 'c2']);
    assert.equal(h.state('n1', EDS)?.ackedVersion, r2.version_info);
  });

  it('serves explicit subscriptions by name only', async () => {
    const h = await harness();
    const s = h.sotw();
    assert.deepEqual(names(await s.request({ node: rawNode('n1'), type_url: LDS, resource_names: ['l2'] })), ['l2']);
    assert.deepEqual(names(await s.request({ type_url: CDS, resource_names: ['c1'] })), ['c1']);
    assert.deepEqual(names(await s.request({ type_url: EDS, resource_names: ['c2', 'c3'] })), ['c2', 'c3']);
    assert.deepEqual(names(await s.request({ type_url: RDS, resource_names: ['r1'] })), ['r1']);
  });

  it('treats an empty first request or "*" as wildcard only for LDS and CDS', async () => {
    const h = await harness();
    const s = h.sotw();
    const node = rawNode('n1');
    assert.deepEqual(names(await s.request({ node, type_url: LDS })), ['l1', 'l2'], 'legacy wildcard');
    assert.deepEqual(names(await s.request({ type_url: CDS, resource_names: ['*'] })), ['c1', 'c2'], 'explicit wildcard');
    const rds = await s.request({ type_url: RDS });
    assert.deepEqual(names(rds), [], 'an empty RDS request subscribes to nothing');
    const eds = await s.request({ type_url: EDS, resource_names: ['*'] });
    assert.deepEqual(names(eds), [], '"*" is not a wildcard for EDS');
    ack(s, rds, []);
    ack(s, eds, ['*']);
    // New RDS/EDS resources do not reach a client that subscribed to none; new clusters and listeners do.
    h.provider.set(RDS, 'r3', 'r3.v1').set(EDS, 'c4', 'e4.v1').set(CDS, 'c3', 'c3.v1').set(LDS, 'l3', 'l3.v1');
    h.ads.push();
    const pushed = [await s.next(), await s.next()];
    assert.deepEqual(pushed.map((r) => r.type_url), [CDS, LDS]);
    assert.deepEqual(names(pushed[0] as DiscoveryResponse), ['c1', 'c2', 'c3']);
    assert.deepEqual(names(pushed[1] as DiscoveryResponse), ['l1', 'l2', 'l3']);
    assert.deepEqual(await s.drain(), []);
    assert.equal(h.state('n1', RDS)?.wildcard, false);
    assert.equal(h.state('n1', EDS)?.wildcard, false);
  });

  it('leaves the legacy wildcard once names are given; an empty list then unsubscribes from everything', async () => {
    const h = await harness();
    const s = h.sotw();
    const all = await s.request({ node: rawNode('n1'), type_url: CDS });
    assert.deepEqual(names(all), ['c1', 'c2']);
    const both = await s.request({ type_url: CDS, version_info: all.version_info, response_nonce: all.nonce, resource_names: ['*', 'c1'] });
    assert.deepEqual(names(both), ['c1', 'c2'], '"*" and c1: still everything, and c1 is answered again');
    const one = await s.request({ type_url: CDS, version_info: both.version_info, response_nonce: both.nonce, resource_names: ['c1'] });
    assert.deepEqual(names(one), ['c1'], 'dropping "*" leaves only c1');
    const none = await s.request({ type_url: CDS, version_info: one.version_info, response_nonce: one.nonce, resource_names: [] });
    assert.deepEqual(names(none), [], 'an empty list after explicit names is not a wildcard');
    assert.equal(h.state('n1', CDS)?.wildcard, false);
  });

  it('stays unsubscribed after an explicit "*" is dropped with an empty list', async () => {
    const h = await harness();
    const s = h.sotw();
    const all = await s.request({ node: rawNode('n1'), type_url: LDS, resource_names: ['*'] });
    assert.deepEqual(names(all), ['l1', 'l2']);
    const none = await s.request({ type_url: LDS, version_info: all.version_info, response_nonce: all.nonce, resource_names: [] });
    assert.deepEqual(names(none), [], 'an explicit "*" was a subscription; clearing the list unsubscribes it');
    assert.equal(h.state('n1', LDS)?.wildcard, false);
  });

  it('always answers a newly subscribed name, even when nothing else changed', async () => {
    const h = await harness();
    const s = h.sotw();
    const r1 = await s.request({ node: rawNode('n1'), type_url: LDS, resource_names: ['l1'] });
    ack(s, r1, ['l1']);
    await answered(h, 'n1', r1.nonce);
    const r2 = await s.request({ type_url: LDS, version_info: r1.version_info, response_nonce: r1.nonce, resource_names: ['l1', 'l2'] });
    assert.deepEqual(names(r2), ['l1', 'l2']);
    // Re-asking for a name already served by a wildcard must be answered too.
    const w = await s.request({ type_url: CDS });
    ack(s, w, []);
    await answered(h, 'n1', w.nonce);
    const again = await s.request({ type_url: CDS, version_info: w.version_info, response_nonce: w.nonce, resource_names: ['*', 'c2'] });
    assert.deepEqual(names(again), ['c1', 'c2']);
    assert.notEqual(again.nonce, w.nonce);
  });

  it('answers a name that does not exist yet once it appears', async () => {
    const h = await harness();
    const s = h.sotw();
    const r1 = await s.request({ node: rawNode('n1'), type_url: RDS, resource_names: ['r1', 'r-new'] });
    assert.deepEqual(names(r1), ['r1']);
    ack(s, r1, ['r1', 'r-new']);
    h.ads.push();
    assert.deepEqual(await s.drain(), []);
    h.provider.set(RDS, 'r-new', 'new.v1');
    h.ads.push();
    const r2 = await s.next();
    assert.deepEqual(names(r2), ['r-new', 'r1']);
    assert.notEqual(r2.version_info, r1.version_info);
  });

  it('pushes in make-before-break order: CDS, EDS, LDS, RDS', async () => {
    const h = await harness();
    const s = h.sotw();
    // Subscribe in the "wrong" order on purpose.
    const first = [
      await s.request({ node: rawNode('n1'), type_url: RDS, resource_names: ['r1'] }),
      await s.request({ type_url: LDS, resource_names: ['l1'] }),
      await s.request({ type_url: EDS, resource_names: ['c1'] }),
      await s.request({ type_url: CDS, resource_names: ['c1'] }),
    ];
    for (const r of first) ack(s, r, [resourceName(r.resources[0] as DiscoveryResponse['resources'][number])]);
    for (const r of first) await answered(h, 'n1', r.nonce);
    assert.deepEqual(await s.drain(50), []);
    h.provider.set(RDS, 'r1', 'r1.v2').set(LDS, 'l1', 'l1.v2').set(EDS, 'c1', 'e1.v2').set(CDS, 'c1', 'c1.v2');
    h.ads.push();
    const pushed = [await s.next(), await s.next(), await s.next(), await s.next()];
    assert.deepEqual(pushed.map((r) => r.type_url), [CDS, EDS, LDS, RDS]);
    const order = h.events.filter((e) => e.kind === 'push').slice(-4).map((e) => (e.kind === 'push' ? e.type : ''));
    assert.deepEqual(order, [CDS, EDS, LDS, RDS]);
  });

  it('sends nothing when nothing changed, and only the changed type otherwise', async () => {
    const h = await harness();
    const s = h.sotw();
    const node = rawNode('n1');
    for (const [type, rn] of [[CDS, []], [EDS, ['c1', 'c2']], [LDS, []], [RDS, ['r1']]] as const) {
      const r = await s.request({ node, type_url: type, resource_names: [...rn] });
      ack(s, r, [...rn]);
      await answered(h, 'n1', r.nonce);
    }
    assert.deepEqual(await s.drain(50), []);
    const pushesBefore = h.events.filter((e) => e.kind === 'push').length;
    h.provider.set(CDS, 'c1', 'c1.v1'); // the same content again
    h.ads.push();
    h.ads.push();
    assert.deepEqual(await s.drain(), [], 'identical content sends nothing');
    assert.equal(h.events.filter((e) => e.kind === 'push').length, pushesBefore);
    h.provider.set(EDS, 'c2', 'e2.v2');
    h.ads.push();
    const r = await s.next();
    assert.equal(r.type_url, EDS);
    assert.deepEqual(names(r), ['c1', 'c2']);
    assert.deepEqual(await s.drain(), [], 'only EDS changed');
    // A change to a resource nobody subscribed to sends nothing either.
    h.provider.set(EDS, 'c3', 'e3.v2');
    h.ads.push();
    assert.deepEqual(await s.drain(), []);
  });

  it('answers a reconnecting client again, with the same version for the same content', async () => {
    const h = await harness();
    const a = h.sotw();
    const cds1 = await a.request({ node: rawNode('n1'), type_url: CDS });
    const eds1 = await a.request({ type_url: EDS, resource_names: ['c1'] });
    ack(a, cds1, []);
    ack(a, eds1, ['c1']);
    await answered(h, 'n1', eds1.nonce);
    a.close();
    const b = h.sotw();
    // The client presents the versions it has; the old stream's nonce means nothing on a new stream.
    const cds2 = await b.request({ node: rawNode('n1'), type_url: CDS, version_info: cds1.version_info });
    const eds2 = await b.request({ type_url: EDS, version_info: eds1.version_info, response_nonce: eds1.nonce, resource_names: ['c1'] });
    assert.equal(cds2.version_info, cds1.version_info, 'version resumes');
    assert.equal(eds2.version_info, eds1.version_info);
    assert.deepEqual(names(cds2), ['c1', 'c2']);
    assert.deepEqual(names(eds2), ['c1']);
    await b.drain(50);
    assert.equal(h.ads.status().length, 1, 'the closed stream is gone');
    assert.ok(h.events.some((e) => e.kind === 'disconnect' && e.node.id === 'n1'));
  });

  it('refuses streams beyond maxStreams with RESOURCE_EXHAUSTED', async () => {
    const h = await harness({ maxStreams: 1 });
    const first = h.sotw();
    const r = await first.request({ node: rawNode('one'), type_url: EDS, resource_names: ['c1'] });
    assert.deepEqual(names(r), ['c1']);
    const second = h.sotw();
    await assert.rejects(second.request({ node: rawNode('two'), type_url: EDS, resource_names: ['c1'] }), (e: { code?: number }) => e.code === 8);
  });

  it('gives many clients their own subsets and pushes a change only to the affected ones', async () => {
    const h = await harness();
    const subs: Record<string, string[]> = { a: ['c1'], b: ['c2'], c: ['c1', 'c3'] };
    const streams = new Map<string, SotwStream>();
    for (const [id, rn] of Object.entries(subs)) {
      const s = h.sotw();
      streams.set(id, s);
      const r = await s.request({ node: rawNode(id), type_url: EDS, resource_names: rn });
      assert.deepEqual(names(r), rn);
      ack(s, r, rn);
      await answered(h, id, r.nonce);
    }
    h.provider.set(EDS, 'c1', 'e1.v2');
    h.ads.push();
    const got = await Promise.all([...streams.values()].map((s) => s.drain(200)));
    assert.deepEqual(got.map((rs) => rs.length), [1, 0, 1]);
    assert.deepEqual(names(got[0]?.[0] as DiscoveryResponse), ['c1']);
    assert.deepEqual(names(got[2]?.[0] as DiscoveryResponse), ['c1', 'c3']);
    const pushedTo = h.events.filter((e) => e.kind === 'push').slice(-2).map((e) => e.node.id).sort();
    assert.deepEqual(pushedTo, ['a', 'c']);
  });

  it('ignores unknown type URLs without breaking the stream', async () => {
    const h = await harness();
    const s = h.sotw();
    s.send({ node: rawNode('n1'), type_url: SECRET, resource_names: ['cert'] });
    s.send({ type_url: '', resource_names: [] });
    assert.deepEqual(await s.drain(), []);
    const r = await s.request({ type_url: CDS });
    assert.deepEqual(names(r), ['c1', 'c2']);
    assert.equal(h.ads.status()[0]?.node.id, 'n1', 'the node of the first request is kept');
    assert.equal(h.ads.status()[0]?.types.size, 1);
  });

  it('respects maxNamesPerType', async () => {
    const h = await harness({ maxNamesPerType: 2 });
    const s = h.sotw();
    const r = await s.request({ node: rawNode('n1'), type_url: EDS, resource_names: ['c1', 'c2', 'c3', 'c4'] });
    assert.equal(h.state('n1', EDS)?.names.size, 2);
    assert.equal(r.resources.length, 2);
    // "*" does not count against the bound, and a long list does not lose it.
    const c = await s.request({ type_url: CDS, resource_names: ['x1', 'x2', 'x3', '*'] });
    assert.equal(h.state('n1', CDS)?.wildcard, true);
    assert.equal(h.state('n1', CDS)?.names.size, 2);
    assert.deepEqual(names(c), ['c1', 'c2']);
  });
});

describe('ADS delta (incremental)', () => {
  it('starts with a wildcard for LDS/CDS and nothing for RDS/EDS; per-resource versions', async () => {
    const h = await harness();
    const d = h.delta();
    const cds = await d.request({ node: rawNode('d1'), type_url: CDS });
    assert.deepEqual(deltaNames(cds), ['c1', 'c2']);
    for (const r of cds.resources) {
      assert.equal(r.version, h.provider.version(CDS, r.name));
      assert.equal(resourceName(r.resource as NonNullable<typeof r.resource>), r.name);
    }
    assert.deepEqual(cds.removed_resources, []);
    assert.ok(cds.nonce && cds.system_version_info);
    const eds = await d.request({ type_url: EDS });
    assert.deepEqual(deltaNames(eds), [], 'an empty first EDS request is answered, with nothing');
    assert.equal(h.state('d1', EDS)?.wildcard, false);
    const lds = await d.request({ type_url: LDS, resource_names_subscribe: ['*'] });
    assert.deepEqual(deltaNames(lds), ['l1', 'l2']);
    // Per-resource versions: one change sends one resource.
    h.provider.set(CDS, 'c2', 'c2.v2');
    h.ads.push();
    const upd = await d.next();
    assert.equal(upd.type_url, CDS);
    assert.deepEqual(upd.resources.map((r) => [r.name, r.version]), [['c2', h.provider.version(CDS, 'c2')]]);
    assert.deepEqual(await d.drain(), []);
  });

  it('subscribes and unsubscribes by name', async () => {
    const h = await harness();
    const d = h.delta();
    const r1 = await d.request({ node: rawNode('d1'), type_url: EDS, resource_names_subscribe: ['c1'] });
    assert.deepEqual(deltaNames(r1), ['c1']);
    d.send({ type_url: EDS, response_nonce: r1.nonce });
    const r2 = await d.request({ type_url: EDS, resource_names_subscribe: ['c2'] });
    assert.deepEqual(deltaNames(r2), ['c2'], 'only the new name, not c1 again');
    d.send({ type_url: EDS, response_nonce: r2.nonce });
    d.send({ type_url: EDS, resource_names_unsubscribe: ['c1'] });
    assert.deepEqual(await d.drain(), [], 'a plain unsubscribe needs no response');
    h.provider.set(EDS, 'c1', 'e1.v2');
    h.ads.push();
    assert.deepEqual(await d.drain(), [], 'c1 is no longer subscribed');
    h.provider.set(EDS, 'c2', 'e2.v2');
    h.ads.push();
    assert.deepEqual(deltaNames(await d.next()), ['c2']);
    // Phantom unsubscribes are harmless.
    d.send({ type_url: EDS, resource_names_unsubscribe: ['never-subscribed'] });
    assert.deepEqual(await d.drain(), []);
  });

  it('resends a resource named in resource_names_subscribe even if the client should have it', async () => {
    const h = await harness();
    const d = h.delta();
    const r1 = await d.request({ node: rawNode('d1'), type_url: EDS, resource_names_subscribe: ['c1'] });
    d.send({ type_url: EDS, response_nonce: r1.nonce });
    const r2 = await d.request({ type_url: EDS, resource_names_subscribe: ['c1'] });
    assert.deepEqual(deltaNames(r2), ['c1']);
  });

  it('does not resend what initial_resource_versions shows the client has', async () => {
    const h = await harness();
    h.provider.set(EDS, 'gone', 'x');
    const goneVersion = h.provider.version(EDS, 'gone');
    h.provider.delete(EDS, 'gone');
    const d = h.delta();
    const r = await d.request({
      node: rawNode('d1'),
      type_url: EDS,
      resource_names_subscribe: ['c1', 'c2', 'c3', 'gone'],
      initial_resource_versions: { c1: h.provider.version(EDS, 'c1'), c2: 'old', gone: goneVersion },
    });
    assert.deepEqual(deltaNames(r), ['c2', 'c3'], 'c1 is current on the client');
    assert.deepEqual(r.removed_resources, ['gone']);
    const c = await d.request({ type_url: CDS, initial_resource_versions: { c1: h.provider.version(CDS, 'c1'), c2: h.provider.version(CDS, 'c2') } });
    assert.deepEqual(deltaNames(c), [], 'a wildcard client that has everything gets nothing new');
    assert.deepEqual(c.removed_resources, []);
  });

  it('reports deleted resources and subscribed names that do not exist in removed_resources', async () => {
    const h = await harness();
    const d = h.delta();
    const r1 = await d.request({ node: rawNode('d1'), type_url: EDS, resource_names_subscribe: ['c1', 'ghost'] });
    assert.deepEqual(deltaNames(r1), ['c1']);
    assert.deepEqual(r1.removed_resources, ['ghost']);
    d.send({ type_url: EDS, response_nonce: r1.nonce });
    const cds = await d.request({ type_url: CDS });
    d.send({ type_url: CDS, response_nonce: cds.nonce });
    h.provider.delete(EDS, 'c1');
    h.provider.delete(CDS, 'c2');
    h.ads.push();
    const [a, b] = [await d.next(), await d.next()];
    assert.equal(a.type_url, CDS);
    assert.deepEqual(a.removed_resources, ['c2']);
    assert.deepEqual(a.resources, []);
    assert.equal(b.type_url, EDS);
    assert.deepEqual(b.removed_resources, ['c1']);
    // The ghost appears later and is sent then.
    h.provider.set(EDS, 'ghost', 'g.v1');
    h.ads.push();
    const g = await d.next();
    assert.deepEqual(deltaNames(g), ['ghost']);
    assert.deepEqual(g.removed_resources, []);
  });

  it('answers an unsubscribe of an explicit name under a wildcard with the resource or its removal', async () => {
    const h = await harness();
    const d = h.delta();
    const r1 = await d.request({ node: rawNode('d1'), type_url: CDS, resource_names_subscribe: ['*', 'c1', 'extra'] });
    assert.deepEqual(deltaNames(r1), ['c1', 'c2']);
    assert.deepEqual(r1.removed_resources, ['extra']);
    d.send({ type_url: CDS, response_nonce: r1.nonce });
    // c1 stays under the wildcard: it is sent again. "extra" is not in the wildcard: removed.
    const r2 = await d.request({ type_url: CDS, resource_names_unsubscribe: ['c1'] });
    assert.deepEqual(deltaNames(r2), ['c1']);
    const r3 = await d.request({ type_url: CDS, resource_names_unsubscribe: ['extra'] });
    assert.deepEqual(deltaNames(r3), []);
    assert.deepEqual(r3.removed_resources, ['extra']);
  });

  it('matches ACK and NACK by nonce; a stale nonce is no ACK but its subscription changes still count', async () => {
    const h = await harness();
    const d = h.delta();
    const r1 = await d.request({ node: rawNode('d1'), type_url: EDS, resource_names_subscribe: ['c1'] });
    d.send({ type_url: EDS, response_nonce: r1.nonce });
    await answered(h, 'd1', r1.nonce);
    assert.equal(h.state('d1', EDS)?.ackedVersion, r1.system_version_info);
    assert.ok(h.events.some((e) => e.kind === 'ack' && e.nonce === r1.nonce));
    h.provider.set(EDS, 'c1', 'e1.v2');
    h.ads.push();
    const r2 = await d.next();
    d.send({ type_url: EDS, response_nonce: r2.nonce, error_detail: { code: 3, message: 'bad endpoints' } });
    assert.deepEqual(await d.drain(), [], 'a NACK is not answered');
    const st = h.state('d1', EDS);
    assert.equal(st?.ackedVersion, r1.system_version_info, 'the last good version stays acked');
    assert.equal(st?.nack?.message, 'bad endpoints');
    assert.ok(h.events.some((e) => e.kind === 'nack' && e.nonce === r2.nonce));
    h.ads.push();
    assert.deepEqual(await d.drain(), [], 'nothing is resent until content changes');
    h.provider.set(EDS, 'c1', 'e1.v3');
    h.ads.push();
    const r3 = await d.next();
    assert.deepEqual(r3.resources.map((r) => r.version), [h.provider.version(EDS, 'c1')]);
    // A late request carrying r2's (stale) nonce is not an ACK of r3, but it does subscribe to c2.
    const acksBefore = h.events.filter((e) => e.kind === 'ack').length;
    const r4 = await d.request({ type_url: EDS, response_nonce: r2.nonce, resource_names_subscribe: ['c2'] });
    assert.deepEqual(deltaNames(r4), ['c2']);
    assert.equal(h.events.filter((e) => e.kind === 'ack').length, acksBefore);
    assert.equal(h.state('d1', EDS)?.nack?.nonce, r2.nonce);
    d.send({ type_url: EDS, response_nonce: r4.nonce });
    await answered(h, 'd1', r4.nonce);
    assert.equal(h.state('d1', EDS)?.nack, undefined);
    assert.equal(h.state('d1', EDS)?.ackedVersion, r4.system_version_info);
  });

  it('ignores unknown types and respects maxNamesPerType', async () => {
    const h = await harness({ maxNamesPerType: 2 });
    const d = h.delta();
    d.send({ node: rawNode('d1'), type_url: SECRET, resource_names_subscribe: ['cert'] });
    assert.deepEqual(await d.drain(), []);
    const r = await d.request({ type_url: EDS, resource_names_subscribe: ['c1', 'c2', 'c3'] });
    assert.equal(r.resources.length + r.removed_resources.length, 2);
    assert.equal(h.state('d1', EDS)?.names.size, 2);
    const r2 = await d.request({ type_url: EDS, resource_names_subscribe: ['c1', 'c4'] });
    assert.deepEqual(deltaNames(r2), ['c1'], 'names already subscribed are still served at the bound');
    assert.equal(h.state('d1', EDS)?.names.size, 2);
  });
});
