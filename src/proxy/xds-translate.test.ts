// The translator is the inverse of the control plane's resource builders: routing model → Envoy objects → proto bytes
// → decoded objects → translator gives the same routes, clusters and endpoints. Bad resources give every error, named.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildCluster } from '../model/cluster.ts';
import { buildAuthzModel } from '../policy/authz-model.ts';
import { formatDiagnostic, hasErrors } from '../resources/diagnostics.ts';
import { loadManifests } from '../resources/load.ts';
import { buildRoutingModel } from '../routing/build.ts';
import type { ClusterSpec, EndpointSet, Route, RouteConfig } from '../routing/model.ts';
import { cluster, clusterLoadAssignment, routeConfiguration } from '../xds/envoy-resources.ts';
import { decodeAny, encodeAny } from '../xds/protos.ts';
import { meshCluster, proxyLoadAssignment, proxyRouteConfiguration } from '../xds/sidecar-listeners.ts';
import { SidecarIndex } from '../xds/sidecar-resources.ts';
import { TYPE } from '../xds/type-urls.ts';
import { parseNode } from '../xds/xds-node.ts';
import { typedStruct } from '../xds/xds-struct.ts';
import { DEFAULT_LISTENER_LIMITS } from './proxy-config.ts';
import { At, Issues, translateCluster, translateLoadAssignment, translateResources, translateRouteConfiguration } from './xds-translate.ts';

type Obj = Record<string, unknown>;

const MANIFESTS = `apiVersion: v1
kind: Node
metadata: {name: n1, labels: {topology.kubernetes.io/region: eu, topology.kubernetes.io/zone: eu-1}}
---
apiVersion: v1
kind: Pod
metadata: {name: reviews-v1, namespace: shop, labels: {app: reviews, version: v1}}
spec:
  nodeName: n1
  serviceAccountName: reviews
  containers: [{name: app, ports: [{name: http, containerPort: 9080}, {name: grpc, containerPort: 9090}]}]
status: {podIP: 10.0.0.11}
---
apiVersion: v1
kind: Pod
metadata: {name: reviews-v2, namespace: shop, labels: {app: reviews, version: v2}}
spec:
  containers: [{name: app, ports: [{name: http, containerPort: 9081}]}]
status: {podIP: 10.0.0.12}
---
apiVersion: v1
kind: Pod
metadata: {name: reviews-v3, namespace: shop, labels: {app: reviews, version: v3}}
spec:
  containers: [{name: app, ports: [{name: http, containerPort: 9080}]}]
status:
  podIP: 10.0.0.13
  conditions: [{type: Ready, status: "False"}]
---
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: shop}
spec:
  selector: {app: reviews}
  ports:
  - {name: http-web, port: 80, targetPort: http}
  - {name: rpc, port: 9090, targetPort: grpc, appProtocol: grpc}
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: shop}
spec: {selector: {app: reviews}, ports: [{name: tcp-db, port: 5432, targetPort: 9080}]}
---
apiVersion: v1
kind: Service
metadata: {name: ext, namespace: shop}
spec: {type: ExternalName, externalName: api.example.com, ports: [{name: https, port: 443}]}
---
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: limits, namespace: shop}
spec:
  workloadSelector: {labels: {app: reviews}}
  configPatches:
  - applyTo: HTTP_FILTER
    match: {context: SIDECAR_INBOUND, listener: {portNumber: 9090}}
    patch:
      operation: INSERT_BEFORE
      value:
        name: envoy.filters.http.local_ratelimit
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit
          stat_prefix: rl
          token_bucket: {max_tokens: 10, tokens_per_fill: 5, fill_interval: 1.5s}
          filter_enabled: {default_value: {numerator: 100}}
          filter_enforced: {default_value: {numerator: 100}}
          response_headers_to_add: [{header: {key: x-limited, value: "yes"}}]
  - applyTo: HTTP_FILTER
    match: {context: SIDECAR_OUTBOUND}
    patch:
      operation: ADD
      value:
        name: audit
        typed_config:
          "@type": type.googleapis.com/udpa.type.v1.TypedStruct
          type_url: trellis.dev/extension
          value: {module: ./audit.ts, config: {level: 2}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: shop}
spec:
  host: reviews
  trafficPolicy:
    connectionPool: {tcp: {maxConnections: 100, connectTimeout: 250ms}, http: {http2MaxRequests: 50, http1MaxPendingRequests: 7, maxRetries: 4, maxRequestsPerConnection: 3}}
    outlierDetection: {consecutive5xxErrors: 3, consecutiveGatewayErrors: 0, interval: 5s, baseEjectionTime: 15s, maxEjectionPercent: 50}
    portLevelSettings:
    - port: {number: 9090}
      loadBalancer: {simple: LEAST_REQUEST}
  subsets:
  - name: v1
    labels: {version: v1}
  - name: v2
    labels: {version: v2}
    trafficPolicy:
      loadBalancer: {consistentHash: {httpHeaderName: X-User, minimumRingSize: 512}}
      tls: {mode: ISTIO_MUTUAL, sni: reviews.shop}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: shop}
spec:
  hosts: [reviews]
  http:
  - match:
    - uri: {prefix: /v2}
      headers: {x-user: {exact: jason}}
      ignoreUriCase: true
    - uri: {regex: "/r/[0-9]+"}
      queryParams: {debug: {exact: "1"}}
    route:
    - destination: {host: reviews, subset: v2}
    rewrite: {uri: /}
    timeout: 2s
    retries: {attempts: 3, perTryTimeout: 500ms, retryOn: "gateway-error,503"}
    fault: {abort: {httpStatus: 503, percentage: {value: 10}}, delay: {fixedDelay: 1.5s, percentage: {value: 0.1}}}
    headers:
      request: {set: {x-a: "1"}, add: {x-b: "2"}, remove: [x-c]}
      response: {set: {x-d: "4"}}
  - match: [{uri: {exact: /old}}]
    redirect: {uri: /new, authority: new.example.com}
  - match: [{withoutHeaders: {x-skip: {}}, port: 9090}]
    route:
    - destination: {host: reviews, subset: v1}
    fault: {abort: {grpcStatus: UNAVAILABLE, percentage: {value: 50}}}
  - route:
    - destination: {host: reviews, subset: v1}
      weight: 80
    - destination: {host: reviews, subset: v3}
      weight: 20
    retries: {attempts: 0}
    mirror: {host: reviews, subset: v2}
`;

