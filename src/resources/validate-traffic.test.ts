import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatDiagnostic } from './diagnostics.ts';
import type { DestinationRule, GatewayApiGateway, GRPCRoute, HTTPRoute, Ingress, IstioGateway, ServiceEntry, VirtualService } from './kinds-traffic.ts';
import { loadManifests } from './load.ts';
import { parseDurationMs, regexProblem } from './validate-traffic-common.ts';

function load(text: string, name = 'traffic.yaml') {
  const r = loadManifests([{ name, text }]);
  return { ...r, lines: r.diagnostics.map(formatDiagnostic) };
}

const BROKEN = `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: shop}
spec:
  hosts: [reviews, "bad*host"]
  http:
  - match:
    - uri: {prefix: /api, exact: /x}
      headers:
        x-user: {regex: "(?=a)"}
    route:
    - destination: {host: reviews, subset: v1}
      weight: 70
    - destination: {host: reviews, subset: v2}
      weight: 20
    redirect: {uri: /new}
    timeout: 1.5x
    retries: {attempts: 3, perTryTimeout: 300ms}
    fault:
      abort: {grpcStatus: NOPE, percentage: {value: 120}}
  - route:
    - destination: {host: reviews}
    directResponse: {status: 503}
  - route:
    - destination: {host: ratings}
    mirrorPercentage: {value: 50}
    rout: []
---
apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata: {name: reviews, namespace: shop}
spec:
  host: reviews
  trafficPolicy:
    loadBalancer: {simple: round_robin}
    outlierDetection: {interval: 10, maxEjectionPercent: 101}
    tls: {mode: MUTUAL}
  subsets:
  - name: v1
    labels: {version: v1}
  - name: v1
    labels: {version: v2}
    trafficPolicy:
      loadBalancer:
        consistentHash: {httpHeaderName: x-user, useSourceIp: true}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ext}
spec:
  hosts: [api.example.com]
  ports:
  - {number: 443, name: https, protocol: https}
  resolution: STATIC
  location: MESH_EXTERNAL
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: ["*/shop.example.com"]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web}
spec:
  rules:
  - host: 10.0.0.1
    http:
      paths:
      - path: api
        pathType: Prefix
        backend: {service: {name: web, port: {number: 80, name: http}}}
      - path: /x
        backend: {service: {name: web, port: {number: 80}}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r}
spec:
  parentRefs: [{name: gw}]
  rules:
  - matches:
    - path: {type: PathPrefix, value: nope}
      method: get
    backendRefs:
    - {name: web}
    timeouts: {request: 10s, backendRequest: 1m}
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: g}
spec:
  rules:
  - matches:
    - method: {type: Exact}
    - method: {service: "bad service", method: Get}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw}
spec:
  gatewayClassName: istio
  listeners:
  - {name: web, port: 443, protocol: HTTPS}
`.slice(1);

