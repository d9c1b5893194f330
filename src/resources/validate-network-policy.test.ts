import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatDiagnostic } from './diagnostics.ts';
import type { NetworkPolicy } from './kinds.ts';
import { loadManifests } from './load.ts';

function load(text: string, name = 'policies.yaml') {
  const r = loadManifests([{ name, text }]);
  return { ...r, lines: r.diagnostics.map(formatDiagnostic) };
}

const BROKEN = `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: db
spec:
  podSelector:
    matchLabels:
      app: db
  policyTypes: [Ingress, Egress, Ingress]
  ingress:
  - from:
    - podSelector: {matchLabels: {app: api}}
    ports:
    - port: 70000
    - port: "8080"
    - port: Http_Port
    - endPort: 90
    - port: metrics
      endPort: 9100
    - port: 9000
      endPort: 8000
    - protocol: tcp
      port: 80
    - protocol: ICMP
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: web
  namespace: shop
spec:
  podSelector:
    matchExpressions:
    - {key: app, operator: in, values: [web]}
    - {key: tier, operator: In}
    - {key: env, operator: Exists, values: [prod]}
    - {key: "-bad", operator: NotIn, values: ["bad value"]}
  egress:
  - to:
    - ipBlock: {cidr: 10.0.0.0/33}
    - ipBlock:
        cidr: 10.0.0.0/16
        except: [10.1.0.0/24, 10.0.0.0/16, 10.0.5.0/24, nope]
    - ipBlock: {cidr: 10.0.0.1/24}
      podSelector: {}
    - {}
    - namespaceSelector: {matchLabels: {team: true}}
    - podSelector: {matchLabels: {example.com/app: ok, "Bad_/x": y}}
  ingres: []
  spec: {}
`.slice(1);

