// The Observer API over real grpc-js on loopback, against a FlowRing of synthetic flows.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { FlowRing } from '../../src/observe/flow-ring.ts';
import { ObserverClient, type FlowsEvent, type ObserverStream } from '../../src/observe/observer-client.ts';
import { timeNs, timestampOf } from '../../src/observe/observer-protos.ts';
import { startObserver, type ObserverServer } from '../../src/observe/observer-server.ts';
import { ObserveError } from '../../src/observe/observe-error.ts';
import { endpoint, flow, httpFlow, timeAt } from './flow-fixtures.ts';

/** Reads events until `n` arrived (or the stream ends), within `ms`. */
async function collect(s: ObserverStream, n = Infinity, ms = 5000): Promise<FlowsEvent[]> {
  const out: FlowsEvent[] = [];
  const timer = setTimeout(() => s.cancel(), ms);
  try {
    for await (const e of s) {
      out.push(e);
      if (out.length >= n) break;
    }
  } finally {
    clearTimeout(timer);
  }
  return out;
}

const uuids = (es: FlowsEvent[]): string[] => es.flatMap((e) => (e.kind === 'flow' ? [e.flow.uuid] : []));
const ts = (ms: number): { seconds: number; nanos: number } => timestampOf(timeNs(timeAt(ms)) ?? 0n);

