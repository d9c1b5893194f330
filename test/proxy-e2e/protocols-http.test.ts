// HTTP/1.1 and HTTP/2 end to end through two real proxies (client side → mesh mTLS → server side): curl and Node's
// clients; keep-alive, chunked bodies both ways, 100-continue, 20 MB bodies checked by hash, pipelining, a WebSocket
// echo over Upgrade, HEAD/204/304 framing, headers and trailers; HTTP/2 with 100 concurrent streams, flow control on
// a large response and trailers. Both proxies' flows and the server proxy's Istio metrics are checked too.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { writeFile } from 'node:fs/promises';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { MeshEnv } from '../support/mesh-env.ts';

const SVC = 'api.shop.svc.cluster.local';
const H1 = 8080;
const H2 = 8082;
const MANIFESTS = `apiVersion: v1
kind: Service
metadata: {name: api, namespace: shop}
spec:
  selector: {app: api}
  ports:
  - {name: http, port: ${H1}, targetPort: ${H1}, appProtocol: http}
  - {name: h2, port: ${H2}, targetPort: ${H2}, appProtocol: http2}
`;
const BIG = randomBytes(20 * 1024 * 1024);
const BIG_SHA = sha(BIG);
const T = { timeout: 30_000 };

function sha(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

/** Writes `buf` to `out` in 64 KiB slices, waiting for 'drain' (backpressure), then ends it. */
async function writeAll(out: NodeJS.WritableStream, buf: Buffer): Promise<void> {
  for (let i = 0; i < buf.length; i += 65536) {
    if (!out.write(buf.subarray(i, i + 65536))) await once(out, 'drain');
  }
  out.end();
}

// ---- the HTTP/1.1 app (with a WebSocket echo on 'upgrade') ----

function h1App(req: IncomingMessage, res: ServerResponse): void {
  const u = new URL(req.url ?? '/', 'http://x');
  const reqHeaders = { 'x-req-te': String(req.headers['transfer-encoding'] ?? ''), 'x-req-cl': String(req.headers['content-length'] ?? '') };
  switch (u.pathname) {
    case '/echo': // the body back, chunked (no content-length)
      res.writeHead(200, { 'content-type': 'application/octet-stream', ...reqHeaders });
      req.pipe(res);
      return;
    case '/hash': {
      const h = createHash('sha256');
      let n = 0;
      req.on('data', (d: Buffer) => {
        h.update(d);
        n += d.length;
      });
      req.on('end', () => res.end(JSON.stringify({ n, sha: h.digest('hex'), ...reqHeaders })));
      return;
    }
    case '/big':
      res.writeHead(200, { 'content-length': String(BIG.length), 'content-type': 'application/octet-stream' });
      void writeAll(res, BIG);
      return;
    case '/head':
      res.writeHead(200, { 'content-length': '1234', 'x-head': 'yes' });
      res.end(req.method === 'HEAD' ? undefined : 'h'.repeat(1234));
      return;
    case '/status': {
      const code = Number(u.searchParams.get('code'));
      res.writeHead(code, { etag: '"v1"', 'x-status': String(code) });
      res.end();
      return;
    }
    case '/trailers':
      res.writeHead(200, { 'content-type': 'text/plain', trailer: 'x-checksum', 'set-cookie': ['a=1', 'b=2'], 'x-custom': 'kept' });
      res.write('part1;');
      res.write('part2');
      res.addTrailers({ 'x-checksum': 'abc123' });
      res.end();
      return;
    default:
      req.resume();
      res.end(`path ${req.method} ${req.url}`);
  }
}

const WS_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
function wsAccept(key: string): string {
  return createHash('sha1').update(key + WS_GUID).digest('base64');
}

/** One WebSocket frame (RFC 6455 §5.2); clients mask, servers do not. */
function wsFrame(opcode: number, payload: Buffer, mask: boolean): Buffer {
  const n = payload.length;
  const len = n < 126 ? Buffer.from([n]) : n < 65536 ? Buffer.from([126, n >> 8, n & 255]) : Buffer.concat([Buffer.from([127]), (() => {
    const b = Buffer.alloc(8);
    b.writeBigUInt64BE(BigInt(n));
    return b;
  })()]);
  if (mask) len[0]! |= 0x80;
  const key = mask ? randomBytes(4) : Buffer.alloc(0);
  const body = mask ? Buffer.from(payload.map((x, i) => x ^ key[i % 4]!)) : payload;
  return Buffer.concat([Buffer.from([0x80 | opcode]), len, key, body]);
}

/** Parses one frame at the start of `b`, or undefined when it is not complete yet. */
function wsParse(b: Buffer): { opcode: number; payload: Buffer; used: number } | undefined {
  if (b.length < 2) return undefined;
  let n = b[1]! & 0x7f;
  let off = 2;
  if (n === 126) {
    if (b.length < 4) return undefined;
    n = b.readUInt16BE(2);
    off = 4;
  } else if (n === 127) {
    if (b.length < 10) return undefined;
    n = Number(b.readBigUInt64BE(2));
    off = 10;
  }
  const masked = (b[1]! & 0x80) !== 0;
  const key = masked ? b.subarray(off, off + 4) : undefined;
  if (masked) off += 4;
  if (b.length < off + n) return undefined;
  const raw = b.subarray(off, off + n);
  const payload = key ? Buffer.from(raw.map((x, i) => x ^ key[i % 4]!)) : Buffer.from(raw);
  return { opcode: b[0]! & 0x0f, payload, used: off + n };
}

function wsEcho(req: IncomingMessage, socket: Duplex, head: Buffer): void {
  const key = req.headers['sec-websocket-key'];
  if (req.headers.upgrade?.toLowerCase() !== 'websocket' || typeof key !== 'string') return void socket.end('HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n');
  socket.write(`HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-accept: ${wsAccept(key)}\r\nx-ws-app: echo\r\n\r\n`);
  let buf = head;
  const onData = (d: Buffer): void => {
    buf = Buffer.concat([buf, d]);
    for (let f = wsParse(buf); f; f = wsParse(buf)) {
      buf = buf.subarray(f.used);
      if (f.opcode === 8) return void socket.end(wsFrame(8, f.payload, false));
      socket.write(wsFrame(f.opcode, f.payload, false));
    }
  };
  socket.on('data', onData);
  socket.on('error', () => socket.destroy());
  if (head.length > 0) onData(Buffer.alloc(0));
}

// ---- a raw HTTP/1.1 client side: responses parsed off a socket, in order ----

interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
  trailers: Record<string, string>;
}

