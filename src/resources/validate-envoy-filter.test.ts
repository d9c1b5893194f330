import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatDiagnostic } from './diagnostics.ts';
import type { EnvoyFilter } from './kinds-traffic.ts';
import { loadManifests } from './load.ts';

function load(text: string, name = 'mesh/filters.yaml') {
  const r = loadManifests([{ name, text }]);
  return { filters: r.resources as EnvoyFilter[], lines: r.diagnostics.map(formatDiagnostic) };
}

// Istio's local rate limit task, as users copy it, plus a Trellis extension added after the policy filter.
const GOOD = `
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata:
  name: ratelimit
  namespace: istio-system
  creationTimestamp: "2024-05-01T12:00:00Z"
spec:
  workloadSelector:
    labels: {app: productpage}
  priority: -10
  configPatches:
  - applyTo: HTTP_FILTER
    match:
      context: SIDECAR_INBOUND
      listener:
        filterChain:
          filter:
            name: envoy.filters.network.http_connection_manager
    patch:
      operation: INSERT_BEFORE
      value:
        name: envoy.filters.http.local_ratelimit
        typed_config:
          "@type": type.googleapis.com/udpa.type.v1.TypedStruct
          type_url: type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit
          value:
            stat_prefix: http_local_rate_limiter
            token_bucket: {max_tokens: 4, tokens_per_fill: 4, fill_interval: 60s}
            filter_enabled:
              runtime_key: local_rate_limit_enabled
              default_value: {numerator: 100, denominator: HUNDRED}
            filter_enforced:
              runtime_key: local_rate_limit_enforced
              default_value: {numerator: 100, denominator: HUNDRED}
            response_headers_to_add:
            - append: false
              header: {key: X-Local-Rate-Limit, value: "true"}
  - applyTo: HTTP_ROUTE
    match:
      context: SIDECAR_INBOUND
      routeConfiguration:
        vhost:
          name: "inbound|http|9080"
          route: {action: ANY}
    patch:
      operation: MERGE
      value:
        typed_per_filter_config:
          envoy.filters.http.local_ratelimit:
            "@type": type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit
            statPrefix: per_route
            tokenBucket: {maxTokens: 10, fillInterval: 0.5s}
            filterEnabled: {defaultValue: {numerator: 1000000, denominator: MILLION}}
            filterEnforced: {defaultValue: {numerator: 100}}
  - applyTo: HTTP_FILTER
    match:
      listener:
        portNumber: 8080
        filterChain:
          filter:
            name: envoy.filters.network.http_connection_manager
            subFilter: {name: envoy.router}
    patch:
      operation: INSERT_BEFORE
      value:
        name: acme.audit
        typed_config:
          "@type": type.googleapis.com/xds.type.v3.TypedStruct
          type_url: trellis.dev/extension
          value:
            module: ../lib/audit.ts
            config: {level: 2, tags: [a, b]}
  - applyTo: HTTP_FILTER
    match: {context: GATEWAY, listener: {filterChain: {filter: {subFilter: {name: envoy.filters.http.fault}}}}}
    patch: {operation: REMOVE}
`.slice(1);

