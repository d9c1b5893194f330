// `trellis observe`: read flows from an Observer API (the relay on 127.0.0.1:4245 by default, or one proxy) the way
// `hubble observe` does: --last/--first/--all/--follow, --since/--until, from/to pod, namespace, label, IP, service,
// verdict, protocol, port and HTTP filters, and -o compact|table|json|jsonpb. Options that name no side (--pod,
// --namespace, --ip, --label, --port) match either end, as Hubble's do: they become one filter per side.
import { Command, Option } from 'commander';
import { compileFlowFilters, type FlowFilterSpec } from '../observe/flow-filter.ts';
import { ObserveError } from '../observe/observe-error.ts';
import { ObserverClient } from '../observe/observer-client.ts';
import { timeNs, timestampOf, type Timestamp } from '../observe/observer-protos.ts';
import type { GetFlowsRequest } from '../observe/observer-server.ts';
import { DEFAULT_RELAY_PORT } from '../observe/relay.ts';
import { CliError } from './cli-error.ts';
import type { Io } from './io.ts';
import { formatEvent, OUTPUT_FORMATS, tableHeader, type OutputFormat } from './observe-format.ts';

export interface ObserveOptions {
  server: string;
  follow?: boolean;
  last?: string;
  first?: string;
  all?: boolean;
  since?: string;
  until?: string;
  fromPod?: string[];
  toPod?: string[];
  pod?: string[];
  fromNamespace?: string[];
  toNamespace?: string[];
  namespace?: string[];
  allNamespaces?: boolean;
  fromLabel?: string[];
  toLabel?: string[];
  label?: string[];
  fromIp?: string[];
  toIp?: string[];
  ip?: string[];
  fromService?: string[];
  toService?: string[];
  fromIdentity?: string[];
  toIdentity?: string[];
  verdict?: string[];
  protocol?: string[];
  port?: string[];
  fromPort?: string[];
  toPort?: string[];
  httpStatus?: string[];
  httpMethod?: string[];
  httpPath?: string[];
  trafficDirection?: string[];
  node?: string[];
  reply?: boolean;
  notPod?: string[];
  output: string;
}

const VERDICTS = ['FORWARDED', 'DROPPED', 'ERROR', 'AUDIT', 'REDIRECTED', 'TRACED', 'TRANSLATED'];
const DIRECTIONS = ['INGRESS', 'EGRESS'];
const collect = (v: string, prev: string[] = []): string[] => [...prev, v];
const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** `5m`, `1h30m`, `90s` ago (from `nowMs`), or an RFC 3339 time. */
export function parseTime(v: string, flag: string, nowMs: number): Timestamp {
  if (/^(\d+(ms|s|m|h|d))+$/.test(v)) {
    let ms = 0;
    for (const m of v.matchAll(/(\d+)(ms|s|m|h|d)/g)) ms += Number(m[1]) * (UNITS[m[2] ?? 's'] ?? 0);
    return timestampOf(BigInt(nowMs - ms) * 1_000_000n);
  }
  const ns = timeNs(v);
  if (ns === undefined) throw new CliError('usage', `${flag} ${JSON.stringify(v)}: expected a duration like 5m or 1h30m, or an RFC 3339 time like 2026-11-22T08:00:00Z`);
  return timestampOf(ns);
}

function count(v: string, flag: string): number {
  if (!/^\d{1,9}$/.test(v)) throw new CliError('usage', `${flag} ${JSON.stringify(v)}: expected a number of flows`);
  return Number(v);
}

function upperIn(vals: string[] | undefined, allowed: string[], flag: string): string[] | undefined {
  if (!vals) return undefined;
  return vals.map((v) => {
    const u = v.toUpperCase();
    if (!allowed.includes(u)) throw new CliError('usage', `${flag} ${JSON.stringify(v)}: expected one of ${allowed.join(', ')}`);
    return u;
  });
}

/** A pod selector with the namespace Hubble's CLI assumes (`-n`'s first value, else `default`) when none is given. */
function pods(vals: string[] | undefined, ns: string): string[] | undefined {
  return vals?.map((p) => (p.includes('/') ? p : `${ns}/${p}`));
}

const put = (f: FlowFilterSpec, k: keyof FlowFilterSpec, v: unknown[] | undefined): void => {
  if (v && v.length > 0) (f as Record<string, unknown>)[k] = [...((f as Record<string, unknown[] | undefined>)[k] ?? []), ...v];
};

