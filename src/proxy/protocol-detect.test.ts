// Tests of protocol detection: the byte classifier, SNI extraction from a real ClientHello, and peeking on real
// loopback sockets (and inside real mTLS) without losing a byte, with the server-first and overall timeouts.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import tls from 'node:tls';
import { tcpServer, testCa } from '../../test/support/proxy-l4-harness.ts';
import { MeshTls } from './mesh-tls.ts';
import { classify, clientHelloSni, detectProtocol, type Detection, type DetectOptions } from './protocol-detect.ts';

const H = '127.0.0.1';

describe('classify', () => {
  const cases: [string, Buffer, string | undefined][] = [
    ['TLS 1.2 record', Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00]), 'tls'],
    ['TLS, 2 bytes', Buffer.from([0x16, 0x03]), undefined],
    ['0x16 then not 0x03', Buffer.from([0x16, 0x07]), 'tcp'],
    ['0x16 0x03 bad minor', Buffer.from([0x16, 0x03, 0x09]), 'tcp'],
    ['h2 preface', Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\nxyz'), 'http2'],
    ['h2 preface prefix', Buffer.from('PRI * HTTP/2.0\r\n'), undefined],
    ['GET', Buffer.from('GET / HTTP/1.1\r\n'), 'http1'],
    ['OPTIONS', Buffer.from('OPTIONS * HTTP/1.1\r\n'), 'http1'],
    ['CONNECT', Buffer.from('CONNECT a:443 HTTP/1.1\r\n'), 'http1'],
    ['P alone', Buffer.from('P'), undefined],
    ['PU', Buffer.from('PU'), undefined],
    ['PATCH ', Buffer.from('PATCH '), 'http1'],
    ['GETX', Buffer.from('GETX'), 'tcp'],
    ['lower-case get', Buffer.from('get / HTTP/1.1'), 'tcp'],
    ['MySQL-ish binary', Buffer.from([0x4a, 0x00, 0x00, 0x00, 0x0a]), 'tcp'],
    ['empty', Buffer.alloc(0), undefined],
  ];
  for (const [name, buf, want] of cases) it(name, () => assert.equal(classify(buf), want));
});

/** Accepts one connection, runs detection on it, then reads everything that follows. */
async function detectOn(send: (c: net.Socket) => void, opts: DetectOptions): Promise<{ d: Detection; rest: string; ms: number }> {
  let resolveIt!: (v: { d: Detection; rest: string; ms: number }) => void;
  const done = new Promise<{ d: Detection; rest: string; ms: number }>((r) => (resolveIt = r));
  const srv = await tcpServer(H, (s) => {
    const t0 = Date.now();
    void detectProtocol(s, opts).then((d) => {
      const ms = Date.now() - t0;
      const chunks: Buffer[] = [];
      s.on('data', (c: Buffer) => chunks.push(c));
      s.on('end', () => {
        resolveIt({ d, rest: Buffer.concat(chunks).toString('latin1'), ms });
        s.end();
      });
    });
  });
  const c = net.connect(srv.port, H);
  c.on('error', () => {});
  await once(c, 'connect');
  send(c);
  try {
    return await done;
  } finally {
    c.destroy();
    await srv.close();
  }
}

describe('detectProtocol on a socket', () => {
  it('detects HTTP/1.1 and leaves every byte for the next reader', async () => {
    const r = await detectOn((c) => c.end('GET /x HTTP/1.1\r\nhost: a\r\n\r\n'), {});
    assert.equal(r.d.protocol, 'http1');
    assert.equal(r.rest, 'GET /x HTTP/1.1\r\nhost: a\r\n\r\n');
  });

  it('detects the HTTP/2 preface arriving one byte at a time', async () => {
    const preface = 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n';
    const r = await detectOn((c) => {
      let i = 0;
      const t = setInterval(() => {
        c.setNoDelay(true);
        if (i < preface.length) c.write(preface[i++]!);
        else {
          clearInterval(t);
          c.end('frames');
        }
      }, 2);
    }, {});
    assert.equal(r.d.protocol, 'http2');
    assert.equal(r.rest, preface + 'frames');
  });

  it('calls opaque bytes TCP at once', async () => {
    const r = await detectOn((c) => c.end(Buffer.from([0, 1, 2, 3, 4, 5])), { firstByteMs: 5000 });
    assert.equal(r.d.protocol, 'tcp');
    assert.ok(r.ms < 1000);
    assert.deepEqual(Buffer.from(r.rest, 'latin1'), Buffer.from([0, 1, 2, 3, 4, 5]));
  });

  it('a short stream that ends undecided ("GE" then FIN) is TCP and keeps its bytes', async () => {
    const r = await detectOn((c) => c.end('GE'), {});
    assert.equal(r.d.protocol, 'tcp');
    assert.equal(r.rest, 'GE');
  });

  it('a silent client (server-first protocol) is reported after firstByteMs', async () => {
    const r = await detectOn((c) => setTimeout(() => c.end('late'), 250), { firstByteMs: 60, timeoutMs: 5000 });
    assert.equal(r.d.protocol, 'silent');
    assert.ok(r.ms >= 50 && r.ms < 240, `took ${r.ms} ms`);
    assert.equal(r.rest, 'late');
  });

  it('undecided bytes become TCP at the overall timeout', async () => {
    const r = await detectOn((c) => {
      c.write('PO');
      setTimeout(() => c.end('ST-ish'), 300);
    }, { firstByteMs: 50, timeoutMs: 150 });
    assert.equal(r.d.protocol, 'tcp');
    assert.ok(r.ms >= 140 && r.ms < 290, `took ${r.ms} ms`);
    assert.equal(r.rest, 'POST-ish');
  });

  it('a connection closed before any byte is closed', async () => {
    let got!: Detection;
    const srv = await tcpServer(H, (s) =>
      void detectProtocol(s, { timeoutMs: 2000 }).then((d) => {
        got = d;
        s.end();
      }),
    );
    const c = net.connect(srv.port, H);
    await once(c, 'connect');
    c.end();
    await once(c, 'close');
    for (let i = 0; i < 100 && got === undefined; i++) await new Promise((r) => setTimeout(r, 10));
    await srv.close();
    assert.equal(got.protocol, 'closed');
  });
});

