import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { buildCluster } from '../model/cluster.ts';
import { loadManifests } from '../resources/load.ts';
import { ClusterDnsServer } from './cluster-dns.ts';
import { ClusterDnsTable } from './cluster-dns-table.ts';
import { decodeMessage, encodeMessage, QTYPE, RCODE, type DnsMessage } from './dns-wire.ts';
import { RuntimeError } from './runtime-error.ts';

// 60 ready pods behind one headless Service: an answer too big for 512 bytes of UDP.
const MANIFESTS = `apiVersion: v1
kind: Service
metadata: {name: zone-api, namespace: dns}
spec: {clusterIP: 10.96.0.10, selector: {app: api}, ports: [{name: grpc, port: 9090}]}
---
apiVersion: v1
kind: Service
metadata: {name: many, namespace: dns}
spec: {clusterIP: None, selector: {app: many}, ports: [{port: 80}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: many, namespace: dns}
spec:
  replicas: 60
  selector: {matchLabels: {app: many}}
  template:
    metadata: {labels: {app: many}}
    spec: {containers: [{name: c}]}
`;

const HOST = '127.0.0.53';
let server: ClusterDnsServer;
let id = 1;

function query(name: string, type: number, extra: Partial<DnsMessage> = {}): DnsMessage {
  return { id: id++, qr: false, opcode: 0, aa: false, tc: false, rd: true, ra: false, rcode: 0, questions: [{ name, type, class: 1 }], answers: [], authority: [], additional: [], ...extra };
}

/** A small stub client: one datagram out, the first reply back (or undefined on timeout). */
function udp(msg: Buffer, timeoutMs = 1000): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    const s = createSocket('udp4');
    const timer = setTimeout(() => {
      s.close();
      resolve(undefined);
    }, timeoutMs);
    s.once('message', (m) => {
      clearTimeout(timer);
      s.close();
      resolve(m);
    });
    s.send(msg, server.port, HOST);
  });
}

/** Sends every message over one TCP connection (in one write: pipelined) and reads as many framed replies. */
function tcp(msgs: Buffer[]): Promise<Buffer[]> {
  return new Promise((resolve, reject) => {
    const c = connect({ host: HOST, port: server.port });
    const framed = msgs.map((m) => Buffer.concat([Buffer.from([m.length >> 8, m.length & 0xff]), m]));
    let buf = Buffer.alloc(0);
    const out: Buffer[] = [];
    const timer = setTimeout(() => {
      c.destroy();
      reject(new Error('tcp timeout'));
    }, 2000);
    c.on('connect', () => c.write(Buffer.concat(framed)));
    c.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        out.push(buf.subarray(2, 2 + buf.readUInt16BE(0)));
        buf = buf.subarray(2 + buf.readUInt16BE(0));
      }
      if (out.length === msgs.length) {
        clearTimeout(timer);
        c.end();
        resolve(out);
      }
    });
    c.on('error', reject);
  });
}

before(async () => {
  const loaded = loadManifests([{ name: 'm.yaml', text: MANIFESTS }]);
  const cluster = buildCluster(loaded.resources);
  const table = new ClusterDnsTable({ cluster, resources: loaded.resources, defaultNamespace: 'dns' });
  server = await ClusterDnsServer.start({ host: HOST, port: 0, resolver: (n, t, ip) => table.resolve(n, t, ip), tcpIdleTimeoutMs: 300 });
});
after(() => server.close());

