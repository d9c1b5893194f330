import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { endpoint, flow, httpFlow } from '../../test/observe/flow-fixtures.ts';
import { compileFlowFilter, compileFlowFilters, parseLabelSelector, type FlowFilterSpec } from './flow-filter.ts';
import { ObserveError } from './observe-error.ts';

const m = (spec: FlowFilterSpec, f = flow()): boolean => compileFlowFilter(spec)(f);

describe('flow filter', () => {
  it('an empty filter matches everything', () => {
    assert.equal(m({}), true);
  });

  it('pods: namespace/prefix, bare prefix in any namespace, ns/ for the whole namespace', () => {
    assert.equal(m({ source_pod: ['shop/web'] }), true);
    assert.equal(m({ source_pod: ['shop/db'] }), false);
    assert.equal(m({ source_pod: ['other/web'] }), false);
    assert.equal(m({ source_pod: ['web-'] }), true);
    assert.equal(m({ destination_pod: ['shop/'] }), true);
    assert.equal(m({ destination_pod: ['other/'] }), false);
    assert.equal(m({ source_pod: ['other/x', 'shop/w'] }), true, 'any value of a field may match');
    assert.equal(m({ source_pod: ['web'] }, flow({ source: { ...endpoint('', ''), labels: ['reserved:world'] } })), false, 'world has no pod name');
    assert.throws(() => m({ source_pod: ['/web'] }), (e: unknown) => e instanceof ObserveError && e.code === 'bad-filter');
  });

  it('labels: selectors with and without a source prefix, set operators, negation', () => {
    assert.equal(m({ destination_label: ['app=db'] }), true);
    assert.equal(m({ destination_label: ['k8s:app=db'] }), true);
    assert.equal(m({ destination_label: ['app=db,tier=data'] }), true);
    assert.equal(m({ destination_label: ['app=db,tier=web'] }), false);
    assert.equal(m({ destination_label: ['tier in (web, data)'] }), true);
    assert.equal(m({ destination_label: ['tier notin (data)'] }), false);
    assert.equal(m({ destination_label: ['app!=web'] }), true);
    assert.equal(m({ destination_label: ['!tier'] }), false);
    assert.equal(m({ destination_label: ['tier'] }), true);
    assert.equal(m({ source_label: ['tier'] }), false);
    assert.deepEqual(parseLabelSelector('x', 'a in (b,c),d'), [
      { key: 'a', op: 'in', vals: ['b', 'c'] },
      { key: 'd', op: 'exists', vals: [] },
    ]);
    assert.throws(() => m({ source_label: ['a=b c'] }), (e: unknown) => e instanceof ObserveError && e.code === 'bad-filter');
  });

  it('IPs and CIDRs', () => {
    assert.equal(m({ source_ip: ['10.0.1.1'] }), true);
    assert.equal(m({ source_ip: ['10.0.1.2'] }), false);
    assert.equal(m({ destination_ip: ['10.0.0.0/16'] }), true);
    assert.equal(m({ destination_ip: ['10.1.0.0/16'] }), false);
    assert.throws(() => m({ source_ip: ['10.0.0.0/33'] }), ObserveError);
    assert.throws(() => m({ source_ip: ['nope'] }), ObserveError);
  });

  it('services, identities, workloads', () => {
    const f = flow({ destination_service: { name: 'db', namespace: 'shop' } });
    assert.equal(m({ destination_service: ['shop/db'] }, f), true);
    assert.equal(m({ destination_service: ['db'] }, f), true);
    assert.equal(m({ destination_service: ['other/db'] }, f), false);
    assert.equal(m({ source_service: ['shop/'] }, f), false, 'no source service');
    assert.equal(m({ destination_identity: [2000] }), true);
    assert.equal(m({ source_identity: [2000] }), false);
    assert.equal(m({ destination_workload: [{ name: 'db', kind: 'Deployment' }] }), true);
    assert.equal(m({ destination_workload: [{ kind: 'StatefulSet' }] }), false);
  });

  it('verdict, direction, drop reason, reply, node, protocol, ports', () => {
    const dropped = flow({ verdict: 'DROPPED', drop_reason_desc: 'POLICY_DENIED', traffic_direction: 'EGRESS' });
    assert.equal(m({ verdict: ['DROPPED'] }, dropped), true);
    assert.equal(m({ verdict: ['FORWARDED'] }, dropped), false);
    assert.equal(m({ traffic_direction: ['EGRESS'] }, dropped), true);
    assert.equal(m({ drop_reason_desc: ['POLICY_DENIED'] }, dropped), true);
    assert.equal(m({ drop_reason_desc: ['POLICY_DENIED'] }), false);
    assert.equal(m({ reply: [true] }), false);
    assert.equal(m({ reply: [false] }), true);
    assert.equal(m({ node_name: ['node-*'] }), true);
    assert.equal(m({ node_name: ['node-b'] }), false);
    assert.equal(m({ protocol: ['TCP'] }), true);
    assert.equal(m({ protocol: ['udp'] }), false);
    assert.equal(m({ protocol: ['http'] }), false);
    assert.equal(m({ protocol: ['http'] }, httpFlow(200, 'GET', '/')), true);
    assert.equal(m({ destination_port: ['8080'] }), true);
    assert.equal(m({ destination_port: ['80'] }), false);
    assert.throws(() => m({ destination_port: ['70000'] }), ObserveError);
  });

  it('HTTP status (codes and class prefixes), method, path and URL', () => {
    const ok = httpFlow(200, 'GET', 'http://db.shop/api/items?x=1');
    const nf = httpFlow(404, 'post', '/api/missing');
    const err = httpFlow(503, 'GET', '/');
    assert.equal(m({ http_status_code: ['200'] }, ok), true);
    assert.equal(m({ http_status_code: ['4+'] }, nf), true);
    assert.equal(m({ http_status_code: ['4+'] }, err), false);
    assert.equal(m({ http_status_code: ['50+'] }, err), true);
    assert.equal(m({ http_status_code: ['5+'] }), false, 'no L7');
    assert.equal(m({ http_status_code: ['4+'] }, httpFlow(0, 'GET', '/')), false, 'a request has no status');
    assert.throws(() => m({ http_status_code: ['42'] }), ObserveError);
    assert.equal(m({ http_method: ['POST'] }, nf), true);
    assert.equal(m({ http_method: ['GET'] }, nf), false);
    assert.equal(m({ http_path: ['^/api/items$'] }, ok), true, 'the path without scheme, host and query');
    assert.equal(m({ http_path: ['^/api/it$'] }, ok), false);
    assert.equal(m({ http_url: ['x=1'] }, ok), true);
    assert.throws(() => m({ http_path: ['('] }), ObserveError);
  });

  it('whitelist OR, blacklist subtracts, fields within a filter AND', () => {
    const a = flow({ verdict: 'DROPPED' });
    const b = flow();
    const c = flow({ source: endpoint('kube-system', 'coredns-1') });
    const p = compileFlowFilters([{ verdict: ['DROPPED'] }, { source_pod: ['kube-system/'] }], [{ source_pod: ['kube-system/coredns'] }]);
    assert.deepEqual([a, b, c].map(p), [true, false, false]);
    assert.equal(compileFlowFilters([], [{ verdict: ['DROPPED'] }])(b), true);
    assert.equal(compileFlowFilter({ verdict: ['DROPPED'], source_pod: ['kube-system/'] })(a), false);
  });
});
