// The relay over two real Observer servers (grpc-js on loopback): time-ordered merge, last N overall, first N per
// peer, following with a reorder window, lost events passed through with the peer's name, unavailable peers named.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createServer } from 'node:net';
import { FlowRing } from '../../src/observe/flow-ring.ts';
import { ObserverClient, type FlowsEvent, type ObserverStream } from '../../src/observe/observer-client.ts';
import { timeNs, timestampOf } from '../../src/observe/observer-protos.ts';
import { startObserver, type ObserverServer } from '../../src/observe/observer-server.ts';
import { startRelay, type ObserverRelay } from '../../src/observe/relay.ts';
import { flow, timeAt } from './flow-fixtures.ts';

async function collect(s: ObserverStream, until: (es: FlowsEvent[]) => boolean = () => false, ms = 5000): Promise<FlowsEvent[]> {
  const out: FlowsEvent[] = [];
  const timer = setTimeout(() => s.cancel(), ms);
  try {
    for await (const e of s) {
      out.push(e);
      if (until(out)) break;
    }
  } finally {
    clearTimeout(timer);
  }
  return out;
}

const flowsOf = (es: FlowsEvent[]): { t: string; node: string; s: string }[] => es.flatMap((e) => (e.kind === 'flow' ? [{ t: e.flow.time, node: e.nodeName, s: e.flow.Summary }] : []));

/** A loopback port nothing listens on. */
async function deadPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

