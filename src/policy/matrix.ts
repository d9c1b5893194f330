// The reachability truth table of every pod pair on one port, in the style of upstream's e2e suite.
import type { ModelPod } from '../model/cluster.ts';
import { parseIp } from '../resources/net.ts';
import type { Decision, EnforcementMode } from './decision.ts';
import { podEndpointOf, type Endpoint } from './endpoint.ts';
import type { PolicyEngine } from './engine.ts';
import type { Protocol } from './ir.ts';

export interface Matrix {
  pods: string[];
  port: number;
  protocol: Protocol;
  /** decisions[i][j]: from pods[i] to pods[j]. */
  decisions: Decision[][];
}

export function podEndpoint(p: ModelPod): Endpoint | undefined {
  const ip = p.ips[0];
  const bytes = ip === undefined ? undefined : parseIp(ip);
  if (!bytes || ip === undefined || p.hostNetwork) return undefined;
  return podEndpointOf(p, ip, bytes);
}

export function reachabilityMatrix(engine: PolicyEngine, pods: readonly ModelPod[], port: number, protocol: Protocol, mode: EnforcementMode = 'default'): Matrix {
  const eps = pods.map(podEndpoint).filter((e): e is Endpoint & { type: 'pod' } => e !== undefined);
  const decisions = eps.map((from) => eps.map((to) => engine.decide({ from, to, port, protocol }, mode)));
  return { pods: eps.map((e) => e.pod.key), port, protocol, decisions };
}

/** `.` allowed, `X` denied, as the e2e suite prints its truth tables. */
export function matrixText(m: Matrix): string {
  const header = ['-', ...m.pods].join('\t');
  const rows = m.pods.map((from, i) => [from, ...(m.decisions[i] ?? []).map((d) => (d.verdict === 'allowed' ? '.' : 'X'))].join('\t'));
  return [`${m.protocol}/${m.port}`, header, ...rows].join('\n');
}
