import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import protobuf from 'protobufjs';
import { httpFlow } from '../../test/observe/flow-fixtures.ts';
import { flowFromProto, flowToProto, LOADER_OPTIONS, rfc3339Of, timeNs } from './observer-protos.ts';

/** The top-level field numbers (and wire types) in an encoded message, in order. */
function tags(buf: Uint8Array): number[] {
  const r = protobuf.Reader.create(buf);
  const out: number[] = [];
  while (r.pos < r.len) {
    const tag = r.uint32();
    out.push(tag >>> 3);
    r.skipType(tag & 7);
  }
  return out;
}

function root(): protobuf.Root {
  const r = new protobuf.Root();
  r.resolvePath = (_o, target) => (target.startsWith('google/') ? target : `${LOADER_OPTIONS.includeDirs[0] ?? ''}/${target}`);
  r.loadSync('observer/observer.proto', { keepCase: true });
  r.resolveAll();
  return r;
}

describe('Observer protos', () => {
  it("encode a flow with Hubble's field numbers", () => {
    const Flow = root().lookupType('flow.Flow');
    const f = httpFlow(403, 'GET', '/x', { verdict: 'DROPPED', drop_reason_desc: 'POLICY_DENIED', ingress_allowed_by: undefined, ingress_denied_by: [{ name: 'p', namespace: 'shop', labels: [], revision: 2, kind: 'CiliumNetworkPolicy' }], trellis: { rule: 'f.yaml:1:1' } });
    delete f.ingress_allowed_by;
    const bytes = Flow.encode(Flow.fromObject(flowToProto(f))).finish();
    const seen = new Set(tags(bytes));
    // time 1, verdict 2, IP 5, l4 6, source 8, destination 9, Type 10, node_name 11, l7 15, traffic_direction 22,
    // drop_reason_desc 25, is_reply 26, uuid 34, ingress_denied_by 21005, Summary 100000; Trellis' own 190001.
    for (const n of [1, 2, 5, 6, 8, 9, 10, 11, 15, 22, 25, 26, 34, 21005, 100000, 190001]) assert.ok(seen.has(n), `field ${n}`);
    const decoded = Flow.toObject(Flow.decode(bytes), { longs: Number, enums: String, defaults: true, oneofs: true });
    assert.equal(decoded.drop_reason_desc, 'POLICY_DENIED');
    const l7 = Flow.decode(bytes) as unknown as { l7: { http: { code: number } } };
    assert.equal(l7.l7.http.code, 403);
    assert.deepEqual(flowFromProto(decoded), f);
  });

  it('a FlowFilter and a GetFlowsRequest use the documented numbers', () => {
    const r = root();
    const Req = r.lookupType('observer.GetFlowsRequest');
    const bytes = Req.encode(Req.fromObject({ number: 5, first: true, follow: true, whitelist: [{ source_pod: ['a/'] }], blacklist: [{ verdict: ['DROPPED'] }], since: { seconds: 1 }, until: { seconds: 2 } })).finish();
    assert.deepEqual(tags(bytes).sort((a, b) => a - b), [1, 3, 5, 6, 7, 8, 9]);
    const FF = r.lookupType('flow.FlowFilter');
    const ff = FF.encode(FF.fromObject({ source_pod: ['x'], destination_pod: ['y'], source_label: ['l'], http_status_code: ['5+'], node_name: ['n'], reply: [true], http_path: ['/'] })).finish();
    assert.deepEqual(tags(ff).sort((a, b) => a - b), [2, 4, 9, 10, 15, 22, 24]);
  });

  it('times keep their nanoseconds', () => {
    const t = '2026-11-22T08:00:01.123456789Z';
    assert.equal(rfc3339Of(timeNs(t) ?? 0n), t);
    assert.equal(timeNs('2026-11-22T09:00:01+01:00'), timeNs('2026-11-22T08:00:01Z'));
    assert.equal(timeNs('yesterday'), undefined);
  });
});
