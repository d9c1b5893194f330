// Tests of the proxy's policy enforcer over the real engine and authz model, from real manifests: L3/L4 per
// direction, Cilium L7 (HTTP and gRPC), deny rules, world sources, identity checks, STRICT mTLS, AuthorizationPolicy
// ALLOW/DENY/AUDIT, JWTs, and agreement with what `trellis policy check` and `trellis authz check` decide.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { jwksOf, signJwt, testKey } from '../../test/support/jwt-signer.ts';
import { decideAuthz } from '../policy/authz-decide.ts';
import { ruleJson } from '../policy/explain.ts';
import { loadManifests } from '../resources/load.ts';
import type { ConnectionInfo, PolicyVerdict, RequestFacts } from './contracts.ts';
import { DEFAULT_LISTENER_LIMITS, type ListenerConfig, type PolicySnapshot } from './proxy-config.ts';
import { PolicyRuntime, UnconfiguredPolicy } from './policy-runtime.ts';
import { ProxyError } from './proxy-error.ts';
import { flowPolicyOf } from './policy-verdict.ts';

const ISS = 'https://issuer.example';
const key = testKey('ES256', 'k1');
const foreign = testKey('ES256', 'k1');
const NOW = Date.UTC(2026, 0, 1);

const pod = (ns: string, name: string, ip: string, sa: string, port?: number): string => `apiVersion: v1
kind: Pod
metadata: {name: ${name}, namespace: ${ns}, labels: {app: ${name}}}
spec:
  serviceAccountName: ${sa}
  nodeName: node-1
  containers: [{name: main, image: x${port ? `, ports: [{containerPort: ${port}}]` : ''}}]
status: {podIP: ${ip}}
`;

const CLUSTER = [
  `apiVersion: v1
kind: Node
metadata: {name: node-1}
spec: {podCIDR: 10.244.1.0/24}
status: {addresses: [{type: InternalIP, address: 192.168.0.1}]}
`,
  pod('default', 'client', '10.244.1.10', 'client'),
  pod('default', 'web', '10.244.1.11', 'web', 8080),
  pod('default', 'db', '10.244.1.12', 'db', 5432),
  pod('default', 'api', '10.244.1.13', 'api', 9090),
  pod('default', 'other', '10.244.1.14', 'other'),
  pod('dns', 'zones', '10.244.1.20', 'zones', 9090),
  pod('dns', 'admin', '10.244.1.21', 'admin'),
  pod('dns', 'ci', '10.244.1.22', 'ci'),
  pod('dns', 'reader', '10.244.1.23', 'reader'),
];

const POLICIES = [
  `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db-ingress, namespace: default}
spec:
  podSelector: {matchLabels: {app: db}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: web}}}]
    ports: [{port: 5432}]
`,
  `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: client-egress, namespace: default}
spec:
  podSelector: {matchLabels: {app: client}}
  policyTypes: [Egress]
  egress:
  - to: [{podSelector: {matchLabels: {app: web}}}, {podSelector: {matchLabels: {app: api}}}]
`,
  `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: web-l7, namespace: default}
spec:
  endpointSelector: {matchLabels: {app: web}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: client}}]
    toPorts: [{ports: [{port: "8080", protocol: TCP}], rules: {http: [{method: GET, path: /public}]}}]
  - fromCIDR: [203.0.113.0/24]
    toPorts: [{ports: [{port: "8080", protocol: TCP}]}]
`,
  `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: api-grpc, namespace: default}
spec:
  endpointSelector: {matchLabels: {app: api}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: client}}]
    toPorts: [{ports: [{port: "9090", protocol: TCP}], rules: {http: [{method: POST, path: /dns.v1.ZoneService/GetZone}]}}]
`,
  `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: db-deny-other, namespace: default}
spec:
  endpointSelector: {matchLabels: {app: db}}
  ingressDeny:
  - fromEndpoints: [{matchLabels: {app: other}}]
`,
  `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: other-egress, namespace: default}
spec:
  endpointSelector: {matchLabels: {app: other}}
  egress:
  - toEndpoints: [{matchLabels: {app: web}}]
    toPorts: [{ports: [{port: "8080", protocol: TCP}], rules: {http: [{method: GET, path: /public}]}}]
`,
  `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: dns}
spec: {mtls: {mode: STRICT}}
`,
  `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: zones-rw, namespace: dns}
spec:
  selector: {matchLabels: {app: zones}}
  rules:
  - from: [{source: {principals: ["cluster.local/ns/dns/sa/admin", "cluster.local/ns/dns/sa/ci"]}}]
    to: [{operation: {methods: [POST], paths: ["/dns.v1.ZoneService/*"]}}]
  - from: [{source: {requestPrincipals: ["${ISS}/*"]}}]
    to: [{operation: {paths: [/dns.v1.ZoneService/GetZone]}}]
`,
  `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-delete, namespace: dns}
spec:
  action: DENY
  rules:
  - from: [{source: {principals: ["*/sa/ci"]}}]
    to: [{operation: {paths: ["*/DeleteZone"]}}]
`,
  `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: audit-deletes, namespace: istio-system}
spec:
  action: AUDIT
  rules:
  - to: [{operation: {paths: ["*/DeleteZone"]}}]
`,
  `apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: zones-jwt, namespace: dns}
spec:
  selector: {matchLabels: {app: zones}}
  jwtRules: [{issuer: "${ISS}", audiences: [dns], jwks: '${jwksOf(key)}'}]
`,
];

