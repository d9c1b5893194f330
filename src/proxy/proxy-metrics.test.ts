import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildCluster } from '../model/cluster.ts';
import type { Flow } from '../observe/flow.ts';
import { resolveEndpoint } from '../policy/endpoint.ts';
import { formatDiagnostic, hasErrors } from '../resources/diagnostics.ts';
import { loadManifests } from '../resources/load.ts';
import { ProxyMetrics, UNKNOWN_WORKLOAD, workloadLabels, type ScopeLabels } from './proxy-metrics.ts';

function endpoints() {
  const loaded = loadManifests([
    {
      name: 'm.yaml',
      text: `apiVersion: apps/v1
kind: Deployment
metadata: {name: front, namespace: web}
spec:
  selector: {matchLabels: {app: front}}
  template:
    metadata: {labels: {app: front, version: v2}}
    spec: {serviceAccountName: front, containers: [{name: app}]}
---
apiVersion: v1
kind: Pod
metadata: {name: api-0, namespace: shop, labels: {app.kubernetes.io/name: api}}
spec: {containers: [{name: app}]}
status: {podIP: 10.1.0.9}
`,
    },
  ]);
  assert.equal(hasErrors(loaded.diagnostics), false, loaded.diagnostics.map(formatDiagnostic).join('\n'));
  const c = buildCluster(loaded.resources);
  const front = [...c.pods.values()].find((p) => p.owner.name === 'front');
  assert.ok(front);
  return { front: resolveEndpoint(c, { ip: front.ips[0] ?? '' }), api: resolveEndpoint(c, 'shop/api-0'), world: resolveEndpoint(c, { ip: '192.0.2.1' }) };
}

const eps = endpoints();
const SCOPE: ScopeLabels = {
  reporter: 'destination',
  source: workloadLabels(eps.front, 'spiffe://cluster.local/ns/web/sa/front'),
  destination: workloadLabels(eps.api, 'spiffe://cluster.local/ns/shop/sa/default'),
  service: { host: 'api.shop.svc.cluster.local', name: 'api', namespace: 'shop' },
  security: 'mutual_tls',
};
const PEERS =
  'reporter="destination",source_workload="front",source_workload_namespace="web",source_principal="spiffe://cluster.local/ns/web/sa/front",source_app="front",source_version="v2",' +
  'destination_workload="api-0",destination_workload_namespace="shop",destination_principal="spiffe://cluster.local/ns/shop/sa/default",destination_app="api",destination_version="unknown",' +
  'destination_service="api.shop.svc.cluster.local",destination_service_name="api",destination_service_namespace="shop"';