describe('traffic kinds validation', () => {
  it('reports every error in a file of broken traffic manifests, with locations, resources and fields', () => {
    const r = load(BROKEN);
    assert.deepEqual(r.lines, [
      "traffic.yaml:5:20: VirtualService shop/reviews: spec.hosts[1]: host \"bad*host\" may have a wildcard only as its whole first label, as in *.example.com",
      "traffic.yaml:8:13: VirtualService shop/reviews: spec.http[0].match[0].uri.prefix: may not be combined with exact (set only one of exact, prefix, regex)",
      "traffic.yaml:10:25: VirtualService shop/reviews: spec.http[0].match[0].headers.x-user.regex: \"(?=a)\" uses lookaround, which RE2 does not support",
      "traffic.yaml:11:5: warning: VirtualService shop/reviews: spec.http[0].route: weights add up to 90, not 100; traffic is split in proportion to them",
      "traffic.yaml:16:5: VirtualService shop/reviews: spec.http[0].redirect: may not be combined with route (a rule either forwards or redirects)",
      "traffic.yaml:17:14: VirtualService shop/reviews: spec.http[0].timeout: \"1.5x\" is not a duration: write a number and a unit (h, m, s, ms), such as 1.5s or 300ms",
      "traffic.yaml:20:27: VirtualService shop/reviews: spec.http[0].fault.abort.grpcStatus: \"NOPE\" is not a gRPC status name such as UNAVAILABLE or DEADLINE_EXCEEDED",
      "traffic.yaml:20:53: VirtualService shop/reviews: spec.http[0].fault.abort.percentage.value: must be a number 0-100, not number 120",
      "traffic.yaml:23:5: VirtualService shop/reviews: spec.http[1].directResponse: may not be combined with route (set only one of route, redirect, directResponse)",
      "traffic.yaml:24:5: warning: VirtualService shop/reviews: spec.http[2]: never used: spec.http[1] has no match and catches every request",
      "traffic.yaml:27:5: VirtualService shop/reviews: spec.http[2].rout: unknown field (did you mean \"route\"?)",
      "traffic.yaml:35:28: DestinationRule shop/reviews: spec.trafficPolicy.loadBalancer.simple: \"round_robin\" must be one of UNSPECIFIED, LEAST_CONN, RANDOM, PASSTHROUGH, ROUND_ROBIN, LEAST_REQUEST (values are case-sensitive: ROUND_ROBIN)",
      "traffic.yaml:36:34: DestinationRule shop/reviews: spec.trafficPolicy.outlierDetection.interval: must be a string, not number 10",
      "traffic.yaml:36:58: DestinationRule shop/reviews: spec.trafficPolicy.outlierDetection.maxEjectionPercent: must be an integer 0-100",
      "traffic.yaml:37:17: DestinationRule shop/reviews: spec.trafficPolicy.tls.mode: MUTUAL needs credentialName, or clientCertificate and privateKey",
      "traffic.yaml:41:11: DestinationRule shop/reviews: spec.subsets[1].name: duplicate subset name \"v1\"",
      "traffic.yaml:45:50: DestinationRule shop/reviews: spec.subsets[1].trafficPolicy.loadBalancer.consistentHash.useSourceIp: set only one of httpHeaderName, httpCookie, useSourceIp, httpQueryParameterName",
      "traffic.yaml:53:42: ServiceEntry default/ext: spec.ports[0].protocol: \"https\" must be one of HTTP, HTTPS, GRPC, GRPC-WEB, HTTP2, MONGO, TCP, TLS, UDP (values are case-sensitive: HTTPS)",
      "traffic.yaml:54:15: ServiceEntry default/ext: spec.resolution: STATIC needs endpoints or a workloadSelector",
      "traffic.yaml:63:5: Gateway default/gw: spec.servers[0].tls: is required on a HTTPS server",
      "traffic.yaml:71:11: Ingress default/web: spec.rules[0].host: must be a DNS name, not an IP address (\"10.0.0.1\")",
      "traffic.yaml:74:15: Ingress default/web: spec.rules[0].http.paths[0].path: must be an absolute path starting with \"/\" (\"api\")",
      "traffic.yaml:76:59: Ingress default/web: spec.rules[0].http.paths[0].backend.service.port.name: may not be combined with number (set only one of number, name)",
      "traffic.yaml:77:9: Ingress default/web: spec.rules[0].http.paths[1].pathType: is required",
      "traffic.yaml:87:39: HTTPRoute default/r: spec.rules[0].matches[0].path.value: must be an absolute path starting with \"/\" (\"nope\")",
      "traffic.yaml:88:15: HTTPRoute default/r: spec.rules[0].matches[0].method: \"get\" must be one of GET, HEAD, POST, PUT, DELETE, CONNECT, OPTIONS, TRACE, PATCH (values are case-sensitive: GET)",
      "traffic.yaml:90:7: HTTPRoute default/r: spec.rules[0].backendRefs[0].port: is required when referring to a Service",
      "traffic.yaml:91:46: HTTPRoute default/r: spec.rules[0].timeouts.backendRequest: must not be longer than timeouts.request (10s)",
      "traffic.yaml:99:15: GRPCRoute default/g: spec.rules[0].matches[0].method: must set service or method (or both)",
      "traffic.yaml:100:25: GRPCRoute default/g: spec.rules[0].matches[1].method.service: \"bad service\" is not a fully-qualified gRPC service name such as pkg.Service",
      "traffic.yaml:108:5: Gateway default/gw: spec.listeners[0].tls: is required when protocol is HTTPS",
    ]);
    assert.equal(r.resources.length, 0);
  });

  it('loads valid Istio kinds into typed objects', () => {
    const r = load(`apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata: {name: reviews, namespace: shop}
spec:
  hosts: [reviews]
  http:
  - name: canary
    match:
    - uri: {prefix: /api}
      ignoreUriCase: true
      headers:
        X-User: {exact: jason}
        x-trace: {}
      sourceLabels: {app: web}
    route:
    - destination: {host: reviews, subset: v2, port: {number: 9080}}
      weight: 25
    - destination: {host: reviews, subset: v1}
      weight: 75
    timeout: 1.5s
    retries: {attempts: 3, perTryTimeout: 300ms, retryOn: "5xx,503"}
    fault:
      delay: {fixedDelay: 1m30s}
      abort: {grpcStatus: UNAVAILABLE, percentage: {value: 0.5}}
    mirror: {host: shadow}
  tcp:
  - route:
    - destination: {host: reviews}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: shop}
spec:
  host: reviews
  trafficPolicy:
    loadBalancer:
      consistentHash: {httpCookie: {name: user, ttl: 0s}, ringHash: {minimumRingSize: 1024}}
    connectionPool:
      tcp: {maxConnections: 100, connectTimeout: 30ms}
      http: {http1MaxPendingRequests: 10, maxRetries: 3}
    portLevelSettings:
    - port: {number: 9080}
      outlierDetection: {consecutive5xxErrors: 7, interval: 5s}
  subsets:
  - {name: v1, labels: {version: v1}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ext, namespace: shop}
spec:
  hosts: [api.example.com]
  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: STATIC
  endpoints: [{address: 203.0.113.7, ports: {tls: 8443}, locality: eu/west-1}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: shop}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: ["./shop.example.com"]
    tls: {mode: SIMPLE, credentialName: shop-cert}
`);
    assert.deepEqual(r.lines, []);
    const [vs, dr, se, gw] = r.resources as [VirtualService, DestinationRule, ServiceEntry, IstioGateway];
    const http = vs.spec.http[0];
    assert.equal(http?.timeoutMs, 1500);
    assert.deepEqual(http?.retries, { attempts: 3, perTryTimeoutMs: 300, retryOn: '5xx,503' });
    assert.deepEqual(http?.fault, { delay: { fixedDelayMs: 90000, percent: 100 }, abort: { grpcStatus: 14, percent: 0.5 } });
    assert.deepEqual(http?.match[0]?.headers, [{ name: 'x-trace' }, { name: 'x-user', match: { exact: 'jason' } }]);
    assert.equal(http?.match[0]?.ignoreUriCase, true);
    assert.deepEqual(http?.route.map((d) => [d.destination.host, d.destination.subset, d.destination.port, d.weight]), [['reviews', 'v2', 9080, 25], ['reviews', 'v1', undefined, 75]]);
    assert.equal(vs.spec.tcp.length, 1);
    assert.deepEqual(dr.spec.trafficPolicy?.loadBalancer, { consistentHash: { httpCookie: { name: 'user', ttlMs: 0 }, minimumRingSize: 1024 } });
    assert.deepEqual(dr.spec.trafficPolicy?.portLevelSettings, [{ port: 9080, outlierDetection: { consecutive5xxErrors: 7, intervalMs: 5000 } }]);
    assert.deepEqual(se.spec.endpoints[0]?.ports, { tls: 8443 });
    assert.equal(se.spec.resolution, 'STATIC');
    assert.equal(gw.group, 'networking.istio.io');
    assert.deepEqual(gw.spec.servers[0]?.tls, { mode: 'SIMPLE', credentialName: 'shop-cert' });
  });

  it('loads Ingress and Gateway API kinds, and tells the two Gateway kinds apart', () => {
    const r = load(`apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web}
spec:
  ingressClassName: trellis
  rules:
  - host: shop.example.com
    http:
      paths:
      - {path: /api, pathType: Prefix, backend: {service: {name: api, port: {name: http}}}}
  tls: [{hosts: [shop.example.com], secretName: shop-cert}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw}
spec:
  gatewayClassName: trellis
  listeners:
  - {name: http, port: 80, protocol: HTTP, allowedRoutes: {namespaces: {from: All}}}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw}
spec:
  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ["*"]}]
---
apiVersion: gateway.networking.k8s.io/v1beta1
kind: HTTPRoute
metadata: {name: r}
spec:
  parentRefs: [{name: gw}, {kind: Service, group: "", name: api, port: 8080}]
  hostnames: [shop.example.com]
  rules:
  - matches: [{path: {type: Exact, value: /x}, headers: [{name: X-A, value: b}], method: GET}]
    filters:
    - {type: URLRewrite, urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /v2}}}
    backendRefs: [{name: api, port: 8080, weight: 3}]
    timeouts: {request: 10s}
  - backendRefs: [{name: api, port: 8080}]
---
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: GRPCRoute
metadata: {name: g}
spec:
  parentRefs: [{kind: Service, group: "", name: api}]
  rules:
  - matches: [{method: {service: dns.Zone, method: Transfer}}]
    backendRefs: [{name: api, port: 9090}]
`);
    assert.deepEqual(r.lines, []);
    const [ing, gapi, gistio, hr, gr] = r.resources as [Ingress, GatewayApiGateway, IstioGateway, HTTPRoute, GRPCRoute];
    assert.deepEqual(ing.spec.rules[0]?.paths[0]?.backend.service, { name: 'api', port: { name: 'http' } });
    assert.equal(gapi.group, 'gateway.networking.k8s.io');
    assert.equal(gapi.spec.listeners[0]?.allowedRoutes.namespaces.from, 'All');
    assert.equal(gistio.group, 'networking.istio.io');
    assert.deepEqual(hr.spec.rules[0]?.matches[0], { path: { type: 'Exact', value: '/x' }, headers: [{ type: 'Exact', name: 'x-a', value: 'b' }], queryParams: [], method: 'GET' });
    assert.deepEqual(hr.spec.rules[1]?.matches, [{ path: { type: 'PathPrefix', value: '/' }, headers: [], queryParams: [] }]);
    assert.deepEqual(hr.spec.rules[0]?.timeouts, { requestMs: 10000 });
    assert.equal(hr.spec.parentRefs[1]?.kind, 'Service');
    assert.deepEqual(gr.spec.rules[0]?.matches[0]?.method, { type: 'Exact', service: 'dns.Zone', method: 'Transfer' });
  });

  it('reports a duplicate only within one API group, and a wrong apiVersion', () => {
    const r = load(`apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw}
spec:
  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ["*"]}]
---
apiVersion: networking.istio.io/v1beta1
kind: Gateway
metadata: {name: gw}
spec:
  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ["*"]}]
---
apiVersion: networking.istio.io/v2
kind: VirtualService
metadata: {name: v}
`);
    assert.deepEqual(r.lines, [
      'traffic.yaml:9:18: Gateway default/gw: metadata.name: duplicate object; first defined at traffic.yaml:3:18',
      'traffic.yaml:13:13: VirtualService default/v: apiVersion: VirtualService must have apiVersion networking.istio.io/v1 or networking.istio.io/v1beta1 or networking.istio.io/v1alpha3',
    ]);
  });

  it('parses durations and checks regexes as RE2 would', () => {
    assert.equal(parseDurationMs('1.5s'), 1500);
    assert.equal(parseDurationMs('300ms'), 300);
    assert.equal(parseDurationMs('1h2m3s'), 3723000);
    assert.equal(parseDurationMs('10'), undefined);
    assert.equal(parseDurationMs('-1s'), undefined);
    assert.equal(regexProblem('^/api/v[0-9]+'), undefined);
    assert.equal(regexProblem('(a)\\1'), '"(a)\\1" uses a backreference, which RE2 does not support');
    assert.match(regexProblem('[a-') ?? '', /^"\[a-" is not a valid regular expression/);
  });
});

