// `trellis policy check`: one flow from flags, or a batch of flows as JSON lines, decided with the deciding rule.
import { readFileSync } from 'node:fs';
import { stringify } from 'yaml';
import type { EnforcementMode, FlowQuery } from '../policy/decision.ts';
import { EndpointError, resolveEndpoint } from '../policy/endpoint.ts';
import { decisionJson, decisionText } from '../policy/explain.ts';
import type { HttpRequest } from '../policy/http.ts';
import type { Protocol } from '../policy/ir.ts';
import { CliError } from './cli-error.ts';
import type { Io } from './io.ts';
import { loadCluster, type Loaded } from './load-cluster.ts';

export interface CheckOptions {
  file: string[];
  from?: string;
  to?: string;
  port?: string;
  protocol?: string;
  httpMethod?: string;
  httpPath?: string;
  httpHost?: string;
  httpHeader?: string[];
  enforcementMode?: string;
  output?: string;
  flows?: string;
}

export function parseProtocol(v: string | undefined): Protocol {
  const p = (v ?? 'TCP').toUpperCase();
  if (p !== 'TCP' && p !== 'UDP' && p !== 'SCTP') throw new CliError('usage', `--protocol must be TCP, UDP or SCTP, not "${v ?? ''}"`);
  return p;
}

export function parsePort(v: unknown, what = '--port'): number {
  const n = typeof v === 'number' ? v : typeof v === 'string' && /^[0-9]+$/.test(v) ? Number(v) : NaN;
  if (!Number.isInteger(n) || n < 1 || n > 65535) throw new CliError('usage', `${what} must be a port number 1-65535, not ${JSON.stringify(v)}`);
  return n;
}

export function parseMode(v: string | undefined): EnforcementMode {
  const m = v ?? 'default';
  if (m !== 'default' && m !== 'always' && m !== 'never') throw new CliError('usage', `--enforcement-mode must be default, always or never, not "${m}"`);
  return m;
}

function parseHeaders(list: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const h of list) {
    const i = h.search(/[=:]/);
    if (i <= 0) throw new CliError('usage', `--http-header must be NAME=VALUE, not "${h}"`);
    out[h.slice(0, i).trim()] = h.slice(i + 1).trim();
  }
  return out;
}

function resolve(loaded: Loaded, ref: string | { ip: string } | { pod: string }, what: string) {
  try {
    return resolveEndpoint(loaded.cluster, ref);
  } catch (e) {
    if (e instanceof EndpointError) throw new CliError(e.code, `${what}: ${e.message}`);
    throw e;
  }
}

export function runCheck(opts: CheckOptions, io: Io): number {
  const output = opts.output ?? 'text';
  if (!['text', 'json', 'yaml'].includes(output)) throw new CliError('usage', `-o must be text, json or yaml, not "${output}"`);
  const mode = parseMode(opts.enforcementMode);
  if (opts.flows !== undefined) {
    if (opts.from !== undefined || opts.to !== undefined || opts.port !== undefined) throw new CliError('usage', '--flows replaces --from, --to and --port; give one or the other');
    if (opts.flows === '-' && opts.file.includes('-')) throw new CliError('usage', 'standard input cannot hold both the manifests (-f -) and the flows (--flows -)');
    const text = opts.flows === '-' ? io.readStdin() : readFlowsFile(opts.flows);
    const loaded = loadCluster(opts.file, io);
    const queries = parseFlows(loaded, text, opts.flows === '-' ? '<stdin>' : opts.flows);
    for (const q of queries) io.out(JSON.stringify(decisionJson(q, loaded.engine.decide(q, mode))));
    return 0;
  }
  const missing = (['from', 'to', 'port'] as const).filter((k) => opts[k] === undefined);
  if (missing.length > 0) throw new CliError('usage', `missing ${missing.map((m) => `--${m}`).join(', ')} (or give --flows FILE)`);
  const port = parsePort(opts.port);
  const protocol = parseProtocol(opts.protocol);
  const http: HttpRequest = {};
  if (opts.httpMethod !== undefined) http.method = opts.httpMethod;
  if (opts.httpPath !== undefined) http.path = opts.httpPath;
  if (opts.httpHost !== undefined) http.host = opts.httpHost;
  if (opts.httpHeader && opts.httpHeader.length > 0) http.headers = parseHeaders(opts.httpHeader);
  const loaded = loadCluster(opts.file, io);
  const q: FlowQuery = { from: resolve(loaded, opts.from ?? '', '--from'), to: resolve(loaded, opts.to ?? '', '--to'), port, protocol };
  if (Object.keys(http).length > 0) q.http = http;
  const d = loaded.engine.decide(q, mode);
  if (output === 'json') io.out(JSON.stringify(decisionJson(q, d), null, 2));
  else if (output === 'yaml') io.out(stringify(decisionJson(q, d)).trimEnd());
  else io.out(decisionText(q, d));
  return 0;
}