describe('EnvoyFilter validation', () => {
  it('reads Istio local rate limit filters, per-route limits and Trellis extensions into typed patches', () => {
    const r = load(GOOD);
    assert.deepEqual(r.lines, []);
    const f = r.filters[0];
    assert.ok(f);
    assert.equal(f.kind, 'EnvoyFilter');
    assert.equal(f.metadata.namespace, 'istio-system');
    assert.equal(f.creationTimestampMs, Date.UTC(2024, 4, 1, 12));
    assert.deepEqual(f.spec.workloadSelector, { app: 'productpage' });
    assert.equal(f.spec.priority, -10);
    assert.deepEqual(f.spec.configPatches, [
      {
        applyTo: 'HTTP_FILTER',
        context: 'SIDECAR_INBOUND',
        operation: 'INSERT_BEFORE',
        filter: {
          type: 'local_ratelimit',
          name: 'envoy.filters.http.local_ratelimit',
          settings: {
            statPrefix: 'http_local_rate_limiter',
            tokenBucket: { maxTokens: 4, tokensPerFill: 4, fillIntervalMs: 60_000 },
            enabled: true,
            enforced: true,
            responseHeaders: { 'x-local-rate-limit': 'true' },
          },
        },
        path: ['spec', 'configPatches', 0],
      },
      {
        applyTo: 'HTTP_ROUTE',
        context: 'SIDECAR_INBOUND',
        portNumber: 9080,
        perFilter: [
          {
            name: 'envoy.filters.http.local_ratelimit',
            settings: { statPrefix: 'per_route', tokenBucket: { maxTokens: 10, tokensPerFill: 1, fillIntervalMs: 500 }, enabled: true, enforced: true, responseHeaders: {} },
          },
        ],
        path: ['spec', 'configPatches', 1],
      },
      {
        applyTo: 'HTTP_FILTER',
        context: 'ANY',
        portNumber: 8080,
        subFilter: 'envoy.filters.http.router',
        operation: 'INSERT_BEFORE',
        filter: { type: 'extension', name: 'acme.audit', module: 'lib/audit.ts', config: { level: 2, tags: ['a', 'b'] } },
        path: ['spec', 'configPatches', 2],
      },
      { applyTo: 'HTTP_FILTER', context: 'GATEWAY', subFilter: 'envoy.filters.http.fault', operation: 'REMOVE', path: ['spec', 'configPatches', 3] },
    ]);
  });

  it('resolves an extension module against the folder of the manifest that names it', () => {
    const ext = (module: string) => `apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: ext, namespace: shop}
spec:
  configPatches:
  - applyTo: HTTP_FILTER
    patch:
      operation: ADD
      value:
        name: acme.audit
        typed_config:
          "@type": type.googleapis.com/udpa.type.v1.TypedStruct
          type_url: trellis.dev/extension
          value: {module: "${module}"}
`;
    const moduleOf = (text: string, name: string): string | undefined => {
      const r = load(text, name);
      assert.deepEqual(r.lines, []);
      const p = r.filters[0]?.spec.configPatches[0];
      return p?.applyTo === 'HTTP_FILTER' && p.filter?.type === 'extension' ? p.filter.module : undefined;
    };
    assert.equal(moduleOf(ext('./filters/audit.ts'), '/srv/mesh/shop/filters.yaml'), '/srv/mesh/shop/filters/audit.ts');
    assert.equal(moduleOf(ext('../shared/audit.mjs'), '/srv/mesh/shop/filters.yaml'), '/srv/mesh/shared/audit.mjs');
    assert.equal(moduleOf(ext('audit.js'), 'examples/shop/filters.yaml'), 'examples/shop/audit.js');
    assert.equal(moduleOf(ext('/opt/filters/./audit.ts'), 'examples/shop/filters.yaml'), '/opt/filters/audit.ts');
    assert.equal(moduleOf(ext('/opt/filters/audit.ts'), '<stdin>'), '/opt/filters/audit.ts');
    assert.deepEqual(load(ext('./audit.ts'), '<stdin>').lines, [
      '<stdin>:14:27: EnvoyFilter shop/ext: spec.configPatches[0].patch.value.typed_config.value.module: "./audit.ts" is relative, but this manifest came from standard input: give an absolute path',
    ]);
    assert.deepEqual(load(ext('./audit'), 'f.yaml').lines, [
      'f.yaml:14:27: EnvoyFilter shop/ext: spec.configPatches[0].patch.value.typed_config.value.module: "./audit" must name a TypeScript or JavaScript file (.ts, .mts, .js or .mjs)',
    ]);
  });
});