function model() {
  const loaded = loadManifests([{ name: 'mesh.yaml', text: MANIFESTS }]);
  assert.equal(hasErrors(loaded.diagnostics), false, loaded.diagnostics.map(formatDiagnostic).join('\n'));
  const c = buildCluster(loaded.resources);
  const r = buildRoutingModel(loaded.resources, c);
  assert.equal(hasErrors(r.diagnostics), false, r.diagnostics.map(formatDiagnostic).join('\n'));
  return { resources: loaded.resources, cluster: c, routing: r.model };
}

const wire = (type: string, o: Obj): Obj => decodeAny(encodeAny(type, o));

/** What Envoy's types cannot tell apart, written the one way the translator reads it back. */
function normalRoute(r: Route): Route {
  const out = structuredClone({ ...r, source: undefined }) as Route;
  delete out.source;
  delete out.match.sourceLabels;
  delete out.match.sourceNamespace;
  out.match.headers = out.match.headers.map((h) => {
    const x = { ...h };
    if (!x.invert) delete x.invert;
    if (!x.match) x.present = x.present ?? true;
    return x;
  });
  const a = out.action;
  if (a.type === 'route') {
    if (a.clusters.length === 1 && a.clusters[0]) a.clusters[0].weight = 100;
    if (a.retry?.retriableStatusCodes?.length === 0) delete a.retry.retriableStatusCodes;
  }
  if (out.fault?.abort && out.fault.abort.grpcStatus === undefined) out.fault.abort.httpStatus ??= 503;
  return out;
}

const normalRouteConfig = (rc: RouteConfig): RouteConfig => ({ name: rc.name, virtualHosts: rc.virtualHosts.map((vh) => ({ ...vh, routes: vh.routes.map(normalRoute) })) });

function normalCluster(c: ClusterSpec): ClusterSpec {
  const out = structuredClone(c);
  out.connectTimeoutMs ??= 10_000;
  if (out.ringHash && Object.keys(out.ringHash).length === 0) delete out.ringHash;
  return out;
}

const sortEndpoints = (e: EndpointSet): EndpointSet => ({ cluster: e.cluster, endpoints: [...e.endpoints].sort((a, b) => (a.address < b.address ? -1 : 1) || a.port - b.port) });

