// `trellis authz check`: may this caller make this request (e.g. call /dns.v1.ZoneService/DeleteZone) to that
// workload, under Istio's AuthorizationPolicy, PeerAuthentication and RequestAuthentication, and which policy says so.
import type { Command, Option } from 'commander';
import { decideAuthz, type AuthzDecision, type AuthzRequest } from '../policy/authz-decide.ts';
import { buildAuthzModel, workloadPrincipal } from '../policy/authz-model.ts';
import { EndpointError, resolveEndpoint, type Endpoint } from '../policy/endpoint.ts';
import { CliError } from './cli-error.ts';
import type { Io } from './io.ts';
import { loadResources } from './load-cluster.ts';
import { buildCluster } from '../model/cluster.ts';
import { parsePort } from './policy-check.ts';

export interface AuthzCheckOptions {
  file: string[];
  from?: string;
  to?: string;
  path?: string;
  method?: string;
  port?: string;
  host?: string;
  header?: string[];
  jwt?: string;
  principal?: string;
  /** The time to check a token's exp/nbf at (ISO 8601 or seconds since the epoch); default now. */
  now?: string;
  output?: string;
}

function parseHeaders(list: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const h of list) {
    const i = h.search(/[=:]/);
    if (i <= 0) throw new CliError('usage', `--header must be NAME=VALUE, not "${h}"`);
    out[h.slice(0, i).trim().toLowerCase()] = h.slice(i + 1).trim();
  }
  return out;
}

function parseNow(v: string | undefined): number {
  if (v === undefined) return Date.now();
  if (/^[0-9]+(\.[0-9]+)?$/.test(v)) return Number(v) * 1000;
  const t = Date.parse(v);
  if (Number.isNaN(t)) throw new CliError('usage', `--now must be an ISO 8601 time or seconds since the epoch, not "${v}"`);
  return t;
}

function endpointName(e: Endpoint): string {
  if (e.type === 'pod') return e.pod.key;
  if (e.type === 'node') return `node ${e.node.name}`;
  return `world ${e.ip}`;
}

function locationText(d: AuthzDecision): string | undefined {
  const l = d.policy?.location;
  return l ? `${l.file}:${l.line}:${l.column}` : undefined;
}

