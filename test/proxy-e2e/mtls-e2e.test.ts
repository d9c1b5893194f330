// Mesh mTLS end to end through real proxies: STRICT refuses plaintext and a certificate from a foreign CA (with a
// DROPPED AUTH_REQUIRED flow), PERMISSIVE (a PeerAuthentication) accepts both and the flows say which transport was
// used, and both proxies' certificates rotate under load (the CA issues 4-second certificates, renewed at half-life)
// without a single failed request or connection.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { CertificateAuthority, createCsr } from '../../src/ca/index.ts';
import { exportPrivateKeyPem, generateP256KeyPair } from '../../src/ca/keys.ts';
import type { Flow } from '../../src/observe/flow.ts';
import { MeshEnv } from '../support/mesh-env.ts';

const SUBNET = 49;
const TTL_MS = 4000;

const MANIFESTS = `apiVersion: v1
kind: Service
metadata: {name: api, namespace: shop}
spec:
  selector: {app: api}
  ports:
  - {name: http, port: 8080, targetPort: 8080, appProtocol: http}
  - {name: tcp-echo, port: 9000, targetPort: 9000, appProtocol: tcp}
---
apiVersion: v1
kind: Service
metadata: {name: legacy, namespace: shop}
spec:
  selector: {app: legacy}
  ports: [{name: http, port: 8080, targetPort: 8080, appProtocol: http}]
---
# Mesh-wide STRICT (Istio's default is PERMISSIVE), and one workload back to PERMISSIVE.
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: istio-system}
spec:
  mtls: {mode: STRICT}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: legacy-permissive, namespace: shop}
spec:
  selector: {matchLabels: {app: legacy}}
  mtls: {mode: PERMISSIVE}
`;

interface Reply {
  status: number;
  body: string;
}