/** The sample lines of one metric family (name or name_suffix), without HELP/TYPE. */
function samples(text: string, name: string): string[] {
  return text.split('\n').filter((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `));
}

describe('workloadLabels', () => {
  it('names the owning workload, app and version labels, and the principal given', () => {
    assert.deepEqual({ ...workloadLabels(eps.front) }, { workload: 'front', namespace: 'web', principal: 'unknown', app: 'front', version: 'v2' });
    assert.deepEqual({ ...workloadLabels(eps.api, 'spiffe://td/ns/shop/sa/default') }, { workload: 'api-0', namespace: 'shop', principal: 'spiffe://td/ns/shop/sa/default', app: 'api', version: 'unknown' });
    assert.equal(workloadLabels(eps.world), UNKNOWN_WORKLOAD);
    assert.equal(workloadLabels(eps.front), workloadLabels(eps.front), 'cached per pod');
  });
});

describe('ProxyMetrics', () => {
  it('exposes istio_requests_total with Istio’s full label set, one series per label tuple', async () => {
    const m = new ProxyMetrics();
    const scope = m.scope(SCOPE);
    assert.equal(m.scope({ ...SCOPE, source: { ...SCOPE.source } }), scope, 'equal labels give the same scope');
    m.recordRequest(scope, { protocol: 'http', responseCode: 200, durationMs: 0.3, requestBytes: 0, responseBytes: 1024 });
    m.recordRequest(scope, { protocol: 'http', responseCode: 200, durationMs: 3, requestBytes: 10, responseBytes: 1024 });
    m.recordRequest(scope, { protocol: 'grpc', responseCode: 200, grpcStatus: 7, durationMs: 700, requestBytes: 5, responseBytes: 0 });
    m.recordRequest(scope, { protocol: 'http', responseCode: 503, responseFlags: 'UF', durationMs: 1, requestBytes: 0, responseBytes: 19 });
    const text = await m.metrics();
    assert.match(text, /^# HELP istio_requests_total /m);
    assert.match(text, /^# TYPE istio_requests_total counter$/m);
    assert.deepEqual(samples(text, 'istio_requests_total').sort(), [
      `istio_requests_total{${PEERS},request_protocol="grpc",response_code="200",grpc_response_status="7",response_flags="-",connection_security_policy="mutual_tls"} 1`,
      `istio_requests_total{${PEERS},request_protocol="http",response_code="200",grpc_response_status="",response_flags="-",connection_security_policy="mutual_tls"} 2`,
      `istio_requests_total{${PEERS},request_protocol="http",response_code="503",grpc_response_status="",response_flags="UF",connection_security_policy="mutual_tls"} 1`,
    ]);
    assert.equal(m.contentType, 'text/plain; version=0.0.4; charset=utf-8');
  });

  it('fills the duration and size histograms with Istio’s buckets, cumulative, with sum and count', async () => {
    const m = new ProxyMetrics();
    const scope = m.scope(SCOPE);
    for (const d of [0.3, 3, 700]) m.recordRequest(scope, { protocol: 'http', responseCode: 200, durationMs: d, requestBytes: d * 10, responseBytes: 1024 });
    const text = await m.metrics();
    assert.match(text, /^# TYPE istio_request_duration_milliseconds histogram$/m);
    const tail = ',request_protocol="http",response_code="200",grpc_response_status="",response_flags="-",connection_security_policy="mutual_tls"';
    const buckets = samples(text, 'istio_request_duration_milliseconds_bucket').map((l) => {
      assert.ok(l.startsWith(`istio_request_duration_milliseconds_bucket{${PEERS}${tail},le="`), l);
      return l.slice(l.indexOf(',le="') + 5).replace('"} ', ' ');
    });
    assert.deepEqual(buckets, ['0.5 1', '1 1', '5 2', '10 2', '25 2', '50 2', '100 2', '250 2', '500 2', '1000 3', '2500 3', '5000 3', '10000 3', '30000 3', '60000 3', '300000 3', '600000 3', '1800000 3', '3600000 3', '+Inf 3']);
    assert.deepEqual(samples(text, 'istio_request_duration_milliseconds_sum'), [`istio_request_duration_milliseconds_sum{${PEERS}${tail}} 703.3`]);
    assert.deepEqual(samples(text, 'istio_request_duration_milliseconds_count'), [`istio_request_duration_milliseconds_count{${PEERS}${tail}} 3`]);
    assert.deepEqual(samples(text, 'istio_request_bytes_sum'), [`istio_request_bytes_sum{${PEERS}${tail}} 7033`]);
    assert.ok(samples(text, 'istio_response_bytes_bucket').some((l) => l.endsWith(',le="1000"} 0')));
    assert.ok(samples(text, 'istio_response_bytes_bucket').some((l) => l.endsWith(',le="2500"} 3')));
  });

  it('counts TCP connections and bytes per response flags', async () => {
    const m = new ProxyMetrics();
    const scope = m.scope({ ...SCOPE, reporter: 'source', security: 'unknown' });
    m.recordTcpOpen(scope);
    m.recordTcpOpen(scope);
    m.recordTcpBytes(scope, 100, 40);
    m.recordTcpClose(scope, 5, 6);
    m.recordTcpClose(scope, 0, 0, 'UF');
    const text = await m.metrics();
    const peers = PEERS.replace('reporter="destination"', 'reporter="source"');
    const ok = `{${peers},request_protocol="tcp",response_flags="-",connection_security_policy="unknown"}`;
    const uf = `{${peers},request_protocol="tcp",response_flags="UF",connection_security_policy="unknown"}`;
    assert.deepEqual(samples(text, 'istio_tcp_connections_opened_total'), [`istio_tcp_connections_opened_total${ok} 2`]);
    assert.deepEqual(samples(text, 'istio_tcp_connections_closed_total'), [`istio_tcp_connections_closed_total${ok} 1`, `istio_tcp_connections_closed_total${uf} 1`]);
    assert.deepEqual(samples(text, 'istio_tcp_sent_bytes_total'), [`istio_tcp_sent_bytes_total${ok} 105`]);
    assert.deepEqual(samples(text, 'istio_tcp_received_bytes_total'), [`istio_tcp_received_bytes_total${ok} 46`]);
    assert.deepEqual(samples(text, 'istio_requests_total'), []);
  });

  it('counts drops per policy and flows as Hubble does', async () => {
    const m = new ProxyMetrics();
    m.recordDrop('ingress', { kind: 'CiliumNetworkPolicy', namespace: 'shop', name: 'l7' });
    m.recordDrop('ingress', { kind: 'CiliumNetworkPolicy', namespace: 'shop', name: 'l7' });
    m.recordDrop('egress');
    const flow = (Type: Flow['Type'], verdict: Flow['verdict']): Flow => ({ Type, verdict }) as Flow;
    m.observeFlow(flow('L7', 'FORWARDED'));
    m.observeFlow(flow('L7', 'FORWARDED'));
    m.push(flow('L7', 'DROPPED'));
    m.observeFlow(flow('L3_L4', 'DROPPED'));
    m.observeFlow(flow('L3_L4', 'FORWARDED'));
    const text = await m.metrics();
    assert.deepEqual(samples(text, 'trellis_policy_drops_total').sort(), [
      'trellis_policy_drops_total{policy_kind="CiliumNetworkPolicy",policy_namespace="shop",policy_name="l7",direction="ingress"} 2',
      'trellis_policy_drops_total{policy_kind="none",policy_namespace="",policy_name="default-deny",direction="egress"} 1',
    ]);
    assert.deepEqual(samples(text, 'hubble_flows_processed_total').sort(), [
      'hubble_flows_processed_total{type="Drop",subtype="",verdict="DROPPED"} 1',
      'hubble_flows_processed_total{type="L7",subtype="HTTP",verdict="DROPPED"} 1',
      'hubble_flows_processed_total{type="L7",subtype="HTTP",verdict="FORWARDED"} 2',
      'hubble_flows_processed_total{type="PolicyVerdict",subtype="",verdict="FORWARDED"} 1',
    ]);
  });

  it('escapes label values and keeps every sample line in Prometheus text format', async () => {
    const m = new ProxyMetrics();
    const scope = m.scope({ ...SCOPE, source: { ...SCOPE.source, workload: 'we"ird\\na\nme' } });
    m.recordRequest(scope, { protocol: 'http', responseCode: 200, durationMs: 1, requestBytes: 1, responseBytes: 1 });
    m.recordTcpOpen(scope);
    const text = await m.metrics();
    assert.ok(text.includes('source_workload="we\\"ird\\\\na\\nme"'), text.slice(0, 400));
    const sample = /^[a-zA-Z_:][a-zA-Z0-9_:]*(?:\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*",?)*\})? (?:[-+]?[0-9.]+(?:e[-+]?[0-9]+)?|[-+]Inf|NaN)$/;
    for (const line of text.split('\n')) {
      if (line === '' || line.startsWith('# HELP ') || line.startsWith('# TYPE ')) continue;
      assert.match(line, sample);
    }
  });

  it('bounds its series: past maxSeries samples are counted, not stored', async () => {
    const m = new ProxyMetrics({ maxSeries: 2 });
    const scope = m.scope(SCOPE);
    for (const code of [200, 404, 500, 503]) m.recordRequest(scope, { protocol: 'http', responseCode: code, durationMs: 1, requestBytes: 0, responseBytes: 0 });
    m.recordRequest(scope, { protocol: 'http', responseCode: 200, durationMs: 1, requestBytes: 0, responseBytes: 0 });
    m.scope({ ...SCOPE, reporter: 'source' });
    const third = m.scope({ ...SCOPE, security: 'none' }); // a third scope: past the bound, records nothing
    m.recordTcpOpen(third);
    const text = await m.metrics();
    assert.equal(samples(text, 'istio_requests_total').length, 2);
    assert.ok(samples(text, 'istio_requests_total').some((l) => l.includes('response_code="200"') && l.endsWith(' 2')));
    assert.deepEqual(samples(text, 'istio_tcp_connections_opened_total'), []);
    assert.deepEqual(samples(text, 'trellis_metrics_series_overflow_total'), ['trellis_metrics_series_overflow_total 3']);
  });

  it('lives on its own registry: two instances do not collide', async () => {
    const a = new ProxyMetrics();
    const b = new ProxyMetrics();
    a.recordDrop('ingress');
    assert.equal(samples(await b.metrics(), 'trellis_policy_drops_total').length, 0);
    assert.equal(samples(await a.metrics(), 'trellis_policy_drops_total').length, 1);
  });
});