const BROKEN = `
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: broken, namespace: shop, creationTimestamp: yesterday}
spec:
  priority: 1.5
  targetRefs: [{kind: Service, name: web}]
  configPatches:
  - applyTo: CLUSTER
    match: {cluster: {service: foo}}
    patch: {operation: MERGE, value: {connect_timeout: 1s}}
  - applyTo: HTTP_FILTER
    match:
      context: SIDECAR_INBOND
      proxy: {proxyVersion: '^1\\.2.*'}
      listener:
        portNumber: 70000
        filterChain:
          sni: example.com
          filter:
            name: envoy.filters.network.tcp_proxy
            subFilter: {name: envoy.filters.http.router}
    patch:
      operation: INSERT_AFTER
      filterClass: AUTHN
      value:
        name: envoy.filters.http.router
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua
          inlineCode: "function envoy_on_request(h) end"
  - applyTo: HTTP_FILTER
    patch:
      operation: MERGE
      value:
        name: rl
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit
          token_bucket: {max_tokens: 0, fill_interval: 1m, tokens_per_filll: 2}
          filter_enabled: {default_value: {numerator: 50}}
          filter_enforced: {default_value: {numerator: 1, denominator: HUNDREDS}}
          descriptors: []
          response_headers_to_add:
          - header: {key: "bad header", value: x}
  - applyTo: HTTP_FILTER
    match: {listener: {filterChain: {filter: {subFilter: {name: envoy.filters.http.rbac}}}}}
    patch: {operation: REMOVE}
  - applyTo: HTTP_FILTER
    patch:
      operation: INSERT_FIRST
      value:
        name: ext
        typed_config:
          "@type": type.googleapis.com/udpa.type.v1.TypedStruct
          type_url: trellis.dev/extension
          value: {module: "https://cdn.example.com/f.js", settings: {}}
  - applyTo: HTTP_ROUTE
    match:
      routeConfiguration:
        portNumber: 8080
        vhost: {name: "inbound|http|9080", route: {name: default, action: ROUTE}}
    patch:
      operation: INSERT_FIRST
      value:
        timeout: 5s
        typed_per_filter_config:
          rl:
            "@type": type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit
            stat_prefix: r
          ext:
            "@type": type.googleapis.com/udpa.type.v1.TypedStruct
            type_url: trellis.dev/extension
`.slice(1);

const LENIENT = `
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: lenient, namespace: shop}
spec:
  configPatches:
  - applyTo: HTTP_FILTER
    match: {listener: {filterChain: {filter: {subFilter: {name: istio_authn}}}}}
    patch:
      operation: INSERT_BEFORE
      value:
        name: off
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit
          stat_prefix: off
          token_bucket: {max_tokens: 1, fill_interval: 1s}
  - applyTo: HTTP_FILTER
    match: {listener: {filterChain: {filter: {subFilter: {name: istio.stats}}}}}
    patch:
      operation: ADD
      value:
        name: shadow
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit
          stat_prefix: shadow
          token_bucket: {max_tokens: 1, fill_interval: 1s}
          filter_enabled: {default_value: {numerator: 100}}
          response_headers_to_add:
          - {header: {key: x-limited, value: "1"}, append_action: OVERWRITE_IF_EXISTS}
  - applyTo: HTTP_FILTER
    match: {listener: {filterChain: {filter: {subFilter: {name: envoy.filters.http.cors}}}}}
    patch: {operation: REMOVE, value: {name: x}}
`.slice(1);

const SPELLING = `
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: dup}
spec:
  configPatches: []
---
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: spelling}
spec:
  configPatches:
  - applyTo: HTTP_FILTER
    patch:
      operation: ADD
      value:
        name: rl
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit
          stat_prefix: a
          statPrefix: b
          token_bucket: {max_tokens: 1, fill_interval: 0.01s}
`.slice(1);

