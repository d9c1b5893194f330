import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildCluster } from '../model/cluster.ts';
import { formatDiagnostic, hasErrors } from '../resources/diagnostics.ts';
import { loadManifests } from '../resources/load.ts';
import { buildRoutingModel } from './build.ts';
import type { RouteAction } from './model.ts';

function build(text: string) {
  const loaded = loadManifests([{ name: 'mesh.yaml', text }]);
  assert.equal(hasErrors(loaded.diagnostics), false, loaded.diagnostics.map(formatDiagnostic).join('\n'));
  const r = buildRoutingModel(loaded.resources, buildCluster(loaded.resources));
  return { ...r, lines: r.diagnostics.map(formatDiagnostic) };
}

const PODS = `
apiVersion: v1
kind: Pod
metadata: {name: reviews-v1, namespace: shop, labels: {app: reviews, version: v1}}
spec:
  nodeName: n1
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
kind: Node
metadata: {name: n1, labels: {topology.kubernetes.io/region: eu, topology.kubernetes.io/zone: eu-1}}
---
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: shop}
spec:
  selector: {app: reviews}
  ports:
  - {name: http-web, port: 80, targetPort: http}
  - {name: rpc, port: 9090, targetPort: grpc, appProtocol: grpc}
`;

describe('buildRoutingModel: Services', () => {
  it('gives each Service port a listener with its aliases, a default route and a cluster of endpoints', () => {
    const { model, lines } = build(PODS);
    assert.deepEqual(lines, []);
    const l = model.listeners.map((x) => [x.name, x.aliases, x.namespaceLocalAliases, x.protocol, x.routeConfig, x.tcpCluster]);
    assert.deepEqual(l, [
      ['reviews.shop.svc.cluster.local:80', ['reviews.shop:80', 'reviews.shop.svc:80', 'reviews.shop', 'reviews.shop.svc', 'reviews.shop.svc.cluster.local'], ['reviews:80', 'reviews'], 'http', 'reviews.shop.svc.cluster.local:80', undefined],
      ['reviews.shop.svc.cluster.local:9090', ['reviews.shop:9090', 'reviews.shop.svc:9090'], ['reviews:9090'], 'grpc', 'reviews.shop.svc.cluster.local:9090', undefined],
    ]);
    const rc = model.routeConfigs.find((r) => r.name === 'reviews.shop.svc.cluster.local:80');
    assert.deepEqual(rc?.virtualHosts[0]?.domains, ['reviews.shop.svc.cluster.local', 'reviews.shop.svc.cluster.local:80', 'reviews.shop:80', 'reviews.shop.svc:80', 'reviews.shop', 'reviews.shop.svc', 'reviews:80', 'reviews']);
    assert.deepEqual(rc?.virtualHosts[0]?.routes, [
      {
        name: 'default',
        match: { path: { prefix: '/' }, headers: [] },
        action: { type: 'route', clusters: [{ cluster: 'outbound|80||reviews.shop.svc.cluster.local', weight: 100 }], retry: { attempts: 2, retryOn: ['connect-failure', 'refused-stream', 'unavailable', 'cancelled', 'retriable-status-codes'], retriableStatusCodes: [503] } },
      },
    ]);
    assert.deepEqual(model.clusters.map((c) => [c.name, c.discovery, c.lbPolicy, c.http2, c.protocol]), [
      ['outbound|80||reviews.shop.svc.cluster.local', 'EDS', 'ROUND_ROBIN', false, 'http'],
      ['outbound|9090||reviews.shop.svc.cluster.local', 'EDS', 'ROUND_ROBIN', true, 'grpc'],
    ]);
    // targetPort by name: each pod's own container port; a pod without the named port is no endpoint for that port.
    const eps = (c: string) => model.endpoints.find((e) => e.cluster === c)?.endpoints.map((e) => [e.address, e.port, e.healthy, e.pod]);
    assert.deepEqual(eps('outbound|80||reviews.shop.svc.cluster.local'), [
      ['10.0.0.11', 9080, true, 'shop/reviews-v1'],
      ['10.0.0.12', 9081, true, 'shop/reviews-v2'],
      ['10.0.0.13', 9080, false, 'shop/reviews-v3'],
    ]);
    assert.deepEqual(eps('outbound|9090||reviews.shop.svc.cluster.local'), [['10.0.0.11', 9090, true, 'shop/reviews-v1']]);
    assert.deepEqual(model.endpoints[0]?.endpoints[0]?.locality, { region: 'eu', zone: 'eu-1', subZone: '' });
  });

  it('handles headless, NodePort, LoadBalancer and ExternalName Services', () => {
    const { model } = build(`${PODS}
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: shop}
spec: {clusterIP: None, selector: {app: reviews}, ports: [{name: tcp-db, port: 5432, targetPort: 9080}]}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec: {type: NodePort, selector: {app: reviews}, ports: [{port: 8080, targetPort: 9080, nodePort: 30080}]}
---
apiVersion: v1
kind: Service
metadata: {name: lb, namespace: shop}
spec: {type: LoadBalancer, selector: {app: reviews}, ports: [{name: http, port: 443, targetPort: 9080}]}
---
apiVersion: v1
kind: Service
metadata: {name: ext, namespace: shop}
spec: {type: ExternalName, externalName: api.example.com, ports: [{name: https, port: 443}]}
`);
    const db = model.listeners.find((l) => l.service === 'db');
    assert.equal(db?.protocol, 'tcp');
    assert.equal(db?.tcpCluster, 'outbound|5432||db.shop.svc.cluster.local');
    assert.equal(model.endpoints.find((e) => e.cluster === 'outbound|5432||db.shop.svc.cluster.local')?.endpoints.length, 3);
    const ext = model.clusters.find((c) => c.host === 'ext.shop.svc.cluster.local');
    assert.deepEqual([ext?.discovery, ext?.dns], ['LOGICAL_DNS', { host: 'api.example.com', port: 443 }]);
    assert.equal(model.endpoints.some((e) => e.cluster === ext?.name), false);
    const edges = model.edges.map((e) => [e.name, e.kind, e.port, e.routeConfig]);
    assert.equal(edges.length, 3);
    assert.deepEqual(edges.find((e) => e[1] === 'LoadBalancer'), ['loadbalancer/shop/lb:443', 'LoadBalancer', 443, 'lb.shop.svc.cluster.local:443']);
    assert.deepEqual(edges.find((e) => e[0] === 'nodeport/30080'), ['nodeport/30080', 'NodePort', 30080, 'web.shop.svc.cluster.local:8080']);
    const allocated = model.edges.find((e) => e.kind === 'NodePort' && e.name !== 'nodeport/30080');
    assert.ok(allocated && allocated.port >= 30000 && allocated.port <= 32767);
    // The same input gives the same model.
    assert.deepEqual(build(`${PODS}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: lb, namespace: shop}\nspec: {type: LoadBalancer, selector: {app: reviews}, ports: [{name: http, port: 443, targetPort: 9080}]}\n`).model.edges.find((e) => e.kind === 'NodePort')?.port, allocated.port);
  });
});