describe('TLS ClientHello', () => {
  it('is detected as TLS with its SNI, and the handshake still completes afterwards', async () => {
    const ca = await testCa();
    const server = await ca.issue('default', 'srv');
    let detected!: Detection;
    const srv = await tcpServer(H, (s) => {
      void detectProtocol(s, { sni: true }).then((d) => {
        detected = d;
        const t = new tls.TLSSocket(s, { isServer: true, secureContext: tls.createSecureContext({ key: server.keyPem, cert: server.certChainPem }) });
        t.on('error', () => {});
        t.on('data', (c: Buffer) => t.end(`echo ${c.toString()}`));
      });
    });
    try {
      const c = tls.connect({ host: H, port: srv.port, servername: 'db.shop.svc.cluster.local', ca: server.rootCertPem, checkServerIdentity: () => undefined });
      await once(c, 'secureConnect');
      c.write('hi');
      const [data] = (await once(c, 'data')) as [Buffer];
      assert.equal(data.toString(), 'echo hi');
      c.destroy();
      assert.equal(detected.protocol, 'tls');
      assert.equal(detected.sni, 'db.shop.svc.cluster.local');
    } finally {
      await srv.close();
    }
  });

  it('clientHelloSni refuses truncated and non-hello records', () => {
    assert.equal(clientHelloSni(Buffer.from([0x16, 0x03, 0x01, 0x00, 0x05, 0x02, 0, 0, 1, 0])), undefined);
    assert.equal(clientHelloSni(Buffer.from([0x16, 0x03, 0x01, 0x40, 0x00, 0x01])), undefined);
    assert.equal(clientHelloSni(Buffer.from('GET / HTTP/1.1')), undefined);
  });
});

describe('detection inside mesh mTLS', () => {
  let mesh: MeshTls;
  let clientTls: MeshTls;
  before(async () => {
    const ca = await testCa();
    mesh = new MeshTls();
    mesh.update(await ca.issue('default', 'server'));
    clientTls = new MeshTls();
    clientTls.update(await ca.issue('default', 'client'));
  });
  after(() => {
    mesh.close();
    clientTls.close();
  });

  for (const [name, payload, want] of [
    ['HTTP/1.1', 'GET / HTTP/1.1\r\n\r\n', 'http1'],
    ['HTTP/2', 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'http2'],
    ['TCP', '\x00\x01binary', 'tcp'],
  ] as const) {
    it(`detects ${name} after termination`, async () => {
      let outer!: Detection;
      let inner!: Detection;
      let rest = '';
      const srv = await tcpServer(H, (s) => {
        void (async () => {
          outer = await detectProtocol(s, {});
          const t = await mesh.terminate(s);
          inner = await detectProtocol(t, {});
          t.on('data', (c: Buffer) => (rest += c.toString('latin1')));
          t.on('end', () => t.end());
        })().catch(() => s.destroy());
      });
      try {
        const c = tls.connect({ host: H, port: srv.port, ...clientTls.clientOptions(['h2', 'http/1.1'], []) });
        await once(c, 'secureConnect');
        c.end(payload);
        await once(c, 'close');
        assert.equal(outer.protocol, 'tls');
        assert.equal(inner.protocol, want);
        assert.equal(rest, payload);
      } finally {
        await srv.close();
      }
    });
  }
});
