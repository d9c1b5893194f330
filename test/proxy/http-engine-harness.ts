// Test support for the HTTP engine tests: the engine behind a small real acceptor on loopback (the listener
// manager's protocol detection, then handleConnection), the real UpstreamClusterManager over fixed endpoints,
// a rule-based PolicyEnforcer written here (deny by path prefix, naming a policy), real upstream servers
// (node:http, node:http2) and small client helpers.
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import type { Flow } from '../../src/observe/flow.ts';
import type { Endpoint } from '../../src/policy/endpoint.ts';
import type { ConnectionInfo, PolicyEnforcer, PolicyVerdict } from '../../src/proxy/contracts.ts';
import { TrellisHttpEngine } from '../../src/proxy/http/http-engine.ts';
import type { RequestRecord } from '../../src/proxy/http/engine-context.ts';
import { detectProtocol } from '../../src/proxy/protocol-detect.ts';
import { DEFAULT_LISTENER_LIMITS, type HttpFilterConfig, type ListenerConfig, type ListenerLimits, type ProxyCluster, type ProxyConfig } from '../../src/proxy/proxy-config.ts';
import { UpstreamClusterManager } from '../../src/proxy/upstream/cluster-manager.ts';
import { clusterSpec, endpointSet } from '../../src/proxy/upstream/cluster-fixtures.ts';
import { parseIp } from '../../src/resources/net.ts';
import type { EndpointSet, Route, RouteAction, RouteMatch, RouteConfig } from '../../src/routing/model.ts';

export function world(ip: string): Endpoint {
  return { type: 'world', ip, bytes: parseIp(ip)! };
}

const ALLOW: PolicyVerdict = { allowed: true, audit: false, message: 'allowed', policyName: 'allow-all' };

/** A PolicyEnforcer for tests: requests whose path starts with a denied prefix are denied by the named policy. */
export function pathPolicy(denied: Record<string, { kind: string; namespace: string; name: string }> = {}): PolicyEnforcer {
  return {
    endpointForIp: (ip) => world(ip),
    endpointForPod: () => undefined,
    decideConnection: () => ALLOW,
    decideRequest(_conn, req): PolicyVerdict {
      for (const prefix in denied) {
        if (!req.path.startsWith(prefix)) continue;
        const p = denied[prefix]!;
        const message = p.kind === 'AuthorizationPolicy' ? `RBAC: access denied by AuthorizationPolicy ${p.namespace}/${p.name}` : `denied by ${p.kind} ${p.namespace}/${p.name}`;
        return { allowed: false, audit: true, policy: p, policyName: `${p.kind} ${p.namespace}/${p.name}`, message, httpStatus: 403, direction: 'ingress' };
      }
      return { ...ALLOW, policy: { kind: 'AuthorizationPolicy', namespace: 'test', name: 'allow' }, direction: 'ingress' };
    },
  };
}

export function route(name: string, match: Partial<RouteMatch>, action: RouteAction | string, extra: Partial<Route> = {}): Route {
  const a: RouteAction = typeof action === 'string' ? { type: 'route', clusters: [{ cluster: action, weight: 100 }] } : action;
  return { name, match: { headers: [], ...match }, action: a, ...extra };
}

export interface TestCluster {
  spec: ProxyCluster;
  endpoints: EndpointSet;
}

export function cluster(name: string, ports: number[], over: Partial<ProxyCluster> = {}, address = '127.0.0.1'): TestCluster {
  return { spec: clusterSpec(name, over), endpoints: endpointSet(name, ports.map((port) => ({ address, port }))) };
}

export interface EngineSetup {
  routes: Route[];
  clusters: TestCluster[];
  filters?: HttpFilterConfig[];
  limits?: Partial<ListenerLimits>;
  /** Extra virtual hosts before the catch-all one that holds `routes`. */
  domains?: string[];
}

export const LISTENER = 'inbound|127.0.0.1|test';

export function configOf(s: EngineSetup): ProxyConfig {
  const listener: ListenerConfig = {
    name: LISTENER,
    direction: 'inbound',
    address: { host: '127.0.0.1', port: 0 },
    protocol: 'http',
    routeConfig: 'rc',
    httpFilters: s.filters ?? [],
    limits: { ...DEFAULT_LISTENER_LIMITS, ...s.limits },
  };
  const rc: RouteConfig = { name: 'rc', virtualHosts: [{ name: 'vh', domains: s.domains ?? ['*'], routes: s.routes }] };
  return {
    listeners: [listener],
    routes: new Map([['rc', rc]]),
    clusters: new Map(s.clusters.map((c) => [c.spec.name, c.spec])),
    endpoints: new Map(s.clusters.map((c) => [c.spec.name, c.endpoints])),
  };
}

export interface EngineHarness {
  engine: TrellisHttpEngine;
  clusters: UpstreamClusterManager;
  flows: Flow[];
  records: RequestRecord[];
  port: number;
  url: string;
  apply(s: EngineSetup): Promise<void>;
  close(): Promise<void>;
}

