// The admin HTTP API: health, readiness, per-node config dumps and sync status, and Prometheus metrics.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { formatDiagnostic } from '../resources/diagnostics.ts';
import type { StreamStatus } from '../xds/ads-server.ts';
import { decodeAny } from '../xds/protos.ts';
import { shortType } from '../xds/type-urls.ts';
import type { ControlPlane } from './control-plane.ts';

export interface AdminServer {
  url: string;
  close(): Promise<void>;
}

/** Per node and type: what was sent, ACKed and NACKed, like `istioctl proxy-status`. */
export function syncStatus(streams: readonly StreamStatus[]): Record<string, unknown>[] {
  return streams.map((s) => ({
    node: s.node.id,
    namespace: s.node.namespace,
    pod: s.node.pod,
    stream: s.kind,
    connectedAt: s.connectedAt.toISOString(),
    types: Object.fromEntries(
      [...s.types].map(([type, t]) => [
        shortType(type),
        {
          sent: t.sentVersion ?? null,
          acked: t.ackedVersion ?? null,
          nacked: t.nack ? { version: t.nack.version, message: t.nack.message } : null,
          status: t.nack ? 'NACKED' : t.sentVersion === undefined ? 'NOT SENT' : t.ackedVersion === t.sentVersion ? 'SYNCED' : 'STALE',
          resources: t.lastResources.length,
        },
      ]),
    ),
  }));
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(`${JSON.stringify(body, null, 2)}\n`);
}

export async function startAdminServer(cp: ControlPlane, host: string, port: number): Promise<AdminServer> {
  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://admin');
    if (req.method !== 'GET') return json(res, 405, { error: 'only GET' });
    switch (url.pathname) {
      case '/healthz':
        res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
        return;
      case '/readyz': {
        const ready = cp.config !== undefined && cp.xdsPort > 0;
        const last = cp.lastReload;
        return json(res, ready ? 200 : 503, {
          ready,
          lastReload: last ? { at: last.at.toISOString(), applied: last.applied, errors: last.errors.map(formatDiagnostic) } : null,
        });
      }
      case '/debug/syncz':
        return json(res, 200, syncStatus(cp.ads.status()));
      case '/debug/config_dump': {
        const id = url.searchParams.get('node');
        const streams = cp.ads.status().filter((s) => id === null || s.node.id === id);
        if (id !== null && streams.length === 0) return json(res, 404, { error: `no connected node ${id}` });
        return json(
          res,
          200,
          streams.map((s) => ({
            node: s.node.id,
            resources: Object.fromEntries([...s.types].map(([type, t]) => [shortType(type), t.lastResources.map((r) => ({ name: r.name, version: r.version, resource: decodeAny(r.resource) }))])),
          })),
        );
      }
      case '/metrics':
        res.writeHead(200, { 'content-type': cp.metrics.registry.contentType });
        res.end(await cp.metrics.registry.metrics());
        return;
      default:
        return json(res, 404, { error: 'not found', endpoints: ['/healthz', '/readyz', '/debug/syncz', '/debug/config_dump?node=ID', '/metrics'] });
    }
  };
  const server = createServer((req, res) => {
    handle(req, res).catch((e: unknown) => json(res, 500, { error: (e as Error).message }));
  });
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const addr = server.address() as AddressInfo;
  const shownHost = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  return { url: `http://${shownHost}:${addr.port}`, close: () => new Promise<void>((r) => server.close(() => r())) };
}
