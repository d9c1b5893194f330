// Server listeners and client mTLS settings: names, transports per PeerAuthentication, SANs, and proto encoding.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildAuthzModel, workloadAuthz } from '../policy/authz-model.ts';
import { loadManifests } from '../resources/load.ts';
import type { ClusterSpec, EndpointSet } from '../routing/model.ts';
import { encodeAny } from './protos.ts';
import { clusterTransportSocket, parseServerListenerName, serverListener, upstreamSecurity } from './server-resources.ts';
import { cluster } from './envoy-resources.ts';
import { TYPE } from './type-urls.ts';

function authz(text: string) {
  const r = loadManifests([{ name: 'p.yaml', text }]);
  assert.deepEqual(r.diagnostics.filter((d) => d.severity === 'error'), []);
  return buildAuthzModel(r.resources);
}

const PEER = `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: api, namespace: dns}
spec:
  selector: {matchLabels: {app: api}}
  mtls: {mode: STRICT}
  portLevelMtls: {"9090": {mode: DISABLE}}
`;

const C: ClusterSpec = { name: 'outbound|50051||api.dns.svc.cluster.local', host: 'api.dns.svc.cluster.local', port: 50051, discovery: 'EDS', lbPolicy: 'ROUND_ROBIN', http2: true, protocol: 'grpc' };
const E: EndpointSet = {
  cluster: C.name,
  endpoints: [
    { address: '127.0.0.2', port: 50051, healthy: true, weight: 1, locality: { region: '', zone: '', subZone: '' }, pod: 'dns/api-0', labels: { app: 'api' } },
    { address: '127.0.0.3', port: 50051, healthy: true, weight: 1, locality: { region: '', zone: '', subZone: '' }, pod: 'dns/api-1', labels: { app: 'api' } },
  ],
};

describe('server listeners', () => {
  it('parses listening addresses, IPv6 included, and refuses other names', () => {
    assert.deepEqual(parseServerListenerName('grpc/server?xds.resource.listening_address=127.0.0.1:8080'), { host: '127.0.0.1', port: 8080 });
    assert.deepEqual(parseServerListenerName('grpc/server?xds.resource.listening_address=[::1]:80'), { host: '::1', port: 80 });
    for (const bad of ['zone-api:50051', 'grpc/server?xds.resource.listening_address=127.0.0.1', 'grpc/server?xds.resource.listening_address=127.0.0.1:0']) {
      assert.equal(parseServerListenerName(bad), undefined, bad);
    }
  });

  it('uses mTLS on a STRICT port and plaintext on a DISABLE or PERMISSIVE one, and encodes', () => {
    const w = workloadAuthz(authz(PEER), { namespace: 'dns', labels: { app: 'api' } });
    const strict = serverListener('l', { host: '127.0.0.1', port: 50051 }, w);
    assert.equal(strict.mode, 'STRICT');
    const chain = (strict.listener.filter_chains as Record<string, unknown>[])[0]!;
    assert.deepEqual((chain.transport_socket as { typed_config: Record<string, unknown> }).typed_config.require_client_certificate, { value: true });
    assert.equal(serverListener('l', { host: '127.0.0.1', port: 9090 }, w).mode, 'PLAINTEXT');
    assert.equal(serverListener('l', { host: '127.0.0.1', port: 1 }, workloadAuthz(authz(''), { namespace: 'dns', labels: {} })).mode, 'PLAINTEXT');
    assert.ok(encodeAny(TYPE.listener, strict.listener).value.length > 0);
  });
});

describe('client mTLS', () => {
  const model = authz(PEER);
  it('follows the destination: STRICT endpoints get mTLS with their SPIFFE IDs, or their namespace when unknown', () => {
    assert.deepEqual(upstreamSecurity(C, E, { authz: model, serviceAccounts: new Map([['dns/api-0', 'api'], ['dns/api-1', 'api']]) }), [{ exact: 'spiffe://cluster.local/ns/dns/sa/api' }]);
    assert.deepEqual(upstreamSecurity(C, E, { authz: model }), [{ prefix: 'spiffe://cluster.local/ns/dns/sa/' }]);
    assert.equal(upstreamSecurity(C, E, { authz: authz('') }), undefined, 'PERMISSIVE servers are plaintext');
    assert.equal(upstreamSecurity({ ...C, port: 9090 }, { ...E, endpoints: E.endpoints.map((e) => ({ ...e, port: 9090 })) }, { authz: model }), undefined, 'a DISABLE port');
  });

  it('lets a DestinationRule decide: ISTIO_MUTUAL always, DISABLE never, its subjectAltNames first', () => {
    assert.deepEqual(upstreamSecurity({ ...C, tls: { mode: 'ISTIO_MUTUAL' } }, undefined, { authz: authz('') }), [{ prefix: 'spiffe://cluster.local/ns/dns/sa/' }]);
    assert.equal(upstreamSecurity({ ...C, tls: { mode: 'DISABLE' } }, E, { authz: model }), undefined);
    assert.deepEqual(upstreamSecurity({ ...C, tls: { mode: 'ISTIO_MUTUAL', subjectAltNames: ['spiffe://x/ns/a/sa/b'] } }, E, { authz: model }), [{ exact: 'spiffe://x/ns/a/sa/b' }]);
  });

  it('puts the UpstreamTlsContext on the Cluster, which encodes', () => {
    const ts = clusterTransportSocket(C, E, { authz: model, tls: { identityProvider: 'id', rootProvider: 'roots' } });
    assert.ok(ts);
    const c = cluster(C, ts);
    assert.deepEqual((c.transport_socket as { typed_config: { common_tls_context: unknown } }).typed_config.common_tls_context, {
      tls_certificate_provider_instance: { instance_name: 'id', certificate_name: 'default' },
      validation_context: { ca_certificate_provider_instance: { instance_name: 'roots', certificate_name: 'ROOTCA' }, match_subject_alt_names: [{ prefix: 'spiffe://cluster.local/ns/dns/sa/' }] },
    });
    assert.ok(encodeAny(TYPE.cluster, c).value.length > 0);
    assert.equal(clusterTransportSocket(C, E, undefined), undefined);
  });
});
