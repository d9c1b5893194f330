import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatDiagnostic } from './diagnostics.ts';
import type { CiliumNetworkPolicy } from './kinds.ts';
import { loadManifests } from './load.ts';

function load(text: string, name = 'cilium.yaml') {
  const r = loadManifests([{ name, text }]);
  return { ...r, lines: r.diagnostics.map(formatDiagnostic) };
}

const PORTS_41 = Array.from({ length: 41 }, (_, i) => `{port: "${1000 + i}"}`).join(', ');

const BROKEN = `
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: both
  namespace: shop
spec:
  endpointSelector: {}
  nodeSelector: {}
  ingress:
  - fromEndpoints: [{matchLabels: {app: web}}]
    fromCIDR: [10.0.0.0/8]
  - fromEntities: [world, World, cluster-wide]
  - fromCIDRSet:
    - {cidr: 10.0.0.0/8, except: [11.0.0.0/16, 10.1.0.0/16]}
    - {cidr: 10.0.0.300/8}
    - {cidr: 10.0.0.1}
    - {}
  - toPorts:
    - ports:
      - {port: "70000"}
      - {port: "80", protocol: ICMP}
      - {port: "53", protocol: udp}
      - {protocol: TCP}
    icmps: [{fields: [{type: 8, family: IPv4}]}]
  - toPorts:
    - ports: [{port: "53", protocol: ANY}]
      rules:
        dns: [{matchPattern: "*"}]
  egress:
  - toEntities: [world]
    toFQDNs: [{matchName: example.com}]
  - toPorts:
    - ports: [{port: "80", protocol: UDP}]
      rules:
        http: [{path: "/api/(v1", method: GET}]
    - ports: [{port: "0", protocol: TCP}]
      rules:
        http: [{headerMatches: [{name: X-Token, mismatch: DROP}]}]
    - ports: [{port: "8080"}]
      rules:
        http: [{}]
  egressDeny:
  - toEndpoints: [{}]
    toPorts:
    - ports: [{port: "80", protocol: TCP}]
      rules:
        http: [{}]
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: neither
  namespace: shop
spec:
  ingress: [{}]
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: host-in-cnp
spec:
  nodeSelector: {}
---
apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata:
  name: host
spec:
  nodeSelector: {matchLabels: {node-access: ssh}}
  ingress:
  - toPorts:
    - ports: [{port: "80", protocol: TCP}]
      rules: {http: [{}]}
  egress:
  - toPorts:
    - ports: [{port: "80", protocol: TCP}]
      rules: {http: [{}]}
    - ports: [{port: "53", protocol: UDP}]
      rules: {dns: [{matchPattern: "*"}]}
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: many-ports, namespace: shop}
specs: []
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: toomany, namespace: shop}
spec:
  endpointSelector: {}
  ingress:
  - toPorts:
    - ports: [${PORTS_41}]
`.slice(1);