function parseHead(text: string): { status: number; headers: Record<string, string> } {
  const [line, ...rest] = text.split('\r\n');
  const headers: Record<string, string> = {};
  for (const h of rest) {
    const i = h.indexOf(':');
    const k = h.slice(0, i).trim().toLowerCase();
    headers[k] = headers[k] === undefined ? h.slice(i + 1).trim() : `${headers[k]}, ${h.slice(i + 1).trim()}`;
  }
  return { status: Number(/^HTTP\/1\.1 (\d{3})/.exec(line ?? '')?.[1] ?? 0), headers };
}

/** One response at the start of `b` (undefined: incomplete). `noBody`: the answer to a HEAD. */
function parseResponse(b: Buffer, noBody: boolean): { res: RawResponse; used: number } | undefined {
  const end = b.indexOf('\r\n\r\n');
  if (end < 0) return undefined;
  const { status, headers } = parseHead(b.subarray(0, end).toString('latin1'));
  let off = end + 4;
  const trailers: Record<string, string> = {};
  if (noBody || status < 200 || status === 204 || status === 304) return { res: { status, headers, body: Buffer.alloc(0), trailers }, used: off };
  if (headers['transfer-encoding']?.toLowerCase() === 'chunked') {
    const parts: Buffer[] = [];
    for (;;) {
      const eol = b.indexOf('\r\n', off);
      if (eol < 0) return undefined;
      const size = parseInt(b.subarray(off, eol).toString('latin1'), 16);
      off = eol + 2;
      if (size === 0) {
        const tEnd = b.indexOf('\r\n\r\n', off - 2);
        if (tEnd < 0) return undefined;
        Object.assign(trailers, parseHead(`X\r\n${b.subarray(off, tEnd).toString('latin1')}`).headers);
        return { res: { status, headers, body: Buffer.concat(parts), trailers }, used: tEnd + 4 };
      }
      if (b.length < off + size + 2) return undefined;
      parts.push(b.subarray(off, off + size));
      off += size + 2;
    }
  }
  const n = Number(headers['content-length'] ?? 0);
  if (b.length < off + n) return undefined;
  return { res: { status, headers, body: b.subarray(off, off + n), trailers }, used: off + n };
}

