// Active health checks against real loopback servers: TCP connect, HTTP/1.1 and HTTP/2 GET, grpc.health.v1 on a
// grpc-js server, mesh mTLS with Trellis certificates, timeouts, thresholds, and what health does to picking.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import http2 from 'node:http2';
import net, { type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { after, afterEach, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import protobuf from 'protobufjs';
import { CertificateAuthority } from '../../ca/certificate-authority.ts';
import { uriSans } from '../../ca/certificate-client.ts';
import { createCsr } from '../../ca/csr.ts';
import { exportPrivateKeyPem, generateP256KeyPair } from '../../ca/keys.ts';
import type { HealthCheckConfig, ProxyCluster } from '../proxy-config.ts';
import { clusterSpec, endpointSet, proxyConfig, waitFor } from './cluster-fixtures.ts';
import { UpstreamClusterManager, type MeshTlsOptionsFactory } from './cluster-manager.ts';
import { grpcHealthRequest, grpcHealthStatus } from './health-probes.ts';
import type { Cluster } from './upstream-cluster.ts';

const HC: HealthCheckConfig = { intervalMs: 20, timeoutMs: 300, unhealthyThreshold: 2, healthyThreshold: 2 };
const closers: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c();
});

async function listen(server: net.Server): Promise<number> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  closers.push(() => new Promise<void>((r) => server.close(() => r())));
  return (server.address() as AddressInfo).port;
}

/** A manager with one cluster of one host at `port`, plus extra specs; closed after the test. */
function manage(port: number, over: Partial<ProxyCluster>, meshTls: MeshTlsOptionsFactory = () => undefined): Cluster {
  const m = new UpstreamClusterManager(meshTls);
  closers.push(() => m.close());
  m.update(proxyConfig([{ spec: clusterSpec('c', over), endpoints: endpointSet('c', [{ address: '127.0.0.1', port }]) }]));
  return m.get('c')!;
}

const hostOf = (c: Cluster) => c.allHosts()[0]!;