describe('NetworkPolicy validation', () => {
  it('reports every error in a file of broken policies, in input order, with locations, names and fields', () => {
    const r = load(BROKEN);
    assert.deepEqual(r.lines, [
      "policies.yaml:9:16: NetworkPolicy default/db: spec.policyTypes: may not specify more than two policyTypes (found 3)",
      "policies.yaml:9:34: warning: NetworkPolicy default/db: spec.policyTypes[2]: \"Ingress\" is listed twice",
      "policies.yaml:14:13: NetworkPolicy default/db: spec.ingress[0].ports[0].port: must be 1-65535 or an IANA port name",
      "policies.yaml:15:13: NetworkPolicy default/db: spec.ingress[0].ports[1].port: must be 1-65535 or an IANA port name (write the number unquoted: 8080)",
      "policies.yaml:16:13: NetworkPolicy default/db: spec.ingress[0].ports[2].port: must be 1-65535 or an IANA port name: port name \"Http_Port\" may contain only lowercase letters, digits and \"-\"",
      "policies.yaml:17:7: NetworkPolicy default/db: spec.ingress[0].ports[3].endPort: may not be specified when port is not specified",
      "policies.yaml:19:7: NetworkPolicy default/db: spec.ingress[0].ports[4].endPort: may not be specified when port is non-numeric (a named port)",
      "policies.yaml:21:16: NetworkPolicy default/db: spec.ingress[0].ports[5].endPort: must be greater than or equal to port (9000)",
      "policies.yaml:22:17: NetworkPolicy default/db: spec.ingress[0].ports[6].protocol: must be TCP, UDP or SCTP (protocol names are upper case: TCP)",
      "policies.yaml:24:17: NetworkPolicy default/db: spec.ingress[0].ports[7].protocol: must be TCP, UDP or SCTP",
      "policies.yaml:34:28: NetworkPolicy shop/web: spec.podSelector.matchExpressions[0].operator: \"in\" is not a valid selector operator; must be one of In, NotIn, Exists, DoesNotExist (operators are case-sensitive: In)",
      "policies.yaml:35:7: NetworkPolicy shop/web: spec.podSelector.matchExpressions[1]: values must be specified when operator is In",
      "policies.yaml:36:36: NetworkPolicy shop/web: spec.podSelector.matchExpressions[2].values: may not be specified when operator is Exists",
      "policies.yaml:37:13: NetworkPolicy shop/web: spec.podSelector.matchExpressions[3].key: label key \"-bad\" must be at most 63 characters of alphanumerics, \"-\", \"_\" or \".\", starting and ending with an alphanumeric",
      "policies.yaml:37:47: NetworkPolicy shop/web: spec.podSelector.matchExpressions[3].values[0]: label value \"bad value\" must be at most 63 characters of alphanumerics, \"-\", \"_\" or \".\", starting and ending with an alphanumeric",
      "policies.yaml:40:23: NetworkPolicy shop/web: spec.egress[0].to[0].ipBlock.cidr: must be a CIDR such as 10.0.0.0/16: prefix length must be 0-32",
      "policies.yaml:43:18: NetworkPolicy shop/web: spec.egress[0].to[1].ipBlock.except[0]: 10.1.0.0/24 is not a strict subset of cidr 10.0.0.0/16",
      "policies.yaml:43:31: NetworkPolicy shop/web: spec.egress[0].to[1].ipBlock.except[1]: 10.0.0.0/16 is not a strict subset of cidr 10.0.0.0/16",
      "policies.yaml:43:57: NetworkPolicy shop/web: spec.egress[0].to[1].ipBlock.except[3]: must be a CIDR such as 10.0.0.0/16",
      "policies.yaml:44:7: NetworkPolicy shop/web: spec.egress[0].to[2].ipBlock: may not be combined with podSelector or namespaceSelector in one peer",
      "policies.yaml:44:17: warning: NetworkPolicy shop/web: spec.egress[0].to[2].ipBlock.cidr: has host bits set; it means 10.0.0.0/24",
      "policies.yaml:46:7: NetworkPolicy shop/web: spec.egress[0].to[3]: must specify a peer: podSelector, namespaceSelector or ipBlock",
      "policies.yaml:47:47: NetworkPolicy shop/web: spec.egress[0].to[4].namespaceSelector.matchLabels.team: must be a string (quote it: \"true\")",
      "policies.yaml:48:56: NetworkPolicy shop/web: spec.egress[0].to[5].podSelector.matchLabels.Bad_/x: label key prefix \"Bad_\" must be a DNS subdomain (lowercase alphanumerics, \"-\" and \".\", at most 253 characters)",
      "policies.yaml:49:3: NetworkPolicy shop/web: spec.ingres: unknown field (did you mean \"ingress\"?)",
      "policies.yaml:50:3: NetworkPolicy shop/web: spec.spec: unknown field",
    ]);
    assert.equal(r.resources.length, 0);
  });

  it('loads a valid policy into typed objects', () => {
    const r = load(`apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: api, namespace: shop}
spec:
  podSelector: {matchLabels: {app: api}}
  policyTypes: [Ingress, Egress]
  ingress:
  - from:
    - namespaceSelector: {matchLabels: {team: shop}}
      podSelector: {matchExpressions: [{key: app, operator: In, values: [web]}]}
    - ipBlock: {cidr: "2001:db8::/32", except: ["2001:db8:1::/48"]}
    ports:
    - {port: 8080}
    - {port: http, protocol: UDP}
    - {port: 30000, endPort: 32767, protocol: SCTP}
  egress:
  - {}
`);
    assert.deepEqual(r.lines, []);
    const np = r.resources[0] as NetworkPolicy;
    assert.equal(np.metadata.namespace, 'shop');
    assert.deepEqual(np.spec.policyTypes, ['Ingress', 'Egress']);
    assert.deepEqual(np.spec.ingress?.[0]?.ports, [
      { protocol: 'TCP', port: 8080 },
      { protocol: 'UDP', port: 'http' },
      { protocol: 'SCTP', port: 30000, endPort: 32767 },
    ]);
    assert.deepEqual(np.spec.ingress?.[0]?.peers?.[1], { ipBlock: { cidr: '2001:db8::/32', except: ['2001:db8:1::/48'] } });
    assert.deepEqual(np.spec.ingress?.[0]?.peers?.[0]?.podSelector?.matchExpressions, [{ key: 'app', operator: 'In', values: ['web'] }]);
    assert.deepEqual(np.spec.egress, [{}]);
  });

  it('defaults the namespace and reports a port out of range at the value', () => {
    const r = load(`apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: db
spec:
  podSelector: {}
  ingress:
  - ports:
    - protocol: TCP
      port: 0
`);
    assert.deepEqual(r.lines, ['policies.yaml:10:13: NetworkPolicy default/db: spec.ingress[0].ports[0].port: must be 1-65535 or an IANA port name']);
    assert.equal(r.diagnostics[0]?.field, 'spec.ingress[0].ports[0].port');
    assert.equal(r.diagnostics[0]?.resource, 'NetworkPolicy default/db');
  });

  it('checks field types and unknown top-level fields', () => {
    const r = load(`apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: t}
spce: {}
spec:
  podSelector: {matchLabel: {a: b}}
  ingress:
  - from: {podSelector: {}}
    port: []
  egress: yes
`);
    assert.deepEqual(r.lines, [
      'policies.yaml:4:1: NetworkPolicy default/t: spce: unknown field (did you mean "spec"?)',
      'policies.yaml:6:17: NetworkPolicy default/t: spec.podSelector.matchLabel: unknown field (did you mean "matchLabels"?)',
      'policies.yaml:8:11: NetworkPolicy default/t: spec.ingress[0].from: must be a list, not an object',
      'policies.yaml:9:5: NetworkPolicy default/t: spec.ingress[0].port: unknown field (did you mean "ports"?)',
      'policies.yaml:10:11: NetworkPolicy default/t: spec.egress: must be a list, not string "yes"',
    ]);
  });

  it('requires spec and an ipBlock cidr', () => {
    const r = load(`apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: a}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: b}
spec:
  podSelector: {}
  egress:
  - to:
    - ipBlock: {except: [10.0.0.0/8]}
    - ipBlock: {cidr: ""}
`);
    assert.deepEqual(r.lines, [
      'policies.yaml:1:1: NetworkPolicy default/a: spec: is required',
      'policies.yaml:12:16: NetworkPolicy default/b: spec.egress[0].to[0].ipBlock.cidr: is required',
      'policies.yaml:13:23: NetworkPolicy default/b: spec.egress[0].to[1].ipBlock.cidr: is required',
    ]);
  });
});
