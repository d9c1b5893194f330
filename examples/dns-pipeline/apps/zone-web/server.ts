// zone-web: one HTML page and a REST/JSON API to view and edit zones, calling zone-api over gRPC with a JWT.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { readFileSync } from 'node:fs';
import { bindHost, intEnv, listEnv, serviceAddress, stringEnv, type Env } from '../lib/env.ts';
import { CHANNEL_OPTIONS } from '../lib/grpc-client.ts';
import { signingKeyFromEnv, TokenSource, type SigningKey, type TokenOptions } from '../lib/jwt.ts';
import type { Logger } from '../lib/log.ts';
import { zoneServiceClient } from '../lib/protos.ts';
import { nameProblem } from '../lib/records.ts';
import { deleteZone, getRecords, HttpError, listZones, putRecords, sendJson, type RestOptions } from './rest.ts';

export interface ZoneWebConfig {
  host: string;
  port: number;
  zoneApi: string;
  key: SigningKey;
  token: TokenOptions;
  callTimeoutMs: number;
}

export function zoneWebConfig(env: Env): ZoneWebConfig {
  return {
    host: bindHost(env),
    port: intEnv(env, 'PORT', 8080, 0, 65535),
    zoneApi: serviceAddress(env, 'zone-api', 'grpc', 9090, 'ZONE_API_ADDR'),
    key: signingKeyFromEnv(env),
    token: {
      issuer: stringEnv(env, 'JWT_ISSUER', 'https://zone-web.dns.example'),
      audience: stringEnv(env, 'JWT_AUDIENCE', 'zone-api'),
      subject: stringEnv(env, 'JWT_SUBJECT', 'zone-web'),
      roles: env.JWT_ROLES === undefined ? ['editor'] : listEnv(env, 'JWT_ROLES'),
      ttlSeconds: intEnv(env, 'JWT_TTL_SECONDS', 300, 30, 86_400),
    },
    callTimeoutMs: intEnv(env, 'CALL_TIMEOUT_MS', 10_000, 100, 600_000),
  };
}

export interface ZoneWeb {
  port: number;
  close(): Promise<void>;
}

const PAGE = readFileSync(new URL('./page.html', import.meta.url));

export async function startZoneWeb(cfg: ZoneWebConfig, log: Logger): Promise<ZoneWeb> {
  const client = zoneServiceClient(cfg.zoneApi, CHANNEL_OPTIONS);
  const tokens = new TokenSource(cfg.key, cfg.token);
  const o: RestOptions = { client, token: () => tokens.token(), callTimeoutMs: cfg.callTimeoutMs, maxBodyBytes: 1024 * 1024, maxChanges: 10_000, defaultLimit: 1000 };

  const route = async (req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> => {
    const path = url.pathname;
    if (path === '/' || path === '/index.html') {
      if (req.method !== 'GET' && req.method !== 'HEAD') throw new HttpError(405, 'METHOD_NOT_ALLOWED', 'use GET');
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'content-length': PAGE.length, 'cache-control': 'no-store' });
      res.end(req.method === 'HEAD' ? undefined : PAGE);
      return;
    }
    if (path === '/healthz') return sendJson(res, 200, { status: 'ok' });
    if (path === '/api/zones') {
      if (req.method !== 'GET') throw new HttpError(405, 'METHOD_NOT_ALLOWED', 'use GET');
      return listZones(req, res, o);
    }
    const m = /^\/api\/zones\/([^/]+)(\/records)?$/.exec(path);
    if (!m) throw new HttpError(404, 'NOT_FOUND', `no route ${path}`);
    const zone = decodeURIComponent(m[1] ?? '').toLowerCase();
    const problem = nameProblem(zone);
    if (problem) throw new HttpError(400, 'INVALID_ARGUMENT', `zone "${zone}" ${problem}`);
    if (m[2]) {
      if (req.method === 'GET') return getRecords(req, res, zone, url.searchParams.get('limit'), o);
      if (req.method === 'PUT') return putRecords(req, res, zone, o);
      throw new HttpError(405, 'METHOD_NOT_ALLOWED', 'use GET or PUT');
    }
    if (req.method === 'DELETE') return deleteZone(req, res, zone, o);
    throw new HttpError(405, 'METHOD_NOT_ALLOWED', 'use DELETE');
  };

  const server = createServer((req, res) => {
    const started = Date.now();
    const url = new URL(req.url ?? '/', 'http://zone-web');
    if (url.pathname.startsWith('/api/')) {
      res.on('finish', () => log.info('request', { method: req.method, path: url.pathname, status: res.statusCode, ms: Date.now() - started }));
    }
    route(req, res, url).catch((e: unknown) => {
      if (res.headersSent) return void res.destroy();
      if (e instanceof HttpError) return sendJson(res, e.status, { error: { code: e.code, message: e.message } });
      log.error('request failed', { path: url.pathname, error: (e as Error).message });
      sendJson(res, 500, { error: { code: 'INTERNAL', message: 'internal error' } });
    });
  });
  server.requestTimeout = 60_000;
  server.headersTimeout = 10_000;
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(cfg.port, cfg.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as { port: number }).port;
  log.info('serving the zone editor and REST API', { address: `http://${cfg.host}:${port}/`, zoneApi: cfg.zoneApi, roles: cfg.token.roles.join(','), kid: cfg.key.kid });
  return {
    port,
    close: async () => {
      server.closeIdleConnections();
      await new Promise<void>((resolve) => {
        const t = setTimeout(() => {
          server.closeAllConnections();
        }, 2000);
        server.close(() => {
          clearTimeout(t);
          resolve();
        });
      });
      client.close();
    },
  };
}
