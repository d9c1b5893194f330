// The `trellis` command: parses arguments and hands each subcommand to the layers below.
import { Command, CommanderError, Option } from 'commander';
import { formatDiagnostic } from '../resources/diagnostics.ts';
import { lintPolicies } from '../policy/lint.ts';
import { CliError } from './cli-error.ts';
import { onceStdin, processIo, type Io } from './io.ts';
import { loadCluster, loadResources } from './load-cluster.ts';
import { runCheck, type CheckOptions } from './policy-check.ts';
import { registerAuthzCommands } from './authz-check.ts';
import { runProxy, type ProxyCliOptions } from './proxy-command.ts';
import { registerObserveCommand } from './observe-command.ts';
import { runMatrix, type MatrixOptions } from './policy-matrix.ts';
import { grpcBootstrap } from '../xds/bootstrap.ts';
import { runControlPlane, runProxyConfig, runProxyStatus, type ControlPlaneCliOptions } from './control-plane-commands.ts';
import { runDown, runStatus, runUp, type UpCliOptions } from './up-command.ts';

/** Resolves on SIGINT or SIGTERM. */
function signalled(): Promise<void> {
  return new Promise((resolve) => {
    process.once('SIGINT', () => resolve());
    process.once('SIGTERM', () => resolve());
  });
}

const collect = (v: string, prev: string[] = []): string[] => [...prev, v];