describe('active health checks', () => {
  it('TCP: healthy while the port accepts, unhealthy after the threshold once it refuses', async () => {
    const server = net.createServer((s) => s.destroy());
    const port = await listen(server);
    const c = manage(port, { healthCheck: HC });
    const h = hostOf(c);
    assert.equal(h.available, false, 'a new host waits for its first check, as in Envoy');
    await waitFor(() => h.available, 2000, 'first TCP check');
    assert.equal(c.pick({}), h);
    server.close();
    await waitFor(() => !h.available, 2000, 'refused connections');
    assert.ok(h.health.checksTotal >= 3, 'two failures after the success');
    assert.match(h.health.lastFailure ?? '', /ECONNREFUSED/);
  });

  it('HTTP/1.1: 2xx is healthy, 503 turns it unhealthy, 200 again brings it back after healthy_threshold', async () => {
    let status = 200;
    const paths: string[] = [];
    const server = http.createServer((req, res) => {
      paths.push(`${req.headers.host} ${req.url}`);
      res.writeHead(status).end('ok');
    });
    const port = await listen(server);
    const c = manage(port, { healthCheck: { ...HC, httpPath: '/healthz' } });
    const h = hostOf(c);
    await waitFor(() => h.available, 2000, 'HTTP 200');
    assert.equal(paths[0], 'api.shop.svc.cluster.local /healthz');
    status = 503;
    await waitFor(() => !h.available, 2000, 'HTTP 503');
    assert.equal(h.health.lastFailure, 'HTTP 503');
    status = 204;
    await waitFor(() => h.available, 2000, 'HTTP 204');
    assert.equal(c.stats().hosts[0]!.health, 'healthy');
  });

  it('HTTP/2 when the cluster speaks it (prior knowledge)', async () => {
    let status = 200;
    const server = http2.createServer((_req, res) => res.writeHead(status).end());
    const port = await listen(server);
    const c = manage(port, { http2: true, healthCheck: { ...HC, httpPath: '/ready' } });
    const h = hostOf(c);
    await waitFor(() => h.available, 2000, 'h2 200');
    status = 500;
    await waitFor(() => !h.available, 2000, 'h2 500');
  });

  it('gRPC: grpc.health.v1 Check SERVING is healthy; NOT_SERVING and unknown services are not', async () => {
    const root = protobuf.parse(`syntax = "proto3"; package grpc.health.v1;
      message HealthCheckRequest { string service = 1; }
      message HealthCheckResponse { enum ServingStatus { UNKNOWN = 0; SERVING = 1; NOT_SERVING = 2; } ServingStatus status = 1; }`).root;
    const Req = root.lookupType('grpc.health.v1.HealthCheckRequest');
    const Res = root.lookupType('grpc.health.v1.HealthCheckResponse');
    const statuses = new Map([['dns.v1.ZoneService', 1]]);
    const server = new grpc.Server();
    server.addService(
      {
        check: {
          path: '/grpc.health.v1.Health/Check',
          requestStream: false,
          responseStream: false,
          requestSerialize: (v: object) => Buffer.from(Req.encode(v).finish()),
          requestDeserialize: (b: Buffer) => Req.toObject(Req.decode(b)) as { service?: string },
          responseSerialize: (v: object) => Buffer.from(Res.encode(v).finish()),
          responseDeserialize: (b: Buffer) => Res.toObject(Res.decode(b)),
        },
      },
      {
        check: (call: grpc.ServerUnaryCall<{ service?: string }, object>, cb: grpc.sendUnaryData<object>) => {
          const s = statuses.get(call.request.service ?? '');
          if (s === undefined) cb({ code: grpc.status.NOT_FOUND, details: 'unknown service' });
          else cb(null, { status: s });
        },
      },
    );
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
    );
    closers.push(() => void server.forceShutdown());
    const c = manage(port, { http2: true, protocol: 'grpc', healthCheck: { ...HC, grpcService: 'dns.v1.ZoneService' } });
    const h = hostOf(c);
    await waitFor(() => h.available, 2000, 'SERVING');
    statuses.set('dns.v1.ZoneService', 2);
    await waitFor(() => !h.available, 2000, 'NOT_SERVING');
    assert.equal(h.health.lastFailure, 'serving status 2');
    const other = manage(port, { http2: true, healthCheck: { ...HC, grpcService: 'nope.v1.Missing' } });
    await waitFor(() => hostOf(other).health.checksTotal > 0, 2000, 'unknown service check');
    assert.equal(hostOf(other).available, false);
    assert.equal(hostOf(other).health.lastFailure, `grpc-status ${grpc.status.NOT_FOUND}`);
  });

  it('returns an outlier-ejected host once an active check passes (successful_active_health_check_uneject_host)', async () => {
    const server = net.createServer((s) => s.destroy());
    const port = await listen(server);
    const od = { consecutive5xx: 2, intervalMs: 10_000, baseEjectionTimeMs: 60_000, maxEjectionPercent: 100 };
    const c = manage(port, { healthCheck: HC, outlierDetection: od });
    const h = hostOf(c);
    await waitFor(() => h.available, 2000, 'first check');
    for (let i = 0; i < 2; i++) {
      c.tryBeginRequest(h);
      c.endRequest(h, '5xx');
    }
    assert.equal(h.outlier.ejected, true);
    const back = await waitFor(() => h.available, 2000, 'the next passing check');
    assert.ok(back < 1000, 'long before the 60 s ejection time');
  });

  it('times out a host that accepts but never answers', async () => {
    const held: net.Socket[] = [];
    const server = net.createServer((s) => held.push(s));
    const port = await listen(server);
    closers.push(() => held.forEach((s) => s.destroy())); // before the server closes (closers run in reverse)
    const c = manage(port, { healthCheck: { ...HC, timeoutMs: 50, httpPath: '/healthz' } });
    await waitFor(() => hostOf(c).health.checksTotal > 0, 2000, 'a timed out check');
    assert.equal(hostOf(c).available, false);
    assert.equal(hostOf(c).health.lastFailure, 'timeout after 50 ms');
  });

  it('balances over every ready host in panic (Envoy 50%) when a cluster without outlier detection fails its checks', async () => {
    const m = new UpstreamClusterManager(() => undefined);
    closers.push(() => m.close());
    const refused = net.createServer();
    const deadPort = await listen(refused);
    refused.close();
    const spec = clusterSpec('p', { healthCheck: { ...HC, unhealthyThreshold: 1 } });
    m.update(proxyConfig([{ spec, endpoints: endpointSet('p', [{ address: '127.0.0.1', port: deadPort }, { address: '127.0.0.2', port: deadPort }]) }]));
    const c = m.get('p')!;
    await waitFor(() => c.allHosts().every((h) => h.health.checksTotal > 0), 2000, 'both checks');
    assert.equal(c.stats().panic, true);
    const seen = new Set(Array.from({ length: 10 }, () => c.pick({})));
    assert.equal(seen.size, 2, 'traffic goes to all hosts rather than none');
    assert.ok(c.stats().lb_healthy_panic >= 10);
  });
});

