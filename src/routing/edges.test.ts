import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildCluster } from '../model/cluster.ts';
import { formatDiagnostic, hasErrors } from '../resources/diagnostics.ts';
import { loadManifests } from '../resources/load.ts';
import { buildRoutingModel } from './build.ts';

function build(text: string) {
  const loaded = loadManifests([{ name: 'edge.yaml', text }]);
  assert.equal(hasErrors(loaded.diagnostics), false, loaded.diagnostics.map(formatDiagnostic).join('\n'));
  const r = buildRoutingModel(loaded.resources, buildCluster(loaded.resources));
  return { ...r, lines: r.diagnostics.map(formatDiagnostic) };
}

const BASE = `apiVersion: v1
kind: Pod
metadata: {name: api-0, namespace: shop, labels: {app: api}}
spec: {containers: [{name: app, ports: [{containerPort: 8080}, {name: grpc, containerPort: 9090}]}]}
status: {podIP: 10.1.0.5}
---
apiVersion: v1
kind: Service
metadata: {name: api, namespace: shop}
spec:
  selector: {app: api}
  ports: [{name: http, port: 80, targetPort: 8080}, {name: grpc, port: 9090, targetPort: grpc}]
`;

describe('buildRoutingModel: front doors', () => {
  it('serves an Istio Gateway with the VirtualServices bound to it', () => {
    const { model, lines } = build(`${BASE}---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: public, namespace: shop}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: [shop.example.com]
    tls: {mode: SIMPLE, credentialName: shop-cert}
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: [shop.example.com]
    tls: {httpsRedirect: true}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: public, namespace: shop}
spec:
  hosts: [shop.example.com]
  gateways: [public]
  http:
  - match: [{uri: {prefix: /api}}]
    route: [{destination: {host: api, port: {number: 80}}}]
`);
    assert.deepEqual(lines, []);
    assert.deepEqual(model.edges.map((e) => [e.name, e.kind, e.port, e.protocol, e.tls]), [
      ['istio-gateway/shop/public:443', 'Gateway', 443, 'https', { mode: 'SIMPLE', hosts: ['shop.example.com'], credentialName: 'shop-cert' }],
      ['istio-gateway/shop/public:80', 'Gateway', 80, 'http', undefined],
    ]);
    const https = model.routeConfigs.find((r) => r.name === 'istio-gateway/shop/public:443');
    assert.deepEqual(https?.virtualHosts.map((v) => [v.domains, v.routes.map((r) => r.name)]), [[['shop.example.com', 'shop.example.com:443'], ['shop/public/http[0]']]]);
    const http = model.routeConfigs.find((r) => r.name === 'istio-gateway/shop/public:80');
    assert.deepEqual(http?.virtualHosts[0]?.routes[0]?.action, { type: 'redirect', scheme: 'https', status: 301 });
    // A VirtualService bound only to a gateway does not change the mesh route of the Service.
    assert.equal(model.routeConfigs.find((r) => r.name === 'api.shop.svc.cluster.local:80')?.virtualHosts[0]?.routes[0]?.name, 'default');
  });

  it('serves Ingresses: Exact before Prefix, longest first, element-wise prefixes, named ports, defaultBackend last', () => {
    const { model, lines } = build(`${BASE}---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web, namespace: shop}
spec:
  defaultBackend: {service: {name: api, port: {number: 80}}}
  tls: [{hosts: [shop.example.com], secretName: shop-cert}]
  rules:
  - host: shop.example.com
    http:
      paths:
      - {path: /api, pathType: Prefix, backend: {service: {name: api, port: {name: grpc}}}}
      - {path: /api/v1/, pathType: Prefix, backend: {service: {name: api, port: {number: 80}}}}
      - {path: /api, pathType: Exact, backend: {service: {name: api, port: {number: 80}}}}
      - {path: /x, pathType: Exact, backend: {service: {name: gone, port: {number: 80}}}}
`);
    assert.deepEqual(lines, ['edge.yaml:27:63: warning: Ingress shop/web: spec.rules[0].http.paths[3].backend.service.name: Service shop/gone does not exist']);
    assert.deepEqual(model.edges.map((e) => [e.name, e.port, e.tls?.credentialName]), [['ingress/443', 443, 'shop-cert'], ['ingress/80', 80, undefined]]);
    const rc = model.routeConfigs.find((r) => r.name === 'ingress');
    assert.deepEqual(rc?.virtualHosts.map((v) => v.name), ['*', 'shop.example.com']);
    const routes = rc?.virtualHosts[1]?.routes ?? [];
    assert.deepEqual(routes.map((r) => [r.name, r.match.path, r.action.type === 'route' ? r.action.clusters[0]?.cluster : '']), [
      ['shop/web/rules[0].paths[1]', { regex: '/api/v1(/.*)?' }, 'outbound|80||api.shop.svc.cluster.local'],
      ['shop/web/rules[0].paths[2]', { exact: '/api' }, 'outbound|80||api.shop.svc.cluster.local'],
      ['shop/web/rules[0].paths[0]', { regex: '/api(/.*)?' }, 'outbound|9090||api.shop.svc.cluster.local'],
      ['shop/web/defaultBackend', { prefix: '/' }, 'outbound|80||api.shop.svc.cluster.local'],
    ]);
  });

  it('attaches HTTPRoutes to Gateway API Gateways and, in mesh mode, to Services', () => {
    const { model, lines } = build(`${BASE}---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: shop}
spec:
  gatewayClassName: trellis
  listeners: [{name: web, port: 8000, protocol: HTTP, hostname: "*.example.com"}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web, namespace: shop}
spec:
  parentRefs: [{name: gw}, {group: "", kind: Service, name: api, port: 80}]
  hostnames: [shop.example.com]
  rules:
  - backendRefs: [{name: api, port: 80}]
  - matches: [{path: {type: Exact, value: /login}}]
    filters: [{type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: X-Env, value: prod}], remove: [X-Debug]}}]
    backendRefs: [{name: api, port: 80, weight: 9}, {name: api, port: 81, weight: 1}]
    timeouts: {request: 5s, backendRequest: 1s}
  - matches: [{path: {type: PathPrefix, value: /old}}]
    filters: [{type: RequestRedirect, requestRedirect: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /new}}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: zone, namespace: shop}
spec:
  parentRefs: [{group: "", kind: Service, name: api, port: 9090}]
  rules:
  - matches: [{method: {service: dns.Zone, method: Transfer}}, {method: {service: dns.Zone}}, {method: {type: RegularExpression, method: "Get.*"}}]
    backendRefs: [{name: api, port: 9090}]
`);
    assert.deepEqual(lines, ['edge.yaml:31:71: warning: HTTPRoute shop/web: spec.rules[1].backendRefs[1].port: Service shop/api has no port 81']);
    const edge = model.edges.find((e) => e.name === 'gateway/shop/gw:8000');
    assert.deepEqual([edge?.kind, edge?.port, edge?.protocol], ['Gateway', 8000, 'http']);
    const vh = model.routeConfigs.find((r) => r.name === 'gateway/shop/gw:8000')?.virtualHosts;
    assert.deepEqual(vh?.map((v) => v.domains), [['shop.example.com', 'shop.example.com:*']]);
    // Gateway API precedence: Exact, then the longest prefix; rule order last.
    assert.deepEqual(vh?.[0]?.routes.map((r) => r.name), ['shop/web/rules[1].matches[0]', 'shop/web/rules[2].matches[0]', 'shop/web/rules[0].matches[0]']);
    const login = vh?.[0]?.routes[0];
    assert.deepEqual(login?.headers, { request: { set: { 'x-env': 'prod' }, add: {}, remove: ['x-debug'] } });
    assert.equal(login?.action.type === 'route' && login.action.timeoutMs, 5000);
    assert.equal(login?.action.type === 'route' && login.action.retry?.perTryTimeoutMs, 1000);
    assert.deepEqual(login?.action.type === 'route' && login.action.clusters, [{ cluster: 'outbound|80||api.shop.svc.cluster.local', weight: 9 }]);
    assert.deepEqual(vh?.[0]?.routes[1]?.action, { type: 'redirect', status: 302, prefixRewrite: '/new' });
    // Mesh mode: the Service's own route configs carry the routes, for every client.
    const mesh = model.routeConfigs.find((r) => r.name === 'api.shop.svc.cluster.local:80')?.virtualHosts[0]?.routes;
    assert.deepEqual(mesh?.map((r) => r.name), ['shop/web/rules[1].matches[0]', 'shop/web/rules[2].matches[0]', 'shop/web/rules[0].matches[0]']);
    const grpc = model.routeConfigs.find((r) => r.name === 'api.shop.svc.cluster.local:9090')?.virtualHosts[0]?.routes;
    assert.deepEqual(grpc?.map((r) => r.match.path), [{ exact: '/dns.Zone/Transfer' }, { prefix: '/dns.Zone/' }, { regex: '/(?:[^/]+)/(?:Get.*)' }]);
  });

  it('applies a consumer route (another namespace) only to its own namespace, which gets 404 when it does not match', () => {
    const { model } = build(`${BASE}---
apiVersion: v1
kind: Service
metadata: {name: api-v2, namespace: shop}
spec:
  selector: {app: api}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: try-v2, namespace: frontend}
spec:
  parentRefs: [{group: '', kind: Service, name: api, namespace: shop, port: 80}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /beta}}]
    backendRefs: [{name: api-v2, namespace: shop, port: 80}]
---
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {name: frontend-to-api, namespace: shop}
spec:
  from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: frontend}]
  to: [{group: '', kind: Service}]
`);
    const routes = model.routeConfigs.find((r) => r.name === 'api.shop.svc.cluster.local:80')?.virtualHosts[0]?.routes ?? [];
    assert.deepEqual(
      routes.map((r) => [r.match.sourceNamespace ?? '*', r.action.type === 'route' ? r.action.clusters.map((c) => c.cluster) : r.action.type]),
      [
        ['frontend', ['outbound|80||api-v2.shop.svc.cluster.local']],
        ['frontend', 'direct-response'],
        ['*', ['outbound|80||api.shop.svc.cluster.local']],
      ],
    );
  });

  it('refuses a backendRef into another namespace without a ReferenceGrant there', () => {
    const { lines } = build(`${BASE}---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: sneaky, namespace: frontend}
spec:
  parentRefs: [{group: '', kind: Service, name: api, namespace: shop, port: 80}]
  rules:
  - backendRefs: [{name: api, namespace: shop, port: 80}]
`);
    assert.ok(lines.some((l) => /HTTPRoute frontend\/sneaky: spec\.rules\[0\]\.backendRefs\[0\]\.namespace: backendRef to Service shop\/api is not permitted: no ReferenceGrant in shop allows HTTPRoutes from frontend/.test(l)), lines.join('\n'));
  });

  it('routes ServiceEntry hosts: STATIC endpoints by EDS, DNS by LOGICAL_DNS, and TCP routes by weight', () => {
    const { model, lines } = build(`${BASE}---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: pay, namespace: shop}
spec:
  hosts: [pay.example.com]
  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: STATIC
  endpoints: [{address: 203.0.113.7, ports: {tls: 8443}, locality: eu/west}, {address: 203.0.113.8}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: search, namespace: shop}
spec:
  hosts: [search.example.com]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: pay, namespace: shop}
spec:
  hosts: [pay.example.com]
  tls:
  - match: [{sniHosts: [pay.example.com]}]
    route: [{destination: {host: pay.example.com}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: backend-split, namespace: shop}
spec:
  hosts: [api]
  tcp:
  - route:
    - {destination: {host: api, port: {number: 9090}}, weight: 30}
    - {destination: {host: search.example.com}, weight: 60}
`);
    assert.deepEqual(lines, []);
    const api = model.listeners.find((l) => l.name === 'api.shop.svc.cluster.local:9090');
    assert.equal(api?.tcpRoutes, undefined);
    const pay = model.listeners.find((l) => l.host === 'pay.example.com');
    assert.deepEqual([pay?.name, pay?.aliases, pay?.protocol, pay?.tcpCluster], ['pay.example.com:443', [], 'tls', 'outbound|443||pay.example.com']);
    assert.deepEqual(pay?.tcpRoutes, [{ name: 'shop/pay/tls[0]', sniHosts: ['pay.example.com'], clusters: [{ cluster: 'outbound|443||pay.example.com', weight: 100 }] }]);
    assert.deepEqual(model.endpoints.find((e) => e.cluster === 'outbound|443||pay.example.com')?.endpoints.map((e) => [e.address, e.port, e.locality.region]), [['203.0.113.7', 8443, 'eu'], ['203.0.113.8', 443, '']]);
    const search = model.clusters.find((c) => c.host === 'search.example.com');
    assert.deepEqual([search?.discovery, search?.dns], ['LOGICAL_DNS', { host: 'search.example.com', port: 80 }]);
    // A tcp-only VirtualService leaves HTTP ports to their default route; on the gRPC port its tcp route does not apply.
    assert.equal(model.routeConfigs.find((r) => r.name === 'api.shop.svc.cluster.local:80')?.virtualHosts[0]?.routes[0]?.name, 'default');
  });
});
