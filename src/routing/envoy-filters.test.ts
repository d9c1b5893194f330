import assert from 'node:assert/strict';
import { basename } from 'node:path';
import { describe, it } from 'node:test';
import type { HttpFilterConfig } from '../proxy/proxy-config.ts';
import { formatDiagnostic } from '../resources/diagnostics.ts';
import type { EnvoyFilter } from '../resources/kinds-traffic.ts';
import { loadManifests } from '../resources/load.ts';
import { envoyFiltersFor, httpFiltersFor, type ChainFilter, type FilterListener, type FilterPod } from './envoy-filters.ts';

/** EnvoyFilters as the validator reads them from manifests (the module paths resolve against `name`'s folder). */
function load(text: string, name = '/mesh/filters.yaml'): EnvoyFilter[] {
  const r = loadManifests([{ name, text }]);
  assert.deepEqual(r.diagnostics.filter((d) => d.severity === 'error').map(formatDiagnostic), []);
  return r.resources.filter((x): x is EnvoyFilter => x.kind === 'EnvoyFilter');
}

interface Ext {
  name: string;
  ns?: string;
  op?: string;
  sub?: string;
  context?: string;
  port?: number;
  priority?: number;
  selector?: string;
  created?: string;
  cls?: string;
  /** Extra patches, as YAML list items at the configPatches indentation. */
  more?: string;
}

/** An EnvoyFilter adding one Trellis extension whose module is `./<name>.ts`. */
function ext(o: Ext): string {
  const listener = o.port !== undefined || o.sub !== undefined;
  return `apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata:
  name: ${o.name}
  namespace: ${o.ns ?? 'shop'}
${o.created ? `  creationTimestamp: "${o.created}"\n` : ''}spec:
${o.selector ? `  workloadSelector: {labels: ${o.selector}}\n` : ''}${o.priority !== undefined ? `  priority: ${o.priority}\n` : ''}  configPatches:
  - applyTo: HTTP_FILTER
    match:
      context: ${o.context ?? 'ANY'}
${listener ? `      listener:\n${o.port ? `        portNumber: ${o.port}\n` : ''}${o.sub ? `        filterChain: {filter: {name: envoy.filters.network.http_connection_manager, subFilter: {name: ${o.sub}}}}\n` : ''}` : ''}    patch:
      operation: ${o.op ?? 'ADD'}
${o.cls ? `      filterClass: ${o.cls}\n` : ''}${o.op === 'REMOVE' ? '' : value(o.name)}${o.more ?? ''}---
`;
}

function value(name: string): string {
  return `      value:
        name: ${name}
        typed_config:
          "@type": type.googleapis.com/udpa.type.v1.TypedStruct
          type_url: trellis.dev/extension
          value: {module: ./${name}.ts, config: {from: ${name}}}
`;
}

/** A LocalRateLimit typed config, each line indented by `indent`; `extra` lines are added at the same level. */
const rateLimit = (indent: string, tokens: number | undefined, extra: string[] = []): string =>
  [
    '"@type": type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit',
    'stat_prefix: rl',
    ...(tokens === undefined ? [] : [`token_bucket: {max_tokens: ${tokens}, fill_interval: 1s}`, 'filter_enabled: {default_value: {numerator: 100}}', 'filter_enforced: {default_value: {numerator: 100}}']),
    ...extra,
  ]
    .map((l) => indent + l + '\n')
    .join('');

const web: FilterPod = { namespace: 'shop', labels: { app: 'web', version: 'v1' } };
const inbound: FilterListener = { direction: 'inbound', port: 8080 };

/** The chain in short: policy, fault, an extension by its module's base name, a rate limit by its tokens. */
function names(chain: readonly ChainFilter[]): string[] {
  return chain.map((c) => {
    if (c.name === 'trellis.extension') return basename(c.module, '.ts');
    if (c.name === 'envoy.filters.http.local_ratelimit') return `rl:${c.maxTokens}${c.perRoute ? '/route' : ''}`;
    return c.name === 'trellis.policy' ? 'policy' : 'fault';
  });
}

