// Tests of Istio authorization decisions: scopes, CUSTOM → DENY → ALLOW order, AUDIT, mTLS modes and JWT rules.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadManifests } from '../resources/load.ts';
import { decideAuthz, type AuthzRequest } from './authz-decide.ts';
import { buildAuthzModel, workloadAuthz } from './authz-model.ts';

function model(text: string, rootNamespace?: string) {
  const r = loadManifests([{ name: 'p.yaml', text }]);
  assert.deepEqual(r.diagnostics.filter((d) => d.severity === 'error'), []);
  return buildAuthzModel(r.resources, rootNamespace ? { rootNamespace } : {});
}

const zones = { namespace: 'dns', labels: { app: 'zones' }, ips: ['10.244.0.5'] };
const grpc = (method: string, over: Partial<AuthzRequest> = {}): AuthzRequest => ({
  source: { principal: 'cluster.local/ns/dns/sa/admin', ip: '10.244.0.9' },
  destination: { pod: zones, port: 9090 },
  http: { method: 'POST', path: `/dns.v1.ZoneService/${method}`, host: 'zones.dns.svc.cluster.local:9090', headers: { 'content-type': 'application/grpc' } },
  ...over,
});

const POLICIES = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: zones-rw, namespace: dns}
spec:
  selector: {matchLabels: {app: zones}}
  rules:
  - from: [{source: {principals: ["cluster.local/ns/dns/sa/admin"]}}]
    to: [{operation: {paths: ["/dns.v1.ZoneService/*"]}}]
  - from: [{source: {namespaces: ["dns"]}}]
    to: [{operation: {paths: ["/dns.v1.ZoneService/Get*", "/dns.v1.ZoneService/List*"]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: no-delete-from-ci, namespace: dns}
spec:
  action: DENY
  rules:
  - from: [{source: {principals: ["*/sa/ci"]}}]
    to: [{operation: {paths: ["*/DeleteZone"]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: audit-deletes, namespace: istio-system}
spec:
  action: AUDIT
  rules:
  - to: [{operation: {paths: ["*/DeleteZone"]}}]
`;

describe('decideAuthz', () => {
  it('allows the admin to delete a zone, marks it for audit, and names the rule', () => {
    const d = decideAuthz(model(POLICIES), grpc('DeleteZone'));
    assert.equal(d.verdict, 'allow');
    assert.equal(d.reason, 'allowed-by-policy');
    assert.deepEqual({ ...d.policy, location: undefined }, { kind: 'AuthorizationPolicy', namespace: 'dns', name: 'zones-rw', ruleIndex: 0, field: 'spec.rules[0]', location: undefined });
    assert.deepEqual(d.policy?.location, { file: 'p.yaml', line: 7, column: 5 });
    assert.equal(d.audit, true);
    assert.deepEqual(d.auditedBy.map((h) => `${h.namespace}/${h.name} ${h.field}`), ['istio-system/audit-deletes spec.rules[0]']);
  });

  it('DENY wins over ALLOW; ALLOW policies deny what none matches', () => {
    const m = model(POLICIES);
    const ci = grpc('DeleteZone', { source: { principal: 'spiffe://cluster.local/ns/dns/sa/ci', ip: '10.244.0.8' } });
    const d = decideAuthz(m, ci);
    assert.equal(d.verdict, 'deny');
    assert.equal(d.reason, 'denied-by-policy');
    assert.equal(d.policy?.name, 'no-delete-from-ci');
    const get = decideAuthz(m, grpc('GetZone', { source: { principal: 'cluster.local/ns/dns/sa/ci', ip: '10.244.0.8' } }));
    assert.deepEqual([get.verdict, get.policy?.ruleIndex], ['allow', 1]);
    const other = decideAuthz(m, grpc('GetZone', { source: { principal: 'cluster.local/ns/web/sa/ui', ip: '10.244.0.7' } }));
    assert.deepEqual([other.verdict, other.reason, other.audit], ['deny', 'no-allow-match', false]);
    // A plaintext caller has no identity, so neither principals nor namespaces match.
    const plain = decideAuthz(m, grpc('GetZone', { source: { namespace: 'dns', ip: '10.244.0.7' } }));
    assert.equal(plain.verdict, 'deny');
  });

  it('allows everything not denied when no ALLOW policy applies; an ALLOW policy without rules denies all; rules: [{}] allows all', () => {
    assert.equal(decideAuthz(model(''), grpc('DeleteZone')).reason, 'no-allow-policies');
    const none = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-nothing, namespace: dns}
spec: {}
`;
    assert.deepEqual([decideAuthz(model(none), grpc('GetZone')).verdict, decideAuthz(model(none), grpc('GetZone')).reason], ['deny', 'no-allow-match']);
    const all = none.replace('spec: {}', 'spec: {rules: [{}]}');
    assert.equal(decideAuthz(model(all), grpc('GetZone')).verdict, 'allow');
    // A namespace-wide policy does not reach another namespace; a root-namespace one reaches every namespace.
    assert.equal(decideAuthz(model(none.replace('namespace: dns', 'namespace: web')), grpc('GetZone')).verdict, 'allow');
    assert.equal(decideAuthz(model(none.replace('namespace: dns', 'namespace: mesh-root'), 'mesh-root'), grpc('GetZone')).verdict, 'deny');
  });

  it('ANDs from, to and when; ORs list items; negates not* fields; evaluates conditions', () => {
    const m = model(`apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: p, namespace: dns}
spec:
  rules:
  - from: [{source: {notPrincipals: ["cluster.local/ns/dns/sa/ci"], ipBlocks: ["10.244.0.0/16"]}}]
    to: [{operation: {methods: [POST], notPaths: ["*/DeleteZone"], ports: ["9090"]}}]
    when:
    - {key: "request.headers[x-team]", values: [dns, "ops-*"]}
    - {key: destination.ip, values: ["10.244.0.5"]}
    - {key: source.namespace, notValues: [web]}
`);
    const ok = grpc('GetZone', { http: { method: 'POST', path: '/dns.v1.ZoneService/GetZone?x=1', headers: { 'X-Team': 'ops-east' } } });
    assert.equal(decideAuthz(m, ok).verdict, 'allow');
    assert.equal(decideAuthz(m, { ...ok, http: { method: 'POST', path: '/dns.v1.ZoneService/DeleteZone', headers: { 'x-team': 'dns' } } }).verdict, 'deny');
    assert.equal(decideAuthz(m, { ...ok, http: { method: 'POST', path: '/x', headers: { 'x-team': 'web' } } }).verdict, 'deny');
    assert.equal(decideAuthz(m, { ...ok, destination: { pod: zones, port: 8080 } }).verdict, 'deny');
    assert.equal(decideAuthz(m, { ...ok, source: { principal: 'cluster.local/ns/dns/sa/ci', ip: '10.244.0.9' } }).verdict, 'deny');
    assert.equal(decideAuthz(m, { ...ok, source: { principal: 'cluster.local/ns/dns/sa/x', ip: '192.168.0.1' } }).verdict, 'deny');
    // On plain TCP an ALLOW rule naming HTTP attributes matches nothing.
    const { http: _h, ...tcp } = ok;
    assert.equal(decideAuthz(m, tcp).verdict, 'deny');
  });

  it('resolves PeerAuthentication: workload over namespace over mesh, UNSET inherits, port-level modes', () => {
    const m = model(`apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: istio-system}
spec: {mtls: {mode: STRICT}}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: dns}
spec: {mtls: {mode: UNSET}}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: zones, namespace: dns}
spec:
  selector: {matchLabels: {app: zones}}
  portLevelMtls:
    8080: {mode: PERMISSIVE}
    8081: {mode: UNSET}
`);
    const w = workloadAuthz(m, zones);
    assert.deepEqual([w.mtls.mode, w.mtls.ports], ['STRICT', { 8080: 'PERMISSIVE', 8081: 'STRICT' }]);
    const plaintext = { source: { ip: '10.244.0.9' } };
    const d = decideAuthz(m, grpc('GetZone', plaintext));
    assert.deepEqual([d.verdict, d.reason, d.policy?.name, d.policy?.namespace], ['deny', 'mtls-required', 'default', 'istio-system']);
    assert.equal(decideAuthz(m, grpc('GetZone', { ...plaintext, destination: { pod: zones, port: 8080 } })).verdict, 'allow');
    assert.equal(workloadAuthz(buildAuthzModel([]), zones).mtls.mode, 'PERMISSIVE');
  });

  it('applies RequestAuthentication: rejects unknown issuers and matches request principals and claims', () => {
    const m = model(`apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt, namespace: dns}
spec:
  jwtRules: [{issuer: "https://issuer.example", audiences: [dns]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: admins, namespace: dns}
spec:
  rules:
  - from: [{source: {requestPrincipals: ["https://issuer.example/*"]}}]
    when: [{key: "request.auth.claims[groups]", values: [dns-admins]}, {key: "request.auth.claims[realm][role]", values: ["own*"]}]
`);
    const claims = { iss: 'https://issuer.example', sub: 'alice', aud: ['dns'], groups: ['x', 'dns-admins'], realm: { role: 'owner' } };
    assert.equal(decideAuthz(m, grpc('DeleteZone', { jwt: { claims } })).verdict, 'allow');
    assert.equal(decideAuthz(m, grpc('DeleteZone', { jwt: { claims: { ...claims, groups: ['x'] } } })).verdict, 'deny');
    const bad = decideAuthz(m, grpc('DeleteZone', { jwt: { claims: { ...claims, aud: 'other' } } }));
    assert.deepEqual([bad.verdict, bad.reason], ['deny', 'jwt-invalid']);
    assert.equal(decideAuthz(m, grpc('DeleteZone')).reason, 'no-allow-match');
  });

  it('denies what a CUSTOM policy matches (external authorization is not supported) and reports dry-run policies', () => {
    const m = model(`apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ext, namespace: dns}
spec:
  action: CUSTOM
  provider: {name: opa}
  rules: [{to: [{operation: {paths: ["/admin/*"]}}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: try-deny, namespace: dns, annotations: {istio.io/dry-run: "true"}}
spec:
  action: DENY
  rules: [{}]
`);
    const d = decideAuthz(m, grpc('x', { http: { method: 'GET', path: '/admin/users' } }));
    assert.deepEqual([d.verdict, d.reason, d.policy?.name], ['deny', 'custom-unsupported', 'ext']);
    const e = decideAuthz(m, grpc('GetZone'));
    assert.deepEqual([e.verdict, e.dryRun.map((x) => `${x.action} ${x.policy.name}`)], ['allow', ['DENY try-deny']]);
  });
});
