// Tests of security.istio.io validation: every message with its location, and the typed objects valid input gives.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatDiagnostic } from './diagnostics.ts';
import type { AuthorizationPolicy, PeerAuthentication, RequestAuthentication } from './kinds-security.ts';
import { loadManifests } from './load.ts';

function load(text: string) {
  const r = loadManifests([{ name: 'sec.yaml', text }]);
  return { ...r, lines: r.diagnostics.map(formatDiagnostic) };
}

const BROKEN = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: bad
  namespace: dns
  annotations: {istio.io/dry-run: "yes"}
spec:
  selector:
    matchLabels: {app: "zone*"}
  targetRefs: [{kind: Service, name: zones}]
  action: allow
  rules:
  - from:
    - source:
        principals: ["spiffe://cluster.local/ns/a/sa/b", "cluster.local/ns/*/sa/x", "bob"]
        namespaces: [Prod]
        ipBlocks: ["10.0.0.0/33", "1.2.3"]
        serviceAccounts: [x]
    - source: {}
    - {}
    to:
    - operation:
        ports: ["80", 8080, "70000"]
        methods: [get]
        paths: ["/a/*/b", "v1/*", "/x/{*}"]
        hots: []
    when:
    - key: request.headers
      values: [x]
    - key: source.ip
      values: [nope]
    - key: request.auth.claims[groups
      values: [a]
    - key: destination.port
      notValues: ["x"]
    - key: source.serviceAccount
      values: [a]
    - key: connection.sni
  - null
  - to: []
---
apiVersion: security.istio.io/v1beta1
kind: AuthorizationPolicy
metadata: {name: deny-none, namespace: dns}
spec:
  action: DENY
  provider: {name: ext}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: custom, namespace: dns}
spec:
  action: CUSTOM
  rules:
  - from: [{source: {principals: ["a/ns/b/sa/c"]}}]
    when: [{key: "request.auth.claims[iss]", values: [x]}]
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: dns}
spec:
  mtls: {mode: strict}
  portLevelMtls:
    "8080": {mode: DISABLE}
    "0": {mode: STRICT}
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt, namespace: dns}
spec:
  selector: {matchLabels: {app: zones}}
  targetRef: {kind: Gateway, group: gateway.networking.k8s.io, name: gw, namespace: other}
  jwtRules:
  - issuer: ""
    jwksUri: "ftp://x"
    jwks: '{"keys": [{"kid": "a"}]}'
    fromHeaders: [{name: "bad header"}, {prefix: "Bearer "}]
    forwardOriginalToken: "yes"
    audiences: [""]
  - issuer: https://issuer.example
    jwks: 'not json'
    outputPayloadToHeader: x-jwt