function snapshot(version: string, docs: string[]): PolicySnapshot {
  const r = loadManifests(docs.map((text, i) => ({ name: i < CLUSTER.length ? 'cluster.yaml' : `p${i - CLUSTER.length}.yaml`, text })));
  assert.deepEqual(r.diagnostics.filter((d) => d.severity === 'error'), []);
  return { version, trustDomain: 'cluster.local', resources: r.resources };
}

const rt = PolicyRuntime.fromSnapshot(snapshot('1', [...CLUSTER, ...POLICIES]), { now: () => NOW });
const id = (ns: string, sa: string): string => `spiffe://cluster.local/ns/${ns}/sa/${sa}`;

function listener(direction: ListenerConfig['direction'], host: string, port: number): ListenerConfig {
  return { name: `${direction}|${host}|${port}`, direction, address: { host, port }, protocol: 'http', httpFilters: [{ name: 'trellis.policy' }], limits: DEFAULT_LISTENER_LIMITS };
}

/** A connection as the listener manager would describe it, admitted (or not) by decideConnection. */
function conn(from: string, to: string, port: number, o: { direction?: 'inbound' | 'outbound'; peer?: string; runtime?: PolicyRuntime } = {}): ConnectionInfo {
  const r = o.runtime ?? rt;
  const direction = o.direction ?? 'inbound';
  const source = r.endpointForIp(from);
  const destination = r.endpointForIp(to);
  const transport: 'mtls' | 'plaintext' = o.peer !== undefined ? 'mtls' : 'plaintext';
  const q = { source, destination, port, protocol: 'TCP' as const, direction: direction === 'inbound' ? ('ingress' as const) : ('egress' as const), transport };
  const admission = r.decideConnection(o.peer !== undefined ? { ...q, peerSpiffeId: o.peer } : q);
  const info: ConnectionInfo = { id: 1, listener: listener(direction, direction === 'inbound' ? to : '127.0.0.1', port), remote: { ip: from, port: 40000 }, local: { ip: to, port }, transport, source, destination, admission, acceptedAt: 0n };
  if (o.peer !== undefined) info.peerSpiffeId = o.peer;
  return info;
}

const get = (path: string, headers: RequestFacts['headers'] = {}): RequestFacts => ({ method: 'GET', path, authority: 'svc', headers });
const grpc = (method: string, headers: RequestFacts['headers'] = {}): RequestFacts => ({ method: 'POST', path: `/dns.v1.ZoneService/${method}`, authority: 'zones.dns:9090', headers: { 'content-type': 'application/grpc', ...headers } });

function brief(v: PolicyVerdict): [boolean, string | undefined, number | undefined] {
  return [v.allowed, v.policyName, v.httpStatus];
}