describe('Istio fields Trellis does not implement', () => {
  it('warns at each one, naming the field and what happens instead', () => {
    const r = load(`apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: api, namespace: shop}
spec:
  host: api
  exportTo: ["."]
  trafficPolicy:
    connectionPool:
      tcp: {maxConnections: 4, tcpKeepalive: {time: 10s}}
      http: {maxRequestsPerConnection: 2, idleTimeout: 5s}
    outlierDetection: {consecutive5xxErrors: 3, minHealthPercent: 50}
    tls: {mode: SIMPLE, caCertificates: /etc/ca.pem}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: api, namespace: shop}
spec:
  hosts: [api]
  http:
  - route:
    - destination: {host: api}
      headers: {request: {set: {x-a: b}}}
    corsPolicy: {allowOrigins: [{exact: "https://a.example"}]}
    retries: {attempts: 2, retryRemoteLocalities: true}
`);
    const warned = r.diagnostics.filter((d) => d.code === 'not-implemented').map((d) => `${d.location?.line}:${d.field}`);
    assert.deepEqual(warned, [
      '6:spec.exportTo',
      '9:spec.trafficPolicy.connectionPool.tcp.tcpKeepalive',
      '10:spec.trafficPolicy.connectionPool.http.idleTimeout',
      '11:spec.trafficPolicy.outlierDetection.minHealthPercent',
      '12:spec.trafficPolicy.tls.caCertificates',
      '22:spec.http[0].route[0].headers',
      '23:spec.http[0].corsPolicy',
      '24:spec.http[0].retries.retryRemoteLocalities',
    ]);
    assert.equal(r.diagnostics.filter((d) => d.severity === 'error').length, 0);
    // The implemented ones load without a word.
    assert.ok(!r.lines.some((l) => /maxConnections|maxRequestsPerConnection|consecutive5xxErrors/.test(l)), r.lines.join('\n'));
  });
});