describe('Cilium policy validation', () => {
  it('reports every error in a file of broken policies, in input order, following the rule sanitizer', () => {
    const r = load(BROKEN);
    assert.deepEqual(r.lines, [
      "cilium.yaml:8:3: CiliumNetworkPolicy shop/both: spec.nodeSelector: may not be combined with endpointSelector: a rule selects either endpoints or nodes",
      "cilium.yaml:8:3: CiliumNetworkPolicy shop/both: spec.nodeSelector: host policies (nodeSelector) are only allowed in CiliumClusterwideNetworkPolicy",
      "cilium.yaml:11:5: CiliumNetworkPolicy shop/both: spec.ingress[0].fromCIDR: combining fromEndpoints and fromCIDR in one rule is not supported; write them as separate rules",
      "cilium.yaml:12:27: CiliumNetworkPolicy shop/both: spec.ingress[1].fromEntities[1]: unsupported entity \"World\" (did you mean \"world\"?); must be one of all, world, world-ipv4, world-ipv6, cluster, host, remote-node, kube-apiserver, ingress, health, init, unmanaged, none",
      "cilium.yaml:12:34: CiliumNetworkPolicy shop/both: spec.ingress[1].fromEntities[2]: unsupported entity \"cluster-wide\"; must be one of all, world, world-ipv4, world-ipv6, cluster, host, remote-node, kube-apiserver, ingress, health, init, unmanaged, none",
      "cilium.yaml:14:35: CiliumNetworkPolicy shop/both: spec.ingress[2].fromCIDRSet[0].except[0]: 11.0.0.0/16 is not contained in cidr 10.0.0.0/8",
      "cilium.yaml:15:14: CiliumNetworkPolicy shop/both: spec.ingress[2].fromCIDRSet[1].cidr: must be a CIDR such as 10.0.0.0/16: invalid IP address",
      "cilium.yaml:16:14: CiliumNetworkPolicy shop/both: spec.ingress[2].fromCIDRSet[2].cidr: must be a CIDR in <ip>/<length> form (did you mean 10.0.0.1/32?)",
      "cilium.yaml:17:7: CiliumNetworkPolicy shop/both: spec.ingress[2].fromCIDRSet[3]: one of cidr, cidrGroupRef or cidrGroupSelector is required",
      "cilium.yaml:20:16: CiliumNetworkPolicy shop/both: spec.ingress[3].toPorts[0].ports[0].port: must be 0-65535 or an IANA port name, not 70000",
      "cilium.yaml:21:32: CiliumNetworkPolicy shop/both: spec.ingress[3].toPorts[0].ports[1].protocol: must be TCP, UDP, SCTP or ANY (ICMP goes in icmps, in a separate rule from toPorts)",
      "cilium.yaml:22:32: CiliumNetworkPolicy shop/both: spec.ingress[3].toPorts[0].ports[2].protocol: must be TCP, UDP, SCTP or ANY (the CRD only accepts upper case: UDP)",
      "cilium.yaml:23:9: CiliumNetworkPolicy shop/both: spec.ingress[3].toPorts[0].ports[3]: port must be specified (use \"0\" for every port)",
      "cilium.yaml:24:5: CiliumNetworkPolicy shop/both: spec.ingress[3].icmps: may only be present without toPorts; define a separate rule for toPorts",
      "cilium.yaml:24:5: warning: CiliumNetworkPolicy shop/both: spec.ingress[3].icmps: ICMP rules are accepted but not evaluated: Trellis decides TCP, UDP and SCTP flows",
      "cilium.yaml:28:9: CiliumNetworkPolicy shop/both: spec.ingress[4].toPorts[0].rules.dns: DNS rules are not allowed on ingress",
      "cilium.yaml:31:5: CiliumNetworkPolicy shop/both: spec.egress[0].toFQDNs: combining toEntities and toFQDNs in one rule is not supported; write them as separate rules",
      "cilium.yaml:31:5: warning: CiliumNetworkPolicy shop/both: spec.egress[0].toFQDNs: toFQDNs depends on runtime state (cloud groups, DNS answers, service backends) and is not evaluated offline; this rule allows nothing through it",
      "cilium.yaml:33:28: CiliumNetworkPolicy shop/both: spec.egress[1].toPorts[0].ports[0].protocol: L7 rules can only apply to TCP (not UDP); set protocol: TCP",
      "cilium.yaml:35:23: CiliumNetworkPolicy shop/both: spec.egress[1].toPorts[0].rules.http[0].path: \"/api/(v1\" is not a valid regular expression: unterminated group",
      "cilium.yaml:36:22: CiliumNetworkPolicy shop/both: spec.egress[1].toPorts[1].ports[0].port: L7 rules can not be used when a port is 0 (every port)",
      "cilium.yaml:38:59: CiliumNetworkPolicy shop/both: spec.egress[1].toPorts[1].rules.http[0].headerMatches[0].mismatch: must be LOG, ADD, DELETE or REPLACE",
      "cilium.yaml:39:15: CiliumNetworkPolicy shop/both: spec.egress[1].toPorts[2].ports[0].protocol: L7 rules can only apply to TCP (not ANY, the default when protocol is not set); set protocol: TCP",
      "cilium.yaml:46:7: CiliumNetworkPolicy shop/both: spec.egressDeny[0].toPorts[0].rules: L7 rules are not allowed in deny rules",
      "cilium.yaml:55:3: CiliumNetworkPolicy shop/neither: spec: must have endpointSelector or nodeSelector",
      "cilium.yaml:61:1: warning: CiliumNetworkPolicy default/host-in-cnp: spec: has no ingress, ingressDeny, egress or egressDeny section, so it has no effect",
      "cilium.yaml:62:3: CiliumNetworkPolicy default/host-in-cnp: spec.nodeSelector: host policies (nodeSelector) are only allowed in CiliumClusterwideNetworkPolicy",
      "cilium.yaml:73:7: CiliumClusterwideNetworkPolicy host: spec.ingress[0].toPorts[0].rules: L7 policy is not supported on host ingress (nodeSelector)",
      "cilium.yaml:77:15: CiliumClusterwideNetworkPolicy host: spec.egress[0].toPorts[0].rules.http: HTTP rules are not supported in host policies (nodeSelector); only DNS rules are allowed on host egress",
      "cilium.yaml:84:1: CiliumNetworkPolicy shop/many-ports: specs: is empty and there is no spec: the policy has no rules",
      "cilium.yaml:93:14: CiliumNetworkPolicy shop/toomany: spec.ingress[0].toPorts[0].ports: too many ports (41); Cilium allows at most 40 per toPorts entry",
    ]);
    assert.equal(r.resources.length, 0);
  });

  it('loads spec and specs together, in order, with typed rules', () => {
    const r = load(`apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: api, namespace: shop}
spec:
  endpointSelector: {matchLabels: {"k8s:app": api}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: web}}]
    toPorts:
    - ports: [{port: "8080", protocol: TCP}, {port: "9000", endPort: 9100, protocol: TCP}]
      rules:
        http:
        - {method: GET, path: "/v1/.*", headers: ["X-Team: shop"], headerMatches: [{name: X-Id, mismatch: LOG}]}
specs:
- endpointSelector: {}
  egress:
  - toCIDR: [10.0.0.1, 192.168.0.0/16]
  - toCIDRSet: [{cidr: 0.0.0.0/0, except: [10.0.0.0/8]}]
    toPorts: [{ports: [{port: HTTPS, protocol: TCP}]}]
  - toEntities: [kube-apiserver]
    toPorts: [{ports: [{port: "53", protocol: UDP}], rules: {dns: [{matchPattern: "*"}]}}]
- endpointSelector: {}
  egressDeny:
  - toEntities: [world]
    toPorts: [{ports: [{port: "25"}]}]
  ingress:
  - icmps: [{fields: [{type: EchoRequest, family: IPv4}, {type: 128, family: IPv6}]}]
`);
    assert.deepEqual(r.lines, ['cilium.yaml:26:5: warning: CiliumNetworkPolicy shop/api: specs[1].ingress[0].icmps: ICMP rules are accepted but not evaluated: Trellis decides TCP, UDP and SCTP flows']);
    const p = r.resources[0] as CiliumNetworkPolicy;
    assert.equal(p.rules.length, 3);
    assert.deepEqual(p.rules.map((x) => x.path), [['spec'], ['specs', 0], ['specs', 1]]);
    assert.deepEqual(p.rules[0]?.ingress?.[0]?.toPorts?.[0]?.ports, [
      { port: 8080, protocol: 'TCP' },
      { port: 9000, endPort: 9100, protocol: 'TCP' },
    ]);
    assert.deepEqual(p.rules[0]?.ingress?.[0]?.toPorts?.[0]?.http, [
      { method: 'GET', path: '/v1/.*', headers: ['X-Team: shop'], headerMatches: [{ name: 'X-Id', mismatch: 'LOG' }] },
    ]);
    assert.deepEqual(p.rules[1]?.egress?.[0]?.cidr, ['10.0.0.1/32', '192.168.0.0/16']);
    assert.deepEqual(p.rules[1]?.egress?.[1]?.cidrSet, [{ cidr: '0.0.0.0/0', except: ['10.0.0.0/8'] }]);
    assert.deepEqual(p.rules[1]?.egress?.[1]?.toPorts?.[0]?.ports, [{ port: 'https', protocol: 'TCP' }]);
    assert.deepEqual(p.rules[2]?.egressDeny?.[0]?.toPorts?.[0]?.ports, [{ port: 25, protocol: 'ANY' }]);
  });

  it('warns about a rule with no sections, and about endPort on a named port', () => {
    const r = load(`apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata: {name: quiet}
spec:
  endpointSelector: {}
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: named}
spec:
  endpointSelector: {}
  egress:
  - toPorts: [{ports: [{port: http, endPort: 90, protocol: TCP}]}]
`);
    assert.deepEqual(r.lines, [
      'cilium.yaml:4:1: warning: CiliumClusterwideNetworkPolicy quiet: spec: has no ingress, ingressDeny, egress or egressDeny section, so it has no effect',
      'cilium.yaml:13:37: warning: CiliumNetworkPolicy default/named: spec.egress[0].toPorts[0].ports[0].endPort: is ignored when port is a named port',
    ]);
    assert.equal(r.resources.length, 2);
  });

  it('checks regexes, header matches, icmps and deny-rule fields', () => {
    const r = load(`apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: l7, namespace: shop}
spec:
  endpointSelector: {}
  ingress:
  - toPorts:
    - ports: [{port: "80", protocol: TCP}]
      rules:
        http:
        - {path: "/a(?=b)", method: "[GET"}
        - {path: "(?i)/Admin/.*", host: "*.example.com"}
        - {headerMatches: [{name: "", value: x}], headers: [" "]}
  - icmps: [{fields: [{type: Ping, family: IPv5}, {type: 300}]}]
  ingressDeny:
  - fromEntities: [world]
    toPorts: [{ports: [{port: "80"}], serverNames: [a.example.com]}]
`);
    assert.deepEqual(r.lines, [
      'cilium.yaml:11:18: CiliumNetworkPolicy shop/l7: spec.ingress[0].toPorts[0].rules.http[0].path: "/a(?=b)" is not a valid regular expression: lookahead and lookbehind are not supported (Go RE2 syntax)',
      'cilium.yaml:11:37: CiliumNetworkPolicy shop/l7: spec.ingress[0].toPorts[0].rules.http[0].method: "[GET" is not a valid regular expression: unterminated character class',
      'cilium.yaml:12:41: CiliumNetworkPolicy shop/l7: spec.ingress[0].toPorts[0].rules.http[1].host: "*.example.com" is not a valid regular expression: nothing to repeat',
      'cilium.yaml:13:35: CiliumNetworkPolicy shop/l7: spec.ingress[0].toPorts[0].rules.http[2].headerMatches[0].name: header name missing',
      'cilium.yaml:13:61: CiliumNetworkPolicy shop/l7: spec.ingress[0].toPorts[0].rules.http[2].headers[0]: must name a header, optionally with ": value"',
      'cilium.yaml:14:5: warning: CiliumNetworkPolicy shop/l7: spec.ingress[1].icmps: ICMP rules are accepted but not evaluated: Trellis decides TCP, UDP and SCTP flows',
      'cilium.yaml:14:30: CiliumNetworkPolicy shop/l7: spec.ingress[1].icmps[0].fields[0].type: must be an ICMP type 0-255 or a type name such as EchoRequest',
      'cilium.yaml:14:44: CiliumNetworkPolicy shop/l7: spec.ingress[1].icmps[0].fields[0].family: wrong family "IPv5"; must be IPv4 or IPv6',
      'cilium.yaml:14:58: CiliumNetworkPolicy shop/l7: spec.ingress[1].icmps[0].fields[1].type: must be an ICMP type 0-255 or a type name such as EchoRequest',
      'cilium.yaml:17:39: CiliumNetworkPolicy shop/l7: spec.ingressDeny[0].toPorts[0].serverNames: unknown field',
    ]);
  });
});