describe('xDS translation', () => {
  const m = model();

  it('reads back every route configuration, cluster and endpoint set the control plane builds', () => {
    assert.ok(m.routing.routeConfigs.some((rc) => rc.virtualHosts.some((vh) => vh.routes.some((r) => r.fault?.delay && r.headers?.response))), 'the fixture has faults and header operations');
    for (const rc of m.routing.routeConfigs) {
      const issues = new Issues();
      const back = translateRouteConfiguration(wire(TYPE.route, proxyRouteConfiguration(rc)), new At(issues, `RouteConfiguration ${rc.name}`));
      assert.deepEqual(issues.list(), []);
      assert.deepEqual(back && normalRouteConfig(back), normalRouteConfig(rc));
      // A route's manifest location survives too, for explanations.
      const src = rc.virtualHosts[0]?.routes.find((r) => r.source)?.source;
      const srcBack = back?.virtualHosts[0]?.routes.find((r) => r.source)?.source;
      if (src) assert.deepEqual(srcBack?.origin.locate(srcBack.path), src.origin.locate(src.path, 'key'));
      // The proxyless form (no header removals, no sources) reads back too, where it says the same.
      const plain = translateRouteConfiguration(wire(TYPE.route, routeConfiguration(rc)), new At(issues, rc.name));
      assert.deepEqual(plain?.virtualHosts.map((vh) => vh.routes.map((r) => r.action)), back?.virtualHosts.map((vh) => vh.routes.map((r) => r.action)));
    }
    assert.ok(m.routing.clusters.some((c) => c.outlierDetection && c.circuitBreakers && c.lbPolicy === 'LEAST_REQUEST'));
    assert.ok(m.routing.clusters.some((c) => c.lbPolicy === 'RING_HASH' && c.tls));
    assert.ok(m.routing.clusters.some((c) => c.maxRequestsPerConnection === 3 && !c.http2), 'max_requests_per_connection on an HTTP/1.1 cluster');
    for (const c of m.routing.clusters) {
      const issues = new Issues();
      const back = translateCluster(wire(TYPE.cluster, meshCluster(c, undefined)), new At(issues, `Cluster ${c.name}`));
      assert.deepEqual(issues.list(), []);
      assert.deepEqual(back?.cluster, normalCluster(c));
      // Without Trellis metadata (a proxyless cluster), what Envoy's Cluster says still reads back.
      const plain = translateCluster(wire(TYPE.cluster, cluster(c)), new At(issues, c.name));
      const { protocol: _p, tls: _t, ...rest } = normalCluster(c);
      const { protocol: _pb, tls: _tb, ...restBack } = plain?.cluster ?? ({} as ClusterSpec);
      assert.deepEqual(restBack, rest);
    }
    for (const e of m.routing.endpoints) {
      const issues = new Issues();
      const back = translateLoadAssignment(wire(TYPE.endpoint, proxyLoadAssignment(e)), new At(issues, e.cluster));
      assert.deepEqual(issues.list(), []);
      assert.deepEqual(back && sortEndpoints(back), sortEndpoints(e));
      const plain = translateLoadAssignment(wire(TYPE.endpoint, clusterLoadAssignment(e)), new At(issues, e.cluster));
      assert.deepEqual(plain?.endpoints.map((x) => [x.address, x.port, x.healthy, x.weight]).sort(), e.endpoints.map((x) => [x.address, x.port, x.healthy, x.weight]).sort());
    }
  });

  it('translates a sidecar’s whole listener set into a ProxyConfig', () => {
    const authz = buildAuthzModel(m.resources);
    const index = new SidecarIndex(m.routing, { cluster: m.cluster, resources: m.resources }, { authz });
    const node = parseNode({ id: 'sidecar~10.0.0.11~reviews-v1.shop~shop.svc.cluster.local', metadata: { fields: { TRELLIS_PROXY: { string_value: 'sidecar' } } } });
    const v = index.view(node);
    const result = translateResources({
      listeners: [...v.listeners.values()].map((l) => wire(TYPE.listener, l)),
      routes: [...v.routes.values()].map((r) => wire(TYPE.route, r)),
      clusters: [...index.meshClusterNames().map((n) => index.meshCluster(n)!), ...v.clusters.values()].map((c) => wire(TYPE.cluster, c)),
      endpoints: m.routing.endpoints.map((e) => wire(TYPE.endpoint, proxyLoadAssignment(e))),
    });
    assert.ok(result.ok, result.ok ? '' : result.errors.join('\n'));
    const cfg = result.config;
    const inbound = cfg.listeners.find((l) => l.name === 'inbound|10.0.0.11|9080');
    // 9080 is the target of an HTTP Service (reviews:80) and a TCP one (db:5432): detected per connection.
    assert.deepEqual(inbound, {
      name: 'inbound|10.0.0.11|9080', direction: 'inbound', address: { host: '10.0.0.11', port: 9080 }, protocol: 'auto', pod: 'shop/reviews-v1', mtls: 'PERMISSIVE',
      routeConfig: 'inbound|9080|shop/reviews-v1', tcpCluster: 'inbound|9080|shop/reviews-v1', httpFilters: [{ name: 'trellis.policy' }, { name: 'envoy.filters.http.fault' }], limits: DEFAULT_LISTENER_LIMITS,
    });
    // EnvoyFilters shape the chains: a rate limit on inbound 9090 only, an extension on every outbound listener.
    const grpcIn = cfg.listeners.find((l) => l.name === 'inbound|10.0.0.11|9090');
    assert.equal(grpcIn?.protocol, 'http');
    assert.deepEqual(grpcIn?.httpFilters, [
      { name: 'trellis.policy' },
      { name: 'envoy.filters.http.local_ratelimit', maxTokens: 10, tokensPerFill: 5, fillIntervalMs: 1500, perRoute: false, responseHeaders: { 'x-limited': 'yes' } },
      { name: 'envoy.filters.http.fault' },
    ]);
    assert.deepEqual(cfg.listeners.find((l) => l.name === 'outbound|127.0.0.1|80')?.httpFilters, [{ name: 'trellis.policy' }, { name: 'envoy.filters.http.fault' }, { name: 'trellis.extension', module: 'audit.ts', config: { level: 2 } }]);
    assert.deepEqual(cfg.routes.get('inbound|9080|shop/reviews-v1')?.virtualHosts[0]?.routes[0]?.action, { type: 'route', clusters: [{ cluster: 'inbound|9080|shop/reviews-v1', weight: 100 }] });
    assert.deepEqual(cfg.clusters.get('inbound|9080|shop/reviews-v1')?.local, true);
    assert.deepEqual(cfg.endpoints.get('inbound|9080|shop/reviews-v1')?.endpoints.map((e) => [e.address, e.port, e.pod]), [['127.0.0.1', 9080, 'shop/reviews-v1']]);
    const out80 = cfg.listeners.find((l) => l.name === 'outbound|127.0.0.1|80');
    assert.deepEqual([out80?.direction, out80?.protocol, out80?.sourceAddress, out80?.pod, out80?.mtls], ['outbound', 'http', '10.0.0.11', 'shop/reviews-v1', undefined]);
    assert.ok(cfg.routes.get(out80?.routeConfig ?? '')?.virtualHosts.some((vh) => vh.domains.includes('reviews')));
    const db = cfg.listeners.find((l) => l.name === 'outbound|127.0.0.1|5432');
    assert.deepEqual([db?.protocol, db?.tcpCluster, db?.tcpRoutes], ['tcp', 'outbound|5432||db.shop.svc.cluster.local', undefined]);
    assert.deepEqual(cfg.clusters.get('outbound|80||reviews.shop.svc.cluster.local')?.mtls, { subjectAltNames: ['spiffe://cluster.local/ns/shop/sa/default', 'spiffe://cluster.local/ns/shop/sa/reviews'] });
    assert.equal(cfg.clusters.get('outbound|443||ext.shop.svc.cluster.local')?.mtls, undefined, 'no mTLS to a DNS name outside the mesh');
  });

  it('reads HCM limits, rate limits, extension filters and health checks', () => {
    const hcm = {
      '@type': 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
      stat_prefix: 'x',
      rds: { route_config_name: 'r', config_source: { ads: {} } },
      max_request_headers_kb: { value: 16 },
      common_http_protocol_options: { max_headers_count: { value: 20 }, idle_timeout: { seconds: 30 } },
      http2_protocol_options: { max_concurrent_streams: { value: 10 } },
      request_headers_timeout: { seconds: 2, nanos: 500_000_000 },
      http_filters: [
        { name: 'envoy.filters.http.local_ratelimit', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit', stat_prefix: 'rl', token_bucket: { max_tokens: 10, tokens_per_fill: { value: 5 }, fill_interval: { seconds: 1 } } } },
        { name: 'acme.audit', typed_config: typedStruct('type.googleapis.com/trellis.filters.http.extension.v1.Extension', { module: './audit.js', config: { level: 2 } }) },
        { name: 'envoy.filters.http.router', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router' } },
      ],
    };
    const l = { name: 'gw', address: { socket_address: { address: '127.0.0.1', port_value: 8080 } }, filter_chains: [{ filters: [{ name: 'envoy.filters.network.http_connection_manager', typed_config: hcm }] }] };
    const c = { name: 'hc', type: 'STRICT_DNS', connect_timeout: { seconds: 1 }, load_assignment: { cluster_name: 'hc', endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: 'localhost', port_value: 80 } } } }] }] }, health_checks: [{ timeout: { seconds: 1 }, interval: { seconds: 5 }, unhealthy_threshold: { value: 2 }, healthy_threshold: { value: 1 }, grpc_health_check: { service_name: 'dns.v1' } }] };
    const r = translateResources({ listeners: [wire(TYPE.listener, l)], routes: [], clusters: [wire(TYPE.cluster, c)], endpoints: [] });
    assert.ok(r.ok, r.ok ? '' : r.errors.join('\n'));
    const gw = r.config.listeners[0];
    assert.deepEqual(gw?.limits, { ...DEFAULT_LISTENER_LIMITS, maxHeaderBytes: 16 * 1024, maxHeaders: 20, idleTimeoutMs: 30_000, maxConcurrentStreams: 10, headerTimeoutMs: 2500 });
    assert.deepEqual(gw?.httpFilters, [
      { name: 'envoy.filters.http.local_ratelimit', maxTokens: 10, tokensPerFill: 5, fillIntervalMs: 1000, perRoute: false },
      { name: 'trellis.extension', module: './audit.js', config: { level: 2 } },
    ]);
    assert.equal(gw?.direction, 'gateway');
    const hc = r.config.clusters.get('hc');
    assert.deepEqual([hc?.discovery, hc?.dns, hc?.healthCheck], ['LOGICAL_DNS', { host: 'localhost', port: 80 }, { intervalMs: 5000, timeoutMs: 1000, unhealthyThreshold: 2, healthyThreshold: 1, grpcService: 'dns.v1' }]);
  });

  it('refuses a bad config with every error, each naming its resource and field', () => {
    const bad = {
      name: 'inbound|10.0.0.1|80',
      address: { socket_address: { address: '10.0.0.1', port_value: 80 } },
      filter_chains: [
        { filters: [{ name: 'x', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy', stat_prefix: 's' } }] },
        {
          filters: [{
            name: 'envoy.filters.network.http_connection_manager',
            typed_config: {
              '@type': 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
              rds: { route_config_name: 'r' },
              http_filters: [{ name: 'envoy.filters.http.router', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router' } }, { name: 'envoy.filters.http.rbac', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC' } }],
            },
          }],
        },
      ],
    };
    const noPort = { name: 'outbound|127.0.0.1|0', address: { socket_address: { address: '127.0.0.1' } }, filter_chains: [] };
    const prefixSan = { name: 'c', type: 'EDS', transport_socket: { name: 'envoy.transport_sockets.tls', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext', common_tls_context: { validation_context: { match_subject_alt_names: [{ prefix: 'spiffe://x/' }] } } } } };
    const r = translateResources({ listeners: [wire(TYPE.listener, bad), wire(TYPE.listener, noPort)], routes: [], clusters: [wire(TYPE.cluster, prefixSan)], endpoints: [{ cluster_name: 'e', endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '1.2.3.4', port_value: 70000 } } } }] }] }] });
    assert.equal(r.ok, false);
    assert.deepEqual(r.ok ? [] : r.errors, [
      'Listener inbound|10.0.0.1|80: filter_chains[0].filters[0].typed_config: tcp_proxy needs a cluster',
      'Listener inbound|10.0.0.1|80: filter_chains[1].filters[0].typed_config.http_filters[0]: the router must be the last HTTP filter',
      'Listener inbound|10.0.0.1|80: filter_chains[1].filters[0].typed_config.http_filters[1]: the last HTTP filter must be the router, not envoy.filters.http.rbac',
      'Listener inbound|10.0.0.1|80: filter_chains[1].filters[0].typed_config.http_filters[1]: unknown HTTP filter envoy.filters.http.rbac',
      'Listener outbound|127.0.0.1|0: address: needs a socket address with a port',
      'Cluster c: transport_socket.typed_config.common_tls_context.validation_context.match_subject_alt_names[0]: only exact SAN matches are supported',
      'ClusterLoadAssignment e: endpoints[0].lb_endpoints[0].endpoint: bad port 70000',
    ]);
    const unknownFilter = { ...bad, filter_chains: [{ filters: [{ name: 'x', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router' } }] }] };
    const r2 = translateResources({ listeners: [wire(TYPE.listener, unknownFilter)], routes: [], clusters: [], endpoints: [] });
    assert.deepEqual(r2.ok ? [] : r2.errors, ['Listener inbound|10.0.0.1|80: filter_chains[0].filters[0]: unknown filter x', 'Listener inbound|10.0.0.1|80: filter_chains: no usable filter chain']);
  });
});