export function runAuthzCheck(opts: AuthzCheckOptions, io: Io): number {
  const output = opts.output ?? 'text';
  if (output !== 'text' && output !== 'json') throw new CliError('usage', `-o must be text or json, not "${output}"`);
  const missing = (['from', 'to', 'path'] as const).filter((k) => opts[k] === undefined || opts[k] === '');
  if (missing.length > 0) throw new CliError('usage', `missing ${missing.map((m) => `--${m}`).join(', ')}`);
  const path = opts.path ?? '';
  if (!path.startsWith('/')) throw new CliError('usage', `--path must start with /, e.g. /package.Service/Method, not "${path}"`);
  const method = (opts.method ?? 'POST').toUpperCase();
  if (!/^[A-Z]+$/.test(method)) throw new CliError('usage', `--method must be an HTTP method such as POST, not "${opts.method ?? ''}"`);
  const headers = parseHeaders(opts.header ?? []);
  const now = parseNow(opts.now);
  if (opts.jwt !== undefined && !/^[A-Za-z0-9_.-]+$/.test(opts.jwt.replace(/^Bearer\s+/i, ''))) throw new CliError('usage', '--jwt must be a compact JWT (header.payload.signature)');
  if (opts.principal !== undefined && opts.principal.trim() === '') throw new CliError('usage', '--principal must not be empty');

  const { resources } = loadResources(opts.file, io);
  const cluster = buildCluster(resources);
  const resolve = (ref: string, what: string): Endpoint => {
    try {
      return resolveEndpoint(cluster, ref);
    } catch (e) {
      if (e instanceof EndpointError) throw new CliError(e.code, `${what}: ${e.message}`);
      throw e;
    }
  };
  const src = resolve(opts.from ?? '', '--from');
  const dst = resolve(opts.to ?? '', '--to');
  if (dst.type !== 'pod') throw new CliError('usage', `--to: ${endpointName(dst)} is not a pod; authorization policies apply to workloads`);
  let port: number;
  if (opts.port !== undefined) port = parsePort(opts.port);
  else {
    const first = dst.pod.ports.find((p) => p.protocol === 'TCP');
    if (!first) throw new CliError('usage', `--to: pod ${dst.pod.key} declares no TCP container port; give --port`);
    port = first.containerPort;
  }

  const model = buildAuthzModel(resources);
  const principal = opts.principal?.trim().replace(/^spiffe:\/\//, '') ?? (src.type === 'pod' ? workloadPrincipal(src.pod, model.trustDomain) : undefined);
  const req: AuthzRequest = {
    source: { ip: src.ip },
    destination: { pod: { namespace: dst.pod.namespace, labels: dst.pod.labels, ips: dst.pod.ips }, ip: dst.ip, port },
    http: { method, path, headers },
    now,
  };
  if (principal !== undefined) req.source.principal = principal;
  if (src.type === 'pod') req.source.namespace = src.pod.namespace;
  if (opts.host !== undefined && req.http) req.http.host = opts.host;
  if (opts.jwt !== undefined) req.jwt = opts.jwt.replace(/^Bearer\s+/i, '');

  const d = decideAuthz(model, req);
  const summary = {
    verdict: d.verdict === 'allow' ? 'allowed' : 'denied',
    reason: d.reason,
    message: d.message,
    source: { endpoint: endpointName(src), ip: src.ip, principal: principal ?? null, requestPrincipal: d.requestPrincipal ?? null },
    destination: { pod: dst.pod.key, ip: dst.ip, port },
    request: { method, path },
    policy: d.policy ? { kind: d.policy.kind, namespace: d.policy.namespace, name: d.policy.name, ruleIndex: d.policy.ruleIndex ?? null, field: d.policy.field, location: locationText(d) } : null,
    audit: d.audit,
    auditedBy: d.auditedBy.map((h) => ({ namespace: h.namespace, name: h.name, field: h.field, location: `${h.location.file}:${h.location.line}:${h.location.column}` })),
    dryRun: d.dryRun.map((x) => ({ action: x.action, namespace: x.policy.namespace, name: x.policy.name, field: x.policy.field })),
  };
  if (output === 'json') {
    io.out(JSON.stringify(summary, null, 2));
    return 0;
  }
  const lines = [
    `${d.verdict === 'allow' ? 'ALLOWED' : 'DENIED'}: ${summary.source.endpoint} (${principal ?? 'no mTLS identity'}) → ${dst.pod.key}:${port} ${method} ${path}`,
    `  why: ${d.message}`,
  ];
  if (d.policy) lines.push(`  decided by: ${d.policy.kind} ${d.policy.namespace}/${d.policy.name} ${d.policy.field} at ${locationText(d) ?? '?'}`);
  else lines.push(`  decided by: ${d.reason === 'no-allow-policies' ? 'default allow (no ALLOW policy applies)' : d.reason === 'no-allow-match' ? 'default deny (ALLOW policies apply and none matches)' : d.reason}`);
  if (d.requestPrincipal) lines.push(`  request principal: ${d.requestPrincipal}`);
  lines.push(`  audit: ${d.audit ? `yes (${summary.auditedBy.map((a) => `${a.namespace}/${a.name} ${a.field}`).join(', ')})` : 'no'}`);
  for (const x of summary.dryRun) lines.push(`  dry-run: ${x.action} ${x.namespace}/${x.name} ${x.field} would match`);
  io.out(lines.join('\n'));
  return 0;
}

/** Registers `authz check` on the program (so it inherits the program's output and exit handling). */
export function registerAuthzCommands(program: Command, fileOption: () => Option, io: Io, setCode: (code: number) => void): void {
  const collect = (v: string, prev: string[] = []): string[] => [...prev, v];
  program
    .command('authz')
    .description('answer offline what Istio authorization (AuthorizationPolicy, PeerAuthentication, RequestAuthentication) decides')
    .command('check')
    .description('decide one request to a workload, e.g. a gRPC method call, and name the policy that decides it')
    .addOption(fileOption())
    .option('--from <src>', 'caller: namespace/pod, pod (namespace default), workload name, or IP')
    .option('--to <dst>', 'callee: namespace/pod, pod, or workload name')
    .option('--path <p>', 'request path; a gRPC call is /package.Service/Method')
    .option('--method <m>', 'HTTP method', 'POST')
    .option('--port <n>', "destination port (default: the callee's first TCP container port)")
    .option('--host <h>', 'HTTP host (authority)')
    .option('--header <k=v>', 'request header; repeatable', collect)
    .option('--jwt <token>', 'a compact JWT the request carries (verified against the RequestAuthentication rules)')
    .option('--principal <p>', "the caller's mTLS identity (default: from its service account, cluster.local/ns/NS/sa/SA)")
    .option('--now <time>', 'time to check the JWT at: ISO 8601 or seconds since the epoch (default: now)')
    .option('-o, --output <fmt>', 'text or json', 'text')
    .action((o: AuthzCheckOptions) => {
      setCode(runAuthzCheck(o, io));
    });
}