describe('PolicyRuntime: L3/L4 per direction', () => {
  it('inbound enforces the destination ingress: NetworkPolicy allows web → db:5432, denies client by default', () => {
    const ok = conn('10.244.1.11', '10.244.1.12', 5432).admission;
    assert.deepEqual(brief(ok), [true, 'NetworkPolicy default/db-ingress', undefined]);
    assert.equal(ok.direction, 'ingress');
    assert.deepEqual(ok.policy, { kind: 'NetworkPolicy', namespace: 'default', name: 'db-ingress' });
    assert.match(ok.rule ?? '', /^p0\.yaml:\d+:\d+ spec\.ingress\[0\]$/);
    const no = conn('10.244.1.10', '10.244.1.12', 5432).admission;
    assert.deepEqual(brief(no), [false, 'default deny', 403]);
    assert.equal(no.audit, true);
    assert.match(no.message, /isolated by NetworkPolicy default\/db-ingress/);
  });

  it('outbound enforces only the source egress; the other side is the other proxy\'s job', () => {
    // client may reach db by its egress policy? No: client-egress allows only web and api.
    const e = conn('10.244.1.10', '10.244.1.12', 5432, { direction: 'outbound' }).admission;
    assert.deepEqual([e.allowed, e.direction, e.policyName], [false, 'egress', 'default deny']);
    // web's egress is not isolated, so its outbound connection to db is allowed there (db's ingress decides at db).
    const w = conn('10.244.1.11', '10.244.1.12', 5432, { direction: 'outbound' }).admission;
    assert.deepEqual([w.allowed, w.message], [true, 'allowed: no policy selects default/web for egress']);
    // other → db: its egress policy isolates it (denied outbound), and db's ingress deny rule stops it inbound too.
    const o = conn('10.244.1.14', '10.244.1.12', 5432, { direction: 'outbound' }).admission;
    assert.deepEqual([o.allowed, o.direction], [false, 'egress']);
    assert.match(o.message, /isolated by CiliumNetworkPolicy default\/other-egress/);
    const d = conn('10.244.1.14', '10.244.1.12', 5432).admission;
    assert.deepEqual(brief(d), [false, 'CiliumNetworkPolicy default/db-deny-other', 403]);
    assert.equal(d.message, 'denied by CiliumNetworkPolicy default/db-deny-other (spec.ingressDeny[0])');
    assert.match(d.rule ?? '', /spec\.ingressDeny\[0\]$/);
    assert.deepEqual(flowPolicyOf(d), { name: 'db-deny-other', namespace: 'default', kind: 'CiliumNetworkPolicy', labels: [], revision: 0 });
  });

  it('a world source by IP: ingress alone decides (CIDR rule), other addresses are default-denied', () => {
    const src = rt.endpointForIp('::ffff:203.0.113.9');
    assert.deepEqual([src.type, src.ip], ['world', '203.0.113.9']);
    const ok = conn('203.0.113.9', '10.244.1.11', 8080).admission;
    assert.deepEqual([ok.allowed, ok.policyName, ok.l7Required], [true, 'CiliumNetworkPolicy default/web-l7', undefined]);
    assert.match(ok.rule ?? '', /spec\.ingress\[1\]$/);
    assert.equal(conn('198.51.100.1', '10.244.1.11', 8080).admission.allowed, false);
    assert.equal(rt.endpointForIp('192.168.0.1').type, 'node');
    assert.equal(rt.endpointForPod('default/web')?.ip, '10.244.1.11');
    assert.equal(rt.endpointForPod('default/nope'), undefined);
  });

  it('agrees with engine.decide (what `trellis policy check` prints) on every pair of pods', () => {
    // (Pods of dns are left out as destinations: their STRICT mTLS refuses these plaintext connections first.)
    const ips = ['10.244.1.10', '10.244.1.11', '10.244.1.12', '10.244.1.13', '10.244.1.14'];
    let n = 0;
    for (const from of [...ips, '10.244.1.21', '203.0.113.9']) {
      for (const to of ips) {
        for (const port of [5432, 8080, 9090]) {
          const d = rt.engine.decide({ from: rt.endpointForIp(from), to: rt.endpointForIp(to), port, protocol: 'TCP' });
          for (const [dir, expected] of [['inbound', d.ingress], ['outbound', d.egress]] as const) {
            if (dir === 'outbound' && from === '203.0.113.9') continue;
            const v = conn(from, to, port, { direction: dir }).admission;
            assert.equal(v.allowed, expected.verdict === 'allowed', `${from} -> ${to}:${port} ${dir}`);
            assert.equal(v.l7Required === true, expected.l7 !== undefined);
            if (expected.rule && (expected.reason === 'allowed-by-rule' || expected.reason === 'denied-by-rule')) {
              const j = ruleJson(expected.rule);
              assert.equal(v.rule, `${j.location} ${j.field}`);
              assert.deepEqual(v.policy, { kind: j.kind, namespace: j.namespace, name: j.name });
            }
            n++;
          }
        }
      }
    }
    assert.equal(n, 195);
  });
});

