// Policy end to end: cases from the policy engine suite (NetworkPolicy and Cilium, L3/L4 and L7, named ports,
// namespace AND pod selectors, entities, deny rules, gRPC methods) over real connections through real proxies. Each
// case first asks the offline engine (the `trellis policy check` code path, on the very manifests the control plane
// serves) for the verdict and the deciding policy, then makes the connection and checks that the app answers or
// that the request is refused the way its protocol wants, and that the deciding proxy's flow names the policy.
import * as grpc from '@grpc/grpc-js';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import tls from 'node:tls';
import { createCsr } from '../../src/ca/index.ts';
import { exportPrivateKeyPem, generateP256KeyPair } from '../../src/ca/keys.ts';
import { loadCluster, type Loaded } from '../../src/cli/load-cluster.ts';
import type { Flow } from '../../src/observe/flow.ts';
import type { Decision, DirectionDecision } from '../../src/policy/decision.ts';
import { resolveEndpoint } from '../../src/policy/endpoint.ts';
import { EchoClient, startEchoServer, type EchoServer } from '../support/echo-service.ts';
import { MeshEnv } from '../support/mesh-env.ts';

const SUBNET = 47;
const GRPC_METHOD = '/trellis.test.v1.Echo/Unary';

const MANIFESTS = `apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {team: shop}}
---
apiVersion: v1
kind: Namespace
metadata: {name: ops, labels: {team: ops}}
---
apiVersion: v1
kind: Namespace
metadata: {name: lab, labels: {team: lab}}
---
apiVersion: v1
kind: Service
metadata: {name: api, namespace: shop}
spec:
  selector: {app: api}
  ports:
  - {name: http, port: 8080, targetPort: 8080, appProtocol: http}
  - {name: http-metrics, port: 8081, targetPort: 8081, appProtocol: http}
  - {name: grpc, port: 7070, targetPort: 7070, appProtocol: grpc}
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: shop}
spec:
  selector: {app: db}
  ports: [{name: tcp-pg, port: 5432, targetPort: pg, appProtocol: tcp}]
---
# k8s-network-policy suite: named ports; one peer with namespaceSelector AND podSelector; separate peers are OR.
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db-ingress, namespace: shop}
spec:
  podSelector: {matchLabels: {app: db}}
  policyTypes: [Ingress]
  ingress:
  - from: [{podSelector: {matchLabels: {app: web}}}]
    ports: [{port: pg}]
  - from:
    - {namespaceSelector: {matchLabels: {team: ops}}, podSelector: {matchLabels: {app: monitor}}}
    - {namespaceSelector: {matchLabels: {team: lab}}, podSelector: {matchLabels: {app: batch}}}
    ports: [{port: 5432, protocol: TCP}]
---
# k8s-network-policy suite: egress isolation, allowed only to one pod and port of another namespace.
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: batch-egress, namespace: lab}
spec:
  podSelector: {matchLabels: {app: batch}}
  policyTypes: [Egress]
  egress:
  - to: [{namespaceSelector: {matchLabels: {team: shop}}, podSelector: {matchLabels: {app: db}}}]
    ports: [{port: 5432, protocol: TCP}]
  - to: [{namespaceSelector: {matchLabels: {team: shop}}, podSelector: {matchLabels: {app: api}}}]
    ports: [{port: 8080, protocol: TCP}]
---
# cilium-policy suite: fromEndpoints with L7 HTTP rules, a gRPC method as POST /pkg.Svc/Method, L4-only rules for
# peers of other namespaces (k8s:io.kubernetes.pod.namespace), and fromEntities cluster.
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: api-l7, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: api}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: web}}]
    toPorts:
    - ports: [{port: "8080", protocol: TCP}]
      rules:
        http: [{method: GET, path: "/public/.*"}]
  - fromEndpoints: [{matchLabels: {app: web}}]
    toPorts:
    - ports: [{port: "7070", protocol: TCP}]
      rules:
        http: [{method: POST, path: "${GRPC_METHOD}"}]
  - fromEndpoints:
    - {matchLabels: {app: monitor, "k8s:io.kubernetes.pod.namespace": ops}}
    - {matchLabels: {app: batch, "k8s:io.kubernetes.pod.namespace": lab}}
    toPorts:
    - ports: [{port: "8080", protocol: TCP}, {port: "7070", protocol: TCP}]
  - fromEntities: [cluster]
    toPorts:
    - ports: [{port: "8081", protocol: TCP}]
---
# cilium-policy suite: an ingressDeny wins over an allow of the same peer and port.
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: api-deny, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: api}}
  ingressDeny:
  - fromEndpoints: [{matchLabels: {app: monitor, "k8s:io.kubernetes.pod.namespace": ops}}]
    toPorts:
    - ports: [{port: "7070", protocol: TCP}]
---
# cilium-policy suite: toEndpoints across namespaces with an L7 egress rule, and L4-only egress.
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: monitor-egress, namespace: ops}
spec:
  endpointSelector: {matchLabels: {app: monitor}}
  egress:
  - toEndpoints: [{matchLabels: {app: api, "k8s:io.kubernetes.pod.namespace": shop}}]
    toPorts:
    - ports: [{port: "8080", protocol: TCP}]
      rules:
        http: [{method: GET}]
  - toEndpoints: [{matchLabels: {app: api, "k8s:io.kubernetes.pod.namespace": shop}}]
    toPorts:
    - ports: [{port: "7070", protocol: TCP}]
  - toEndpoints: [{matchLabels: {app: db, "k8s:io.kubernetes.pod.namespace": shop}}]
    toPorts:
    - ports: [{port: "5432", protocol: TCP}]
---
# cilium-policy suite (deny.rst): egressDeny to the cluster entity on one port wins over toEntities all.
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: probe-egress, namespace: lab}
spec:
  endpointSelector: {matchLabels: {app: monitor}}
  egress:
  - toEntities: [all]
  egressDeny:
  - toEntities: [cluster]
    toPorts:
    - ports: [{port: "8081", protocol: TCP}]
`;