function wsRead(b: Buffer): { res: { opcode: number; payload: Buffer }; used: number } | undefined {
  const f = wsParse(b);
  return f && { res: f, used: f.used };
}

class RawClient {
  buf = Buffer.alloc(0);
  ended = false;
  private wake: (() => void) | undefined;
  private constructor(readonly sock: net.Socket) {
    sock.on('data', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      this.wake?.();
    });
    sock.on('end', () => {
      this.ended = true;
      this.wake?.();
    });
    sock.on('error', () => {});
  }
  static async connect(host: string, port: number): Promise<RawClient> {
    const s = net.connect({ host, port });
    await once(s, 'connect');
    return new RawClient(s);
  }
  /** Waits (bounded) until `take` can consume a prefix of the buffer. */
  async read<R>(take: (b: Buffer) => { res: R; used: number } | undefined, ms = 10_000): Promise<R> {
    const deadline = Date.now() + ms;
    for (;;) {
      const r = take(this.buf);
      if (r) {
        this.buf = this.buf.subarray(r.used);
        return r.res;
      }
      if (this.ended) throw new Error(`connection ended; unparsed: ${JSON.stringify(this.buf.toString('latin1').slice(0, 300))}`);
      if (Date.now() > deadline) throw new Error(`timed out; buffered: ${JSON.stringify(this.buf.toString('latin1').slice(0, 300))}`);
      await Promise.race([new Promise<void>((r2) => (this.wake = r2)), sleep(200)]);
    }
  }
  response(noBody = false): Promise<RawResponse> {
    return this.read((b) => parseResponse(b, noBody));
  }
  close(): void {
    this.sock.destroy();
  }
}

// ---- Node and curl clients ----

interface NodeResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  trailers: NodeJS.Dict<string>;
  localPort: number;
  reused: boolean;
}

function request(host: string, port: number, opts: http.RequestOptions & { body?: Buffer; chunks?: Buffer[] }): Promise<NodeResponse> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host, port, ...opts, headers: { host: SVC, ...opts.headers } }, (res) => {
      const localPort = res.socket?.localPort ?? 0;
      const parts: Buffer[] = [];
      res.on('data', (d: Buffer) => parts.push(d));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(parts), trailers: res.trailers, localPort, reused: req.reusedSocket }),
      );
      res.on('error', reject);
    });
    req.on('error', reject);
    req.setTimeout(20_000, () => req.destroy(new Error('request timed out')));
    if (opts.headers && (opts.headers as Record<string, string>).expect === '100-continue') req.on('continue', () => void writeAll(req, opts.body ?? Buffer.alloc(0)));
    else if (opts.chunks) {
      void (async () => {
        for (const c of opts.chunks!) {
          req.write(c);
          await sleep(20);
        }
        req.end();
      })();
    } else if (opts.body) void writeAll(req, opts.body);
    else req.end();
  });
}

