// The proxy's admin HTTP server, Envoy/Istio style, on a loopback port (15000 by default): /ready, /stats,
// /stats/prometheus and /metrics, /config_dump, POST /drain and /flows?last=N. Loopback only; every request is
// bounded (header size and time, no request body read, a connection cap, a cap on flows returned).
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { isIP, type AddressInfo } from 'node:net';
import type { Flow } from '../observe/flow.ts';
import type { ListenerStatus } from './listener-manager.ts';
import type { ProxyConfig } from './proxy-config.ts';
import { ProxyError } from './proxy-error.ts';

export const DEFAULT_ADMIN_PORT = 15000;
export const MAX_FLOWS = 1000;

/** What the admin server reads from the listener manager (ListenerManager satisfies it). */
export interface AdminListenerSource {
  readonly ready: boolean;
  readonly draining: boolean;
  readonly config: ProxyConfig | undefined;
  readonly bindErrors: readonly Error[];
  status(): ListenerStatus[];
}

export interface ProxyAdminOptions {
  /** A loopback address (default 127.0.0.1). */
  host?: string;
  /** Default 15000; 0 picks a free port. */
  port?: number;
  listeners: AdminListenerSource;
  /** POST /drain starts it and answers at once (e.g. drain the listeners, then exit). */
  drain: () => Promise<void> | void;
  /** Per-cluster stats (e.g. the cluster manager's stats()): numbers and booleans, and a `hosts` list. */
  clusterStats?: () => readonly object[];
  /** Prometheus text for /stats/prometheus and /metrics. */
  metrics?: { text: () => Promise<string> | string; contentType?: string };
  /** xDS status (versions, ACK/NACK) for /config_dump. */
  xdsStatus?: () => unknown;
  /** Anything else worth showing in /config_dump (e.g. the workload certificate's SPIFFE ID and serial). */
  extra?: () => Record<string, unknown>;
  /** The last `n` flows, oldest first. */
  flows?: (n: number) => readonly Flow[];
}

export interface ProxyAdmin {
  url: string;
  port: number;
  close(): Promise<void>;
}

const ENDPOINTS = ['/ready', '/stats', '/stats/prometheus', '/metrics', '/config_dump', '/drain (POST)', '/flows?last=N'];

function isLoopback(host: string): boolean {
  if (host === 'localhost' || host === '::1') return true;
  return isIP(host) === 4 && host.startsWith('127.');
}

function send(res: ServerResponse, status: number, body: string, type = 'text/plain; charset=utf-8'): void {
  res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
  res.end(body);
}

/** JSON of maps, sets and bigints as plain data. */
function toJson(value: unknown): string {
  const plain = (_k: string, v: unknown): unknown => (v instanceof Map ? Object.fromEntries(v as Map<string, unknown>) : v instanceof Set ? [...(v as Set<unknown>)] : typeof v === 'bigint' ? v.toString() : v);
  return `${JSON.stringify(value, plain, 2)}\n`;
}

/** The running config without secrets: extension filter configs are reduced to their keys, the policy to counts. */
export function configDump(config: ProxyConfig | undefined): unknown {
  if (config === undefined) return null;
  const kinds: Record<string, number> = {};
  for (const r of config.policy?.resources ?? []) kinds[r.kind] = (kinds[r.kind] ?? 0) + 1;
  return {
    listeners: config.listeners.map((l) => ({
      ...l,
      httpFilters: l.httpFilters.map((f) => (f.name === 'trellis.extension' ? { name: f.name, module: f.module, config: `<${Object.keys(f.config).length} keys, not shown>` } : f)),
    })),
    routes: config.routes,
    clusters: config.clusters,
    endpoints: config.endpoints,
    policy:
      config.policy === undefined
        ? null
        : { version: config.policy.version, trustDomain: config.policy.trustDomain, rootNamespace: config.policy.rootNamespace ?? null, resources: config.policy.resources.length, kinds },
  };
}

