// `trellis policy matrix`: the truth table of every pod pair, with the deciding rules in JSON.
import { directionJson } from '../policy/explain.ts';
import { matrixText, podEndpoint, reachabilityMatrix } from '../policy/matrix.ts';
import { CliError } from './cli-error.ts';
import type { Io } from './io.ts';
import { loadCluster } from './load-cluster.ts';
import { parseMode, parsePort, parseProtocol } from './policy-check.ts';

export interface MatrixOptions {
  file: string[];
  port: string;
  protocol: string;
  namespace?: string[];
  allNamespaces?: boolean;
  enforcementMode?: string;
  output?: string;
}

export function runMatrix(o: MatrixOptions, io: Io): number {
  const output = o.output ?? 'text';
  if (output !== 'text' && output !== 'json') throw new CliError('usage', `-o must be text or json, not "${output}"`);
  const port = parsePort(o.port);
  const protocol = parseProtocol(o.protocol);
  const mode = parseMode(o.enforcementMode);
  const loaded = loadCluster(o.file, io);
  const namespaces = o.allNamespaces ? undefined : o.namespace;
  for (const ns of namespaces ?? []) if (!loaded.cluster.namespaces.has(ns)) throw new CliError('unknown-namespace', `no namespace ${ns} in the manifests`);
  const pods = [...loaded.cluster.pods.values()]
    .filter((p) => !namespaces || namespaces.includes(p.namespace))
    .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  const m = reachabilityMatrix(loaded.engine, pods, port, protocol, mode);
  if (output === 'text') {
    io.out(matrixText(m));
    return 0;
  }
  const eps = pods.map(podEndpoint).filter((e) => e !== undefined);
  const entries = m.decisions.flatMap((row, i) =>
    row.map((d, j) => {
      const from = eps[i];
      const to = eps[j];
      return {
        from: m.pods[i],
        to: m.pods[j],
        verdict: d.verdict,
        egress: from ? directionJson(d.egress, from) : undefined,
        ingress: to ? directionJson(d.ingress, to) : undefined,
      };
    }),
  );
  io.out(JSON.stringify({ port, protocol, enforcementMode: mode, pods: m.pods, entries }, null, 2));
  return 0;
}