describe('PolicyRuntime: Cilium L7 per request', () => {
  it('allows GET /public and denies /private and other methods with 403 naming the rule', () => {
    const c = conn('10.244.1.10', '10.244.1.11', 8080);
    assert.deepEqual([c.admission.allowed, c.admission.l7Required], [true, true]);
    const ok = rt.decideRequest(c, get('/public'));
    assert.deepEqual(brief(ok), [true, 'CiliumNetworkPolicy default/web-l7', undefined]);
    assert.match(ok.message, /HTTP rule 0 \(method=GET path=\/public\)/);
    const no = rt.decideRequest(c, get('/private?token=secret'));
    assert.deepEqual(brief(no), [false, 'CiliumNetworkPolicy default/web-l7', 403]);
    assert.equal(no.message, 'denied by CiliumNetworkPolicy default/web-l7 (spec.ingress[0]): no HTTP rule matches GET /private');
    assert.match(no.rule ?? '', /^p2\.yaml:\d+:\d+ spec\.ingress\[0\]$/);
    assert.equal(no.audit, true);
    assert.equal(rt.decideRequest(c, { ...get('/public'), method: 'POST' }).allowed, false);
    // A world peer on an L4 rule: any request.
    assert.equal(rt.decideRequest(conn('203.0.113.9', '10.244.1.11', 8080), get('/private')).allowed, true);
  });

  it('a gRPC method rule: POST /pkg.Svc/Method', () => {
    const c = conn('10.244.1.10', '10.244.1.13', 9090);
    assert.equal(rt.decideRequest(c, grpc('GetZone')).allowed, true);
    const no = rt.decideRequest(c, grpc('DeleteZone'));
    assert.equal(no.message, 'denied by CiliumNetworkPolicy default/api-grpc (spec.ingress[0]): no HTTP rule matches POST /dns.v1.ZoneService/DeleteZone');
  });

  it('outbound requests are checked against the source egress L7 rules at the upstream pod and port', () => {
    const c = conn('10.244.1.14', '10.96.0.10', 80, { direction: 'outbound' });
    const target = { destination: rt.endpointForIp('10.244.1.11'), port: 8080 };
    const ok = rt.decideRequest(c, get('/public'), target);
    assert.deepEqual([ok.allowed, ok.direction, ok.policyName], [true, 'egress', 'CiliumNetworkPolicy default/other-egress']);
    const no = rt.decideRequest(c, get('/admin'), target);
    assert.deepEqual([no.allowed, no.direction, no.httpStatus], [false, 'egress', 403]);
    assert.match(no.message, /other-egress \(spec\.egress\[0\]\): no HTTP rule matches GET \/admin/);
  });
});

