import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodeMessage, encodeMessage, QTYPE, RCODE, type DnsMessage } from './dns-wire.ts';
import { RuntimeError } from './runtime-error.ts';

const base: DnsMessage = { id: 0x1234, qr: true, opcode: 0, aa: true, tc: false, rd: true, ra: false, rcode: RCODE.NOERROR, questions: [], answers: [], authority: [], additional: [] };

describe('DNS wire format', () => {
  it('round-trips every record type it writes, compressing repeated names and keeping the question case', () => {
    const msg: DnsMessage = {
      ...base,
      questions: [{ name: '_GRPC._tcp.Zone-Api.dns.svc.cluster.local', type: QTYPE.SRV, class: 1 }],
      answers: [{ name: '_GRPC._tcp.Zone-Api.dns.svc.cluster.local', type: QTYPE.SRV, class: 1, ttl: 5, data: { type: 'SRV', priority: 0, weight: 100, port: 9090, target: 'zone-api.dns.svc.cluster.local' } }],
      authority: [{ name: 'cluster.local', type: QTYPE.SOA, class: 1, ttl: 5, data: { type: 'SOA', mname: 'ns.dns.cluster.local', rname: 'hostmaster.cluster.local', serial: 7, refresh: 7200, retry: 1800, expire: 86400, minimum: 5 } }],
      additional: [
        { name: 'zone-api.dns.svc.cluster.local', type: QTYPE.A, class: 1, ttl: 5, data: { type: 'A', address: '127.96.0.7' } },
        { name: 'zone-api.dns.svc.cluster.local', type: QTYPE.AAAA, class: 1, ttl: 5, data: { type: 'AAAA', address: 'fd00::7' } },
        { name: '7.0.96.127.in-addr.arpa', type: QTYPE.PTR, class: 1, ttl: 5, data: { type: 'PTR', target: 'zone-api.dns.svc.cluster.local' } },
        { name: 'ext.dns.svc.cluster.local', type: QTYPE.CNAME, class: 1, ttl: 5, data: { type: 'CNAME', target: 'example.com' } },
      ],
      edns: { udpSize: 1232 },
    };
    const wire = encodeMessage(msg);
    const back = decodeMessage(wire);
    assert.deepEqual(back, msg);
    // Every later mention of cluster.local is a 2-byte pointer, not 15 bytes of labels.
    assert.ok(wire.length < 300, `compressed to ${wire.length} bytes`);
  });

  it('sends header and question with TC when the answer does not fit', () => {
    const answers = Array.from({ length: 40 }, (_, i) => ({ name: 'edge.dns.svc.cluster.local', type: QTYPE.A, class: 1, ttl: 5, data: { type: 'A' as const, address: `127.10.0.${i + 1}` } }));
    const msg: DnsMessage = { ...base, questions: [{ name: 'edge.dns.svc.cluster.local', type: QTYPE.A, class: 1 }], answers };
    assert.ok(encodeMessage(msg).length > 512);
    const cut = decodeMessage(encodeMessage(msg, 512));
    assert.equal(cut.tc, true);
    assert.deepEqual(cut.answers, []);
    assert.deepEqual(cut.questions, msg.questions);
  });

  it('refuses malformed messages: loops, forward pointers, overruns, oversize names, bad labels', () => {
    const header = (qd: number) => Buffer.from([0, 1, 0, 0, 0, qd, 0, 0, 0, 0, 0, 0]);
    const cases: [string, Buffer][] = [
      ['short', Buffer.from([0, 1, 0])],
      ['pointer to itself', Buffer.concat([header(1), Buffer.from([0xc0, 12, 0, 1, 0, 1])])],
      ['forward pointer', Buffer.concat([header(1), Buffer.from([0xc0, 20, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0])])],
      ['label past the end', Buffer.concat([header(1), Buffer.from([5, 0x61, 0x62])])],
      ['extended label type', Buffer.concat([header(1), Buffer.from([0x41, 0, 0, 1, 0, 1])])],
      ['truncated question', Buffer.concat([header(1), Buffer.from([1, 0x61, 0, 0])])],
      ['name over 255 bytes', Buffer.concat([header(1), ...Array.from({ length: 5 }, () => Buffer.concat([Buffer.from([63]), Buffer.alloc(63, 0x61)])), Buffer.from([0, 0, 1, 0, 1])])],
      ['too many records', Buffer.from([0, 1, 0, 0, 0xff, 0xff, 0, 0, 0, 0, 0, 0])],
    ];
    for (const [what, buf] of cases) assert.throws(() => decodeMessage(buf), (e: unknown) => e instanceof RuntimeError && e.code === 'DNS_MESSAGE', what);
    assert.throws(() => encodeMessage({ ...base, questions: [{ name: `${'a'.repeat(64)}.com`, type: 1, class: 1 }] }), RuntimeError);
  });

  it('escapes label bytes that are not plain text, and reads them back', () => {
    const msg: DnsMessage = { ...base, questions: [{ name: 'a\\.b\\032c.example', type: QTYPE.A, class: 1 }] };
    assert.deepEqual(decodeMessage(encodeMessage(msg)).questions, msg.questions);
  });
});
