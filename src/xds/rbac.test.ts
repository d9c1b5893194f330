// Tests of the RBAC translation: exact Envoy configs, proxyless gRPC limits, and grpc-js-xds's own evaluator.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Metadata } from '@grpc/grpc-js';
import protobuf from 'protobufjs';
import { buildAuthzModel, workloadAuthz } from '../policy/authz-model.ts';
import { loadManifests } from '../resources/load.ts';
import { buildRbacFilters, type RbacFilterConfig } from './rbac.ts';

const require = createRequire(import.meta.url);
// grpc-js-xds's RBAC engine: the same parser and evaluator its server-side RBAC filter runs.
const xdsRbac = require('@grpc/grpc-js-xds/build/src/rbac.js') as typeof import('@grpc/grpc-js-xds/build/src/rbac.js');

function workload(text: string) {
  const r = loadManifests([{ name: 'p.yaml', text }]);
  assert.deepEqual(r.diagnostics.filter((d) => d.severity === 'error'), []);
  return workloadAuthz(buildAuthzModel(r.resources), { namespace: 'dns', labels: { app: 'zones' } });
}

const POLICIES = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: zones, namespace: dns}
spec:
  selector: {matchLabels: {app: zones}}
  rules:
  - from: [{source: {principals: ["cluster.local/ns/dns/sa/admin"], notNamespaces: ["web"]}}]
    to: [{operation: {methods: [POST], paths: ["/dns.v1.ZoneService/*"], ports: ["9090"]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: no-ci-deletes, namespace: dns}
spec:
  action: DENY
  rules:
  - from: [{source: {principals: ["*/sa/ci"], ipBlocks: ["10.0.0.0/8"]}}]
    to: [{operation: {paths: ["*/DeleteZone"]}}]
    when: [{key: "request.headers[x-env]", values: [prod]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: audit, namespace: dns}
spec:
  action: AUDIT
  rules: [{}]
`;

describe('buildRbacFilters', () => {
  it('translates ALLOW, DENY and AUDIT policies into RBAC filters in Istio order with the proto field names', () => {
    const b = buildRbacFilters(workload(POLICIES));
    assert.deepEqual(b.diagnostics, []);
    assert.deepEqual(
      b.filters.map((f) => [f.name, f.typed_config['@type'], f.typed_config.rules?.action]),
      [
        ['envoy.filters.http.rbac', 'type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC', 'LOG'],
        ['envoy.filters.http.rbac', 'type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC', 'DENY'],
        ['envoy.filters.http.rbac', 'type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC', 'ALLOW'],
      ],
    );
    assert.deepEqual(b.filters[0]?.typed_config.rules?.policies, {
      'ns[dns]-policy[audit]-rule[0]': { permissions: [{ and_rules: { rules: [{ any: true }] } }], principals: [{ and_ids: { ids: [{ any: true }] } }] },
    });
    assert.deepEqual(b.filters[1]?.typed_config.rules?.policies, {
      'ns[dns]-policy[no-ci-deletes]-rule[0]': {
        permissions: [{ and_rules: { rules: [{ or_rules: { rules: [{ url_path: { path: { suffix: '/DeleteZone' } } }] } }] } }],
        principals: [
          {
            and_ids: {
              ids: [
                { or_ids: { ids: [{ authenticated: { principal_name: { safe_regex: { regex: 'spiffe://.*/sa/ci' } } } }] } },
                { or_ids: { ids: [{ direct_remote_ip: { address_prefix: '10.0.0.0', prefix_len: { value: 8 } } }] } },
                { or_ids: { ids: [{ header: { name: 'x-env', string_match: { exact: 'prod' } } }] } },
              ],
            },
          },
        ],
      },
    });
    assert.deepEqual(b.filters[2]?.typed_config.rules?.policies, {
      'ns[dns]-policy[zones]-rule[0]': {
        permissions: [
          {
            and_rules: {
              rules: [
                { or_rules: { rules: [{ header: { name: ':method', string_match: { exact: 'POST' } } }] } },
                { or_rules: { rules: [{ url_path: { path: { prefix: '/dns.v1.ZoneService/' } } }] } },
                { or_rules: { rules: [{ destination_port: 9090 }] } },
              ],
            },
          },
        ],
        principals: [
          {
            and_ids: {
              ids: [
                { or_ids: { ids: [{ authenticated: { principal_name: { exact: 'spiffe://cluster.local/ns/dns/sa/admin' } } }] } },
                { not_id: { or_ids: { ids: [{ authenticated: { principal_name: { safe_regex: { regex: '.*/ns/web/.*' } } } }] } } },
              ],
            },
          },
        ],
      },
    });
  });

  it('translates JWT conditions to jwt_authn metadata matchers, and an ALLOW policy without rules to a never-matching policy', () => {
    const b = buildRbacFilters(
      workload(`apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: jwt, namespace: dns}
spec:
  rules:
  - from: [{source: {requestPrincipals: ["https://issuer.example/alice"]}}]
    when: [{key: "request.auth.claims[groups]", values: [admins]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: nothing, namespace: dns}
spec: {}
`),
    );
    const allow = b.filters[0]?.typed_config.rules;
    assert.deepEqual(allow?.policies['ns[dns]-policy[jwt]-rule[0]']?.principals, [
      {
        and_ids: {
          ids: [
            {
              or_ids: {
                ids: [
                  {
                    and_ids: {
                      ids: [
                        { metadata: { filter: 'envoy.filters.http.jwt_authn', path: [{ key: 'payload' }, { key: 'iss' }], value: { string_match: { exact: 'https://issuer.example' } } } },
                        { metadata: { filter: 'envoy.filters.http.jwt_authn', path: [{ key: 'payload' }, { key: 'sub' }], value: { string_match: { exact: 'alice' } } } },
                      ],
                    },
                  },
                ],
              },
            },
            // Istio's extended claim matcher: all values in one metadata matcher, as a string or in a list.
            {
              metadata: {
                filter: 'envoy.filters.http.jwt_authn',
                path: [{ key: 'payload' }, { key: 'groups' }],
                value: { or_match: { value_matchers: [{ list_match: { one_of: { string_match: { exact: 'admins' } } } }, { string_match: { exact: 'admins' } }] } },
              },
            },
          ],
        },
      },
    ]);
    assert.deepEqual(allow?.policies['ns[dns]-policy[nothing]-rule[0]'], { permissions: [{ not_rule: { any: true } }], principals: [{ not_id: { any: true } }] });
    // Every field name (metadata, list_match, or_match, …) is one of Envoy's: the proto round trip keeps them all.
    for (const f of [...b.filters, ...buildRbacFilters(workload(POLICIES)).filters]) roundTrip({ rules: f.typed_config.rules });
  });

  it('fails closed for proxyless gRPC where grpc-js-xds cannot evaluate a condition, with diagnostics', () => {
    const w = workload(`apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: jwt, namespace: dns}
spec:
  rules:
  - from: [{source: {requestPrincipals: ["*"]}}]
  - to: [{operation: {paths: ["/dns.v1.ZoneService/GetZone"]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-guests, namespace: dns}
spec:
  action: DENY
  rules:
  - to: [{operation: {paths: ["*/DeleteZone"]}}]
    when: [{key: "request.auth.claims[role]", values: [guest]}]
`);
    const b = buildRbacFilters(w, { target: 'grpc' });
    assert.deepEqual(Object.keys(b.filters[1]?.typed_config.rules?.policies ?? {}), ['ns[dns]-policy[jwt]-rule[1]']);
    assert.deepEqual(b.filters[0]?.typed_config.rules?.policies['ns[dns]-policy[deny-guests]-rule[0]']?.principals, [{ and_ids: { ids: [{ any: true }] } }]);
    assert.deepEqual(
      b.diagnostics.map((d) => `${d.namespace}/${d.name} ${d.field}: ${d.message}`),
      [
        'dns/deny-guests spec.rules[0].when[0]: a JWT condition (Envoy dynamic metadata of jwt_authn) cannot be evaluated by proxyless gRPC: the condition is left out, so this rule denies more requests',
        'dns/jwt spec.rules[0].from[0].source.requestPrincipals: a JWT condition (Envoy dynamic metadata of jwt_authn) cannot be evaluated by proxyless gRPC: this ALLOW rule is left out, so requests it would allow are denied',
      ],
    );
  });

  it('is accepted and evaluated by grpc-js-xds: who may call dns.v1.ZoneService/DeleteZone', () => {
    const filters = buildRbacFilters(workload(POLICIES), { target: 'grpc' });
    assert.deepEqual(filters.filters.map((f) => f.typed_config.rules?.action), ['DENY', 'ALLOW']);
    const engines = filters.filters.map((f) => xdsRbac.parseConfig(roundTrip({ rules: f.typed_config.rules }).rules as never));
    const call = (principal: string | null, method: string, ip: string, env = 'prod'): boolean => {
      const headers = new Metadata();
      headers.set(':method', 'POST');
      headers.set(':path', `/dns.v1.ZoneService/${method}`);
      headers.set('x-env', env);
      const info = {
        headers,
        urlPath: `/dns.v1.ZoneService/${method}`,
        destinationIp: '10.244.0.5',
        destinationPort: 9090,
        sourceIp: ip,
        tls: principal !== null,
        peerCertificate: principal === null ? null : { subjectaltname: `URI:spiffe://${principal}`, subject: {} as never },
      };
      return engines.every((e) => e.apply(info));
    };
    assert.equal(call('cluster.local/ns/dns/sa/admin', 'DeleteZone', '10.244.0.9'), true);
    assert.equal(call('cluster.local/ns/dns/sa/ci', 'DeleteZone', '10.244.0.9'), false);
    assert.equal(call('cluster.local/ns/dns/sa/ci', 'GetZone', '10.244.0.9'), false);
    assert.equal(call('cluster.local/ns/web/sa/admin', 'DeleteZone', '10.244.0.9'), false);
    assert.equal(call(null, 'DeleteZone', '10.244.0.9'), false);
  });
});

/** Encodes the plain object with Envoy's own .proto files and decodes it as grpc-js-xds does (oneofs, defaults). */
function roundTrip(config: RbacFilterConfig): { rules: unknown } {
  const base = join(import.meta.dirname, '../../node_modules/@grpc/grpc-js-xds/deps');
  const dirs = [...['xds', 'envoy-api', 'protoc-gen-validate', 'googleapis'].map((d) => join(base, d)), join(import.meta.dirname, '../../node_modules/protobufjs')];
  const root = new protobuf.Root();
  root.resolvePath = (_origin, target) => dirs.map((d) => join(d, target)).find((p) => existsSync(p)) ?? target;
  root.loadSync('envoy/extensions/filters/http/rbac/v3/rbac.proto', { keepCase: true });
  const type = root.lookupType('envoy.extensions.filters.http.rbac.v3.RBAC');
  const decoded = type.decode(type.encode(type.fromObject(config)).finish());
  // fromObject drops unknown fields: getting the same object back proves every field name is Envoy's.
  assert.deepEqual(type.toObject(decoded, { enums: String }), JSON.parse(JSON.stringify(config)));
  return type.toObject(decoded, { oneofs: true, defaults: true, enums: String, longs: String }) as { rules: unknown };
}
