// HCM limits from pod annotations, end to end: the control plane reads a pod's trellis.dev/request-headers-timeout
// and trellis.dev/max-request-headers, sends them in its listeners' HttpConnectionManager over xDS, and the pod's
// proxy enforces them. A slowloris client is cut at the pod's 500 ms instead of the default 10 s; a pod without
// the annotations keeps the defaults.
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { MeshEnv } from '../support/mesh-env.ts';

const SUBNET = 61;
const PORT = 8080;
const HOST = 'api.default.svc.cluster.local';

const MANIFESTS = `apiVersion: v1
kind: Service
metadata: {name: api, namespace: default}
spec:
  selector: {app: api}
  ports: [{name: http, port: ${PORT}, targetPort: ${PORT}, appProtocol: http}]
`;

/** Sends the start of a request at once, then one header byte every 100 ms; resolves when the proxy closes or at `untilMs`. */
function slowloris(ip: string, untilMs: number): Promise<{ closed: boolean; afterMs: number; text: string }> {
  return new Promise((resolve) => {
    const start = performance.now();
    const s = net.connect({ host: ip, port: PORT });
    let text = '';
    let tick: NodeJS.Timeout | undefined;
    const done = (closed: boolean): void => {
      clearInterval(tick);
      clearTimeout(limit);
      s.destroy();
      resolve({ closed, afterMs: performance.now() - start, text });
    };
    const limit = setTimeout(() => done(false), untilMs);
    s.setEncoding('utf8').on('data', (d: string) => (text += d));
    s.on('error', () => {});
    s.once('close', () => done(true));
    s.once('connect', () => {
      s.write(`GET /slow HTTP/1.1\r\nhost: ${HOST}\r\n`);
      tick = setInterval(() => s.write('x'), 100);
    });
  });
}

function get(ip: string, headers: Record<string, string> = {}): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: ip, port: PORT, path: '/', headers: { host: HOST, ...headers }, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.setTimeout(10_000, () => req.destroy(new Error('client timeout')));
    req.on('error', reject);
    req.end();
  });
}

describe('HCM limits from pod annotations', { timeout: 60_000 }, () => {
  let env: MeshEnv;
  let app: http.Server;

  before(async () => {
    env = await MeshEnv.start({
      subnet: SUBNET,
      pods: [
        { name: 'strict', labels: { app: 'strict' }, annotations: { 'trellis.dev/request-headers-timeout': '500ms', 'trellis.dev/max-request-headers': '10' } },
        { name: 'plain', labels: { app: 'plain' } },
        { name: 'api', labels: { app: 'api' }, ports: [{ port: PORT, name: 'http' }] },
      ],
      manifests: MANIFESTS,
    });
    app = http.createServer((_req, res) => res.end('api'));
    await new Promise<void>((r) => app.listen(PORT, env.pod('api').appIp, r));
  });

  after(async () => {
    app?.closeAllConnections();
    await new Promise<void>((r) => (app ? app.close(() => r()) : r()));
    await env?.stop();
  });

  it('cuts a slowloris client at the annotated header timeout with 408; an unannotated pod keeps the default', async () => {
    const [strict, plain] = await Promise.all([slowloris(env.pod('strict').outboundIp, 8000), slowloris(env.pod('plain').outboundIp, 3000)]);
    assert.ok(strict.closed, 'the annotated pod’s proxy closed the connection');
    assert.ok(strict.afterMs < 3000, `closed after ${Math.round(strict.afterMs)} ms`);
    assert.match(strict.text, /^HTTP\/1\.1 408/);
    // The default header timeout is 10 s: after 3 s the other pod's proxy is still reading.
    assert.equal(plain.closed, false, `the unannotated pod closed after ${Math.round(plain.afterMs)} ms: ${plain.text.slice(0, 60)}`);
    // Both still serve.
    assert.equal(await get(env.pod('strict').outboundIp), 200);
    assert.equal(await get(env.pod('plain').outboundIp), 200);
  });

  it('refuses more request headers than the annotated count with 431 at that pod only', async () => {
    const many = Object.fromEntries(Array.from({ length: 15 }, (_, i) => [`x-h${i}`, 'v']));
    assert.equal(await get(env.pod('strict').outboundIp, many), 431);
    assert.equal(await get(env.pod('plain').outboundIp, many), 200);
  });
});