describe('ClusterDnsServer', () => {
  it('answers over UDP and TCP on one loopback port', async () => {
    const q = query('zone-api', QTYPE.A);
    const viaUdp = decodeMessage((await udp(encodeMessage(q))) ?? Buffer.alloc(0));
    assert.equal(viaUdp.id, q.id);
    assert.deepEqual([viaUdp.qr, viaUdp.aa, viaUdp.rd, viaUdp.rcode], [true, true, true, RCODE.NOERROR]);
    assert.deepEqual(viaUdp.questions, q.questions);
    assert.deepEqual(viaUdp.answers.map((r) => r.data), [{ type: 'A', address: '10.96.0.10' }]);
    const [r1, r2] = (await tcp([encodeMessage(query('zone-api.dns.svc.cluster.local', QTYPE.A)), encodeMessage(query('_grpc._tcp.zone-api', QTYPE.SRV))])).map(decodeMessage);
    assert.deepEqual(r1?.answers.map((r) => r.data), [{ type: 'A', address: '10.96.0.10' }]);
    assert.deepEqual(r2?.answers.map((r) => r.data.type), ['SRV']);
  });

  it('truncates big UDP answers (TC) and gives them whole over TCP, or over UDP with EDNS', async () => {
    const q = query('many', QTYPE.A);
    const small = decodeMessage((await udp(encodeMessage(q))) ?? Buffer.alloc(0));
    assert.deepEqual([small.tc, small.answers.length], [true, 0]);
    const [whole] = (await tcp([encodeMessage(q)])).map(decodeMessage);
    assert.deepEqual([whole?.tc, whole?.answers.length], [false, 60]);
    const edns = decodeMessage((await udp(encodeMessage(query('many', QTYPE.A, { edns: { udpSize: 4096 } })))) ?? Buffer.alloc(0));
    assert.deepEqual([edns.tc, edns.answers.length, edns.edns?.udpSize], [false, 60, 1232]);
  });

  it('refuses names outside the cluster without forwarding them, and zone transfers', async () => {
    for (const [name, type] of [['www.example.com', QTYPE.A], ['dns.svc.cluster.local', QTYPE.AXFR]] as const) {
      const r = decodeMessage((await udp(encodeMessage(query(name, type)))) ?? Buffer.alloc(0));
      assert.equal(r.rcode, RCODE.REFUSED, name);
    }
    assert.ok(server.stats.refused >= 2);
  });

  it('answers FORMERR to garbage with a header, NOTIMP to other opcodes, and drops responses and runts', async () => {
    const garbage = Buffer.concat([encodeMessage(query('x', QTYPE.A)).subarray(0, 12), Buffer.from([0xc0, 0x0c])]);
    const formerr = decodeMessage((await udp(garbage)) ?? Buffer.alloc(0));
    assert.equal(formerr.rcode, RCODE.FORMERR);
    const notimp = decodeMessage((await udp(encodeMessage(query('zone-api', QTYPE.A, { opcode: 2 })))) ?? Buffer.alloc(0));
    assert.equal(notimp.rcode, RCODE.NOTIMP);
    const two = query('a', QTYPE.A);
    two.questions.push({ name: 'b', type: QTYPE.A, class: 1 });
    assert.equal(decodeMessage((await udp(encodeMessage(two))) ?? Buffer.alloc(0)).rcode, RCODE.FORMERR);
    assert.equal(await udp(encodeMessage(query('zone-api', QTYPE.A, { qr: true })), 200), undefined);
    assert.equal(await udp(Buffer.from([1, 2, 3]), 200), undefined);
  });

  it('closes idle TCP connections, and binds only loopback addresses', async () => {
    const c = connect({ host: HOST, port: server.port });
    const t0 = Date.now();
    await new Promise((r) => c.on('close', r).on('error', r));
    assert.ok(Date.now() - t0 < 2000);
    await assert.rejects(ClusterDnsServer.start({ host: '0.0.0.0', port: 0, resolver: () => ({ rcode: 0, authoritative: true, answers: [], authority: [], additional: [] }) }), (e: unknown) => e instanceof RuntimeError && e.code === 'DNS_BIND');
    await assert.rejects(ClusterDnsServer.start({ host: HOST, port: server.port, resolver: () => ({ rcode: 0, authoritative: true, answers: [], authority: [], additional: [] }) }), (e: unknown) => e instanceof RuntimeError && e.code === 'DNS_BIND' && /EADDRINUSE/.test(e.message));
  });
});