const chainOf = (yaml: string, pod: FilterPod = web, listener: FilterListener = inbound, root?: string): string[] => names(httpFiltersFor(load(yaml), pod, listener, root));

describe('httpFiltersFor: which EnvoyFilters apply', () => {
  it("gives Trellis' own chain when no EnvoyFilter applies", () => {
    assert.deepEqual(names(httpFiltersFor([], web, inbound)), ['policy', 'fault']);
  });

  it('selects by namespace, workloadSelector and the root namespace, as Istio', () => {
    const yaml =
      ext({ name: 'ns' }) +
      ext({ name: 'web', selector: '{app: web}' }) +
      ext({ name: 'api', selector: '{app: api}' }) +
      ext({ name: 'other', ns: 'billing' }) +
      ext({ name: 'mesh', ns: 'istio-system' }) +
      ext({ name: 'meshweb', ns: 'istio-system', selector: '{app: web, version: v1}' });
    assert.deepEqual(chainOf(yaml), ['policy', 'fault', 'mesh', 'meshweb', 'ns', 'web']);
    assert.deepEqual(chainOf(yaml, { namespace: 'shop', labels: { app: 'api' } }), ['policy', 'fault', 'mesh', 'ns', 'api']);
    assert.deepEqual(chainOf(yaml, { namespace: 'billing', labels: { app: 'web', version: 'v1' } }), ['policy', 'fault', 'mesh', 'meshweb', 'other']);
    assert.deepEqual(chainOf(yaml, { namespace: 'ops', labels: { app: 'web', version: 'v2' } }), ['policy', 'fault', 'mesh']);
    // With another root namespace, istio-system is an ordinary namespace.
    assert.deepEqual(chainOf(yaml, web, inbound, 'mesh-root'), ['policy', 'fault', 'ns', 'web']);
    assert.deepEqual(chainOf(yaml, { namespace: 'istio-system', labels: {} }, inbound, 'mesh-root'), ['policy', 'fault', 'mesh']);
  });

  it('applies each patch only to listeners of its context and port', () => {
    const yaml =
      ext({ name: 'in', context: 'SIDECAR_INBOUND' }) +
      ext({ name: 'out', context: 'SIDECAR_OUTBOUND' }) +
      ext({ name: 'gw', context: 'GATEWAY' }) +
      ext({ name: 'any' }) +
      ext({ name: 'p8080', port: 8080 }) +
      ext({ name: 'in9090', context: 'SIDECAR_INBOUND', port: 9090 });
    assert.deepEqual(chainOf(yaml, web, { direction: 'inbound', port: 8080 }), ['policy', 'fault', 'in', 'any', 'p8080']);
    assert.deepEqual(chainOf(yaml, web, { direction: 'inbound', port: 9090 }), ['policy', 'fault', 'in', 'any', 'in9090']);
    assert.deepEqual(chainOf(yaml, web, { direction: 'outbound', port: 8080 }), ['policy', 'fault', 'out', 'any', 'p8080']);
    assert.deepEqual(chainOf(yaml, web, { direction: 'gateway', port: 443 }), ['policy', 'fault', 'gw', 'any']);
  });

  it('orders by priority, then root namespace first, then creation time, then input order', () => {
    const yaml =
      ext({ name: 'late', created: '2024-02-01T00:00:00Z' }) +
      ext({ name: 'plain' }) +
      ext({ name: 'early', created: '2024-01-01T00:00:00+02:00' }) +
      ext({ name: 'root', ns: 'istio-system' }) +
      ext({ name: 'last', priority: 10, ns: 'istio-system' }) +
      ext({ name: 'first', priority: -5 }) +
      ext({ name: 'plain2' });
    const ordered = envoyFiltersFor(load(yaml), web).map((f) => f.metadata.name);
    assert.deepEqual(ordered, ['first', 'root', 'early', 'late', 'plain', 'plain2', 'last']);
    assert.deepEqual(chainOf(yaml), ['policy', 'fault', 'first', 'root', 'early', 'late', 'plain', 'plain2', 'last']);
  });

  it("resolves each extension's module against its manifest's folder, and hands over its config", () => {
    const yaml = ext({ name: 'audit' }).replace('./audit.ts', '../lib/audit.ts');
    const chain = httpFiltersFor(load(yaml, '/srv/mesh/shop/filters.yaml'), web, inbound);
    assert.deepEqual(chain[2], { name: 'trellis.extension', module: '/srv/mesh/lib/audit.ts', config: { from: 'audit' } });
    // The proxy's contract: the chain is HttpFilterConfig[] as it stands.
    const forProxy: HttpFilterConfig[] = chain;
    assert.equal(forProxy.length, 3);
  });
});