describe('PolicyRuntime: identity and Istio security', () => {
  it('denies an mTLS peer whose certificate names another workload than its address', () => {
    const ok = conn('10.244.1.21', '10.244.1.20', 9090, { peer: id('dns', 'admin') }).admission;
    assert.equal(ok.allowed, true);
    const bad = conn('10.244.1.22', '10.244.1.20', 9090, { peer: id('dns', 'admin') }).admission;
    assert.deepEqual(brief(bad), [false, 'identity mismatch', 403]);
    assert.match(bad.message, /10\.244\.1\.22 is pod dns\/ci \(spiffe:\/\/cluster\.local\/ns\/dns\/sa\/ci\), but the peer presented spiffe:\/\/cluster\.local\/ns\/dns\/sa\/admin/);
    assert.equal(conn('10.244.1.22', '10.244.1.20', 9090, { peer: 'spiffe://evil.example/ns/dns/sa/ci' }).admission.allowed, false);
  });

  it('STRICT mTLS: a plaintext peer is refused at the connection and per request', () => {
    const c = conn('10.244.1.21', '10.244.1.20', 9090);
    assert.deepEqual(brief(c.admission), [false, 'PeerAuthentication dns/default', 403]);
    assert.match(c.admission.rule ?? '', /spec\.mtls\.mode$/);
    const r = rt.decideRequest(c, grpc('GetZone'));
    assert.deepEqual(brief(r), [false, 'PeerAuthentication dns/default', 403]);
  });

  it('AuthorizationPolicy: ALLOW by principal and method, DENY wins, AUDIT flagged, no match denied', () => {
    const admin = conn('10.244.1.21', '10.244.1.20', 9090, { peer: id('dns', 'admin') });
    const del = rt.decideRequest(admin, grpc('DeleteZone'));
    assert.deepEqual(brief(del), [true, 'AuthorizationPolicy dns/zones-rw', undefined]);
    assert.equal(del.audit, true);
    assert.match(del.rule ?? '', /^p7\.yaml:\d+:\d+ spec\.rules\[0\]$/);
    assert.match(del.message, /audited by AuthorizationPolicy istio-system\/audit-deletes/);
    const list = rt.decideRequest(admin, grpc('ListZones'));
    assert.deepEqual([list.allowed, list.audit], [true, false]);
    assert.equal(rt.decideRequest(admin, { ...grpc('ListZones'), method: 'GET' }).allowed, false);
    const ci = conn('10.244.1.22', '10.244.1.20', 9090, { peer: id('dns', 'ci') });
    const denied = rt.decideRequest(ci, grpc('DeleteZone'));
    assert.deepEqual(brief(denied), [false, 'AuthorizationPolicy dns/deny-delete', 403]);
    assert.equal(denied.message, 'RBAC: access denied by AuthorizationPolicy dns/deny-delete');
    assert.deepEqual(denied.policy, { kind: 'AuthorizationPolicy', namespace: 'dns', name: 'deny-delete' });
    assert.equal(denied.audit, true);
    const reader = conn('10.244.1.23', '10.244.1.20', 9090, { peer: id('dns', 'reader') });
    const none = rt.decideRequest(reader, grpc('GetZone'));
    assert.deepEqual(brief(none), [false, 'AuthorizationPolicy default deny', 403]);
    assert.match(none.message, /^RBAC: access denied: ALLOW policies apply/);
  });

  it('RequestAuthentication: a valid JWT is allowed with its request principal; an invalid one gets 401', () => {
    const reader = conn('10.244.1.23', '10.244.1.20', 9090, { peer: id('dns', 'reader') });
    const claims = { iss: ISS, sub: 'alice', aud: 'dns', exp: NOW / 1000 + 600 };
    const ok = rt.decideRequest(reader, grpc('GetZone', { authorization: `Bearer ${signJwt(key, claims)}` }));
    assert.deepEqual([ok.allowed, ok.requestPrincipal, ok.policyName], [true, `${ISS}/alice`, 'AuthorizationPolicy dns/zones-rw']);
    assert.match(ok.rule ?? '', /spec\.rules\[1\]$/);
    const forged = rt.decideRequest(reader, grpc('GetZone', { authorization: `Bearer ${signJwt(foreign, claims)}` }));
    assert.deepEqual([forged.allowed, forged.httpStatus, forged.policyName, forged.audit], [false, 401, 'RequestAuthentication dns/zones-jwt', true]);
    assert.match(forged.message, /^Jwt verification fails/);
    const expired = rt.decideRequest(reader, grpc('GetZone', { authorization: `Bearer ${signJwt(key, { ...claims, exp: NOW / 1000 - 600 })}` }));
    assert.equal(expired.httpStatus, 401);
  });

  it('opaque TCP: AuthorizationPolicy applies as Istio applies it to TCP (HTTP-only ALLOW rules match nothing)', () => {
    const admin = conn('10.244.1.21', '10.244.1.20', 9090, { peer: id('dns', 'admin') });
    const v = rt.decideTcp(admin);
    assert.deepEqual(brief(v), [false, 'AuthorizationPolicy default deny', 403]);
    assert.equal(admin.admission.allowed, true, 'the admission verdict is left as it was');
    // The mesh-wide AUDIT rule names only paths: on TCP, Istio drops HTTP-only fields of AUDIT rules, so it matches.
    const db = conn('10.244.1.11', '10.244.1.12', 5432);
    const tcp = rt.decideTcp(db);
    assert.deepEqual([tcp.allowed, tcp.audit, tcp.policyName], [true, true, 'NetworkPolicy default/db-ingress']);
    assert.match(tcp.message, /audited by AuthorizationPolicy istio-system\/audit-deletes$/);
    assert.equal(db.admission.audit, false);
    const out = conn('10.244.1.11', '10.244.1.12', 5432, { direction: 'outbound' });
    assert.equal(rt.decideTcp(out), out.admission);
  });

  it('agrees with decideAuthz (what `trellis authz check` prints)', () => {
    const cases: [string, string, string, Record<string, string>][] = [
      ['10.244.1.21', 'admin', 'DeleteZone', {}],
      ['10.244.1.22', 'ci', 'DeleteZone', {}],
      ['10.244.1.22', 'ci', 'GetZone', {}],
      ['10.244.1.23', 'reader', 'GetZone', {}],
      ['10.244.1.23', 'reader', 'GetZone', { authorization: `Bearer ${signJwt(key, { iss: ISS, sub: 'bob', aud: 'dns' })}` }],
      ['10.244.1.23', 'reader', 'GetZone', { authorization: `Bearer ${signJwt(key, { iss: ISS, sub: 'bob', aud: 'other' })}` }],
    ];
    const zones = rt.cluster.pods.get('dns/zones');
    assert.ok(zones);
    for (const [ip, sa, method, headers] of cases) {
      const v = rt.decideRequest(conn(ip, '10.244.1.20', 9090, { peer: id('dns', sa) }), grpc(method, headers));
      const d = decideAuthz(rt.authz, {
        source: { ip, principal: `cluster.local/ns/dns/sa/${sa}` },
        destination: { pod: { namespace: 'dns', labels: zones.labels, ips: zones.ips }, port: 9090 },
        http: { method: 'POST', path: `/dns.v1.ZoneService/${method}`, host: 'zones.dns:9090', headers: { 'content-type': 'application/grpc', ...headers } },
        now: NOW,
      });
      const what = `${sa} ${method}`;
      assert.equal(v.allowed, d.verdict === 'allow', what);
      assert.equal(v.audit, d.audit || d.verdict === 'deny', what);
      if (d.policy) {
        assert.deepEqual(v.policy, { kind: d.policy.kind, namespace: d.policy.namespace, name: d.policy.name }, what);
        assert.equal(v.rule, `${d.policy.location.file}:${d.policy.location.line}:${d.policy.location.column} ${d.policy.field}`, what);
      }
      assert.equal(v.requestPrincipal, d.requestPrincipal, what);
    }
  });

  it('builds a workload\'s Istio view once and reuses it for every request', () => {
    const r = PolicyRuntime.fromSnapshot(snapshot('1', [...CLUSTER, ...POLICIES]), { now: () => NOW });
    const c = conn('10.244.1.21', '10.244.1.20', 9090, { peer: id('dns', 'admin'), runtime: r });
    assert.equal(r.authzBuilds, 0);
    for (let i = 0; i < 50; i++) assert.equal(r.decideRequest(c, grpc('ListZones')).allowed, true);
    assert.equal(r.authzBuilds, 1);
    // A pod without Istio policies is built once too, then skipped.
    const w = conn('10.244.1.10', '10.244.1.11', 8080, { runtime: r });
    r.decideRequest(w, get('/public'));
    r.decideRequest(w, get('/public'));
    assert.equal(r.authzBuilds, 2);
  });
});