describe('relay', () => {
  const ringA = new FlowRing(16);
  const ringB = new FlowRing(16);
  let a: ObserverServer;
  let b: ObserverServer;
  let relayServer: ObserverServer & { relay: ObserverRelay };
  let client: ObserverClient;

  before(async () => {
    // A holds even seconds, B odd ones, and B's stream is not strictly ordered (7 s arrives before 5 s).
    for (const s of [0, 2, 4, 6]) ringA.push(flow({ time: timeAt(s * 1000), Summary: `a${s}` }));
    for (const s of [1, 3, 7, 5]) ringB.push(flow({ time: timeAt(s * 1000), Summary: `b${s}` }));
    a = await startObserver({ ring: ringA, nodeName: 'node-a' });
    b = await startObserver({ ring: ringB, nodeName: 'node-b' });
    relayServer = await startRelay({ port: 0, reorderWindowMs: 300, peers: [{ name: 'node-a', address: a.address }, { name: 'node-b', address: b.address }] });
    client = new ObserverClient(relayServer.address);
  });
  after(async () => {
    client.close();
    await relayServer.close();
    await a.close();
    await b.close();
  });

  it('merges every peer in time order and says which nodes answered', async () => {
    const es = await collect(client.getFlows({}));
    assert.deepEqual(flowsOf(es).map((f) => f.s), ['a0', 'b1', 'a2', 'b3', 'a4', 'b5', 'a6', 'b7']);
    assert.deepEqual(new Set(flowsOf(es).filter((f) => f.s.startsWith('a')).map((f) => f.node)), new Set(['node-a']));
    const connected = es.find((e) => e.kind === 'node');
    assert.ok(connected?.kind === 'node' && connected.state === 'NODE_CONNECTED');
    assert.deepEqual([...connected.nodeNames].sort(), ['node-a', 'node-b']);
  });

  it('number keeps the newest N overall; first takes N per peer', async () => {
    assert.deepEqual(flowsOf(await collect(client.getFlows({ number: 3 }))).map((f) => f.s), ['b5', 'a6', 'b7']);
    assert.deepEqual(flowsOf(await collect(client.getFlows({ number: 1, first: true }))).map((f) => f.s), ['a0', 'b1']);
  });

  it('filters reach the peers', async () => {
    const window = { since: timestampOf(timeNs(timeAt(3000)) ?? 0n), until: timestampOf(timeNs(timeAt(6000)) ?? 0n) };
    assert.deepEqual(flowsOf(await collect(client.getFlows(window))).map((f) => f.s), ['b3', 'a4', 'b5', 'a6']);
    const one = ringB.get(ringB.lastSeq);
    assert.ok(one);
    assert.deepEqual(flowsOf(await collect(client.getFlows({ whitelist: [{ uuid: [one.uuid] }] }))).map((f) => f.s), ['b5']);
  });

  it('following: a flow that arrives late but is older leaves first, within the reorder window', async () => {
    const s = client.getFlows({ follow: true });
    const got = collect(s, (es) => flowsOf(es).length >= 2);
    await new Promise((r) => setTimeout(r, 300));
    ringA.push(flow({ time: timeAt(20_000), Summary: 'a20' }));
    await new Promise((r) => setTimeout(r, 50));
    ringB.push(flow({ time: timeAt(19_000), Summary: 'b19' }));
    assert.deepEqual(flowsOf(await got).map((f) => f.s), ['b19', 'a20']);
  });

  it('following: a peer added later is followed too, and announced', async () => {
    const ringC = new FlowRing(16);
    const c = await startObserver({ ring: ringC, nodeName: 'node-late' });
    try {
      const s = client.getFlows({ follow: true });
      const got = collect(s, (es) => flowsOf(es).length >= 1);
      await new Promise((r) => setTimeout(r, 300));
      relayServer.relay.addPeer('node-late', c.address);
      await new Promise((r) => setTimeout(r, 300));
      ringC.push(flow({ time: timeAt(25_000), Summary: 'late' }));
      const es = await got;
      assert.deepEqual(flowsOf(es).map((f) => [f.s, f.node]), [['late', 'node-late']]);
      assert.ok(es.some((e) => e.kind === 'node' && e.state === 'NODE_CONNECTED' && e.nodeNames.includes('node-late')));
    } finally {
      relayServer.relay.removePeer('node-late');
      await c.close();
    }
  });

  it("a peer's lost events pass through with its name, and the count is exact", async () => {
    const s = client.getFlows({ follow: true });
    const got = collect(s, (es) => es.some((e) => e.kind === 'flow' && e.flow.Summary === 'last'), 8000);
    await new Promise((r) => setTimeout(r, 300));
    for (let i = 0; i < 100; i++) ringA.push(flow({ time: timeAt(30_000 + i), Summary: i === 99 ? 'last' : 'burst' }));
    const es = await got;
    const lost = es.filter((e) => e.kind === 'lost');
    assert.equal(lost.length, 1);
    const l = lost[0];
    assert.ok(l?.kind === 'lost');
    assert.equal(l.nodeName, 'node-a');
    assert.equal(l.source, 'HUBBLE_RING_BUFFER');
    assert.equal(l.lost + flowsOf(es).length, 100);
  });

  it('an unreachable peer is reported, not skipped: node_status, ServerStatus and GetNodes name it', async () => {
    relayServer.relay.addPeer('node-c', `127.0.0.1:${await deadPort()}`);
    try {
      const es = await collect(client.getFlows({ number: 2 }));
      const down = es.find((e) => e.kind === 'node' && e.state === 'NODE_UNAVAILABLE');
      assert.ok(down?.kind === 'node');
      assert.deepEqual(down.nodeNames, ['node-c']);
      assert.equal(flowsOf(es).length, 2, 'the others still answer');
      const st = await client.serverStatus();
      assert.deepEqual(st.num_connected_nodes, { value: 2 });
      assert.deepEqual(st.num_unavailable_nodes, { value: 1 });
      assert.deepEqual(st.unavailable_nodes, ['node-c']);
      assert.equal(st.max_flows, 32);
      const nodes = (await client.getNodes()).nodes;
      assert.deepEqual(nodes.map((n) => [n.name, n.state]), [['node-a', 'NODE_CONNECTED'], ['node-b', 'NODE_CONNECTED'], ['node-c', 'NODE_UNAVAILABLE']]);
      assert.deepEqual((await client.getNamespaces()).namespaces, [{ cluster: 'default', namespace: 'shop' }]);
    } finally {
      relayServer.relay.removePeer('node-c');
    }
  });
});