type Proto = 'tcp' | 'http' | 'grpc';
/** How the client sees the outcome: the app's answer, a reset (or close before any byte), a status. */
type Outcome = 'ok' | 'reset' | '403' | '503' | 'grpc-ok' | 'grpc-7' | 'grpc-14';

interface Case {
  name: string;
  from: string;
  to: 'api' | 'db';
  port: number;
  proto: Proto;
  /** HTTP method and path (gRPC: the Unary or ServerStream method). */
  method?: string;
  path?: string;
  /**
   * What the engine must say: the verdict; for a denial the deciding direction and policy (undefined: default deny);
   * for an allowance (at: ingress) the rules' policies of both directions (undefined: not selected).
   */
  verdict: 'allowed' | 'denied';
  at: 'ingress' | 'egress';
  policy: string | undefined;
  egressPolicy?: string;
  /** What the client must see. */
  outcome: Outcome;
}

const CASES: Case[] = [
  // L3/L4 over TCP (db).
  { name: 'NetworkPolicy ingress allow by podSelector on a named port', from: 'web', to: 'db', port: 5432, proto: 'tcp', verdict: 'allowed', at: 'ingress', policy: 'db-ingress', outcome: 'ok' },
  { name: 'namespaceSelector AND podSelector in one peer: both match; Cilium toEndpoints egress', from: 'monitor', to: 'db', port: 5432, proto: 'tcp', verdict: 'allowed', at: 'ingress', policy: 'db-ingress', egressPolicy: 'monitor-egress', outcome: 'ok' },
  { name: 'namespaceSelector AND podSelector: the pod label matches in the wrong namespace, default deny', from: 'probe', to: 'db', port: 5432, proto: 'tcp', verdict: 'denied', at: 'ingress', policy: undefined, outcome: 'reset' },
  { name: 'NetworkPolicy egress allow to a pod and port of another namespace', from: 'batch', to: 'db', port: 5432, proto: 'tcp', verdict: 'allowed', at: 'ingress', policy: 'db-ingress', egressPolicy: 'batch-egress', outcome: 'ok' },
  // L7 HTTP (api:8080).
  { name: 'Cilium fromEndpoints + L7 GET /public/.* allows', from: 'web', to: 'api', port: 8080, proto: 'http', method: 'GET', path: '/public/c5', verdict: 'allowed', at: 'ingress', policy: 'api-l7', outcome: 'ok' },
  { name: 'L7 path not allowed: 403 naming the policy', from: 'web', to: 'api', port: 8080, proto: 'http', method: 'GET', path: '/private/c6', verdict: 'denied', at: 'ingress', policy: 'api-l7', outcome: '403' },
  { name: 'L7 method not allowed: 403 naming the policy', from: 'web', to: 'api', port: 8080, proto: 'http', method: 'DELETE', path: '/public/c7', verdict: 'denied', at: 'ingress', policy: 'api-l7', outcome: '403' },
  { name: 'an L4-only rule for a peer of another namespace allows every request; L7 egress GET allowed', from: 'monitor', to: 'api', port: 8080, proto: 'http', method: 'GET', path: '/private/c8', verdict: 'allowed', at: 'ingress', policy: 'api-l7', egressPolicy: 'monitor-egress', outcome: 'ok' },
  { name: 'Cilium toEndpoints L7 egress rule: method not allowed, 403 from the client proxy', from: 'monitor', to: 'api', port: 8080, proto: 'http', method: 'POST', path: '/private/c9', verdict: 'denied', at: 'egress', policy: 'monitor-egress', outcome: '403' },
  { name: 'HTTP port denied at L3/L4 at ingress: the server proxy resets, the client proxy answers 503', from: 'probe', to: 'api', port: 8080, proto: 'http', method: 'GET', path: '/public/c10', verdict: 'denied', at: 'ingress', policy: undefined, outcome: '503' },
  { name: 'NetworkPolicy egress allow over HTTP (the egress decision is about the upstream pod)', from: 'batch', to: 'api', port: 8080, proto: 'http', method: 'GET', path: '/private/c11', verdict: 'allowed', at: 'ingress', policy: 'api-l7', egressPolicy: 'batch-egress', outcome: 'ok' },
  // Entities (api:8081).
  { name: 'fromEntities cluster admits a pod', from: 'web', to: 'api', port: 8081, proto: 'http', method: 'GET', path: '/metrics/c12', verdict: 'allowed', at: 'ingress', policy: 'api-l7', outcome: 'ok' },
  { name: 'egressDeny toEntities cluster wins over toEntities all: 403 from the client proxy', from: 'probe', to: 'api', port: 8081, proto: 'http', method: 'GET', path: '/metrics/c13', verdict: 'denied', at: 'egress', policy: 'probe-egress', outcome: '403' },
  // gRPC (api:7070).
  { name: 'gRPC method rule POST /pkg.Svc/Method allows Unary', from: 'web', to: 'api', port: 7070, proto: 'grpc', method: 'Unary', verdict: 'allowed', at: 'ingress', policy: 'api-l7', outcome: 'grpc-ok' },
  { name: 'gRPC method not in the rule: PERMISSION_DENIED naming the policy', from: 'web', to: 'api', port: 7070, proto: 'grpc', method: 'ServerStream', verdict: 'denied', at: 'ingress', policy: 'api-l7', outcome: 'grpc-7' },
  { name: 'gRPC port not in the egress rules: default deny, PERMISSION_DENIED from the client proxy', from: 'batch', to: 'api', port: 7070, proto: 'grpc', method: 'Unary', verdict: 'denied', at: 'egress', policy: undefined, outcome: 'grpc-7' },
  { name: 'ingressDeny wins over an allow: the gRPC port is refused at L3/L4, UNAVAILABLE', from: 'monitor', to: 'api', port: 7070, proto: 'grpc', method: 'Unary', verdict: 'denied', at: 'ingress', policy: 'api-deny', outcome: 'grpc-14' },
];