describe("httpFiltersFor: positions relative to Trellis' filters", () => {
  const cases: [string, string, string[]][] = [
    ['INSERT_FIRST runs right after the policy filter, never before it', ext({ name: 'x', op: 'INSERT_FIRST' }), ['policy', 'x', 'fault']],
    ['INSERT_BEFORE without a subFilter is the front of the list, after policy', ext({ name: 'x', op: 'INSERT_BEFORE' }), ['policy', 'x', 'fault']],
    ['INSERT_BEFORE an Istio authz filter is after policy', ext({ name: 'x', op: 'INSERT_BEFORE', sub: 'envoy.filters.http.rbac' }), ['policy', 'x', 'fault']],
    ['INSERT_AFTER the policy filter', ext({ name: 'x', op: 'INSERT_AFTER', sub: 'trellis.policy' }), ['policy', 'x', 'fault']],
    ['INSERT_BEFORE the fault filter', ext({ name: 'x', op: 'INSERT_BEFORE', sub: 'envoy.filters.http.fault' }), ['policy', 'x', 'fault']],
    ['INSERT_BEFORE the router is after fault', ext({ name: 'x', op: 'INSERT_BEFORE', sub: 'envoy.filters.http.router' }), ['policy', 'fault', 'x']],
    ['INSERT_AFTER without a subFilter is last before the router', ext({ name: 'x', op: 'INSERT_AFTER' }), ['policy', 'fault', 'x']],
    ['INSERT_BEFORE a filter no one added does nothing', ext({ name: 'x', op: 'INSERT_BEFORE', sub: 'acme.missing' }), ['policy', 'fault']],
    ['INSERT_FIRST with a subFilter no one added does nothing', ext({ name: 'x', op: 'INSERT_FIRST', sub: 'acme.missing' }), ['policy', 'fault']],
    [
      'ADD by filterClass: AUTHN then AUTHZ right after policy, the others before the router',
      ext({ name: 'plain' }) + ext({ name: 'authz', cls: 'AUTHZ' }) + ext({ name: 'stats', cls: 'STATS' }) + ext({ name: 'authn', cls: 'AUTHN' }) + ext({ name: 'authz2', cls: 'AUTHZ' }),
      ['policy', 'authn', 'authz', 'authz2', 'fault', 'plain', 'stats'],
    ],
    [
      "relative to another EnvoyFilter's filter, applied earlier",
      ext({ name: 'a', ns: 'istio-system' }) + ext({ name: 'b', op: 'INSERT_BEFORE', sub: 'a' }) + ext({ name: 'c', op: 'INSERT_AFTER', sub: 'a' }),
      ['policy', 'fault', 'b', 'a', 'c'],
    ],
    ['REMOVE the fault filter', ext({ name: 'x', op: 'REMOVE', sub: 'envoy.filters.http.fault' }), ['policy']],
    [
      'REMOVE a mesh-wide filter in one namespace',
      ext({ name: 'mesh', ns: 'istio-system' }) + ext({ name: 'x', op: 'REMOVE', sub: 'mesh' }),
      ['policy', 'fault'],
    ],
    ['REPLACE a filter in place', ext({ name: 'a', ns: 'istio-system', op: 'INSERT_FIRST' }) + ext({ name: 'b', op: 'REPLACE', sub: 'a' }), ['policy', 'b', 'fault']],
    [
      "a filter's patches in their order",
      ext({ name: 'a', more: ext({ name: 'b', op: 'INSERT_BEFORE', sub: 'a' }).split('configPatches:\n')[1]?.replace(/---\n$/, '') }),
      ['policy', 'fault', 'b', 'a'],
    ],
  ];
  for (const [what, yaml, expected] of cases) {
    it(what, () => assert.deepEqual(chainOf(yaml), expected));
  }
});