export async function startEngine(s: EngineSetup, policy: PolicyEnforcer = pathPolicy()): Promise<EngineHarness> {
  const flows: Flow[] = [];
  const records: RequestRecord[] = [];
  const clusters = new UpstreamClusterManager(() => undefined);
  const engine = new TrellisHttpEngine({
    clusters,
    policy,
    flows: { report: (f) => flows.push(f) },
    nodeName: 'test-node',
    onRequestComplete: (rec) => records.push(rec),
  });
  let config = configOf(s);
  const apply = async (next: EngineSetup): Promise<void> => {
    const c = configOf(next);
    clusters.update(c);
    await engine.applyConfig(c);
    config = c;
  };
  await apply(s);
  let ids = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    void detectProtocol(socket, { timeoutMs: 2000 }).then((d) => {
      if (d.protocol !== 'http1' && d.protocol !== 'http2') return void socket.destroy();
      const listener = config.listeners[0]!;
      const info: ConnectionInfo = {
        id: ++ids,
        listener,
        remote: { ip: socket.remoteAddress!, port: socket.remotePort! },
        local: { ip: socket.localAddress!, port: socket.localPort! },
        transport: 'plaintext',
        source: world(socket.remoteAddress!),
        destination: world(socket.localAddress!),
        admission: ALLOW,
        acceptedAt: process.hrtime.bigint(),
      };
      engine.handleConnection(socket, info, d.protocol);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    engine,
    clusters,
    flows,
    records,
    port,
    url: `http://127.0.0.1:${port}`,
    apply,
    async close() {
      engine.close();
      clusters.close();
      for (const so of sockets) so.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

export interface Upstream {
  port: number;
  requests: { method: string; url: string; headers: http.IncomingHttpHeaders; body: number; remotePort?: number }[];
  close(): Promise<void>;
}

/** An HTTP/1.1 upstream that answers JSON describing the request it got, unless `handler` takes over. */
export async function startHttpUpstream(name: string, handler?: (req: http.IncomingMessage, res: http.ServerResponse, n: number) => boolean | void): Promise<Upstream & { server: http.Server }> {
  const requests: Upstream['requests'] = [];
  const server = http.createServer((req, res) => {
    const entry = { method: req.method!, url: req.url!, headers: req.headers, body: 0, remotePort: req.socket.remotePort };
    requests.push(entry);
    if (handler?.(req, res, requests.length)) return;
    req.on('data', (c: Buffer) => (entry.body += c.length));
    req.on('end', () => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ server: name, method: req.method, url: req.url, headers: req.headers, body: entry.body }));
    });
  });
  // Upgraded sockets leave the server's own tracking: keep every socket to close them all.
  const sockets = new Set<net.Socket>();
  server.on('connection', (so: net.Socket) => {
    sockets.add(so);
    so.on('close', () => sockets.delete(so));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    server,
    port: (server.address() as AddressInfo).port,
    requests,
    close: () =>
      new Promise<void>((r) => {
        for (const so of sockets) so.destroy();
        server.close(() => r());
      }),
  };
}

/** An h2c upstream answering every stream with the given handler (default: 200 and the server's name). */
export async function startH2Upstream(name: string, handler?: (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => void): Promise<Upstream & { server: http2.Http2Server }> {
  const requests: Upstream['requests'] = [];
  const server = http2.createServer();
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on('session', (s) => {
    sessions.add(s);
    s.on('close', () => sessions.delete(s));
  });
  server.on('stream', (stream, headers) => {
    requests.push({ method: String(headers[':method']), url: String(headers[':path']), headers: headers, body: 0 });
    stream.on('error', () => {});
    if (handler) return handler(stream, headers);
    stream.respond({ ':status': 200, 'content-type': 'text/plain', 'x-server': name });
    stream.end(name);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    server,
    port: (server.address() as AddressInfo).port,
    requests,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sessions) s.destroy();
        server.close(() => r());
      }),
  };
}

export interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** One HTTP/1.1 request (a fresh connection unless an agent is given). */
export function request(url: string, opts: http.RequestOptions & { body?: string | Buffer } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { agent: false, ...opts }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks).toString() }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.setTimeout(5000, () => req.destroy(new Error('client timeout')));
    req.end(opts.body);
  });
}

/** One HTTP/2 request on a session; resolves with headers, body and trailers. */
export function h2request(session: http2.ClientHttp2Session, headers: http2.OutgoingHttpHeaders, body?: Buffer | string): Promise<Reply & { trailers: http2.IncomingHttpHeaders | undefined }> {
  return new Promise((resolve, reject) => {
    const s = session.request({ ':method': body === undefined ? 'GET' : 'POST', ...headers }, { endStream: body === undefined });
    let head: http2.IncomingHttpHeaders = {};
    let trailers: http2.IncomingHttpHeaders | undefined;
    const chunks: Buffer[] = [];
    s.on('response', (h: http2.IncomingHttpHeaders) => (head = h));
    s.on('trailers', (t: http2.IncomingHttpHeaders) => (trailers = t));
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('end', () => resolve({ status: Number(head[':status']), headers: head, body: Buffer.concat(chunks).toString(), trailers }));
    s.on('error', reject);
    if (body !== undefined) s.end(body);
  });
}

/** Resolves after `ms`. */
export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