const HOST = { api: 'api.shop.svc.cluster.local', db: 'db.shop.svc.cluster.local' } as const;

interface Expected {
  verdict: 'allowed' | 'denied';
  at: 'ingress' | 'egress';
  policy: string | undefined;
  egressPolicy: string | undefined;
  l7: boolean;
  isolatedBy: string[];
}

/** The offline engine's answer: a denial's direction (egress first, as the packet leaves the source) and rule. */
function expected(d: Decision): Expected {
  const name = (x: DirectionDecision): string | undefined => x.rule?.policy.name;
  const denied = d.egress.verdict === 'denied' ? d.egress : d.ingress.verdict === 'denied' ? d.ingress : undefined;
  const deciding = denied ?? d.ingress;
  return {
    verdict: d.verdict,
    at: deciding.direction,
    policy: name(deciding),
    egressPolicy: name(d.egress),
    l7: denied?.reason === 'l7-denied',
    isolatedBy: (denied?.selectedBy ?? []).map((p) => p.name),
  };
}

interface Answer {
  outcome: Outcome;
  body: string;
}

function tcpExchange(host: string, port: number, payload: string): Promise<Answer> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    let got = '';
    const timer = setTimeout(() => {
      s.destroy();
      resolve({ outcome: got === payload ? 'ok' : 'reset', body: `timeout after ${JSON.stringify(got)}` });
    }, 5000);
    const done = (outcome: Outcome, body: string): void => {
      clearTimeout(timer);
      s.destroy();
      resolve({ outcome, body });
    };
    s.setEncoding('utf8');
    s.on('connect', () => s.write(payload));
    s.on('data', (d: string) => {
      got += d;
      if (got === payload) done('ok', got);
    });
    // A reset (ECONNRESET) or a close before the echo: refused.
    s.on('error', (e: NodeJS.ErrnoException) => done(got === '' ? 'reset' : 'ok', `${e.code ?? e.message} after ${JSON.stringify(got)}`));
    s.on('close', () => done(got === payload ? 'ok' : 'reset', `closed after ${JSON.stringify(got)}`));
  });
}