const ROUTING = `${PODS}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: shop}
spec:
  host: reviews
  trafficPolicy:
    connectionPool: {tcp: {maxConnections: 100, connectTimeout: 250ms}, http: {http2MaxRequests: 50}}
    outlierDetection: {consecutive5xxErrors: 3}
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
    - sourceLabels: {app: canary}
      port: 80
    route:
    - destination: {host: reviews, subset: v2}
    rewrite: {uri: /}
    timeout: 2s
    retries: {attempts: 3, perTryTimeout: 500ms, retryOn: "gateway-error,503"}
    fault: {abort: {httpStatus: 503, percentage: {value: 10}}}
  - match: [{uri: {exact: /old}}]
    redirect: {uri: /new, authority: new.example.com}
  - match: [{withoutHeaders: {x-skip: {}}, port: 9090}]
    route:
    - destination: {host: reviews, subset: v1}
  - route:
    - destination: {host: reviews, subset: v1}
      weight: 80
    - destination: {host: reviews, subset: v3}
      weight: 10
    - destination: {host: ratings}
      weight: 10
    retries: {attempts: 0}
    mirror: {host: reviews, subset: v2}
  - route:
    - destination: {host: reviews}
`;

describe('buildRoutingModel: VirtualServices and DestinationRules', () => {
  it('translates http rules in order, per port, stopping at the catch-all, with no implicit default after them', () => {
    const { model, lines } = build(ROUTING);
    // Weights 80+10+10 are fine; the unknown subset and host are reported where they are written.
    assert.deepEqual(lines, [
      'mesh.yaml:86:44: warning: VirtualService shop/reviews: spec.http[3].route[1].destination.subset: subset "v3" is not defined by DestinationRule shop/reviews',
      'mesh.yaml:88:27: warning: VirtualService shop/reviews: spec.http[3].route[2].destination.host: destination host ratings.shop.svc.cluster.local matches no Service or ServiceEntry; requests routed here fail',
    ]);
    const routes = model.routeConfigs.find((r) => r.name === 'reviews.shop.svc.cluster.local:80')?.virtualHosts[0]?.routes ?? [];
    assert.deepEqual(routes.map((r) => r.name), ['shop/reviews/http[0].match[0]', 'shop/reviews/http[0].match[1]', 'shop/reviews/http[1]', 'shop/reviews/http[3]']);
    const [first, second, redirect, split] = routes;
    assert.deepEqual(first?.match, { path: { prefix: '/v2', ignoreCase: true }, headers: [{ name: 'x-user', match: { exact: 'jason' } }] });
    assert.deepEqual(first?.action, {
      type: 'route',
      clusters: [{ cluster: 'outbound|80|v2|reviews.shop.svc.cluster.local', weight: 100 }],
      timeoutMs: 2000,
      retry: { attempts: 3, retryOn: ['gateway-error', 'retriable-status-codes'], retriableStatusCodes: [503], perTryTimeoutMs: 500 },
      hashPolicy: [{ header: 'x-user' }],
      rewrite: { prefix: '/' },
    });
    assert.deepEqual(first?.fault, { abort: { httpStatus: 503, percent: 10 } });
    assert.deepEqual(second?.match, { path: { prefix: '/' }, headers: [], sourceLabels: { app: 'canary' } });
    assert.deepEqual(redirect?.action, { type: 'redirect', status: 301, host: 'new.example.com', path: '/new' } satisfies RouteAction);
    assert.deepEqual(split?.action, {
      type: 'route',
      clusters: [
        { cluster: 'outbound|80|v1|reviews.shop.svc.cluster.local', weight: 80 },
        { cluster: 'outbound|80|v3|reviews.shop.svc.cluster.local', weight: 10 },
        { cluster: 'outbound|80||ratings.shop.svc.cluster.local', weight: 10 },
      ],
      mirror: { cluster: 'outbound|80|v2|reviews.shop.svc.cluster.local', percent: 100 },
    });
    assert.deepEqual(split?.source?.path, ['spec', 'http', 3]);
    // Port 9090: the match for port 80 is left out; withoutHeaders inverts a presence match.
    const grpc = model.routeConfigs.find((r) => r.name === 'reviews.shop.svc.cluster.local:9090')?.virtualHosts[0]?.routes ?? [];
    assert.deepEqual(grpc.map((r) => r.name), ['shop/reviews/http[0].match[0]', 'shop/reviews/http[1]', 'shop/reviews/http[2]', 'shop/reviews/http[3]']);
    assert.deepEqual(grpc[2]?.match.headers, [{ name: 'x-skip', present: true, invert: true }]);
  });

  it('builds subset clusters with the DestinationRule policies, subset and port settings overriding the top level', () => {
    const { model } = build(ROUTING);
    const c = (n: string) => model.clusters.find((x) => x.name === n);
    const base = c('outbound|80||reviews.shop.svc.cluster.local');
    assert.deepEqual(base?.circuitBreakers, { maxConnections: 100, maxRequests: 50 });
    assert.equal(base?.connectTimeoutMs, 250);
    assert.deepEqual(base?.outlierDetection, { consecutive5xx: 3, intervalMs: 10000, baseEjectionTimeMs: 30000, maxEjectionPercent: 10 });
    assert.equal(c('outbound|9090||reviews.shop.svc.cluster.local')?.lbPolicy, 'LEAST_REQUEST');
    const v2 = c('outbound|80|v2|reviews.shop.svc.cluster.local');
    assert.deepEqual([v2?.lbPolicy, v2?.ringHash, v2?.tls, v2?.subset], ['RING_HASH', { minimumRingSize: 512 }, { mode: 'ISTIO_MUTUAL', sni: 'reviews.shop' }, 'v2']);
    assert.deepEqual(v2?.circuitBreakers, { maxConnections: 100, maxRequests: 50 });
    assert.deepEqual(model.endpoints.find((e) => e.cluster === 'outbound|80|v1|reviews.shop.svc.cluster.local')?.endpoints.map((e) => e.address), ['10.0.0.11']);
    assert.deepEqual(model.endpoints.find((e) => e.cluster === 'outbound|9090|v2|reviews.shop.svc.cluster.local')?.endpoints, []);
    const names = model.clusters.map((x) => x.name);
    assert.deepEqual(names, [...names].sort());
  });

  it('reports rules for unknown hosts and VirtualService hosts nobody serves', () => {
    const { lines } = build(`${PODS}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: nothing, namespace: shop}
spec: {host: nothing}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: nothing, namespace: shop}
spec:
  hosts: [nothing]
  http: [{route: [{destination: {host: reviews}}]}]
`);
    assert.deepEqual(lines, [
      'mesh.yaml:43:14: warning: DestinationRule shop/nothing: spec.host: host nothing.shop.svc.cluster.local matches no Service or ServiceEntry; the rule has no effect',
      'mesh.yaml:49:11: warning: VirtualService shop/nothing: spec.hosts[0]: host nothing.shop.svc.cluster.local matches no Service or ServiceEntry',
    ]);
  });
});