/** The GetFlows request for these options; CliError `usage` for anything that cannot be understood. */
export function buildRequest(o: ObserveOptions, nowMs = Date.now()): GetFlowsRequest {
  if (o.namespace && o.allNamespaces) throw new CliError('usage', '-n/--namespace and -A/--all-namespaces cannot be combined');
  const given = [o.last !== undefined && '--last', o.first !== undefined && '--first', o.all && '--all'].filter(Boolean);
  if (given.length > 1) throw new CliError('usage', `${given.join(' and ')} cannot be combined`);
  if (o.first !== undefined && o.follow) throw new CliError('usage', '--first and --follow cannot be combined');
  const ns = o.namespace?.[0] ?? 'default';
  const base: FlowFilterSpec = {};
  put(base, 'source_pod', [...(pods(o.fromPod, ns) ?? []), ...(o.fromNamespace ?? []).map((n) => `${n}/`)]);
  put(base, 'destination_pod', [...(pods(o.toPod, ns) ?? []), ...(o.toNamespace ?? []).map((n) => `${n}/`)]);
  put(base, 'source_label', o.fromLabel);
  put(base, 'destination_label', o.toLabel);
  put(base, 'source_ip', o.fromIp);
  put(base, 'destination_ip', o.toIp);
  put(base, 'source_service', o.fromService);
  put(base, 'destination_service', o.toService);
  put(base, 'source_identity', o.fromIdentity?.map((i) => count(i, '--from-identity')));
  put(base, 'destination_identity', o.toIdentity?.map((i) => count(i, '--to-identity')));
  put(base, 'source_port', o.fromPort);
  put(base, 'destination_port', o.toPort);
  put(base, 'verdict', upperIn(o.verdict, VERDICTS, '--verdict'));
  put(base, 'traffic_direction', upperIn(o.trafficDirection, DIRECTIONS, '--traffic-direction'));
  put(base, 'protocol', o.protocol?.map((p) => p.toLowerCase()));
  put(base, 'http_status_code', o.httpStatus);
  put(base, 'http_method', o.httpMethod);
  put(base, 'http_path', o.httpPath);
  put(base, 'node_name', o.node);
  if (o.reply !== undefined) base.reply = [o.reply];
  // Side-less options: one filter where they name the source, one where they name the destination.
  const src: FlowFilterSpec = { ...base };
  const dst: FlowFilterSpec = { ...base };
  const either = [pods(o.pod, ns), o.namespace?.map((n) => `${n}/`), o.label, o.ip, o.port].some((v) => v && v.length > 0);
  put(src, 'source_pod', [...(pods(o.pod, ns) ?? []), ...(o.namespace ?? []).map((n) => `${n}/`)]);
  put(dst, 'destination_pod', [...(pods(o.pod, ns) ?? []), ...(o.namespace ?? []).map((n) => `${n}/`)]);
  put(src, 'source_label', o.label);
  put(dst, 'destination_label', o.label);
  put(src, 'source_ip', o.ip);
  put(dst, 'destination_ip', o.ip);
  put(src, 'source_port', o.port);
  put(dst, 'destination_port', o.port);
  const whitelist = either ? [src, dst] : Object.keys(base).length > 0 ? [base] : [];
  const blacklist: FlowFilterSpec[] = (o.notPod ?? []).length > 0 ? [{ source_pod: pods(o.notPod, ns) ?? [] }, { destination_pod: pods(o.notPod, ns) ?? [] }] : [];
  try {
    compileFlowFilters(whitelist, blacklist);
  } catch (e) {
    if (e instanceof ObserveError) throw new CliError('usage', `bad filter: ${e.message}`);
    throw e;
  }
  const req: GetFlowsRequest = { whitelist, blacklist, follow: o.follow === true };
  if (o.since !== undefined) req.since = parseTime(o.since, '--since', nowMs);
  if (o.until !== undefined) req.until = parseTime(o.until, '--until', nowMs);
  if (o.first !== undefined) Object.assign(req, { number: count(o.first, '--first'), first: true });
  else if (o.last !== undefined) req.number = count(o.last, '--last');
  else if (!o.all && !o.follow && o.since === undefined && o.until === undefined) req.number = 20; // Hubble's default
  return req;
}

