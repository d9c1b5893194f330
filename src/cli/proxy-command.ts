// `trellis proxy`: run the data plane for one pod (sidecar) or one node, configured only over xDS.
import { isIP } from 'node:net';
import { join } from 'node:path';
import { pino } from 'pino';
import { isLoopback } from '../ca/loopback.ts';
import { Proxy } from '../proxy/proxy.ts';
import { ProxyError } from '../proxy/proxy-error.ts';
import { parseProxyNode, type ProxyMode } from '../proxy/proxy-node.ts';
import { CliError } from './cli-error.ts';
import type { Io } from './io.ts';
import { parsePort } from './policy-check.ts';

export interface ProxyCliOptions {
  xds: string;
  node: string;
  ip?: string;
  mode?: string;
  token?: string;
  ca: string;
  caBundle?: string;
  certDir?: string;
  stateDir: string;
  trustDomain: string;
  appIp?: string;
  outboundIp?: string;
  adminHost: string;
  adminPort: string;
  /** Serve the Observer API on the admin host at this port (0 picks one); off when absent. */
  observerPort?: string;
  xdsProtocol: string;
  auditLog?: string;
  drainSeconds: string;
  workloadToken?: string[];
}

/** `--workload-token NAMESPACE/SERVICEACCOUNT=TOKEN` (node mode), each one parsed. */
function workloadTokens(values: readonly string[]): { namespace: string; serviceAccount: string; token: string }[] {
  return values.map((v) => {
    const m = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?)\/([a-z0-9]([-.a-z0-9]*[a-z0-9])?)=(\S+)$/.exec(v);
    if (!m) throw new CliError('usage', `--workload-token ${v.replace(/=.*/, '=…')}: expected NAMESPACE/SERVICEACCOUNT=TOKEN`);
    return { namespace: m[1]!, serviceAccount: m[3]!, token: m[5]! };
  });
}

function hostPort(v: string, flag: string): void {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(v);
  if (!m) throw new CliError('usage', `${flag} ${v}: expected HOST:PORT`);
  parsePort(m[3] ?? '', flag);
}

export async function runProxy(o: ProxyCliOptions, io: Io, untilStopped: Promise<void>): Promise<number> {
  hostPort(o.xds, '--xds');
  if (o.mode !== undefined && !['sidecar', 'node', 'gateway'].includes(o.mode)) throw new CliError('usage', `--mode ${o.mode}: expected sidecar, node or gateway`);
  if (!['delta', 'sotw'].includes(o.xdsProtocol)) throw new CliError('usage', `--xds-protocol ${o.xdsProtocol}: expected delta or sotw`);
  if (!isLoopback(o.adminHost) || isIP(o.adminHost) === 0) throw new CliError('usage', `--admin-host ${o.adminHost}: the admin server binds only to a loopback address`);
  const adminPort = o.adminPort === '0' ? 0 : parsePort(o.adminPort, '--admin-port');
  const observerPort = o.observerPort === undefined ? undefined : o.observerPort === '0' ? 0 : parsePort(o.observerPort, '--observer-port');
  const drainSeconds = Number(o.drainSeconds);
  if (!Number.isFinite(drainSeconds) || drainSeconds < 0 || drainSeconds > 3600) throw new CliError('usage', `--drain-seconds ${o.drainSeconds}: expected 0-3600`);
  let identity;
  try {
    identity = parseProxyNode(o.node, { ...(o.ip ? { ip: o.ip } : {}), ...(o.mode ? { mode: o.mode as ProxyMode } : {}), ...(o.appIp ? { appIp: o.appIp } : {}), ...(o.outboundIp ? { outboundIp: o.outboundIp } : {}) });
  } catch (e) {
    if (e instanceof ProxyError) throw new CliError('usage', e.message);
    throw e;
  }
  const tokens = workloadTokens(o.workloadToken ?? []);
  if (tokens.length > 0 && !o.token) throw new CliError('usage', '--workload-token needs the CA: give --token and --ca too');
  let certificates;
  if (o.certDir) certificates = { dir: o.certDir };
  else if (o.token) {
    hostPort(o.ca, '--ca');
    certificates = { dir: join(o.stateDir, 'certs'), ca: o.ca, caBundleFile: o.caBundle ?? join(o.stateDir, 'root-cert.pem'), token: o.token, trustDomain: o.trustDomain };
  } else throw new CliError('usage', 'the proxy needs a workload certificate: give --token (with --ca and --ca-bundle) or --cert-dir');

  const logger = pino({ name: 'trellis-proxy', base: { node: o.node } }, pino.destination(2));
  let proxy: Proxy;
  try {
    proxy = await Proxy.start({
      xds: o.xds,
      identity,
      xdsProtocol: o.xdsProtocol as 'delta' | 'sotw',
      certificates,
      ...(o.auditLog ? { auditLog: o.auditLog } : {}),
      ...(tokens.length > 0 ? { workloadTokens: tokens } : {}),
      ...(observerPort !== undefined ? { observer: { host: o.adminHost, port: observerPort } } : {}),
      logger,
    });
  } catch (e) {
    if (e instanceof ProxyError) throw new CliError(e.code, e.message);
    throw e;
  }
  const admin = await proxy.startAdmin(o.adminHost, adminPort, drainSeconds * 1000);
  io.out(`admin   ${admin.url} (/ready /stats /stats/prometheus /config_dump /flows /drain)`);
  if (proxy.observer) io.out(`observer ${proxy.observer.address} (Observer API: GetFlows, ServerStatus, GetNodes, GetNamespaces)`);
  io.out(`xDS     ${o.xds} (${o.xdsProtocol}); waiting for the first configuration, nothing listens before it`);
  await untilStopped;
  logger.info('draining');
  await proxy.drain(drainSeconds * 1000);
  await admin.close();
  await proxy.stop();
  return 0;
}
