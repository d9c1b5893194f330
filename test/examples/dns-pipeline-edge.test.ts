// examples/dns-pipeline edge, in process on loopback: PushZone over real grpc-js, then DNS over UDP and TCP checked
// with a DNS client written for the test (answers, CNAME, NODATA, NXDOMAIN, compression, truncation, errors).
import * as grpc from '@grpc/grpc-js';
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { silentLogger } from '../../examples/dns-pipeline/apps/lib/log.ts';
import { edgeServiceClient, type EdgeServiceApi, type PushZoneResponse, type RecordMsg } from '../../examples/dns-pipeline/apps/lib/protos.ts';
import { startEdge, type Edge } from '../../examples/dns-pipeline/apps/edge/server.ts';
import { decodeResponse, encodeQuery, queryTcp, queryUdp, tcpExchange, udpExchange } from './dns-client.ts';
import { rec, tempDir } from './dns-pipeline-support.ts';

const HOST = '127.0.5.20';

function push(c: EdgeServiceApi, zone: string, serial: number, records: RecordMsg[], o: { count?: number; deleted?: boolean; pin?: string } = {}): Promise<PushZoneResponse> {
  return new Promise((resolve, reject) => {
    const md = new grpc.Metadata();
    const call = c.PushZone(md, { deadline: Date.now() + 10_000 }, (e, r) => (e || !r ? reject(e ?? new Error('no reply')) : resolve(r)));
    call.write({ header: { zone, serial, deleted: o.deleted ?? false, recordCount: o.count ?? records.length } });
    for (let i = 0; i < records.length; i += 3) call.write({ records: { records: records.slice(i, i + 3) } });
    call.end();
  });
}

const ZONE: RecordMsg[] = [
  rec('example.com', 'SOA', 'ns1.example.com hostmaster.example.com 0 3600 600 86400 60'),
  rec('example.com', 'NS', 'ns1.example.com'),
  rec('example.com', 'MX', '10 mail.example.com'),
  rec('example.com', 'TXT', 'v=spf1 mx -all'),
  rec('ns1.example.com', 'A', '192.0.2.53'),
  rec('www.example.com', 'A', '192.0.2.10', 60),
  rec('www.example.com', 'AAAA', '2001:db8::10'),
  rec('api.example.com', 'CNAME', 'www.example.com'),
  rec('out.example.com', 'CNAME', 'www.example.net'),
  rec('_sip._tcp.example.com', 'SRV', '10 5 5060 sip.example.com'),
  rec('deep.sub.example.com', 'A', '192.0.2.99'),
  rec('long.example.com', 'TXT', 'x'.repeat(600)),
];