function get(host: string, port: number, path: string, o: { authority?: string; agent?: http.Agent; localAddress?: string } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host, port, path, headers: { host: o.authority ?? host }, agent: o.agent ?? false, localAddress: o.localAddress, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

/** Opens a socket (plain or TLS), sends `payload`, and reports what came back before the socket closed. */
function exchange(connect: () => net.Socket, payload: string, until: (got: string) => boolean): Promise<{ got: string; error?: string; secure: boolean }> {
  return new Promise((resolve) => {
    const s = connect();
    let got = '';
    let secure = false;
    const done = (error?: string): void => {
      clearTimeout(timer);
      s.destroy();
      resolve({ got, ...(error !== undefined ? { error } : {}), secure });
    };
    const timer = setTimeout(() => done('timeout'), 5000);
    s.setEncoding('utf8');
    s.once(s instanceof tls.TLSSocket ? 'secureConnect' : 'connect', () => {
      secure = s instanceof tls.TLSSocket;
      s.write(payload);
    });
    s.on('data', (d: string) => {
      got += d;
      if (until(got)) done();
    });
    s.on('error', (e: NodeJS.ErrnoException) => done(e.code ?? e.message));
    s.on('close', () => done('closed'));
  });
}

const HTTP_GET = (host: string): string => `GET /direct HTTP/1.1\r\nhost: ${host}\r\nconnection: close\r\n\r\n`;

/** A workload key and certificate for shop/web issued by `ca`. */
async function certFrom(ca: CertificateAuthority): Promise<{ key: string; cert: string; ca: string }> {
  const keys = await generateP256KeyPair();
  const issued = await ca.issue(await createCsr(keys), { namespace: 'shop', serviceAccount: 'web' });
  return { key: await exportPrivateKeyPem(keys.privateKey), cert: issued.certChain.join('\n'), ca: issued.rootCert };
}

describe('mesh mTLS end to end: STRICT, PERMISSIVE and rotation under load', () => {
  let env: MeshEnv;
  const servers: net.Server[] = [];
  let foreignDir = '';

  before(async () => {
    env = await MeshEnv.start({
      subnet: SUBNET,
      workloadTtlMs: TTL_MS,
      pods: [
        { name: 'web', namespace: 'shop' },
        { name: 'api', namespace: 'shop', ports: [{ port: 8080, name: 'http' }, { port: 9000, name: 'tcp-echo' }] },
        { name: 'legacy', namespace: 'shop', ports: [{ port: 8080, name: 'http' }] },
      ],
      manifests: MANIFESTS,
    });
    for (const name of ['api', 'legacy']) {
      const s = http.createServer((req, res) => res.end(`${name} saw ${req.url}`));
      s.keepAliveTimeout = 30_000;
      await new Promise<void>((r) => s.listen(8080, env.pod(name).appIp, r));
      servers.push(s);
    }
    const echo = net.createServer((s) => {
      s.on('error', () => {});
      s.pipe(s);
    });
    await new Promise<void>((r) => echo.listen(9000, env.pod('api').appIp, r));
    servers.push(echo);
    foreignDir = await mkdtemp(join(tmpdir(), 'trellis-foreign-ca-'));
  });

  after(async () => {
    for (const s of servers) {
      (s as http.Server).closeAllConnections?.();
      s.close();
    }
    await env?.stop();
    if (foreignDir) await rm(foreignDir, { recursive: true, force: true });
  });

  const known = async (pod: string): Promise<Set<string>> => new Set((await env.flows(pod, 1000)).map((f) => f.uuid));

  it('STRICT: plaintext straight to the inbound listener is refused, with a DROPPED AUTH_REQUIRED flow', async () => {
    const api = env.pod('api');
    const web = env.pod('web');
    const seen = await known('api');
    // HTTP and raw TCP, from a mesh pod's address, without TLS.
    for (const port of [8080, 9000]) {
      const r = await exchange(() => net.connect({ host: api.podIp, port, localAddress: web.podIp }), port === 8080 ? HTTP_GET(api.podIp) : 'ping', () => false);
      assert.equal(r.got, '', `plaintext to ${port} got an answer: ${r.got}`);
      assert.match(r.error ?? '', /ECONNRESET|closed|EPIPE/);
      const f = await env.waitFlow('api', (x) => !seen.has(x.uuid) && x.verdict === 'DROPPED' && x.l4.TCP?.destination_port === port);
      assert.equal(f.drop_reason_desc, 'AUTH_REQUIRED');
      assert.equal(f.Type, 'L3_L4');
      assert.equal(f.traffic_direction, 'INGRESS');
      assert.equal(f.trellis?.transport, 'plaintext');
      assert.equal(f.source.pod_name, 'web');
      assert.match(f.Summary, /STRICT/);
    }
  });

  it('STRICT: a certificate from a foreign CA is refused in the handshake; the mesh CA\'s is accepted', async () => {
    const api = env.pod('api');
    const web = env.pod('web');
    const foreign = await CertificateAuthority.loadOrCreate({ stateDir: foreignDir });
    const mesh = env.cp.ca;
    assert.ok(mesh);
    // tls.connect hands localAddress to its net.connect (the type omits it).
    const connectWith = (c: { key: string; cert: string }) => (): tls.TLSSocket => {
      const o: tls.ConnectionOptions & { localAddress: string } = { host: api.podIp, port: 8080, localAddress: web.podIp, key: c.key, cert: c.cert, ALPNProtocols: ['http/1.1'], rejectUnauthorized: false, minVersion: 'TLSv1.3' };
      return tls.connect(o);
    };
    // Control: the same client with the mesh CA's certificate for shop/web gets the app's answer.
    const good = await exchange(connectWith(await certFrom(mesh)), HTTP_GET('api'), (g) => g.includes('api saw /direct'));
    assert.match(good.got, /^HTTP\/1\.1 200/, `mesh certificate: ${good.error ?? ''}`);

    const seen = await known('api');
    const bad = await exchange(connectWith(await certFrom(foreign)), HTTP_GET('api'), () => false);
    assert.equal(bad.got, '', 'a foreign certificate got an answer');
    assert.match(bad.error ?? '', /ALERT|ECONNRESET|closed|EPIPE/);
    const f = await env.waitFlow('api', (x) => !seen.has(x.uuid) && x.verdict === 'DROPPED');
    assert.equal(f.drop_reason_desc, 'AUTH_REQUIRED');
    assert.equal(f.trellis?.transport, 'mtls');
    assert.match(f.Summary, /TLS handshake failed/);
  });

  it('PERMISSIVE: plaintext and mTLS are both accepted, and the flows record which was used', async () => {
    const legacy = env.pod('legacy');
    const web = env.pod('web');
    const seen = await known('legacy');
    const plain = await get(legacy.podIp, 8080, '/plain', { localAddress: web.podIp, authority: 'legacy' });
    assert.deepEqual(plain, { status: 200, body: 'legacy saw /plain' });
    const meshed = await get(web.outboundIp, 8080, '/meshed', { authority: 'legacy.shop.svc.cluster.local' });
    assert.deepEqual(meshed, { status: 200, body: 'legacy saw /meshed' });
    const flow = (path: string) => (x: Flow): boolean => !seen.has(x.uuid) && x.Type === 'L7' && x.l7?.http?.url.endsWith(path) === true;
    const p = await env.waitFlow('legacy', flow('/plain'));
    const m = await env.waitFlow('legacy', flow('/meshed'));
    assert.equal(p.trellis?.transport, 'plaintext');
    assert.equal(p.auth_type, 'DISABLED');
    assert.equal(m.trellis?.transport, 'mtls');
    assert.equal(m.auth_type, 'SPIRE');
    for (const f of [p, m]) assert.equal(f.verdict, 'FORWARDED');
  });

  it('rotation under load: both proxies\' certificates rotate while 20 loops send requests, and none fails', async () => {
    const serial = async (pod: string): Promise<string> => {
      const r = (await (await fetch(`${env.proxy(pod).adminUrl}/config_dump`)).json()) as { certificate?: { serial?: string } };
      assert.ok(r.certificate?.serial, `no certificate serial in ${pod}'s /config_dump`);
      return r.certificate.serial;
    };
    const web = env.pod('web');
    const start = { web: await serial('web'), api: await serial('api') };
    const agent = new http.Agent({ keepAlive: true, maxSockets: 10 });
    const failures: string[] = [];
    let ok = 0;
    let stop = false;
    // Ten HTTP loops over keep-alive connections, and ten TCP loops that open a new connection (so a new mTLS
    // handshake between the proxies) for every exchange.
    const httpLoop = async (i: number): Promise<void> => {
      for (let n = 0; !stop; n++) {
        try {
          const r = await get(web.outboundIp, 8080, `/rot/${i}/${n}`, { agent, authority: 'api.shop.svc.cluster.local' });
          if (r.status === 200 && r.body === `api saw /rot/${i}/${n}`) ok++;
          else failures.push(`HTTP ${r.status}: ${r.body}`);
        } catch (e) {
          failures.push(`HTTP ${(e as Error).message}`);
        }
      }
    };
    const tcpLoop = async (i: number): Promise<void> => {
      for (let n = 0; !stop; n++) {
        const msg = `ping ${i}/${n}`;
        const r = await exchange(() => net.connect({ host: web.outboundIp, port: 9000 }), msg, (g) => g === msg);
        if (r.got === msg) ok++;
        else failures.push(`TCP ${r.error ?? ''} after ${JSON.stringify(r.got)}`);
      }
    };
    const loops = [...Array.from({ length: 10 }, (_, i) => httpLoop(i)), ...Array.from({ length: 10 }, (_, i) => tcpLoop(i))];
    // Run for at least two certificate lifetimes' halves, until both proxies have rotated (bounded).
    const deadline = Date.now() + 15_000;
    const began = Date.now();
    let now = { ...start };
    while (Date.now() < deadline) {
      await sleep(500);
      now = { web: await serial('web'), api: await serial('api') };
      if (Date.now() - began >= 5000 && now.web !== start.web && now.api !== start.api) break;
    }
    stop = true;
    await Promise.all(loops);
    agent.destroy();
    assert.notEqual(now.web, start.web, 'the client proxy never rotated its certificate');
    assert.notEqual(now.api, start.api, 'the server proxy never rotated its certificate');
    assert.deepEqual(failures.slice(0, 5), [], `${failures.length} of ${failures.length + ok} requests failed`);
    assert.ok(ok >= 100, `only ${ok} requests ran`);
  });
});