/** Envoy-style `name: value` lines. */
export function statsText(o: ProxyAdminOptions): string {
  const l = o.listeners;
  const lines: string[] = [`server.state: ${l.draining ? 'DRAINING' : l.config === undefined ? 'PRE_INITIALIZING' : 'LIVE'}`, `server.ready: ${l.ready ? 1 : 0}`];
  const status = l.status();
  lines.push(`listener_manager.total_listeners_active: ${status.length}`, `listener_manager.listener_bind_errors: ${l.bindErrors.length}`);
  let active = 0;
  for (const s of status) {
    active += s.active;
    const p = `listener.${s.name}.`;
    const c = s.counters;
    lines.push(
      `${p}downstream_cx_total: ${c.accepted}`,
      `${p}downstream_cx_active: ${s.active}`,
      `${p}downstream_cx_denied: ${c.denied}`,
      `${p}downstream_cx_rejected: ${c.rejected}`,
      `${p}ssl.handshake_failed: ${c.tlsFailed}`,
      `${p}http_connections: ${c.http}`,
      `${p}tcp_connections: ${c.tcp}`,
      `${p}tcp_sent_bytes: ${c.bytesSent}`,
      `${p}tcp_received_bytes: ${c.bytesReceived}`,
    );
  }
  lines.push(`server.downstream_cx_active: ${active}`);
  for (const cluster of o.clusterStats?.() ?? []) {
    const rec = cluster as Record<string, unknown>;
    const name = String(rec.name);
    numeric(lines, `cluster.${name}.`, rec);
    if (Array.isArray(rec.hosts)) {
      for (const h of rec.hosts as Record<string, unknown>[]) numeric(lines, `cluster.${name}.host.${String(h.address)}:${String(h.port)}.`, h);
    }
  }
  return `${lines.join('\n')}\n`;
}

function numeric(lines: string[], prefix: string, rec: Record<string, unknown>): void {
  for (const [k, v] of Object.entries(rec)) {
    if (typeof v === 'number') lines.push(`${prefix}${k}: ${v}`);
    else if (typeof v === 'boolean') lines.push(`${prefix}${k}: ${v ? 1 : 0}`);
  }
}

/** Starts the admin server; it binds loopback only (ProxyError `bind-failed` otherwise or when the port is taken). */
export async function startProxyAdmin(o: ProxyAdminOptions): Promise<ProxyAdmin> {
  const host = o.host ?? '127.0.0.1';
  if (!isLoopback(host)) throw new ProxyError('bind-failed', `the admin server binds loopback only, not ${host}`);
  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://admin');
    const path = url.pathname;
    if (path === '/drain') {
      req.resume(); // the body, if any, is discarded
      if (req.method !== 'POST') return send(res, 405, 'use POST /drain\n');
      if (!o.listeners.draining) void Promise.resolve(o.drain()).catch(() => undefined);
      return send(res, 200, 'draining\n');
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, 'only GET (and POST /drain)\n');
    switch (path) {
      case '/ready': {
        const l = o.listeners;
        return send(res, l.ready ? 200 : 503, `${l.draining ? 'DRAINING' : l.ready ? 'LIVE' : 'PRE_INITIALIZING'}\n`);
      }
      case '/stats':
        return send(res, 200, statsText(o));
      case '/stats/prometheus':
      case '/metrics':
        if (o.metrics === undefined) return send(res, 404, 'no metrics\n');
        return send(res, 200, await o.metrics.text(), o.metrics.contentType ?? 'text/plain; version=0.0.4; charset=utf-8');
      case '/config_dump': {
        const extra = o.extra?.() ?? {};
        const body = { ...extra, config: configDump(o.listeners.config), bind_errors: o.listeners.bindErrors.map((e) => e.message), xds: o.xdsStatus?.() ?? null };
        return send(res, 200, toJson(body), 'application/json');
      }
      case '/flows': {
        if (o.flows === undefined) return send(res, 404, 'no flows\n');
        const raw = url.searchParams.get('last') ?? '100';
        const n = Number(raw);
        if (!/^\d{1,7}$/.test(raw) || !Number.isSafeInteger(n)) return send(res, 400, `last must be a whole number (at most ${MAX_FLOWS})\n`);
        return send(res, 200, toJson(o.flows(Math.min(n, MAX_FLOWS)).slice(-MAX_FLOWS)), 'application/json');
      }
      default:
        return send(res, 404, `not found; endpoints: ${ENDPOINTS.join(' ')}\n`);
    }
  };
  const server = createServer({ maxHeaderSize: 8 * 1024 }, (req, res) => {
    handle(req, res).catch((e: unknown) => {
      if (!res.headersSent) send(res, 500, `${(e as Error).message}\n`);
      else res.destroy();
    });
  });
  server.headersTimeout = 5_000;
  server.requestTimeout = 10_000;
  server.keepAliveTimeout = 5_000;
  server.maxConnections = 64;
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) => reject(new ProxyError('bind-failed', `admin server ${host}:${o.port ?? DEFAULT_ADMIN_PORT}: ${err.message}`)));
    server.listen(o.port ?? DEFAULT_ADMIN_PORT, host, () => resolve());
  });
  const addr = server.address() as AddressInfo;
  const shown = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  return {
    url: `http://${shown}:${addr.port}`,
    port: addr.port,
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
}
