// Opaque TCP end to end through two real proxies (client side → mesh mTLS → server side): bytes round-trip, half-close
// in both directions (the client ends and the server still sends; the server ends first and the client still sends),
// a server-first protocol, and a 50 MB echo checked by hash; both proxies' L3/L4 flows and Istio TCP metrics.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import type { Flow } from '../../src/observe/flow.ts';
import { MeshEnv } from '../support/mesh-env.ts';

const ECHO = 9000;
const FIRST = 9001;
const MANIFESTS = `apiVersion: v1
kind: Service
metadata: {name: db, namespace: data}
spec:
  selector: {app: db}
  ports:
  - {name: echo, port: ${ECHO}, targetPort: ${ECHO}, appProtocol: tcp}
  - {name: tcp-first, port: ${FIRST}, targetPort: ${FIRST}}
`;
const T = { timeout: 30_000 };
const BIG = randomBytes(50 * 1024 * 1024);

function sha(b: Buffer | ReturnType<typeof createHash>): string {
  return Buffer.isBuffer(b) ? createHash('sha256').update(b).digest('hex') : b.digest('hex');
}

/** What the apps saw on each connection. */
interface Seen {
  bytes: number;
  sha: string;
  ended: boolean;
}

/**
 * Port ECHO: echoes every byte; when the client half-closes it waits 200 ms, then sends `BYE <bytes> <sha256>` and
 * ends. Port FIRST (server first): sends a greeting and ends its side at once, then keeps reading until the client ends.
 */
function startApps(ip: string, seen: Seen[]): Promise<net.Server[]> {
  const track = (sock: net.Socket): { rec: Seen; hash: ReturnType<typeof createHash> } => {
    const rec: Seen = { bytes: 0, sha: '', ended: false };
    seen.push(rec);
    const hash = createHash('sha256');
    sock.on('data', (d: Buffer) => {
      rec.bytes += d.length;
      hash.update(d);
    });
    sock.on('error', () => {});
    return { rec, hash };
  };
  const echo = net.createServer({ allowHalfOpen: true }, (sock) => {
    const { rec, hash } = track(sock);
    sock.pipe(sock, { end: false });
    sock.on('end', () => {
      rec.ended = true;
      rec.sha = hash.digest('hex');
      setTimeout(() => sock.end(`BYE ${rec.bytes} ${rec.sha}`), 200);
    });
  });
  const first = net.createServer({ allowHalfOpen: true }, (sock) => {
    const { rec, hash } = track(sock);
    sock.end('HELLO from the server, which is done talking\n');
    sock.on('end', () => {
      rec.ended = true;
      rec.sha = hash.digest('hex');
      sock.destroy();
    });
  });
  return Promise.all(
    [
      [echo, ECHO],
      [first, FIRST],
    ].map(([s, port]) => new Promise<net.Server>((r) => (s as net.Server).listen(port as number, ip, () => r(s as net.Server)))),
  );
}

/** Connects with half-open allowed and collects everything received until the server ends. */
async function connect(host: string, port: number): Promise<{ sock: net.Socket; received: () => Buffer; ended: Promise<void> }> {
  const sock = net.connect({ host, port, allowHalfOpen: true });
  const parts: Buffer[] = [];
  sock.on('data', (d: Buffer) => parts.push(d));
  const ended = new Promise<void>((resolve, reject) => {
    sock.once('end', () => resolve());
    sock.once('error', reject);
    sock.once('close', () => reject(new Error('closed before the server ended its side')));
  });
  ended.catch(() => {});
  await once(sock, 'connect');
  return { sock, received: () => Buffer.concat(parts), ended };
}