`;

describe('security.istio.io validation', () => {
  it('reports every error and warning in broken policies, in input order, with locations', () => {
    const r = load(BROKEN);
    assert.deepEqual(r.lines, [
      "sec.yaml:6:35: AuthorizationPolicy dns/bad: metadata.annotations.istio.io/dry-run: must be \"true\" or \"false\", not \"yes\"",
      "sec.yaml:9:24: AuthorizationPolicy dns/bad: spec.selector.matchLabels.app: label value \"zone*\" must be at most 63 characters of alphanumerics, \"-\", \"_\" or \".\", starting and ending with an alphanumeric",
      "sec.yaml:10:3: AuthorizationPolicy dns/bad: spec.targetRefs: may not be combined with selector: set only one of selector, targetRef or targetRefs",
      "sec.yaml:11:11: AuthorizationPolicy dns/bad: spec.action: must be one of ALLOW, DENY, AUDIT, CUSTOM, not \"allow\" (values are case-sensitive: ALLOW)",
      "sec.yaml:15:22: AuthorizationPolicy dns/bad: spec.rules[0].from[0].source.principals[0]: \"spiffe://cluster.local/ns/a/sa/b\" must be written without \"spiffe://\" (e.g. cluster.local/ns/a/sa/b)",
      "sec.yaml:15:58: AuthorizationPolicy dns/bad: spec.rules[0].from[0].source.principals[1]: \"cluster.local/ns/*/sa/x\" has a \"*\" in the middle or more than one \"*\": only a single leading or trailing \"*\" (or \"*\" alone) is supported",
      "sec.yaml:15:85: warning: AuthorizationPolicy dns/bad: spec.rules[0].from[0].source.principals[2]: \"bob\" is not of the form <trust-domain>/ns/<namespace>/sa/<service-account>, so no workload identity matches it",
      "sec.yaml:16:22: AuthorizationPolicy dns/bad: spec.rules[0].from[0].source.namespaces[0]: \"Prod\" must be a DNS label: at most 63 lowercase alphanumerics or \"-\", starting and ending with an alphanumeric",
      "sec.yaml:17:20: AuthorizationPolicy dns/bad: spec.rules[0].from[0].source.ipBlocks[0]: must be a CIDR such as 10.0.0.0/16: prefix length must be 0-32",
      "sec.yaml:17:35: AuthorizationPolicy dns/bad: spec.rules[0].from[0].source.ipBlocks[1]: \"1.2.3\" must be an IP address or a CIDR block such as 10.0.0.0/16",
      "sec.yaml:18:9: AuthorizationPolicy dns/bad: spec.rules[0].from[0].source.serviceAccounts: is not supported by Trellis yet: use principals (<trust-domain>/ns/<namespace>/sa/<name>)",
      "sec.yaml:19:15: AuthorizationPolicy dns/bad: spec.rules[0].from[1].source: must not be empty: set at least one of principals, requestPrincipals, namespaces, ipBlocks, remoteIpBlocks or their not* forms",
      "sec.yaml:20:7: AuthorizationPolicy dns/bad: spec.rules[0].from[2]: source is required",
      "sec.yaml:23:23: AuthorizationPolicy dns/bad: spec.rules[0].to[0].operation.ports[1]: must be a string (quote it: \"8080\")",
      "sec.yaml:23:29: AuthorizationPolicy dns/bad: spec.rules[0].to[0].operation.ports[2]: \"70000\" must be a port number 0-65535 written as a string",
      "sec.yaml:24:19: warning: AuthorizationPolicy dns/bad: spec.rules[0].to[0].operation.methods[0]: methods are matched case-sensitively: \"get\" never matches GET",
      "sec.yaml:25:17: AuthorizationPolicy dns/bad: spec.rules[0].to[0].operation.paths[0]: \"/a/*/b\" has a \"*\" in the middle or more than one \"*\": only a single leading or trailing \"*\" (or \"*\" alone) is supported",
      "sec.yaml:25:27: AuthorizationPolicy dns/bad: spec.rules[0].to[0].operation.paths[1]: \"v1/*\" must start with \"/\" (or be a \"*\" suffix match)",
      "sec.yaml:25:35: AuthorizationPolicy dns/bad: spec.rules[0].to[0].operation.paths[2]: \"/x/{*}\": path templates ({*}, {**}) are not supported by Trellis",
      "sec.yaml:26:9: AuthorizationPolicy dns/bad: spec.rules[0].to[0].operation.hots: unknown field (did you mean \"hosts\"?)",
      "sec.yaml:28:12: AuthorizationPolicy dns/bad: spec.rules[0].when[0].key: \"request.headers\" must name one header in brackets, e.g. request.headers[User-Agent]",
      "sec.yaml:31:16: AuthorizationPolicy dns/bad: spec.rules[0].when[1].values[0]: \"nope\" must be an IP address or a CIDR block such as 10.0.0.0/16",
      "sec.yaml:32:12: AuthorizationPolicy dns/bad: spec.rules[0].when[2].key: \"request.auth.claims[groups\" must name a claim in brackets, e.g. request.auth.claims[groups] or request.auth.claims[a][b]",
      "sec.yaml:35:19: AuthorizationPolicy dns/bad: spec.rules[0].when[3].notValues[0]: \"x\" must be a port number 0-65535 written as a string",
      "sec.yaml:36:12: AuthorizationPolicy dns/bad: spec.rules[0].when[4].key: unknown attribute \"source.serviceAccount\"; must be one of request.headers[<name>], source.ip, remote.ip, source.namespace, source.principal, request.auth.principal, request.auth.audiences, request.auth.presenter, request.auth.claims[<claim>], destination.ip, destination.port, connection.sni, experimental.envoy.filters.<filter>[<key>]",
      "sec.yaml:38:7: AuthorizationPolicy dns/bad: spec.rules[0].when[5]: at least one of values or notValues must be set for key connection.sni",
      "sec.yaml:39:5: AuthorizationPolicy dns/bad: spec.rules[1]: a rule must not be null (write {} for a rule that matches every request)",
      "sec.yaml:40:9: AuthorizationPolicy dns/bad: spec.rules[2].to: must not be empty (leave it out to match any operation)",
      "sec.yaml:46:3: AuthorizationPolicy dns/deny-none: spec: a DENY policy without rules is never triggered; add an empty rule {} to deny every request",
      "sec.yaml:47:3: AuthorizationPolicy dns/deny-none: spec.provider: may only be set with action CUSTOM, not DENY",
      "sec.yaml:53:3: AuthorizationPolicy dns/custom: spec: provider.name is required with action CUSTOM",
      "sec.yaml:53:3: warning: AuthorizationPolicy dns/custom: spec.action: CUSTOM (external authorization) is not supported by Trellis: requests its rules match are denied",
      "sec.yaml:55:22: AuthorizationPolicy dns/custom: spec.rules[0].from[0].source.principals: is not supported with action CUSTOM",
      "sec.yaml:56:18: AuthorizationPolicy dns/custom: spec.rules[0].when[0].key: \"request.auth.claims[iss]\" is not supported with action CUSTOM",
      "sec.yaml:62:16: PeerAuthentication dns/default: spec.mtls.mode: must be one of UNSET, DISABLE, PERMISSIVE, STRICT, not \"strict\" (values are case-sensitive: STRICT)",
      "sec.yaml:63:3: PeerAuthentication dns/default: spec.portLevelMtls: needs a workload selector: mesh-wide and namespace-wide policies cannot have port-level mTLS",
      "sec.yaml:65:5: PeerAuthentication dns/default: spec.portLevelMtls.0: port \"0\" must be a number 1-65535",
      "sec.yaml:72:3: RequestAuthentication dns/jwt: spec.targetRef: may not be combined with selector: set only one of selector, targetRef or targetRefs",
      "sec.yaml:72:74: RequestAuthentication dns/jwt: spec.targetRef.namespace: must not be set; cross-namespace references are not supported",
      "sec.yaml:74:13: RequestAuthentication dns/jwt: spec.jwtRules[0].issuer: is required",
      "sec.yaml:75:14: RequestAuthentication dns/jwt: spec.jwtRules[0].jwksUri: \"ftp://x\" must be an http or https URL, or file:///absolute/path",
      "sec.yaml:76:11: RequestAuthentication dns/jwt: spec.jwtRules[0].jwks: is not a valid JWKS: keys[0] has no \"kty\"",
      "sec.yaml:77:26: RequestAuthentication dns/jwt: spec.jwtRules[0].fromHeaders[0].name: \"bad header\" is not a valid HTTP header name",
      "sec.yaml:77:41: RequestAuthentication dns/jwt: spec.jwtRules[0].fromHeaders[1].name: is required",
      "sec.yaml:78:27: RequestAuthentication dns/jwt: spec.jwtRules[0].forwardOriginalToken: must be true or false, not string \"yes\"",
      "sec.yaml:79:17: RequestAuthentication dns/jwt: spec.jwtRules[0].audiences[0]: must not be empty",
      "sec.yaml:81:11: RequestAuthentication dns/jwt: spec.jwtRules[1].jwks: is not a valid JWKS: not JSON",
    ]);
    assert.equal(r.resources.length, 0);
  });

  it('loads valid policies of all three kinds into typed objects', () => {
    const r = load(`apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: zones, namespace: dns}
