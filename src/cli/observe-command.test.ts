import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { flow } from '../../test/observe/flow-fixtures.ts';
import { CliError } from './cli-error.ts';
import { buildRequest, parseTime, type ObserveOptions } from './observe-command.ts';
import { compactLine, policyOf } from './observe-format.ts';

const o = (x: Partial<ObserveOptions>): ObserveOptions => ({ server: '127.0.0.1:4245', output: 'compact', ...x });

describe('trellis observe: request building', () => {
  it('defaults to the last 20; --last, --first, --all, --follow', () => {
    assert.equal(buildRequest(o({})).number, 20);
    assert.equal(buildRequest(o({ last: '5' })).number, 5);
    assert.deepEqual([buildRequest(o({ first: '3' })).number, buildRequest(o({ first: '3' })).first], [3, true]);
    assert.equal(buildRequest(o({ all: true })).number, undefined);
    const f = buildRequest(o({ follow: true }));
    assert.deepEqual([f.follow, f.number], [true, undefined]);
    assert.throws(() => buildRequest(o({ first: '1', follow: true })), CliError);
    assert.throws(() => buildRequest(o({ last: '1', all: true })), CliError);
    assert.throws(() => buildRequest(o({ last: 'x' })), CliError);
  });

  it('from/to options AND in one filter; side-less options become one filter per side', () => {
    assert.deepEqual(buildRequest(o({ fromPod: ['web'], toNamespace: ['shop'], verdict: ['dropped'] })).whitelist, [{ source_pod: ['default/web'], destination_pod: ['shop/'], verdict: ['DROPPED'] }]);
    assert.deepEqual(buildRequest(o({ namespace: ['shop'], pod: ['db'], httpStatus: ['5+'] })).whitelist, [
      { http_status_code: ['5+'], source_pod: ['shop/db', 'shop/'] },
      { http_status_code: ['5+'], destination_pod: ['shop/db', 'shop/'] },
    ]);
    assert.deepEqual(buildRequest(o({ ip: ['10.0.0.0/8'] })).whitelist, [{ source_ip: ['10.0.0.0/8'] }, { destination_ip: ['10.0.0.0/8'] }]);
    assert.throws(() => buildRequest(o({ namespace: ['a'], allNamespaces: true })), CliError);
    assert.throws(() => buildRequest(o({ httpStatus: ['abc'] })), /bad filter: http_status_code/);
    assert.throws(() => buildRequest(o({ fromLabel: ['a b=c'] })), CliError);
  });

  it('--since and --until: durations ago or RFC 3339', () => {
    const now = Date.UTC(2026, 10, 22, 9, 0, 0);
    assert.deepEqual(parseTime('1h30m', '--since', now), { seconds: (now - 5_400_000) / 1000, nanos: 0 });
    assert.deepEqual(parseTime('2026-11-22T08:00:00.5Z', '--since', now), { seconds: Date.UTC(2026, 10, 22, 8) / 1000, nanos: 500_000_000 });
    assert.throws(() => parseTime('5 minutes', '--since', now), CliError);
  });
});

describe('trellis observe: output', () => {
  it('a compact line names both ends, the verdict and the deciding policy', () => {
    const f = flow({ time: '2026-11-22T08:00:01.250000000Z', l4: { TCP: { source_port: 40001, destination_port: 8080 } } });
    assert.equal(compactLine(f, 'node-a'), 'Nov 22 08:00:01.250 [node-a]: shop/web-1:40001 (ID:1000) -> shop/db-1:8080 (ID:2000) tcp FORWARDED; allowed by NetworkPolicy shop/allow-web');
    const denied = flow({ verdict: 'DROPPED', ingress_allowed_by: undefined, ingress_denied_by: [{ name: 'deny', namespace: 'shop', labels: [], revision: 1, kind: 'CiliumNetworkPolicy' }], trellis: { rule: 'p.yaml:3:5 spec.ingressDeny[0]' } });
    assert.equal(policyOf(denied), 'denied by CiliumNetworkPolicy shop/deny [p.yaml:3:5 spec.ingressDeny[0]]');
    assert.equal(policyOf(flow({ verdict: 'DROPPED', ingress_allowed_by: undefined })), 'denied: no policy allows it');
  });
});