describe('PolicyRuntime: snapshots', () => {
  it('reuses a runtime for the same version and re-resolves endpoints of an older snapshot', () => {
    const s1 = snapshot('1', [...CLUSTER, ...POLICIES]);
    const r1 = PolicyRuntime.fromSnapshot(s1);
    assert.equal(PolicyRuntime.forSnapshot(r1, s1), r1);
    const deny = `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: web-deny-client, namespace: default}
spec:
  endpointSelector: {matchLabels: {app: web}}
  ingressDeny: [{fromEndpoints: [{matchLabels: {app: client}}]}]
`;
    const r2 = PolicyRuntime.forSnapshot(r1, snapshot('2', [...CLUSTER, ...POLICIES, deny]));
    assert.notEqual(r2, r1);
    const c = conn('10.244.1.10', '10.244.1.11', 8080, { runtime: r1 });
    assert.equal(r1.decideRequest(c, get('/public')).allowed, true);
    // The connection admitted under version 1 carries version 1's endpoints; version 2 still decides correctly.
    assert.deepEqual(brief(r2.decideRequest(c, get('/public'))), [false, 'CiliumNetworkPolicy default/web-deny-client', 403]);
  });

  it('refuses a malformed snapshot and fails closed without one', () => {
    assert.throws(() => PolicyRuntime.fromSnapshot({ version: 'x', trustDomain: 'bad domain/', resources: [] }), (e: unknown) => e instanceof ProxyError && e.code === 'bad-config');
    const u = new UnconfiguredPolicy();
    const src = u.endpointForIp('10.244.1.10');
    assert.equal(src.type, 'world');
    const v = u.decideConnection({ source: src, destination: src, port: 80, protocol: 'TCP', direction: 'ingress', transport: 'plaintext' });
    assert.deepEqual([v.allowed, v.audit, v.policyName], [false, true, 'no policy configuration']);
    assert.equal(u.endpointForPod('default/web'), undefined);
  });
});