describe('dns-pipeline edge', () => {
  const dir = tempDir('dns-edge-');
  let edge: Edge;
  let client: EdgeServiceApi;
  const start = async (): Promise<void> => {
    edge = await startEdge({ host: HOST, grpcPort: 0, dnsPort: 0, version: 'v2', pod: 'edge-v2-test', dataDir: dir.path, maxRecords: 1000 }, silentLogger);
    client = edgeServiceClient(`${HOST}:${edge.grpcPort}`);
  };
  before(start);
  after(async () => {
    client.close();
    await edge.close();
    dir.remove();
  });

  it('takes a pushed zone and says which edge took it', async () => {
    const r = await push(client, 'example.com', 1000, ZONE);
    assert.deepEqual(r, { zone: 'example.com', serial: 1000, applied: true, recordCount: ZONE.length, edgeVersion: 'v2', edgePod: 'edge-v2-test' });
  });

  it('answers over UDP and TCP, keeping the question as asked (case) and compressing names', async () => {
    for (const ask of [queryUdp, queryTcp]) {
      const a = await ask(HOST, edge.dnsPort, 'WWW.Example.COM', 'A');
      assert.deepEqual([a.rcode, a.aa, a.tc, a.id], [0, true, false, 0x1234]);
      assert.deepEqual(a.answers, [{ name: 'WWW.Example.COM', type: 'A', ttl: 60, data: '192.0.2.10' }]);
      // 12 header + 21 question + 16 answer: the answer's owner is a 2-byte pointer to the question.
      assert.equal(a.size, 49);
    }
    const aaaa = await queryUdp(HOST, edge.dnsPort, 'www.example.com', 'AAAA');
    assert.equal(aaaa.answers[0]?.data, '2001:db8:0:0:0:0:0:10');
    const mx = await queryUdp(HOST, edge.dnsPort, 'example.com', 'MX');
    assert.deepEqual(mx.answers.map((x) => x.data), ['10 mail.example.com']);
    const srv = await queryTcp(HOST, edge.dnsPort, '_sip._tcp.example.com', 'SRV');
    assert.deepEqual(srv.answers.map((x) => x.data), ['10 5 5060 sip.example.com']);
    const ns = await queryUdp(HOST, edge.dnsPort, 'example.com', 'NS');
    assert.deepEqual(ns.answers.map((x) => x.data), ['ns1.example.com']);
  });

  it('serves the SOA with the zone serial, follows CNAMEs inside the zone, and stops at ones outside it', async () => {
    const soa = await queryUdp(HOST, edge.dnsPort, 'example.com', 'SOA');
    assert.equal(soa.answers[0]?.data, 'ns1.example.com hostmaster.example.com 1000 3600 600 86400 60');
    const api = await queryUdp(HOST, edge.dnsPort, 'api.example.com', 'A');
    assert.deepEqual(api.answers.map((x) => `${x.name} ${x.type} ${x.data}`), ['api.example.com CNAME www.example.com', 'www.example.com A 192.0.2.10']);
    const out = await queryUdp(HOST, edge.dnsPort, 'out.example.com', 'A');
    assert.deepEqual([out.rcode, out.answers.map((x) => x.type)], [0, ['CNAME']]);
  });

  it('says NXDOMAIN, NODATA (also for an empty non-terminal) and REFUSED with the right sections', async () => {
    const nx = await queryUdp(HOST, edge.dnsPort, 'nope.example.com', 'A');
    assert.deepEqual([nx.rcode, nx.aa, nx.answers.length, nx.authority[0]?.type, nx.authority[0]?.ttl], [3, true, 0, 'SOA', 60]);
    const nodata = await queryUdp(HOST, edge.dnsPort, 'www.example.com', 'MX');
    assert.deepEqual([nodata.rcode, nodata.answers.length, nodata.authority[0]?.type], [0, 0, 'SOA']);
    const ent = await queryUdp(HOST, edge.dnsPort, 'sub.example.com', 'A');
    assert.deepEqual([ent.rcode, ent.authority[0]?.type], [0, 'SOA']);
    const other = await queryUdp(HOST, edge.dnsPort, 'www.example.org', 'A');
    assert.deepEqual([other.rcode, other.aa], [5, false]);
    const axfr = await queryTcp(HOST, edge.dnsPort, 'example.com', 'AXFR');
    assert.equal(axfr.rcode, 5);
  });

  it('sets TC over UDP when the answer exceeds 512 bytes without EDNS, and answers whole over TCP or with EDNS', async () => {
    const udp = await queryUdp(HOST, edge.dnsPort, 'long.example.com', 'TXT');
    assert.deepEqual([udp.tc, udp.answers.length, udp.question[0]?.name], [true, 0, 'long.example.com']);
    assert.ok(udp.size <= 512);
    const tcp = await queryTcp(HOST, edge.dnsPort, 'long.example.com', 'TXT');
    assert.deepEqual([tcp.tc, tcp.answers[0]?.data], [false, 'x'.repeat(600)]);
    const edns = await queryUdp(HOST, edge.dnsPort, 'long.example.com', 'TXT', { edns: 1232 });
    assert.deepEqual([edns.tc, edns.answers.length, edns.additional[0]?.type], [false, 1, 'OPT']);
  });

  it('answers several queries on one TCP connection, FORMERR for a malformed one, nothing for garbage', async () => {
    const [a, b] = await tcpExchange(HOST, edge.dnsPort, [encodeQuery('www.example.com', 'A', { id: 1 }), encodeQuery('ns1.example.com', 'A', { id: 2 })]);
    assert.deepEqual([decodeResponse(a as Buffer).id, decodeResponse(b as Buffer).answers[0]?.data], [1, '192.0.2.53']);
    const bad = Buffer.from(encodeQuery('www.example.com', 'A', { id: 7 }));
    bad.writeUInt16BE(2, 4); // two questions
    const formerr = decodeResponse(await udpExchange(HOST, edge.dnsPort, bad));
    assert.deepEqual([formerr.id, formerr.rcode], [7, 1]);
    await assert.rejects(udpExchange(HOST, edge.dnsPort, Buffer.from([1, 2, 3]), 300), /no UDP answer/);
  });

  it('refuses a push that does not match its header, keeps a newer serial, and forgets a deleted zone', async () => {
    await assert.rejects(push(client, 'example.com', 2000, ZONE.slice(0, 2), { count: 5 }), (e: grpc.ServiceError) => e.code === grpc.status.INVALID_ARGUMENT);
    await assert.rejects(push(client, 'example.com', 2000, [rec('x.example.org', 'A', '192.0.2.1')]), (e: grpc.ServiceError) => e.code === grpc.status.INVALID_ARGUMENT);
    const older = await push(client, 'example.com', 999, [rec('www.example.com', 'A', '203.0.113.66')]);
    assert.deepEqual([older.applied, older.serial], [false, 1000]);
    assert.equal((await queryUdp(HOST, edge.dnsPort, 'www.example.com', 'A')).answers[0]?.data, '192.0.2.10');
    await push(client, 'gone.test', 5, [rec('gone.test', 'TXT', 'bye')]);
    const del = await push(client, 'gone.test', 6, [], { deleted: true });
    assert.equal(del.applied, true);
    assert.equal((await queryUdp(HOST, edge.dnsPort, 'gone.test', 'TXT')).rcode, 5);
  });

  it('serves its zones again at once after a restart', async () => {
    client.close();
    await edge.close();
    await start();
    const a = await queryUdp(HOST, edge.dnsPort, 'www.example.com', 'A');
    assert.deepEqual([a.rcode, a.answers[0]?.data], [0, '192.0.2.10']);
  });
});