function httpRequest(host: string, port: number, method: string, path: string, authority: string): Promise<Answer> {
  return new Promise((resolve) => {
    const req = http.request({ host, port, method, path, headers: { host: authority }, agent: false, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d));
      res.on('end', () => {
        const code = res.statusCode ?? 0;
        resolve({ outcome: code === 200 ? 'ok' : code === 403 ? '403' : code === 503 ? '503' : (String(code) as Outcome), body });
      });
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (e: NodeJS.ErrnoException) => resolve({ outcome: 'reset', body: e.code ?? e.message }));
    req.end();
  });
}

function grpcCall(host: string, port: number, method: string, authority: string): Promise<Answer> {
  const client = new EchoClient(`${host}:${port}`, grpc.credentials.createInsecure(), { 'grpc.default_authority': authority });
  const deadline = Date.now() + 5000;
  const finish = (resolve: (a: Answer) => void, e: grpc.ServiceError | null, body: string): void => {
    client.close();
    if (!e) return resolve({ outcome: 'grpc-ok', body });
    resolve({ outcome: e.code === grpc.status.PERMISSION_DENIED ? 'grpc-7' : e.code === grpc.status.UNAVAILABLE ? 'grpc-14' : (`grpc-${e.code}` as Outcome), body: e.details });
  };
  return new Promise((resolve) => {
    if (method === 'Unary') {
      (client as unknown as { Unary: (r: object, o: grpc.CallOptions, cb: (e: grpc.ServiceError | null, v?: { server: string }) => void) => void }).Unary({ message: 'hi' }, { deadline }, (e, v) =>
        finish(resolve, e, v?.server ?? ''),
      );
      return;
    }
    const call = (client as unknown as { ServerStream: (r: object, o: grpc.CallOptions) => grpc.ClientReadableStream<{ server: string }> }).ServerStream({ message: 'hi', count: 2 }, { deadline });
    let server = '';
    call.on('data', (r: { server: string }) => (server = r.server));
    call.on('error', (e: grpc.ServiceError) => finish(resolve, e, ''));
    call.on('end', () => finish(resolve, null, server));
  });
}