describe('health checks over mesh mTLS', () => {
  let dir: string;
  let ca: CertificateAuthority;
  let server: { key: string; cert: string };
  let client: { key: string; cert: string };
  const issue = async (sa: string) => {
    const keys = await generateP256KeyPair();
    const issued = await ca.issue(await createCsr(keys), { namespace: 'shop', serviceAccount: sa });
    return { key: await exportPrivateKeyPem(keys.privateKey), cert: issued.certChain.join('\n') };
  };
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'trellis-hc-'));
    ca = await CertificateAuthority.loadOrCreate({ stateDir: dir });
    server = await issue('api');
    client = await issue('web');
  });
  after(() => rm(dir, { recursive: true, force: true }));

  const meshTls: MeshTlsOptionsFactory = (alpn, ids) => ({
    ...client,
    ca: ca.trustBundle(),
    ...(alpn.length > 0 ? { ALPNProtocols: alpn } : {}),
    checkServerIdentity: (_h, cert) => (ids.length === 0 || uriSans(cert).some((u) => ids.includes(u)) ? undefined : new Error('unexpected peer identity')),
  });

  it('checks through the cluster’s TLS options and verifies the peer’s SPIFFE ID', async () => {
    const peers: string[] = [];
    const held: tls.TLSSocket[] = [];
    // Like a peer proxy's inbound listener: it accepts and waits for the first bytes.
    const tlsServer = tls.createServer({ ...server, ca: ca.trustBundle(), requestCert: true, rejectUnauthorized: true }, (s) => {
      peers.push(uriSans(s.getPeerCertificate())[0] ?? '');
      held.push(s);
    });
    const port = await listen(tlsServer);
    closers.push(() => held.forEach((s) => s.destroy()));
    const good = manage(port, { mtls: { subjectAltNames: ['spiffe://cluster.local/ns/shop/sa/api'] }, healthCheck: HC }, meshTls);
    await waitFor(() => hostOf(good).available, 3000, 'mTLS check');
    // In TLS 1.3 the client finishes its handshake before the server has read its certificate: wait for the server.
    await waitFor(() => peers.length > 0, 3000, 'the server to see the client certificate');
    assert.equal(peers[0], 'spiffe://cluster.local/ns/shop/sa/web', 'the check presented the proxy’s certificate');
    const wrong = manage(port, { mtls: { subjectAltNames: ['spiffe://cluster.local/ns/shop/sa/db'] }, healthCheck: HC }, meshTls);
    await waitFor(() => hostOf(wrong).health.checksTotal > 0, 3000, 'wrong identity check');
    assert.equal(hostOf(wrong).available, false);
    assert.match(hostOf(wrong).health.lastFailure ?? '', /unexpected peer identity/);
    // A server that trusts another root refuses our certificate; in TLS 1.3 only its alert says so.
    const other = await CertificateAuthority.loadOrCreate({ stateDir: join(dir, 'other') });
    const refusing = tls.createServer({ ...server, ca: other.trustBundle(), requestCert: true, rejectUnauthorized: true }, (s) => held.push(s));
    const refusingPort = await listen(refusing);
    const refused = manage(refusingPort, { mtls: { subjectAltNames: [] }, healthCheck: HC }, meshTls);
    await waitFor(() => hostOf(refused).health.checksTotal > 0, 3000, 'refused certificate check');
    assert.equal(hostOf(refused).available, false, 'a peer that refuses our certificate is not healthy');
    assert.match(hostOf(refused).health.lastFailure ?? '', /closed the connection after the TLS handshake/);
    const noCert = manage(port, { mtls: { subjectAltNames: [] }, healthCheck: HC }, () => undefined);
    await waitFor(() => hostOf(noCert).health.checksTotal > 0, 3000, 'no certificate check');
    assert.equal(hostOf(noCert).available, false, 'no certificate: fail closed, never plaintext');
    assert.match(hostOf(noCert).health.lastFailure ?? '', /no mesh certificate/);
  });
});

describe('gRPC health messages', () => {
  it('encodes the request and reads the status, refusing malformed frames', () => {
    assert.deepEqual([...grpcHealthRequest('a.B')], [0, 0, 0, 0, 5, 0x0a, 3, 0x61, 0x2e, 0x42]);
    assert.deepEqual([...grpcHealthRequest('')], [0, 0, 0, 0, 0]);
    assert.equal(grpcHealthStatus(Buffer.from([0, 0, 0, 0, 2, 0x08, 1])), 1);
    assert.equal(grpcHealthStatus(Buffer.from([0, 0, 0, 0, 0])), 0);
    assert.equal(grpcHealthStatus(Buffer.from([1, 0, 0, 0, 2, 0x08, 1])), undefined, 'compressed');
    assert.equal(grpcHealthStatus(Buffer.from([0, 0, 0, 0, 9, 0x08, 1])), undefined, 'short');
    assert.equal(grpcHealthStatus(Buffer.from([0, 0, 0, 0, 2, 0x0a, 5])), undefined, 'field overruns');
  });
});