function readFlowsFile(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    throw new CliError('not-found', `${path}: no such file`);
  }
}

/** Parses every line first and reports every bad one, so a batch either runs whole or not at all. */
function parseFlows(loaded: Loaded, text: string, name: string): FlowQuery[] {
  const errors: string[] = [];
  const out: FlowQuery[] = [];
  text.split('\n').forEach((line, i) => {
    if (line.trim() === '') return;
    const at = `${name}:${i + 1}`;
    let o: Record<string, unknown>;
    try {
      const v: unknown = JSON.parse(line);
      if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new Error('not an object');
      o = v as Record<string, unknown>;
    } catch (e) {
      errors.push(`${at}: not a JSON object: ${(e as Error).message}`);
      return;
    }
    try {
      const q: FlowQuery = {
        from: resolve(loaded, endpointRef(o.from, 'from'), 'from'),
        to: resolve(loaded, endpointRef(o.to, 'to'), 'to'),
        port: parsePort(o.port, 'port'),
        protocol: parseProtocol(o.protocol === undefined ? undefined : typeof o.protocol === 'string' ? o.protocol : JSON.stringify(o.protocol)),
      };
      if (o.http !== undefined) q.http = httpRef(o.http);
      out.push(q);
    } catch (e) {
      if (e instanceof CliError) errors.push(`${at}: ${e.message}`);
      else throw e;
    }
  });
  if (errors.length > 0) throw new CliError('invalid-input', errors.join('\n'));
  return out;
}

function endpointRef(v: unknown, what: string): string | { ip: string } {
  if (typeof v === 'string' && v !== '') return v;
  if (v !== null && typeof v === 'object' && typeof (v as { ip?: unknown }).ip === 'string') return { ip: (v as { ip: string }).ip };
  if (v !== null && typeof v === 'object' && typeof (v as { pod?: unknown }).pod === 'string') return (v as { pod: string }).pod;
  throw new CliError('usage', `"${what}" must be "namespace/pod" or {"ip": "…"}`);
}

function httpRef(v: unknown): HttpRequest {
  if (v === null || typeof v !== 'object') throw new CliError('usage', '"http" must be an object');
  const o = v as Record<string, unknown>;
  const out: HttpRequest = {};
  for (const k of ['method', 'path', 'host'] as const) {
    if (o[k] === undefined) continue;
    if (typeof o[k] !== 'string') throw new CliError('usage', `"http.${k}" must be a string`);
    out[k] = o[k];
  }
  if (o.headers !== undefined) {
    if (o.headers === null || typeof o.headers !== 'object') throw new CliError('usage', '"http.headers" must be an object of strings');
    out.headers = {};
    for (const [k, h] of Object.entries(o.headers)) {
      if (typeof h !== 'string') throw new CliError('usage', `"http.headers.${k}" must be a string`);
      out.headers[k] = h;
    }
  }
  return out;
}