describe('httpFiltersFor: local rate limits', () => {
  const filter = (name: string, tokens: number | undefined, opts: { ns?: string; op?: string; extra?: string[] } = {}): string => `apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: ${name}, namespace: ${opts.ns ?? 'shop'}}
spec:
  configPatches:
  - applyTo: HTTP_FILTER
    match: {context: SIDECAR_INBOUND}
    patch:
      operation: ${opts.op ?? 'INSERT_BEFORE'}
      value:
        name: envoy.filters.http.local_ratelimit
        typed_config:
${rateLimit('          ', tokens, opts.extra)}---
`;
  const perRoute = (name: string, tokens: number, vhost = 'inbound|http|8080'): string => `apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: ${name}, namespace: shop}
spec:
  configPatches:
  - applyTo: HTTP_ROUTE
    match:
      context: SIDECAR_INBOUND
      routeConfiguration: {vhost: {name: "${vhost}", route: {action: ANY}}}
    patch:
      operation: MERGE
      value:
        typed_per_filter_config:
          envoy.filters.http.local_ratelimit:
${rateLimit('            ', tokens)}---
`;
  const headers = ['response_headers_to_add:', '- header: {key: X-Local-Rate-Limit, value: "true"}'];

  it('runs a listener-wide token bucket where the filter is inserted, with its reply headers', () => {
    const chain = httpFiltersFor(load(filter('rl', 4, { extra: headers })), web, inbound);
    assert.deepEqual(chain, [
      { name: 'trellis.policy' },
      { name: 'envoy.filters.http.local_ratelimit', maxTokens: 4, tokensPerFill: 1, fillIntervalMs: 1000, perRoute: false, responseHeaders: { 'x-local-rate-limit': 'true' } },
      { name: 'envoy.filters.http.fault' },
    ]);
    assert.deepEqual(chainOf(filter('rl', 4), web, { direction: 'outbound', port: 8080 }), ['policy', 'fault']);
  });

  it("gives every route its own bucket when an HTTP_ROUTE patch merges per-route settings (Istio's local rate limit task)", () => {
    assert.deepEqual(chainOf(filter('rl', undefined) + perRoute('routes', 10)), ['policy', 'rl:10/route', 'fault']);
    assert.deepEqual(chainOf(filter('rl', 4) + perRoute('routes', 10)), ['policy', 'rl:10/route', 'fault']);
    // A later MERGE of the same filter name wins, as proto merge replaces a map entry.
    assert.deepEqual(chainOf(filter('rl', 4) + perRoute('routes', 10) + perRoute('routes2', 20)), ['policy', 'rl:20/route', 'fault']);
    // Another port's virtual host: the listener-wide bucket stays.
    assert.deepEqual(chainOf(filter('rl', 4) + perRoute('routes', 10, 'inbound|http|9090')), ['policy', 'rl:4', 'fault']);
  });

  it('makes no entry for a limit without a bucket, or turned off, or per route without the filter in the chain', () => {
    assert.deepEqual(chainOf(filter('rl', undefined)), ['policy', 'fault']);
    assert.deepEqual(chainOf(perRoute('routes', 10)), ['policy', 'fault']);
    const off = filter('rl', 4).replace('filter_enabled: {default_value: {numerator: 100}}', 'filter_enabled: {default_value: {numerator: 0}}');
    assert.deepEqual(chainOf(off), ['policy', 'fault']);
    // Removing the listener filter takes its per-route limits with it.
    const removed = `apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: no-limit, namespace: shop}
spec:
  priority: 1
  configPatches:
  - applyTo: HTTP_FILTER
    match: {listener: {filterChain: {filter: {subFilter: {name: envoy.filters.http.local_ratelimit}}}}}
    patch: {operation: REMOVE}
`;
    assert.deepEqual(chainOf(filter('rl', 4, { ns: 'istio-system' }) + perRoute('routes', 10) + removed), ['policy', 'fault']);
  });
});