async function until(cond: () => boolean, what: string, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

describe('TCP end to end through client and server proxies', () => {
  let env: MeshEnv;
  let apps: net.Server[] = [];
  let out: string;
  const seen: Seen[] = [];

  before(async () => {
    env = await MeshEnv.start({
      subnet: 46,
      pods: [
        { name: 'client', namespace: 'data' },
        { name: 'db', namespace: 'data', ports: [{ port: ECHO, name: 'echo' }, { port: FIRST, name: 'tcp-first' }] },
      ],
      manifests: MANIFESTS,
    });
    out = env.pod('client').outboundIp;
    apps = await startApps(env.pod('db').appIp, seen);
  });

  after(async () => {
    for (const a of apps) a.close();
    await env?.stop();
  });

  it('bytes round-trip interactively on one connection', T, async () => {
    const c = await connect(out, ECHO);
    try {
      for (const msg of ['hello', ' mesh', ' ping-pong']) {
        const before = c.received().length;
        c.sock.write(msg);
        await until(() => c.received().length >= before + msg.length, `the echo of ${msg}`);
      }
      assert.equal(c.received().toString(), 'hello mesh ping-pong');
    } finally {
      c.sock.destroy();
    }
  });

  it('half-close: the client ends its side and the server still sends, then ends', T, async () => {
    const c = await connect(out, ECHO);
    const data = randomBytes(100_000);
    c.sock.end(data);
    await c.ended;
    const got = c.received();
    assert.equal(got.length, data.length + `BYE ${data.length} ${sha(data)}`.length);
    assert.ok(got.subarray(0, data.length).equals(data), 'the echo differs');
    assert.equal(got.subarray(data.length).toString(), `BYE ${data.length} ${sha(data)}`);
    c.sock.destroy();
  });

  it('half-close the other way: a server-first app ends its side and the client still sends', T, async () => {
    const n = seen.length;
    const c = await connect(out, FIRST);
    await c.ended; // the server is done talking...
    assert.equal(c.received().toString(), 'HELLO from the server, which is done talking\n');
    const data = randomBytes(200_000);
    await new Promise<void>((resolve, reject) => c.sock.end(data, () => resolve()).once('error', reject)); // ...but still listens
    await until(() => seen[n]?.ended === true, 'the server to see the client end');
    assert.deepEqual([seen[n]!.bytes, seen[n]!.sha], [data.length, sha(data)]);
    c.sock.destroy();
  });

  it('50 MB echoed through both proxies, checked by hash', { timeout: 60_000 }, async () => {
    const c = await connect(out, ECHO);
    const hash = createHash('sha256');
    let echoed = 0;
    c.sock.removeAllListeners('data');
    const tail: Buffer[] = [];
    c.sock.on('data', (d: Buffer) => {
      const take = Math.min(d.length, BIG.length - echoed);
      hash.update(d.subarray(0, take));
      echoed += take;
      if (take < d.length) tail.push(d.subarray(take));
    });
    for (let i = 0; i < BIG.length; i += 256 * 1024) {
      if (!c.sock.write(BIG.subarray(i, i + 256 * 1024))) await once(c.sock, 'drain');
    }
    c.sock.end();
    await c.ended;
    assert.equal(echoed, BIG.length);
    assert.equal(sha(hash), sha(BIG));
    assert.equal(Buffer.concat(tail).toString(), `BYE ${BIG.length} ${sha(BIG)}`);
    c.sock.destroy();
  });

  it('both proxies record L3/L4 flows with their bytes, and no L7 flows', T, async () => {
    const closing = (f: Flow): boolean => f.Type === 'L3_L4' && (f.trellis?.bytes_sent ?? 0) >= BIG.length;
    const server = await env.waitFlow('db', closing);
    assert.deepEqual([server.verdict, server.traffic_direction, server.trellis?.transport, server.source.pod_name], ['FORWARDED', 'INGRESS', 'mtls', 'client']);
    assert.ok((server.trellis?.bytes_received ?? 0) >= BIG.length);
    assert.equal(server.l4.TCP?.destination_port, ECHO);
    const client = await env.waitFlow('client', closing);
    assert.deepEqual([client.verdict, client.traffic_direction, client.destination.pod_name], ['FORWARDED', 'EGRESS', 'db']);
    assert.ok((client.trellis?.bytes_received ?? 0) >= BIG.length);
    assert.equal(client.l4.TCP?.destination_port, ECHO);
    // The server-first port too.
    await env.waitFlow('db', (f) => f.Type === 'L3_L4' && f.l4.TCP?.destination_port === FIRST && f.verdict === 'FORWARDED');
    for (const pod of ['client', 'db']) {
      const l7 = (await env.flows(pod, 1000)).filter((f) => f.Type === 'L7');
      assert.deepEqual(l7, [], `${pod} recorded L7 flows for TCP traffic`);
    }
  });

  it('the server proxy counts TCP connections and bytes in Istio metrics', T, async () => {
    const text = await env.metrics('db');
    const sum = (name: string): number =>
      [...text.matchAll(new RegExp(`^${name}\\{[^}]*reporter="destination"[^}]*source_workload="client"[^}]*\\} ([\\d.e+]+)`, 'gm'))].reduce((a, m) => a + Number(m[1]), 0);
    assert.ok(sum('istio_tcp_sent_bytes_total') >= BIG.length, `sent ${sum('istio_tcp_sent_bytes_total')}`);
    assert.ok(sum('istio_tcp_received_bytes_total') >= BIG.length, `received ${sum('istio_tcp_received_bytes_total')}`);
    assert.ok(sum('istio_tcp_connections_opened_total') >= 4, `opened ${sum('istio_tcp_connections_opened_total')}`);
    assert.ok(sum('istio_tcp_connections_closed_total') >= 4, `closed ${sum('istio_tcp_connections_closed_total')}`);
  });
});