describe('Observer API over grpc-js', () => {
  const ring = new FlowRing(16);
  let server: ObserverServer;
  let client: ObserverClient;
  const pushed = Array.from({ length: 10 }, (_, i) =>
    i % 3 === 0 ? flow({ time: timeAt(i * 1000), verdict: 'DROPPED', drop_reason_desc: 'POLICY_DENIED', source: endpoint('other', `intruder-${i}`) }) : httpFlow(200 + i, 'GET', `/api/${i}`, { time: timeAt(i * 1000) }),
  );

  before(async () => {
    for (const f of pushed) ring.push(f);
    server = await startObserver({ ring, nodeName: 'node-a', port: 0 });
    client = new ObserverClient(server.address);
  });
  after(async () => {
    client.close();
    await server.close();
  });

  it('number: the last N flows, oldest first, as Hubble flows with the node name', async () => {
    const es = await collect(client.getFlows({ number: 3 }));
    assert.deepEqual(uuids(es), pushed.slice(7).map((f) => f.uuid));
    const first = es[0];
    assert.ok(first?.kind === 'flow');
    assert.equal(first.nodeName, 'node-a');
    assert.deepEqual(first.flow, pushed[7], 'the flow survives the wire field for field');
  });

  it('first: the first N flows', async () => {
    assert.deepEqual(uuids(await collect(client.getFlows({ number: 2, first: true }))), pushed.slice(0, 2).map((f) => f.uuid));
  });

  it('since and until select a time window (inclusive)', async () => {
    const es = await collect(client.getFlows({ since: ts(2000), until: ts(5000) }));
    assert.deepEqual(uuids(es), pushed.slice(2, 6).map((f) => f.uuid));
    const only = await collect(client.getFlows({ since: ts(8000), number: 1, first: true }));
    assert.deepEqual(uuids(only), [pushed[8]?.uuid]);
  });

  it('whitelist and blacklist filters', async () => {
    const dropped = await collect(client.getFlows({ whitelist: [{ verdict: ['DROPPED'] }] }));
    assert.deepEqual(uuids(dropped), pushed.filter((f) => f.verdict === 'DROPPED').map((f) => f.uuid));
    const notOther = await collect(client.getFlows({ blacklist: [{ source_pod: ['other/'] }] }));
    assert.deepEqual(uuids(notOther), pushed.filter((f) => f.source.namespace !== 'other').map((f) => f.uuid));
    const http4 = await collect(client.getFlows({ whitelist: [{ http_status_code: ['20+'], http_path: ['^/api/[45]$'] }] }));
    assert.deepEqual(uuids(http4), [pushed[4]?.uuid, pushed[5]?.uuid]);
  });

  it('a filter it cannot understand, or first with follow, is INVALID_ARGUMENT', async () => {
    await assert.rejects(collect(client.getFlows({ whitelist: [{ source_ip: ['10.0.0.0/99'] }] })), (e: unknown) => e instanceof ObserveError && e.code === 'bad-filter' && /source_ip/.test(e.message));
    await assert.rejects(collect(client.getFlows({ first: true, follow: true })), (e: unknown) => e instanceof ObserveError && e.code === 'bad-filter');
  });

  it('follow: the last N, then new flows as they come, filtered', async () => {
    const s = client.getFlows({ number: 1, follow: true, whitelist: [{ verdict: ['FORWARDED'] }] });
    const got = collect(s, 3);
    await new Promise((r) => setTimeout(r, 100));
    const a = flow();
    const dropped = flow({ verdict: 'DROPPED' });
    const b = flow();
    ring.push(a);
    ring.push(dropped);
    ring.push(b);
    assert.deepEqual(uuids(await got), [pushed[8]?.uuid, a.uuid, b.uuid]);
  });

  it('follow with until ends the stream at the first flow after until', async () => {
    const s = client.getFlows({ follow: true, until: ts(100_000) });
    const got = collect(s);
    await new Promise((r) => setTimeout(r, 100));
    const inside = flow({ time: timeAt(50_000) });
    ring.push(inside);
    ring.push(flow({ time: timeAt(200_000) }));
    assert.deepEqual(uuids(await got), [inside.uuid], 'ended by the server, not by the timeout');
  });

  it('a follower the ring laps is told how many flows it lost, and the count is exact', async () => {
    const s = client.getFlows({ follow: true });
    const marker = flow();
    const got: FlowsEvent[] = [];
    const done = (async () => {
      for await (const e of s) {
        got.push(e);
        if (e.kind === 'flow' && e.flow.Summary === 'last') break;
      }
    })();
    const timer = setTimeout(() => s.cancel(), 5000);
    await new Promise((r) => setTimeout(r, 100));
    ring.push(marker);
    while (!got.some((e) => e.kind === 'flow' && e.flow.uuid === marker.uuid)) await new Promise((r) => setTimeout(r, 10));
    // 100 flows in one turn of the event loop into a ring of 16: the follower can only see the last 16.
    for (let i = 0; i < 100; i++) ring.push(flow({ Summary: i === 99 ? 'last' : 'burst' }));
    await done;
    clearTimeout(timer);
    const lost = got.filter((e) => e.kind === 'lost');
    assert.equal(lost.length, 1);
    assert.ok(lost[0]?.kind === 'lost' && lost[0].source === 'HUBBLE_RING_BUFFER');
    const lostN = lost[0]?.kind === 'lost' ? lost[0].lost : 0;
    const burst = got.filter((e) => e.kind === 'flow' && e.flow.uuid !== marker.uuid).length;
    assert.equal(lostN + burst, 100, `lost ${lostN} + received ${burst}`);
    assert.ok(lostN >= 84);
  });

  it('concurrent GetFlows streams are capped; a closed one frees its place', async () => {
    const small = await startObserver({ ring, nodeName: 'node-s', maxStreams: 1 });
    const c = new ObserverClient(small.address);
    try {
      const first = c.getFlows({ follow: true });
      const firstDone = collect(first, 1, 3000);
      await new Promise((r) => setTimeout(r, 100));
      await assert.rejects(collect(c.getFlows({ number: 1 })), (e: unknown) => e instanceof ObserveError && /too many GetFlows streams/.test(e.message));
      first.cancel();
      await firstDone;
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(uuids(await collect(c.getFlows({ number: 1 }))).length, 1);
    } finally {
      c.close();
      await small.close();
    }
  });

  it('ServerStatus, GetNodes and GetNamespaces', async () => {
    const st = await client.serverStatus();
    assert.equal(st.max_flows, 16);
    assert.equal(st.num_flows, 16);
    assert.equal(st.seen_flows, ring.lastSeq);
    assert.deepEqual(st.num_connected_nodes, { value: 1 });
    assert.ok(Number(st.uptime_ns) > 0);
    const nodes = await client.getNodes();
    assert.equal(nodes.nodes.length, 1);
    assert.equal(nodes.nodes[0]?.name, 'node-a');
    assert.equal(nodes.nodes[0]?.address, server.address);
    assert.equal(nodes.nodes[0]?.state, 'NODE_CONNECTED');
    const ns = await client.getNamespaces();
    assert.deepEqual(ns.namespaces, [{ cluster: 'default', namespace: 'shop' }]);
  });
});