function curl(args: string[], stdin?: Buffer): Promise<{ code: number; stdout: Buffer; stderr: string }> {
  return new Promise((resolve, reject) => {
    const c = spawn('curl', ['-sS', '--max-time', '20', ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let err = '';
    c.stdout.on('data', (d: Buffer) => out.push(d));
    c.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    c.on('error', reject);
    c.on('close', (code) => resolve({ code: code ?? -1, stdout: Buffer.concat(out), stderr: err }));
    c.stdin.end(stdin);
  });
}

describe('HTTP end to end through client and server proxies', () => {
  let env: MeshEnv;
  let app1: http.Server;
  let app2: http2.Http2Server;
  let out: string;
  let url: string;
  let resolveArg: string[];
  const h2Cancelled: string[] = [];
  const h2Open = new Set<string>();

  before(async () => {
    env = await MeshEnv.start({
      subnet: 42,
      pods: [
        { name: 'web', namespace: 'shop' },
        { name: 'api', namespace: 'shop', ports: [{ port: H1, name: 'http' }, { port: H2, name: 'h2' }] },
      ],
      manifests: MANIFESTS,
    });
    out = env.pod('web').outboundIp;
    url = `http://${SVC}:${H1}`;
    resolveArg = ['--resolve', `${SVC}:${H1}:${out}`];
    app1 = http.createServer(h1App);
    app1.on('upgrade', wsEcho);
    app2 = http2.createServer();
    app2.on('stream', (stream, headers) => {
      stream.on('error', () => {});
      const id = `${String(headers[':path'])}#${stream.id ?? 0}@${stream.session?.socket?.remotePort ?? 0}`;
      h2Open.add(id);
      stream.on('close', () => {
        h2Open.delete(id);
        if (stream.rstCode !== undefined && stream.rstCode !== 0) h2Cancelled.push(String(headers[':path']));
      });
      const path = String(headers[':path']);
      if (path === '/big') {
        stream.respond({ ':status': 200, 'content-length': String(BIG.length) });
        void writeAll(stream, BIG);
      } else if (path === '/trailers') {
        stream.respond({ ':status': 200, 'x-h2': 'head' }, { waitForTrailers: true });
        stream.on('wantTrailers', () => stream.sendTrailers({ 'x-h2-trailer': 'tail', 'x-count': '2' }));
        stream.write('a');
        stream.end('b');
      } else if (path === '/early') {
        // Answers (with trailers) without waiting for the request body, which the client is still sending.
        stream.respond({ ':status': 200 }, { waitForTrailers: true });
        stream.on('wantTrailers', () => stream.sendTrailers({ 'x-early': 'yes' }));
        stream.end('early');
      } else if (path === '/hash') {
        const h = createHash('sha256');
        let n = 0;
        stream.on('data', (d: Buffer) => {
          h.update(d);
          n += d.length;
        });
        stream.on('end', () => {
          stream.respond({ ':status': 200 });
          stream.end(JSON.stringify({ n, sha: h.digest('hex') }));
        });
      } else {
        stream.respond({ ':status': 200, 'content-type': 'text/plain' });
        stream.end(`h2 ${path}`);
      }
    });
    const ip = env.pod('api').appIp;
    await Promise.all([new Promise<void>((r) => app1.listen(H1, ip, r)), new Promise<void>((r) => app2.listen(H2, ip, r))]);
  });

  after(async () => {
    app1?.closeAllConnections();
    app1?.close();
    app2?.close();
    await env?.stop();
  });

  describe('HTTP/1.1 with curl', () => {
    it('response headers are preserved and HEAD gets no body', T, async () => {
      const r = await curl([...resolveArg, '-i', `${url}/trailers`]);
      assert.equal(r.code, 0, r.stderr);
      const text = r.stdout.toString();
      assert.match(text, /^HTTP\/1\.1 200/);
      assert.match(text, /set-cookie: a=1\r\n/i);
      assert.match(text, /set-cookie: b=2\r\n/i);
      assert.match(text, /x-custom: kept\r\n/i);
      // curl -i prints the body, then the trailers.
      assert.match(text, /\r\n\r\npart1;part2x-checksum: abc123\r\n$/);
      const head = await curl([...resolveArg, '-I', `${url}/head`]);
      assert.equal(head.code, 0, head.stderr);
      assert.match(head.stdout.toString(), /content-length: 1234\r\n/i);
      assert.match(head.stdout.toString(), /\r\nx-head: yes\r\n/i);
      assert.match(head.stdout.toString(), /\r\n\r\n$/, 'no body after the head');
    });

    it('keeps the connection alive across several requests', T, async () => {
      const r = await curl(['-v', ...resolveArg, `${url}/a`, `${url}/b`, `${url}/c`]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout.toString(), 'path GET /apath GET /bpath GET /c');
      assert.equal((r.stderr.match(/Re-?using existing connection/g) ?? []).length, 2, r.stderr);
      assert.equal((r.stderr.match(/Connected to /g) ?? []).length, 1);
    });

    it('uploads 20 MB with Expect: 100-continue and downloads 20 MB, checked by hash', T, async () => {
      const file = join(env.dir, 'big.bin');
      await writeFile(file, BIG);
      const up = await curl(['-v', ...resolveArg, '-H', 'Expect: 100-continue', '--data-binary', `@${file}`, `${url}/hash`]);
      assert.equal(up.code, 0, up.stderr);
      assert.match(up.stderr, /HTTP\/1\.1 100 Continue/);
      const got = JSON.parse(up.stdout.toString()) as { n: number; sha: string };
      assert.deepEqual([got.n, got.sha], [BIG.length, BIG_SHA]);
      const down = await curl([...resolveArg, `${url}/big`]);
      assert.equal(down.code, 0, down.stderr);
      assert.equal(down.stdout.length, BIG.length);
      assert.equal(sha(down.stdout), BIG_SHA);
    });

    it('a chunked upload is echoed back chunked', T, async () => {
      const body = randomBytes(300_000);
      const r = await curl(['-i', ...resolveArg, '-H', 'Transfer-Encoding: chunked', '--data-binary', '@-', `${url}/echo`], body);
      assert.equal(r.code, 0, r.stderr);
      const end = r.stdout.indexOf('\r\n\r\n');
      const { status, headers } = parseHead(r.stdout.subarray(0, end).toString('latin1'));
      assert.equal(status, 200);
      assert.equal(headers['transfer-encoding'], 'chunked');
      assert.equal(headers['x-req-te'], 'chunked');
      assert.ok(sha(r.stdout.subarray(end + 4)) === sha(body), 'the echoed body differs');
    });
  });

  describe('HTTP/1.1 with node:http', () => {
    it('keep-alive: one connection carries chunked, HEAD, 204, 304 and plain requests', T, async () => {
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      try {
        const chunks = [Buffer.from('one,'), Buffer.from('two,'), Buffer.from('three')];
        const rs: NodeResponse[] = [];
        rs.push(await request(out, H1, { agent, method: 'POST', path: '/echo', chunks }));
        rs.push(await request(out, H1, { agent, method: 'HEAD', path: '/head' }));
        rs.push(await request(out, H1, { agent, path: '/status?code=204' }));
        rs.push(await request(out, H1, { agent, path: '/status?code=304', headers: { 'if-none-match': '"v1"' } }));
        rs.push(await request(out, H1, { agent, path: '/last' }));
        assert.deepEqual(rs.map((r) => r.status), [200, 200, 204, 304, 200]);
        assert.equal(rs[0]!.body.toString(), 'one,two,three');
        assert.equal(rs[0]!.headers['x-req-te'], 'chunked');
        assert.equal(rs[0]!.headers['transfer-encoding'], 'chunked');
        assert.equal(rs[1]!.headers['content-length'], '1234');
        assert.equal(rs[1]!.body.length, 0);
        assert.equal(rs[2]!.body.length, 0);
        assert.equal(rs[3]!.headers.etag, '"v1"');
        assert.equal(rs[4]!.body.toString(), 'path GET /last');
        assert.deepEqual(rs.map((r) => r.reused), [false, true, true, true, true]);
        assert.equal(new Set(rs.map((r) => r.localPort)).size, 1);
      } finally {
        agent.destroy();
      }
    });

    it('Expect: 100-continue: the client gets 100 before it sends the body', T, async () => {
      const body = BIG.subarray(0, 3_000_000);
      const r = await request(out, H1, { agent: false, method: 'POST', path: '/hash', headers: { expect: '100-continue', 'content-length': String(body.length) }, body });
      assert.equal(r.status, 200);
      assert.deepEqual(JSON.parse(r.body.toString()), { n: body.length, sha: sha(body), 'x-req-te': '', 'x-req-cl': String(body.length) });
    });

    it('20 MB up and down with content-length, checked by hash', T, async () => {
      const up = await request(out, H1, { agent: false, method: 'POST', path: '/hash', headers: { 'content-length': String(BIG.length) }, body: BIG });
      assert.equal((JSON.parse(up.body.toString()) as { sha: string }).sha, BIG_SHA);
      const down = await request(out, H1, { agent: false, path: '/big' });
      assert.equal(down.headers['content-length'], String(BIG.length));
      assert.equal(sha(down.body), BIG_SHA);
    });

    it('response trailers and repeated headers are preserved', T, async () => {
      const r = await request(out, H1, { agent: false, path: '/trailers', headers: { te: 'trailers' } });
      assert.equal(r.body.toString(), 'part1;part2');
      assert.deepEqual(r.headers['set-cookie'], ['a=1', 'b=2']);
      assert.equal(r.headers['x-custom'], 'kept');
      assert.equal(r.trailers['x-checksum'], 'abc123');
    });
  });

  describe('HTTP/1.1 on a raw socket', () => {
    it('pipelining: requests written back to back get their responses in order', T, async () => {
      const c = await RawClient.connect(out, H1);
      try {
        const req = (m: string, p: string): string => `${m} ${p} HTTP/1.1\r\nhost: ${SVC}\r\n\r\n`;
        c.sock.write(req('GET', '/p1') + req('GET', '/p2'));
        const a = await c.response();
        const b = await c.response();
        assert.deepEqual([a.status, a.body.toString(), b.status, b.body.toString()], [200, 'path GET /p1', 200, 'path GET /p2']);
        // Bodiless answers must not desynchronise the connection.
        c.sock.write(req('HEAD', '/head') + req('GET', '/status?code=204') + req('GET', '/status?code=304') + req('GET', '/p3'));
        const h = await c.response(true);
        assert.deepEqual([h.status, h.headers['content-length']], [200, '1234']);
        assert.equal((await c.response()).status, 204);
        assert.equal((await c.response()).status, 304);
        const last = await c.response();
        assert.deepEqual([last.status, last.body.toString()], [200, 'path GET /p3']);
        assert.equal(c.buf.length, 0, 'no stray bytes after the responses');
      } finally {
        c.close();
      }
    });

    it('chunked trailers reach a raw client', T, async () => {
      const c = await RawClient.connect(out, H1);
      try {
        c.sock.write(`GET /trailers HTTP/1.1\r\nhost: ${SVC}\r\nte: trailers\r\n\r\n`);
        const r = await c.response();
        assert.equal(r.body.toString(), 'part1;part2');
        assert.equal(r.trailers['x-checksum'], 'abc123');
      } finally {
        c.close();
      }
    });

    it('Upgrade: a WebSocket handshake and frames go through both proxies', T, async () => {
      const c = await RawClient.connect(out, H1);
      try {
        const key = randomBytes(16).toString('base64');
        c.sock.write(`GET /ws HTTP/1.1\r\nhost: ${SVC}\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-key: ${key}\r\nsec-websocket-version: 13\r\n\r\n`);
        const hs = await c.read((b) => {
          const end = b.indexOf('\r\n\r\n');
          return end < 0 ? undefined : { res: parseHead(b.subarray(0, end).toString('latin1')), used: end + 4 };
        });
        assert.equal(hs.status, 101);
        assert.equal(hs.headers['sec-websocket-accept'], wsAccept(key));
        assert.equal(hs.headers.upgrade?.toLowerCase(), 'websocket');
        assert.equal(hs.headers['x-ws-app'], 'echo');
        const big = randomBytes(200_000);
        c.sock.write(Buffer.concat([wsFrame(1, Buffer.from('hello mesh'), true), wsFrame(2, big, true)]));
        const f1 = await c.read(wsRead);
        assert.deepEqual([f1.opcode, f1.payload.toString()], [1, 'hello mesh']);
        const f2 = await c.read(wsRead);
        assert.equal(f2.opcode, 2);
        assert.ok(f2.payload.equals(big), 'the binary frame came back intact');
        c.sock.write(wsFrame(8, Buffer.from([0x03, 0xe8]), true));
        const close = await c.read(wsRead);
        assert.equal(close.opcode, 8);
      } finally {
        c.close();
      }
    });
  });

  describe('HTTP/2 with prior knowledge', () => {
    let session: http2.ClientHttp2Session;
    before(async () => {
      session = http2.connect(`http://${out}:${H2}`);
      session.on('error', () => {});
      await once(session, 'connect');
    });
    after(() => session?.close());

    function h2get(path: string, headers: http2.OutgoingHttpHeaders = {}, onResponse?: (s: http2.ClientHttp2Stream) => void): Promise<{ status: number; headers: http2.IncomingHttpHeaders; body: Buffer; trailers?: http2.IncomingHttpHeaders }> {
      return new Promise((resolve, reject) => {
        const s = session.request({ ':path': path, ':authority': `${SVC}:${H2}`, ...headers }, { endStream: headers[':method'] === undefined || headers[':method'] === 'GET' });
        let status = 0;
        let hs: http2.IncomingHttpHeaders = {};
        let trailers: http2.IncomingHttpHeaders | undefined;
        const parts: Buffer[] = [];
        s.on('response', (h) => {
          hs = h;
          status = Number(h[':status']);
          onResponse?.(s);
        });
        s.on('trailers', (t: http2.IncomingHttpHeaders) => (trailers = t));
        s.on('data', (d: Buffer) => parts.push(d));
        s.on('end', () => resolve({ status, headers: hs, body: Buffer.concat(parts), trailers }));
        s.on('error', reject);
        s.setTimeout(20_000, () => s.close(http2.constants.NGHTTP2_CANCEL));
      });
    }

    it('100 concurrent streams on one session all complete', T, async () => {
      const rs = await Promise.all(Array.from({ length: 100 }, (_, i) => h2get(`/s/${i}`)));
      assert.deepEqual(rs.map((r) => r.status), Array(100).fill(200));
      assert.deepEqual(rs.map((r) => r.body.toString()), Array.from({ length: 100 }, (_, i) => `h2 /s/${i}`));
    });

    it('flow control: a 20 MB response read with a pause arrives intact; a 20 MB upload too', T, async () => {
      const r = await h2get('/big', {}, (s) => {
        s.pause(); // hold the window closed for a while: the proxies must wait, not buffer without bound
        setTimeout(() => s.resume(), 500);
      });
      assert.equal(r.status, 200);
      assert.equal(r.body.length, BIG.length);
      assert.equal(sha(r.body), BIG_SHA);
      const s = session.request({ ':path': '/hash', ':method': 'POST', ':authority': `${SVC}:${H2}` });
      const parts: Buffer[] = [];
      s.on('data', (d: Buffer) => parts.push(d));
      const done = once(s, 'end');
      await writeAll(s, BIG);
      await done;
      assert.deepEqual(JSON.parse(Buffer.concat(parts).toString()), { n: BIG.length, sha: BIG_SHA });
    });

    it('response trailers arrive', T, async () => {
      const r = await h2get('/trailers', { te: 'trailers' });
      assert.equal(r.body.toString(), 'ab');
      assert.equal(r.headers['x-h2'], 'head');
      assert.equal(r.trailers?.['x-h2-trailer'], 'tail');
      assert.equal(r.trailers?.['x-count'], '2');
    });

    it('trailers arrive when the response ends while the client is still sending', T, async () => {
      const s = session.request({ ':path': '/early', ':method': 'POST', ':authority': `${SVC}:${H2}`, te: 'trailers' });
      s.on('error', () => {});
      s.write(Buffer.alloc(1000));
      let trailers: http2.IncomingHttpHeaders | undefined;
      s.on('trailers', (t: http2.IncomingHttpHeaders) => (trailers = t));
      const parts: Buffer[] = [];
      s.on('data', (d: Buffer) => parts.push(d));
      await once(s, 'end');
      assert.equal(Buffer.concat(parts).toString(), 'early');
      assert.equal(trailers?.['x-early'], 'yes');
      s.close();
      // The proxies must not leave the app's stream half open (a stream slot lost on the upstream session).
      for (let i = 0; i < 100 && [...h2Open].some((x) => x.startsWith('/early')); i++) await sleep(50);
      assert.deepEqual([...h2Open].filter((x) => x.startsWith('/early')), []);
    });
  });

  describe('flows and metrics', () => {
    it('both proxies record HTTP/1.1 requests with the right protocol and verdict', T, async () => {
      await request(out, H1, { agent: false, path: '/flowcheck' });
      const at = (f: { Type: string; l7?: { http?: { url: string } } }): boolean => f.Type === 'L7' && f.l7?.http?.url.endsWith('/flowcheck') === true;
      const client = await env.waitFlow('web', at);
      assert.deepEqual([client.verdict, client.traffic_direction, client.is_reply, client.l7?.type], ['FORWARDED', 'EGRESS', true, 'RESPONSE']);
      assert.deepEqual([client.l7?.http?.protocol, client.l7?.http?.code, client.l7?.http?.method], ['HTTP/1.1', 200, 'GET']);
      const server = await env.waitFlow('api', at);
      assert.deepEqual([server.verdict, server.traffic_direction, server.is_reply, server.trellis?.transport], ['FORWARDED', 'INGRESS', true, 'mtls']);
      assert.equal(server.l7?.http?.code, 200);
      assert.equal(server.destination.pod_name, 'web');
      const conn = await env.waitFlow('api', (f) => f.Type === 'L3_L4' && f.traffic_direction === 'INGRESS' && f.verdict === 'FORWARDED');
      assert.equal(conn.trellis?.transport, 'mtls');
      assert.equal(conn.source.pod_name, 'web');
    });

    it('the WebSocket upgrade and the HTTP/2 requests are recorded', T, async () => {
      const ws = await env.waitFlow('api', (f) => f.Type === 'L7' && f.l7?.http?.url.endsWith('/ws') === true);
      assert.deepEqual([ws.verdict, ws.l7?.http?.code], ['FORWARDED', 101]);
      const h2 = await env.waitFlow('web', (f) => f.Type === 'L7' && f.l7?.http?.url.endsWith('/s/99') === true);
      assert.deepEqual([h2.verdict, h2.l7?.http?.protocol, h2.l7?.http?.code], ['FORWARDED', 'HTTP/2', 200]);
      const big = await env.waitFlow('api', (f) => f.Type === 'L7' && f.l7?.http?.url.endsWith(`:${H2}/big`) === true);
      assert.ok((big.trellis?.bytes_sent ?? 0) >= BIG.length, `bytes_sent ${big.trellis?.bytes_sent}`);
    });

    it('the server proxy counts requests and bytes in Istio metrics', T, async () => {
      const text = await env.metrics('api');
      const sum = (re: RegExp): number => [...text.matchAll(re)].reduce((a, m) => a + Number(m[1]), 0);
      const requests = sum(/^istio_requests_total\{[^}]*reporter="destination"[^}]*source_workload="web"[^}]*response_code="200"[^}]*\} (\d+)/gm);
      assert.ok(requests >= 100, `istio_requests_total 200 = ${requests}`);
      assert.ok(sum(/^istio_requests_total\{[^}]*response_code="204"[^}]*\} (\d+)/gm) >= 1);
      assert.ok(sum(/^istio_response_bytes_sum\{[^}]*reporter="destination"[^}]*\} ([\d.e+]+)/gm) >= 3 * BIG.length);
      assert.ok(sum(/^istio_request_bytes_sum\{[^}]*reporter="destination"[^}]*\} ([\d.e+]+)/gm) >= 3 * BIG.length);
      assert.equal(h2Cancelled.length, 0, `streams cancelled at the app: ${h2Cancelled.join(' ')}`);
    });
  });
});