export async function runObserve(o: ObserveOptions, io: Io, untilStopped: Promise<void>): Promise<number> {
  if (!OUTPUT_FORMATS.includes(o.output as OutputFormat)) throw new CliError('usage', `-o ${o.output}: expected one of ${OUTPUT_FORMATS.join(', ')}`);
  if (!/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/.test(o.server)) throw new CliError('usage', `--server ${o.server}: expected HOST:PORT`);
  const format = o.output as OutputFormat;
  const req = buildRequest(o);
  const client = new ObserverClient(o.server);
  const stream = client.getFlows(req);
  void untilStopped.then(() => stream.cancel());
  if (format === 'table') io.out(tableHeader());
  try {
    for await (const e of stream) {
      const { out, err } = formatEvent(e, format);
      if (out !== undefined) io.out(out);
      if (err !== undefined) io.err(err);
    }
  } catch (e) {
    if (e instanceof ObserveError && e.code === 'bad-filter') throw new CliError('usage', `${o.server}: ${e.message}`);
    if (e instanceof ObserveError) {
      // Not bad input: the server is down or failed. Exit 1, as hubble observe does.
      io.err(`error: cannot observe flows at ${o.server}: ${e.message}`);
      return 1;
    }
    throw e;
  } finally {
    client.close();
  }
  return 0;
}

/** Adds `trellis observe` to the program. */
export function registerObserveCommand(program: Command, io: Io, setCode: (c: number) => void, untilStopped: () => Promise<void>): void {
  program
    .command('observe')
    .description('observe flows through the Observer API (the relay, or one proxy), like hubble observe; each line names the deciding policy')
    .option('--server <host:port>', 'Observer API address (the relay by default)', `127.0.0.1:${DEFAULT_RELAY_PORT}`)
    .option('-f, --follow', 'keep streaming new flows')
    .option('--last <n>', 'the last N flows (default 20 without --follow, --since or --all)')
    .option('--first <n>', 'the first N flows held (N per node through the relay)')
    .option('--all', 'every flow held')
    .option('--since <t>', 'flows since a duration ago (5m, 1h30m) or an RFC 3339 time')
    .option('--until <t>', 'flows until a duration ago or an RFC 3339 time')
    .option('--from-pod <[ns/]pod>', 'source pod name prefix; repeatable', collect)
    .option('--to-pod <[ns/]pod>', 'destination pod name prefix; repeatable', collect)
    .option('--pod <[ns/]pod>', 'source or destination pod; repeatable', collect)
    .option('--from-namespace <ns>', 'source namespace; repeatable', collect)
    .option('--to-namespace <ns>', 'destination namespace; repeatable', collect)
    .option('-n, --namespace <ns>', 'source or destination namespace; repeatable', collect)
    .option('-A, --all-namespaces', 'every namespace (the default)')
    .option('--from-label <selector>', 'source label selector; repeatable', collect)
    .option('--to-label <selector>', 'destination label selector; repeatable', collect)
    .option('--label <selector>', 'source or destination label selector; repeatable', collect)
    .option('--from-ip <ip|cidr>', 'source IP or CIDR; repeatable', collect)
    .option('--to-ip <ip|cidr>', 'destination IP or CIDR; repeatable', collect)
    .option('--ip <ip|cidr>', 'source or destination IP or CIDR; repeatable', collect)
    .option('--from-service <[ns/]svc>', 'source service; repeatable', collect)
    .option('--to-service <[ns/]svc>', 'destination service; repeatable', collect)
    .option('--from-identity <n>', 'source numeric identity; repeatable', collect)
    .option('--to-identity <n>', 'destination numeric identity; repeatable', collect)
    .option('--verdict <v>', 'FORWARDED, DROPPED, ERROR or AUDIT; repeatable', collect)
    .option('--protocol <p>', 'tcp, udp or http; repeatable', collect)
    .option('--port <n>', 'source or destination port; repeatable', collect)
    .option('--from-port <n>', 'source port; repeatable', collect)
    .option('--to-port <n>', 'destination port; repeatable', collect)
    .option('--http-status <code>', 'HTTP status code or class prefix (404, 5+); repeatable', collect)
    .option('--http-method <m>', 'HTTP method; repeatable', collect)
    .option('--http-path <regex>', 'HTTP path regular expression; repeatable', collect)
    .option('--traffic-direction <d>', 'ingress or egress; repeatable', collect)
    .option('--node <name>', 'node (proxy) name, * wildcards; repeatable', collect)
    .option('--reply', 'only reply flows')
    .option('--not-pod <[ns/]pod>', 'hide flows from or to these pods (noisy workloads); repeatable', collect)
    .addOption(new Option('-o, --output <fmt>', 'compact, table, json or jsonpb').default('compact'))
    .action(async (o: ObserveOptions) => {
      setCode(await runObserve(o, io, untilStopped()));
    });
}