spec:
  selector: {matchLabels: {app: zones}}
  action: DENY
  rules:
  - from:
    - source: {notPrincipals: ["cluster.local/ns/dns/sa/admin"], ipBlocks: ["10.0.0.0/8", "192.168.1.7"]}
    to:
    - operation: {methods: [POST], paths: ["/dns.v1.ZoneService/DeleteZone", "/admin/*", "*/debug"], ports: ["9090"]}
    when:
    - key: "request.auth.claims[groups]"
      values: ["dns-admins"]
    - key: "request.auth.claims[realm][role]"
      notValues: ["guest"]
  - {}
---
apiVersion: security.istio.io/v1beta1
kind: AuthorizationPolicy
metadata: {name: allow-nothing, namespace: dns}
spec: {}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: zones, namespace: dns}
spec:
  selector: {matchLabels: {app: zones}}
  mtls: {mode: STRICT}
  portLevelMtls:
    8080: {mode: PERMISSIVE}
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt, namespace: dns}
spec:
  jwtRules:
  - issuer: https://issuer.example
    audiences: [dns]
    jwks: '{"keys": [{"kty": "EC", "crv": "P-256", "x": "a", "y": "b"}]}'
    fromHeaders: [{name: Authorization, prefix: "Bearer "}]
    fromParams: [token]
    outputPayloadToHeader: x-jwt-payload
    forwardOriginalToken: true