describe('policy end to end: the policy engine suite over real connections through real proxies', () => {
  let env: MeshEnv;
  let loaded: Loaded;
  let echo: EchoServer;
  const servers: { close(): void }[] = [];
  const seen = { http: [] as string[], tcp: 0 };

  before(async () => {
    env = await MeshEnv.start({
      subnet: SUBNET,
      pods: [
        { name: 'web', namespace: 'shop', labels: { app: 'web' } },
        { name: 'api', namespace: 'shop', labels: { app: 'api' }, ports: [{ port: 8080, name: 'http' }, { port: 8081, name: 'http-metrics' }, { port: 7070, name: 'grpc' }] },
        { name: 'db', namespace: 'shop', labels: { app: 'db' }, ports: [{ port: 5432, name: 'pg' }] },
        { name: 'monitor', namespace: 'ops', labels: { app: 'monitor' } },
        { name: 'probe', namespace: 'lab', labels: { app: 'monitor' } },
        { name: 'batch', namespace: 'lab', labels: { app: 'batch' } },
      ],
      manifests: MANIFESTS,
    });
    // The `trellis policy check` code path on the exact files the control plane serves.
    loaded = loadCluster([join(env.dir, 'manifests')], { out: () => {}, err: () => {}, readStdin: () => '' });
    const api = env.pod('api').appIp;
    for (const port of [8080, 8081]) {
      const s = http.createServer((req, res) => {
        seen.http.push(`${req.method} ${req.url}`);
        res.end(`api:${port} saw ${req.method} ${req.url}`);
      });
      await new Promise<void>((r) => s.listen(port, api, r));
      servers.push(s);
    }
    echo = await startEchoServer('api', api, new grpc.Server(), 7070);
    const tcp = net.createServer((s) => {
      seen.tcp++;
      s.on('error', () => {});
      s.pipe(s);
    });
    await new Promise<void>((r) => tcp.listen(5432, env.pod('db').appIp, r));
    servers.push(tcp);
  });

  after(async () => {
    for (const s of servers) s.close();
    await echo?.close();
    await env?.stop();
  });

  for (const c of CASES) {
    it(`${c.from} → ${c.to}:${c.port} ${c.method ?? ''} ${c.path ?? ''}: ${c.name}`, async () => {
      // 1. The offline engine: verdict and deciding policy, as written in the table.
      const http1 = c.proto === 'grpc' ? { method: 'POST', path: `/trellis.test.v1.Echo/${c.method ?? ''}` } : c.proto === 'http' ? { method: c.method ?? 'GET', path: c.path ?? '/' } : undefined;
      const from = env.pod(c.from);
      const to = env.pod(c.to);
      const d = loaded.engine.decide({ from: resolveEndpoint(loaded.cluster, from.key), to: resolveEndpoint(loaded.cluster, to.key), port: c.port, protocol: 'TCP', ...(http1 ? { http: http1 } : {}) }, 'default');
      const want = expected(d);
      const table = { verdict: c.verdict, at: c.at, policy: c.policy, egressPolicy: c.verdict === 'allowed' ? c.egressPolicy : want.egressPolicy };
      assert.deepEqual({ verdict: want.verdict, at: want.at, policy: want.policy, egressPolicy: want.egressPolicy }, table, 'the offline engine disagrees with the table');

      // 2. The real connection, through the client's outbound listener.
      const decider = c.verdict === 'allowed' ? c.to : c.at === 'egress' ? c.from : c.to;
      const known = new Set([...(await env.flows(c.from, 1000)), ...(await env.flows(c.to, 1000))].map((f) => f.uuid));
      const httpBefore = seen.http.length;
      const tcpBefore = seen.tcp;
      const callsBefore = echo.calls;
      let a: Answer;
      if (c.proto === 'tcp') a = await tcpExchange(from.outboundIp, c.port, `hello from ${c.from}`);
      else if (c.proto === 'http') a = await httpRequest(from.outboundIp, c.port, c.method ?? 'GET', c.path ?? '/', HOST[c.to]);
      else a = await grpcCall(from.outboundIp, c.port, c.method ?? 'Unary', HOST[c.to]);
      assert.equal(a.outcome, c.outcome, `client saw ${a.outcome}: ${a.body}`);
      const reached = seen.http.length > httpBefore || seen.tcp > tcpBefore || echo.calls > callsBefore;
      assert.equal(reached, c.verdict === 'allowed', c.verdict === 'allowed' ? 'the app was not reached' : 'a denied request reached the app');
      if (c.outcome === '403' || c.outcome === 'grpc-7') {
        // The refusal names the deciding policy (or, for a default deny, the policies that isolate the endpoint).
        for (const p of c.policy ? [c.policy] : want.isolatedBy) assert.match(a.body, new RegExp(p), `the refusal does not name ${p}: ${a.body}`);
      }

      // 3. The flow at the deciding proxy: verdict and the policy under the right Hubble field.
      const pod = (f: Flow, side: 'source' | 'destination', name: string): boolean => f[side].pod_name === name;
      const isNew = (f: Flow): boolean => !known.has(f.uuid);
      if (c.verdict === 'allowed') {
        const f = await env.waitFlow(c.to, (x) =>
          isNew(x) && x.verdict !== 'DROPPED' && (c.proto === 'tcp' ? x.Type === 'L3_L4' && pod(x, 'source', c.from) : x.Type === 'L7' && x.is_reply && pod(x, 'destination', c.from)),
        );
        assert.equal(f.traffic_direction, 'INGRESS');
        assert.equal(f.ingress_allowed_by?.[0]?.name, c.policy, `ingress_allowed_by of ${JSON.stringify(f)}`);
        assert.equal(f.trellis?.transport, 'mtls');
        const out = await env.waitFlow(c.from, (x) => isNew(x) && x.traffic_direction === 'EGRESS' && x.verdict !== 'DROPPED' && (c.proto === 'tcp' ? x.Type === 'L3_L4' : x.Type === 'L7' && x.l7?.http?.url.includes(c.proto === 'grpc' ? GRPC_METHOD : (c.path ?? '')) === true));
        assert.equal(out.egress_allowed_by?.[0]?.name, c.egressPolicy, `egress_allowed_by of ${JSON.stringify(out)}`);
        return;
      }
      const ingress = c.at === 'ingress';
      const l4 = !want.l7 && (ingress || c.proto === 'tcp');
      const f = await env.waitFlow(decider, (x) => isNew(x) && x.verdict === 'DROPPED' && pod(x, 'source', c.from) && x.Type === (l4 ? 'L3_L4' : 'L7'));
      assert.equal(f.traffic_direction, ingress ? 'INGRESS' : 'EGRESS');
      assert.equal(f.drop_reason_desc, 'POLICY_DENIED');
      assert.equal(f.destination.pod_name, c.to, 'the dropped flow names the destination pod');
      const deniedBy = ingress ? f.ingress_denied_by : f.egress_denied_by;
      assert.equal(deniedBy?.[0]?.name, c.policy, `${ingress ? 'ingress' : 'egress'}_denied_by of ${JSON.stringify(f)}`);
      if (c.policy === undefined && l4) for (const p of want.isolatedBy) assert.match(f.Summary, new RegExp(p));
    });
  }
  it('an HTTP port denied at L3/L4 is reset at the server proxy: seen directly with the client pod\'s mesh certificate', async () => {
    const api = env.pod('api');
    // What the client proxy does, by hand: mTLS from the pod's address with the pod's identity, then a request.
    const direct = async (name: string): Promise<{ got: string; error: string }> => {
      const p = env.pod(name);
      const keys = await generateP256KeyPair();
      const issued = await env.cp.ca!.issue(await createCsr(keys), { namespace: p.namespace, serviceAccount: p.serviceAccount });
      const o: tls.ConnectionOptions & { localAddress: string } = { host: api.podIp, port: 8080, localAddress: p.podIp, key: await exportPrivateKeyPem(keys.privateKey), cert: issued.certChain.join('\n'), ALPNProtocols: ['http/1.1'], rejectUnauthorized: false };
      return new Promise((resolve) => {
        const s = tls.connect(o);
        let got = '';
        const done = (error: string): void => {
          clearTimeout(timer);
          s.destroy();
          resolve({ got, error });
        };
        const timer = setTimeout(() => done('timeout'), 5000);
        s.setEncoding('utf8');
        s.on('secureConnect', () => s.write(`GET /public/direct HTTP/1.1\r\nhost: api\r\nconnection: close\r\n\r\n`));
        s.on('data', (d: string) => (got += d));
        s.on('error', (e: NodeJS.ErrnoException) => done(e.code ?? e.message));
        s.on('end', () => done('end'));
      });
    };
    // Control: web is allowed, and gets the app's answer over the same path.
    assert.match((await direct('web')).got, /^HTTP\/1\.1 200[\s\S]*api:8080 saw GET \/public\/direct$/);
    const denied = await direct('probe');
    assert.equal(denied.got, '', 'a denied connection got an answer');
    assert.match(denied.error, /ECONNRESET|end|EPIPE/);
  });
});