/** Runs the CLI and returns the exit code: 0 success, 1 findings (lint --strict), 2 bad input or usage. */
export async function main(argv: readonly string[], baseIo: Io = processIo): Promise<number> {
  const io = onceStdin(baseIo);
  let code = 0;
  const program = new Command('trellis')
    .description('Trellis: a service mesh for Kubernetes with gRPC as a first-class citizen')
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.out(s.trimEnd()), writeErr: (s) => io.err(s.trimEnd()) })
    .showHelpAfterError('(run with --help for usage)');

  const fileOption = (): Option => new Option('-f, --file <path>', 'manifest file, directory (recursive) or - for stdin; repeatable').argParser(collect).makeOptionMandatory();

  program
    .command('validate')
    .description('validate manifests and report every error with file:line:column')
    .addOption(fileOption())
    .action((o: { file: string[] }) => {
      const { resources, diagnostics } = loadResources(o.file, io);
      const warnings = diagnostics.filter((d) => d.severity === 'warning').length;
      io.out(`${resources.length} object(s) valid${warnings ? `, ${warnings} warning(s)` : ''}`);
    });

  const policy = program.command('policy').description('answer offline what may talk to what, and why');

  policy
    .command('check')
    .description('decide one flow (or a batch with --flows) and name the rule that decides it')
    .addOption(fileOption())
    .option('--from <src>', 'source: namespace/pod, pod (namespace default), workload name, or IP')
    .option('--to <dst>', 'destination: namespace/pod, pod, workload name, or IP')
    .option('--port <n>', 'destination port')
    .option('--protocol <p>', 'TCP, UDP or SCTP', 'TCP')
    .option('--http-method <m>', 'HTTP method (for L7 rules)')
    .option('--http-path <p>', 'HTTP path; a gRPC call is /package.Service/Method')
    .option('--http-host <h>', 'HTTP host (authority)')
    .option('--http-header <k=v>', 'HTTP header; repeatable', collect)
    .option('--enforcement-mode <m>', 'Cilium policy enforcement mode: default, always or never', 'default')
    .option('--flows <file>', 'JSON-lines batch of flows (or - for stdin) instead of --from/--to/--port')
    .option('-o, --output <fmt>', 'text, json or yaml', 'text')
    .action((o: CheckOptions) => {
      code = runCheck(o, io);
    });

  policy
    .command('matrix')
    .description('reachability truth table of every pod pair on one port')
    .addOption(fileOption())
    .option('--port <n>', 'destination port', '80')
    .option('--protocol <p>', 'TCP, UDP or SCTP', 'TCP')
    .option('-n, --namespace <ns>', 'only pods of these namespaces; repeatable', collect)
    .option('-A, --all-namespaces', 'pods of every namespace (the default)')
    .option('--enforcement-mode <m>', 'default, always or never', 'default')
    .option('-o, --output <fmt>', 'text or json', 'text')
    .action((o: MatrixOptions) => {
      code = runMatrix(o, io);
    });

  policy
    .command('lint')
    .description('warn about policies that are valid but almost certainly wrong')
    .addOption(fileOption())
    .option('--strict', 'exit with status 1 when there are warnings')
    .action((o: { file: string[]; strict?: boolean }) => {
      const loaded = loadCluster(o.file, io);
      const findings = lintPolicies(loaded.engine);
      for (const f of findings) io.out(formatDiagnostic(f));
      io.err(`${findings.length} finding(s) in ${loaded.engine.units.length} policy rule set(s)`);
      if (o.strict && findings.length > 0) code = 1;
    });

  registerAuthzCommands(program, fileOption, io, (c) => {
    code = c;
  });

  program
    .command('control-plane')
    .description('serve the mesh configuration over xDS (ADS), run the CA, and answer the admin API; applies manifest edits live')
    .addOption(fileOption())
    .option('--state-dir <dir>', 'where the CA keeps its root', '.trellis')
    .option('--host <addr>', 'loopback address to listen on', '127.0.0.1')
    .option('--xds-port <n>', 'ADS port', '15010')
    .option('--ca-port <n>', 'certificate service port', '15012')
    .option('--admin-port <n>', 'admin HTTP port (/healthz, /readyz, /debug/syncz, /debug/config_dump, /metrics)', '15014')
    .option('--trust-domain <td>', 'SPIFFE trust domain', 'cluster.local')
    .option('--xds-tls', 'require mTLS with Trellis workload certificates on the xDS port; a node gets only its own configuration')
    .option('--relay <port>', 'flow relay port (Observer API over every proxy, for trellis observe)', '4245')
    .option('--no-relay', 'do not run the flow relay')
    .action(async (o: ControlPlaneCliOptions) => {
      code = await runControlPlane(o, io, signalled());
    });

  program
    .command('proxy')
    .description('run the Trellis proxy for one pod (sidecar) or one node; all configuration comes over xDS')
    .requiredOption('--xds <host:port>', 'the control plane ADS address')
    .requiredOption('--node <id>', 'NAMESPACE/POD (with --ip), or Istio\'s sidecar~IP~POD.NS~NS.svc.cluster.local, or node~IP~NODE~trellis')
    .option('--ip <addr>', 'the pod\'s IP, for the short --node form')
    .option('--mode <m>', 'sidecar, node or gateway (default: from --node)')
    .option('--token <t>', 'bootstrap token for the Trellis CA (the certificate is then kept in --state-dir and renewed)')
    .option('--ca <host:port>', 'the Trellis CA address', '127.0.0.1:15012')
    .option('--ca-bundle <file>', 'PEM roots the CA server must chain to (default <state-dir>/root-cert.pem)')
    .option('--cert-dir <dir>', 'use certificates kept fresh by someone else: cert-chain.pem, key.pem, root-cert.pem')
    .option('--state-dir <dir>', 'where the proxy keeps its certificate', '.trellis/proxy')
    .option('--trust-domain <td>', 'SPIFFE trust domain', 'cluster.local')
    .option('--app-ip <addr>', 'where the local app listens (default 127.0.0.1)')
    .option('--outbound-ip <addr>', 'where outbound listeners bind (default 127.0.0.1)')
    .option('--admin-host <addr>', 'loopback address of the admin server', '127.0.0.1')
    .option('--admin-port <n>', 'admin port (/ready /stats /config_dump /flows /drain); 0 picks one', '15000')
    .option('--xds-protocol <p>', 'delta or sotw', 'delta')
    .option('--observer-port <n>', 'serve the Observer API (hubble-compatible GetFlows) on the admin host at this port; 0 picks one; off by default')
    .option('--audit-log <file>', 'write denied and AUDIT calls there as JSON lines')
    .option('--drain-seconds <n>', 'how long requests in flight may finish on shutdown', '5')
    .option('--workload-token <ns/sa=token>', 'node mode: a CA token per service account of the node\'s pods, so each pod keeps its own identity; repeatable', collect)
    .action(async (o: ProxyCliOptions) => {
      code = await runProxy(o, io, signalled());
    });

  registerObserveCommand(program, io, (c) => {
    code = c;
  }, signalled);

  program
    .command('proxy-status')
    .description('each connected xDS client and whether it is in sync, per type (like istioctl proxy-status)')
    .option('--admin <url>', 'control plane admin URL', 'http://127.0.0.1:15014')
    .option('-o, --output <fmt>', 'text or json', 'text')
    .action(async (o: { admin: string; output: string }) => {
      code = await runProxyStatus(o, io);
    });

  program
    .command('proxy-config')
    .description('the exact resources a node was sent (like istioctl proxy-config all)')
    .argument('<node>', 'xDS node id')
    .option('--admin <url>', 'control plane admin URL', 'http://127.0.0.1:15014')
    .option('-o, --output <fmt>', 'json or yaml', 'json')
    .action(async (node: string, o: { admin: string; output: string }) => {
      code = await runProxyConfig(node, o, io);
    });

  program
    .command('up')
    .description('run the manifests locally: control plane, CA, cluster DNS, a proxy per pod and every container as a process')
    .addOption(fileOption())
    .option('--state-dir <dir>', 'where the run keeps its state (addresses, CA, pids, up.json)', '.trellis/up')
    .option('--isolation <mode>', 'loopback (each pod its own 127.x addresses); netns comes later', 'loopback')
    .option('--dns-port <n>', 'cluster DNS port on 127.0.0.1 (0 picks one)', '0')
    .option('--relay-port <n>', 'the flow relay (Observer API, for trellis observe) on 127.0.0.1; 0 picks one, off turns it off', '4245')
    .addOption(new Option('--time-scale <f>', 'scale probe periods and restart backoff (tests)').hideHelp())
    .option('--pod-range <cidr>', 'loopback range for pod addresses (blocks of four)', '127.10.0.0/16')
    .option('--service-range <cidr>', 'loopback range for Service virtual IPs', '127.96.0.0/16')
    .action(async (o: UpCliOptions) => {
      code = await runUp(o, io, signalled());
    });

  program
    .command('status')
    .description('pods, readiness, restarts and Service endpoints of a running trellis up')
    .option('--state-dir <dir>', 'the state directory of the run', '.trellis/up')
    .option('-o, --output <fmt>', 'text or json', 'text')
    .action(async (o: { stateDir: string; output: string }) => {
      code = await runStatus(o, io);
    });

  program
    .command('down')
    .description('stop a running trellis up and clean up whatever a crashed run left behind')
    .option('--state-dir <dir>', 'the state directory of the run', '.trellis/up')
    .action(async (o: { stateDir: string }) => {
      code = await runDown(o, io);
    });

  program
    .command('bootstrap')
    .description('print the xDS bootstrap a proxyless gRPC app needs (set GRPC_XDS_BOOTSTRAP_CONFIG to it)')
    .requiredOption('--node <id>', 'node id, e.g. the pod name')
    .option('-n, --namespace <ns>', 'the app\'s namespace (short service names resolve in it)', 'default')
    .option('--label <k=v>', 'the app\'s labels (for sourceLabels routes and policies); repeatable', collect)
    .option('--xds <host:port>', 'the control plane ADS address', '127.0.0.1:15010')
    .option('--cert-dir <dir>', 'directory with cert-chain.pem, key.pem, root-cert.pem for mTLS')
    .action((o: { node: string; namespace: string; label?: string[]; xds: string; certDir?: string }) => {
      const labels: Record<string, string> = {};
      for (const l of o.label ?? []) {
        const i = l.indexOf('=');
        if (i <= 0) throw new CliError('usage', `--label must be KEY=VALUE, not "${l}"`);
        labels[l.slice(0, i)] = l.slice(i + 1);
      }
      io.out(JSON.stringify(grpcBootstrap({ xdsServer: o.xds, nodeId: o.node, namespace: o.namespace, labels, ...(o.certDir ? { certDir: o.certDir } : {}) }), null, 2));
    });

  try {
    await program.parseAsync([...argv], { from: 'user' });
    return code;
  } catch (e) {
    if (e instanceof CommanderError) {
      // Help and version are not errors; every usage mistake is bad input.
      return e.exitCode === 0 ? 0 : 2;
    }
    if (e instanceof CliError) {
      io.err(`error: ${e.message}`);
      return 2;
    }
    throw e;
  }
}