`);
    assert.deepEqual(r.lines, []);
    const [ap, none, pa, ra] = r.resources as [AuthorizationPolicy, AuthorizationPolicy, PeerAuthentication, RequestAuthentication];
    assert.equal(ap.spec.action, 'DENY');
    assert.deepEqual(ap.spec.selector, { matchLabels: { app: 'zones' } });
    assert.deepEqual(ap.spec.rules?.[0]?.from, [{ notPrincipals: ['cluster.local/ns/dns/sa/admin'], ipBlocks: ['10.0.0.0/8', '192.168.1.7'] }]);
    assert.deepEqual(ap.spec.rules?.[0]?.to, [{ methods: ['POST'], paths: ['/dns.v1.ZoneService/DeleteZone', '/admin/*', '*/debug'], ports: [9090] }]);
    assert.deepEqual(ap.spec.rules?.[0]?.when, [
      { key: 'request.auth.claims[groups]', values: ['dns-admins'] },
      { key: 'request.auth.claims[realm][role]', notValues: ['guest'] },
    ]);
    assert.deepEqual(ap.spec.rules?.[1], { path: ['spec', 'rules', 1] });
    assert.equal(none.spec.action, 'ALLOW');
    assert.equal(none.spec.rules, undefined);
    assert.deepEqual(pa.spec, { selector: { matchLabels: { app: 'zones' } }, mtls: 'STRICT', portLevelMtls: { 8080: 'PERMISSIVE' } });
    assert.deepEqual(ra.spec.jwtRules.map(({ path: _p, ...rule }) => rule), [
      {
        issuer: 'https://issuer.example',
        audiences: ['dns'],
        jwks: '{"keys": [{"kty": "EC", "crv": "P-256", "x": "a", "y": "b"}]}',
        fromHeaders: [{ name: 'Authorization', prefix: 'Bearer ' }],
        fromParams: ['token'],
        outputPayloadToHeader: 'x-jwt-payload',
        forwardOriginalToken: true,
      },
    ]);
  });

  it('refuses other apiVersions', () => {
    const r = load('apiVersion: security.istio.io/v1alpha1\nkind: PeerAuthentication\nmetadata: {name: p}\n');
    assert.deepEqual(r.lines, ['sec.yaml:1:13: PeerAuthentication default/p: apiVersion: PeerAuthentication must have apiVersion security.istio.io/v1 or security.istio.io/v1beta1']);
  });
});