describe('EnvoyFilter validation errors', () => {
  it('reports every unsupported or wrong field of broken EnvoyFilters, located, and loads none of them', () => {
    const r = load(BROKEN, 'envoy-filters.yaml');
    assert.deepEqual(r.lines, [
      "envoy-filters.yaml:3:62: EnvoyFilter shop/broken: metadata.creationTimestamp: \"yesterday\" is not an RFC 3339 time such as 2024-05-01T12:00:00Z",
      "envoy-filters.yaml:5:13: EnvoyFilter shop/broken: spec.priority: must be an integer -2147483648-2147483647",
      "envoy-filters.yaml:6:3: EnvoyFilter shop/broken: spec.targetRefs: is not supported: select workloads with workloadSelector",
      "envoy-filters.yaml:8:14: EnvoyFilter shop/broken: spec.configPatches[0].applyTo: CLUSTER is not supported; Trellis applies HTTP_FILTER patches (and HTTP_ROUTE patches for per-route rate limits)",
      "envoy-filters.yaml:13:16: EnvoyFilter shop/broken: spec.configPatches[1].match.context: \"SIDECAR_INBOND\" must be one of ANY, SIDECAR_INBOUND, SIDECAR_OUTBOUND, GATEWAY, WAYPOINT",
      "envoy-filters.yaml:14:7: EnvoyFilter shop/broken: spec.configPatches[1].match.proxy: is not supported: Trellis proxies carry no Istio version or node metadata to match",
      "envoy-filters.yaml:16:21: EnvoyFilter shop/broken: spec.configPatches[1].match.listener.portNumber: must be an integer 0-65535",
      "envoy-filters.yaml:18:11: EnvoyFilter shop/broken: spec.configPatches[1].match.listener.filterChain.sni: is not supported: Trellis runs one HTTP filter chain per listener, whatever the transport",
      "envoy-filters.yaml:20:19: EnvoyFilter shop/broken: spec.configPatches[1].match.listener.filterChain.filter.name: \"envoy.filters.network.tcp_proxy\" is not supported: HTTP_FILTER patches change the HTTP filters of envoy.filters.network.http_connection_manager",
      "envoy-filters.yaml:21:31: EnvoyFilter shop/broken: spec.configPatches[1].match.listener.filterChain.filter.subFilter.name: nothing runs after the router: use INSERT_BEFORE to run just before it",
      "envoy-filters.yaml:24:7: EnvoyFilter shop/broken: spec.configPatches[1].patch.filterClass: applies only to operation ADD, not INSERT_AFTER",
      "envoy-filters.yaml:26:15: EnvoyFilter shop/broken: spec.configPatches[1].patch.value.name: \"envoy.filters.http.router\" names a filter Trellis runs itself; give this filter a name of its own",
      "envoy-filters.yaml:28:20: EnvoyFilter shop/broken: spec.configPatches[1].patch.value.typed_config.@type: \"type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua\" is not supported: Trellis runs Envoy's local rate limit (type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit) and Trellis extensions (a TypedStruct with type_url trellis.dev/extension)",
      "envoy-filters.yaml:32:18: EnvoyFilter shop/broken: spec.configPatches[2].patch.operation: MERGE is not supported; use REPLACE to give an HTTP filter new settings",
      "envoy-filters.yaml:36:11: EnvoyFilter shop/broken: spec.configPatches[2].patch.value.typed_config.stat_prefix: is required",
      "envoy-filters.yaml:37:38: EnvoyFilter shop/broken: spec.configPatches[2].patch.value.typed_config.token_bucket.max_tokens: must be an integer 1-4294967295",
      "envoy-filters.yaml:37:56: EnvoyFilter shop/broken: spec.configPatches[2].patch.value.typed_config.token_bucket.fill_interval: \"1m\" is not a protobuf duration: give seconds with an s suffix, such as 60s or 0.5s",
      "envoy-filters.yaml:37:60: EnvoyFilter shop/broken: spec.configPatches[2].patch.value.typed_config.token_bucket.tokens_per_filll: unknown field (did you mean \"tokens_per_fill\"?)",
      "envoy-filters.yaml:38:55: EnvoyFilter shop/broken: spec.configPatches[2].patch.value.typed_config.filter_enabled.default_value.numerator: 50/HUNDRED is 50% of requests; Trellis rate-limits all requests or none: give numerator 100 with denominator HUNDRED (or 0 to turn the limit off)",
      "envoy-filters.yaml:39:72: EnvoyFilter shop/broken: spec.configPatches[2].patch.value.typed_config.filter_enforced.default_value.denominator: \"HUNDREDS\" must be one of HUNDRED, TEN_THOUSAND, MILLION",
      "envoy-filters.yaml:40:11: EnvoyFilter shop/broken: spec.configPatches[2].patch.value.typed_config.descriptors: is not supported: Trellis has one token bucket per listener or route",
      "envoy-filters.yaml:42:27: EnvoyFilter shop/broken: spec.configPatches[2].patch.value.typed_config.response_headers_to_add[0].header.key: \"bad header\" is not a valid header name",
      "envoy-filters.yaml:44:65: EnvoyFilter shop/broken: spec.configPatches[3].match.listener.filterChain.filter.subFilter.name: \"envoy.filters.http.rbac\" is Trellis' policy filter (it enforces authorization on every request), which cannot be removed or replaced",
      "envoy-filters.yaml:54:27: EnvoyFilter shop/broken: spec.configPatches[4].patch.value.typed_config.value.module: \"https://cdn.example.com/f.js\" is a URL; give a file path (relative to this manifest's folder, or absolute)",
      "envoy-filters.yaml:54:59: EnvoyFilter shop/broken: spec.configPatches[4].patch.value.typed_config.value.settings: unknown field",
      "envoy-filters.yaml:59:23: EnvoyFilter shop/broken: spec.configPatches[5].match.routeConfiguration.vhost.name: names port 9080, but portNumber is 8080",
      "envoy-filters.yaml:59:52: EnvoyFilter shop/broken: spec.configPatches[5].match.routeConfiguration.vhost.route.name: is not supported: Trellis gives per-route settings to every route of the matched listener",
      "envoy-filters.yaml:59:75: EnvoyFilter shop/broken: spec.configPatches[5].match.routeConfiguration.vhost.route.action: ROUTE is not supported; Trellis gives per-route settings to every route of the matched listener (action ANY)",
      "envoy-filters.yaml:61:18: EnvoyFilter shop/broken: spec.configPatches[5].patch.operation: INSERT_FIRST is not supported; routes take MERGE, as in Istio",
      "envoy-filters.yaml:63:9: EnvoyFilter shop/broken: spec.configPatches[5].patch.value.timeout: is not supported: Trellis merges only typed_per_filter_config (local rate limits) into routes; set timeouts, retries and the like with a VirtualService",
      "envoy-filters.yaml:66:13: EnvoyFilter shop/broken: spec.configPatches[5].patch.value.typed_per_filter_config.rl.token_bucket: is required in per-route settings (Envoy refuses a per-route local rate limit without one)",
      "envoy-filters.yaml:70:23: EnvoyFilter shop/broken: spec.configPatches[5].patch.value.typed_per_filter_config.ext.type_url: Trellis extensions take no per-route settings; only local rate limits do",
    ]);
    assert.equal(r.filters.length, 0);
  });

  it('warns where a patch does less than it seems to, and still loads it', () => {
    const r = load(LENIENT, 'f.yaml');
    assert.deepEqual(r.lines, [
      "f.yaml:7:59: warning: EnvoyFilter shop/lenient: spec.configPatches[0].match.listener.filterChain.filter.subFilter.name: Trellis runs no filter before its policy filter (fail closed): this filter runs right after trellis.policy",
      "f.yaml:13:11: warning: EnvoyFilter shop/lenient: spec.configPatches[0].patch.value.typed_config.filter_enabled: the rate limit is off: filter_enabled is absent or 0% (Envoy enables it for 0% of requests unless told); give default_value numerator 100",
      "f.yaml:17:59: warning: EnvoyFilter shop/lenient: spec.configPatches[1].match.listener.filterChain.filter.subFilter.name: is not used by ADD, which adds the filter wherever the listener matches: use INSERT_BEFORE or INSERT_AFTER to place it next to this filter",
      "f.yaml:23:11: warning: EnvoyFilter shop/lenient: spec.configPatches[1].patch.value.typed_config.filter_enforced: the rate limit is not enforced: filter_enforced is absent or 0% (shadow mode, which Trellis does not run); give default_value numerator 100",
      "f.yaml:28:52: warning: EnvoyFilter shop/lenient: spec.configPatches[1].patch.value.typed_config.response_headers_to_add[0].append_action: adds nothing: a rate-limit reply has no x-limited header to overwrite",
      "f.yaml:30:59: warning: EnvoyFilter shop/lenient: spec.configPatches[2].match.listener.filterChain.filter.subFilter.name: Trellis runs no envoy.filters.http.cors filter of its own (it runs trellis.policy, envoy.filters.http.fault and the router): this patch applies only where another EnvoyFilter adds a filter of that name",
      "f.yaml:31:32: warning: EnvoyFilter shop/lenient: spec.configPatches[2].patch.value: is not used by REMOVE",
    ]);
    assert.equal(r.filters.length, 1);
    const patches = r.filters[0]?.spec.configPatches ?? [];
    assert.deepEqual(
      patches.map((p) => (p.applyTo === 'HTTP_FILTER' ? [p.operation, p.subFilter] : [])),
      [
        ['INSERT_BEFORE', 'trellis.policy'],
        ['ADD', undefined],
        ['REMOVE', 'envoy.filters.http.cors'],
      ],
    );
  });

  it('refuses an empty patch list, a field in both spellings and a fill interval under 50ms', () => {
    assert.deepEqual(load(SPELLING, 'f.yaml').lines, [
      "f.yaml:5:18: EnvoyFilter default/dup: spec.configPatches: must hold at least one patch",
      "f.yaml:20:11: EnvoyFilter default/spelling: spec.configPatches[0].patch.value.typed_config.statPrefix: is stat_prefix spelled another way; give it once",
      "f.yaml:21:56: EnvoyFilter default/spelling: spec.configPatches[0].patch.value.typed_config.token_bucket.fill_interval: must be at least 50ms, as Envoy requires (got 0.01s)",
    ]);
  });
});
