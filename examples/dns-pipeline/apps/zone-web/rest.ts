// zone-web's REST/JSON API over zone-api's gRPC calls, each call carrying a JWT as its per-RPC credential.
import * as grpc from '@grpc/grpc-js';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { once } from 'node:events';
import { deadline } from '../lib/grpc-client.ts';
import type { ChangeOp, RecordChangeMsg, ZoneServiceApi } from '../lib/protos.ts';
import { errorBody, httpStatusOf } from './grpc-http.ts';

export interface RestOptions {
  client: ZoneServiceApi;
  /** The bearer token zone-web sends when the request brings none of its own. */
  token: () => string;
  callTimeoutMs: number;
  maxBodyBytes: number;
  maxChanges: number;
  /** Records returned when ?limit is not given; ?limit=all streams the whole zone. */
  defaultLimit: number;
}

export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export function sendJson(res: ServerResponse, code: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(code, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
  res.end(text);
}

function sendGrpcError(res: ServerResponse, e: grpc.ServiceError): void {
  sendJson(res, httpStatusOf(e.code), errorBody(e));
}

/** The request's own `Authorization: Bearer …` is passed on (an admin's token); else zone-web's own token. */
function credentials(req: IncomingMessage, o: RestOptions): grpc.CallCredentials {
  const given = /^Bearer\s+([A-Za-z0-9_.-]+)$/i.exec(req.headers.authorization ?? '')?.[1];
  return grpc.credentials.createFromMetadataGenerator((_params, cb) => {
    const md = new grpc.Metadata();
    md.set('authorization', `Bearer ${given ?? o.token()}`);
    cb(null, md);
  });
}

function callOptions(req: IncomingMessage, o: RestOptions): grpc.CallOptions {
  return { deadline: deadline(o.callTimeoutMs), credentials: credentials(req, o) };
}

async function readJson(req: IncomingMessage, max: number): Promise<unknown> {
  if (!/^application\/json\b/i.test(req.headers['content-type'] ?? '')) throw new HttpError(415, 'UNSUPPORTED_MEDIA_TYPE', 'send application/json');
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req as AsyncIterable<Buffer>) {
    size += c.length;
    if (size > max) throw new HttpError(413, 'PAYLOAD_TOO_LARGE', `the body is larger than ${max} bytes`);
    chunks.push(c);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
  } catch {
    throw new HttpError(400, 'INVALID_ARGUMENT', 'the body is not JSON');
  }
}

export function listZones(req: IncomingMessage, res: ServerResponse, o: RestOptions): void {
  o.client.ListZones({}, new grpc.Metadata(), callOptions(req, o), (err, r) => {
    if (err) return sendGrpcError(res, err);
    sendJson(res, 200, { zones: r?.zones ?? [] });
  });
}

/** Streams the records as one JSON document, with backpressure from the HTTP client back to the gRPC stream. */
export async function getRecords(req: IncomingMessage, res: ServerResponse, zone: string, limitText: string | null, o: RestOptions): Promise<void> {
  const limit = limitText === 'all' ? Infinity : limitText === null ? o.defaultLimit : Number(limitText);
  if (!(limit >= 1)) throw new HttpError(400, 'INVALID_ARGUMENT', '?limit must be a positive number or "all"');
  const call = o.client.GetZone({ zone, batchSize: 1000 }, new grpc.Metadata(), { ...callOptions(req, o), deadline: deadline(o.callTimeoutMs * 10) });
  res.on('close', () => call.cancel());
  let sent = 0;
  let started = false;
  let truncated = false;
  try {
    for await (const m of call as AsyncIterable<{ zone: unknown; records: { name: string; type: string; ttl: number; data: string }[] }>) {
      if (!started) {
        started = true;
        res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' });
        res.write(`{"zone":${JSON.stringify(m.zone)},"records":[`);
      }
      let chunk = '';
      for (const r of m.records) {
        if (sent >= limit) {
          truncated = true;
          break;
        }
        chunk += `${sent++ === 0 ? '' : ','}${JSON.stringify({ name: r.name, type: r.type, ttl: r.ttl, data: r.data })}`;
      }
      if (chunk !== '' && !res.write(chunk)) await once(res, 'drain');
      if (truncated) {
        call.cancel();
        break;
      }
    }
  } catch (e) {
    const err = e as grpc.ServiceError;
    if (!started) return sendGrpcError(res, err);
    if (err.code !== grpc.status.CANCELLED || !truncated) {
      res.destroy(); // the client sees a cut-off document, not a complete wrong one
      return;
    }
  }
  if (!started) return sendJson(res, 502, { error: { code: 'UNKNOWN', message: 'zone-api sent nothing' } });
  res.end(`],"truncated":${truncated}}`);
}

const OPS: Record<string, ChangeOp> = { upsert: 'UPSERT', replace: 'REPLACE', delete: 'DELETE' };

function parseChanges(body: unknown, max: number): RecordChangeMsg[] {
  const list = (body as { changes?: unknown } | null)?.changes;
  if (!Array.isArray(list) || list.length === 0) throw new HttpError(400, 'INVALID_ARGUMENT', 'the body must be {"changes": [{"op": "upsert|replace|delete", "record": {...}}]}');
  if (list.length > max) throw new HttpError(413, 'PAYLOAD_TOO_LARGE', `at most ${max} changes per request`);
  return list.map((c: unknown, i) => {
    const o = (c ?? {}) as { op?: unknown; record?: Record<string, unknown> };
    const op = typeof o.op === 'string' ? OPS[o.op.toLowerCase()] : undefined;
    const r = o.record;
    if (!op || !r || typeof r !== 'object') throw new HttpError(400, 'INVALID_ARGUMENT', `changes[${i}] needs "op" (upsert, replace or delete) and "record"`);
    const str = (k: string): string => (typeof r[k] === 'string' ? r[k] : '');
    const ttl = typeof r.ttl === 'number' && Number.isInteger(r.ttl) && r.ttl >= 0 ? r.ttl : 0;
    return { op, record: { name: str('name'), type: str('type'), ttl, data: str('data') } };
  });
}

export async function putRecords(req: IncomingMessage, res: ServerResponse, zone: string, o: RestOptions): Promise<void> {
  const changes = parseChanges(await readJson(req, o.maxBodyBytes), o.maxChanges);
  const call = o.client.UpsertRecords(new grpc.Metadata(), callOptions(req, o), (err, r) => {
    if (err) return sendGrpcError(res, err);
    sendJson(res, 200, r);
  });
  for (let i = 0; i < changes.length; i += 500) call.write({ zone: i === 0 ? zone : '', changes: changes.slice(i, i + 500) });
  call.end();
}

export function deleteZone(req: IncomingMessage, res: ServerResponse, zone: string, o: RestOptions): void {
  o.client.DeleteZone({ zone }, new grpc.Metadata(), callOptions(req, o), (err, r) => {
    if (err) return sendGrpcError(res, err);
    sendJson(res, 200, r);
  });
}
