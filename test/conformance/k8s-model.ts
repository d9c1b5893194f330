// The upstream Kubernetes e2e network-policy model (test/e2e/network/netpol/model.go), built offline:
// namespaces x, y, z; pods a, b, c in each with label `pod: <name>`; container ports 80 and 81 for TCP,
// UDP and SCTP named `serve-<port>-<proto>`; and truth tables compared cell by cell, printed the way the
// e2e suite prints them (reachability.go, truthtable.go).
import assert from 'node:assert/strict';
import type { Decision } from '../../src/policy/decision.ts';
import type { Protocol } from '../../src/policy/ir.ts';
import { harness, type Harness } from '../support/policy-harness.ts';

export const NAMESPACES = ['x', 'y', 'z'] as const;
export const POD_NAMES = ['a', 'b', 'c'] as const;
export const PORTS = [80, 81] as const;
export const PROTOCOLS: readonly Protocol[] = ['TCP', 'UDP', 'SCTP'];
/** Every pod of the classic 3x3 model, in the e2e suite's order. */
export const ALL_PODS: readonly string[] = NAMESPACES.flatMap((ns) => POD_NAMES.map((p) => `${ns}/${p}`));
export const NS_NAME_LABEL = 'kubernetes.io/metadata.name';

/** Pod a runs on kind-worker, b on kind-worker2, c on kind-worker3; each node has its own pod CIDR. */
export const NODES = [
  { name: 'kind-worker', ip: '172.18.0.2', podCIDR: '10.244.1.0/24' },
  { name: 'kind-worker2', ip: '172.18.0.3', podCIDR: '10.244.2.0/24' },
  { name: 'kind-worker3', ip: '172.18.0.4', podCIDR: '10.244.3.0/24' },
] as const;

/** status.podIP of each model pod: 10.244.<node>.<1 + namespace index><1>, e.g. x/a 10.244.1.11, y/b 10.244.2.21. */
export function podIP(key: string): string {
  const [ns = '', name = ''] = key.split('/');
  const n = POD_NAMES.indexOf(name as (typeof POD_NAMES)[number]);
  const i = NAMESPACES.indexOf(ns as (typeof NAMESPACES)[number]);
  if (n < 0 || i < 0) throw new Error(`not a model pod: ${key}`);
  return `10.244.${n + 1}.${(i + 1) * 10 + 1}`;
}

export interface ExtraPod {
  namespace: string;
  name: string;
  labels: Record<string, string>;
  ip: string;
  node?: string;
  ports: { name: string; containerPort: number; protocol: Protocol }[];
}

export interface ModelOptions {
  /** Extra labels per namespace (as `kubectl label ns` would add them). */
  namespaceLabels?: Record<string, Record<string, string>>;
  /** Extra labels per pod key (`x/b`). */
  podLabels?: Record<string, Record<string, string>>;
  /** Pods outside the 3x3 model. */
  extraPods?: ExtraPod[];
}

function containers(): unknown[] {
  // Port is the outer loop, protocol the inner one, as in model.go.
  return PORTS.flatMap((port) =>
    PROTOCOLS.map((proto) => ({
      name: `cont-${port}-${proto.toLowerCase()}`,
      image: 'registry.k8s.io/e2e-test-images/agnhost:2.43',
      ports: [{ containerPort: port, name: `serve-${port}-${proto.toLowerCase()}`, protocol: proto }],
    })),
  );
}

/** The model's manifests: JSON documents, which are YAML too. */
export function modelManifests(opts: ModelOptions = {}): string {
  const docs: unknown[] = [];
  for (const n of NODES) {
    docs.push({
      apiVersion: 'v1',
      kind: 'Node',
      metadata: { name: n.name, labels: { 'kubernetes.io/hostname': n.name } },
      spec: { podCIDR: n.podCIDR, podCIDRs: [n.podCIDR] },
      status: { addresses: [{ type: 'InternalIP', address: n.ip }, { type: 'Hostname', address: n.name }] },
    });
  }
  for (const ns of NAMESPACES) {
    // kubernetes.io/metadata.name is added by the API server (and by the model); `ns: <name>` as v1.20-1.21 did.
    docs.push({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns, labels: { [NS_NAME_LABEL]: ns, ns, ...opts.namespaceLabels?.[ns] } } });
  }
  NAMESPACES.forEach((ns) =>
    POD_NAMES.forEach((name, n) => {
      const key = `${ns}/${name}`;
      const ip = podIP(key);
      docs.push({
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name, namespace: ns, labels: { pod: name, ...opts.podLabels?.[key] } },
        spec: { nodeName: NODES[n]?.name, terminationGracePeriodSeconds: 0, containers: containers() },
        status: { phase: 'Running', hostIP: NODES[n]?.ip, podIP: ip, podIPs: [{ ip }], conditions: [{ type: 'Ready', status: 'True' }] },
      });
    }),
  );
  for (const p of opts.extraPods ?? []) {
    docs.push({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: p.name, namespace: p.namespace, labels: p.labels },
      spec: { nodeName: p.node ?? NODES[0].name, containers: [{ name: 'main', image: 'agnhost', ports: p.ports }] },
      status: { phase: 'Running', podIP: p.ip, podIPs: [{ ip: p.ip }] },
    });
  }
  return docs.map((d) => JSON.stringify(d)).join('\n---\n');
}

/** A NetworkPolicy document (namespace x unless told otherwise). */
export function netpol(name: string, spec: Record<string, unknown>, namespace = 'x'): string {
  return JSON.stringify({ apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { name, namespace }, spec });
}

/** The model plus the given policies, with the compiled engine cross-checked against the naive evaluator. */
export function build(policies: string[], opts: ModelOptions = {}): Harness {
  return harness(modelManifests(opts), ...policies);
}

export const podSel = (pod: string): Record<string, unknown> => ({ matchLabels: { pod } });
export const nsSel = (ns: string): Record<string, unknown> => ({ matchLabels: { [NS_NAME_LABEL]: ns } });

/**
 * An expected truth table, as the e2e suite's Reachability: `from`/`to` patterns are `ns/pod`, `ns/*` or `*`.
 * The diagonal is always expected true: a pod cannot block access to itself.
 */
export class Reachability {
  readonly pods: readonly string[];
  private readonly cells = new Map<string, boolean>();

  constructor(defaultValue: boolean, pods: readonly string[] = ALL_PODS) {
    this.pods = pods;
    for (const f of pods) for (const t of pods) this.cells.set(`${f}>${t}`, defaultValue);
  }

  private matching(pattern: string): string[] {
    if (pattern === '*') return [...this.pods];
    const [ns, pod] = pattern.split('/');
    return this.pods.filter((p) => {
      const [pns, pname] = p.split('/');
      return pns === ns && (pod === '*' || pod === pname);
    });
  }

  expect(from: string, to: string, value: boolean): this {
    const fs = this.matching(from);
    const ts = this.matching(to);
    assert.ok(fs.length > 0 && ts.length > 0, `pattern matches no pod: ${from} -> ${to}`);
    for (const f of fs) for (const t of ts) this.cells.set(`${f}>${t}`, value);
    return this;
  }

  /** Every pod -> `to` (ExpectAllIngress). */
  expectAllIngress(to: string, value: boolean): this {
    return this.expect('*', to, value);
  }

  /** `from` -> every pod (ExpectAllEgress). */
  expectAllEgress(from: string, value: boolean): this {
    return this.expect(from, '*', value);
  }

  get(from: string, to: string): boolean {
    if (from === to) return true;
    const v = this.cells.get(`${from}>${to}`);
    if (v === undefined) throw new Error(`no cell ${from} -> ${to}`);
    return v;
  }
}

function table(pods: readonly string[], cell: (from: string, to: string) => string): string {
  const head = ['-', ...pods].join('\t');
  const rows = pods.map((f) => [f, ...pods.map((t) => cell(f, t))].join('\t'));
  return [head, ...rows].join('\n');
}

function explain(d: Decision): string {
  const dir = (x: Decision['egress']): string =>
    `${x.verdict}/${x.reason}${x.rule ? ` by ${x.rule.policy.namespace ?? ''}/${x.rule.policy.name}[${x.rule.path.join('.')}]` : ''}${x.selectedBy.length ? ` selectedBy=${x.selectedBy.map((p) => p.name).join(',')}` : ''}`;
  return `egress ${dir(d.egress)}; ingress ${dir(d.ingress)}`;
}

/**
 * Probes every (from, to) pair on one port and protocol and compares the whole table with the expected
 * one. Self cells must be allowed with reason `self`. On failure prints expected, observed and the
 * comparison (`X` marks a wrong cell), like the e2e suite's truth tables.
 */
export function assertReachability(h: Harness, expected: Reachability, port: number, protocol: Protocol = 'TCP', label = ''): void {
  const observed = new Map<string, Decision>();
  for (const f of expected.pods) for (const t of expected.pods) observed.set(`${f}>${t}`, h.decide(f, t, port, { protocol }));
  const ok = (f: string, t: string): boolean => observed.get(`${f}>${t}`)?.verdict === 'allowed';
  const wrong: string[] = [];
  for (const f of expected.pods) {
    for (const t of expected.pods) {
      const d = observed.get(`${f}>${t}`);
      if (!d) continue;
      if (f === t) {
        if (d.verdict !== 'allowed' || d.ingress.reason !== 'self' || d.egress.reason !== 'self') wrong.push(`${f} -> ${t}: self connection must be allowed with reason 'self' (${explain(d)})`);
        continue;
      }
      if (ok(f, t) !== expected.get(f, t)) wrong.push(`${f} -> ${t}: expected ${expected.get(f, t) ? 'allowed' : 'denied'}, got ${d.verdict} (${explain(d)})`);
    }
  }
  if (wrong.length === 0) return;
  const mark = (v: boolean): string => (v ? '.' : 'X');
  const msg = [
    `${label ? `${label}: ` : ''}${protocol}/${port}: ${wrong.length} wrong cell(s) ('.' = allowed, 'X' = denied; rows are sources)`,
    'expected:',
    table(expected.pods, (f, t) => mark(expected.get(f, t))),
    'observed:',
    table(expected.pods, (f, t) => mark(ok(f, t))),
    'comparison (X = mismatch):',
    table(expected.pods, (f, t) => (f === t ? (ok(f, t) ? '.' : 'X') : ok(f, t) === expected.get(f, t) ? '.' : 'X')),
    ...wrong,
  ].join('\n');
  assert.fail(msg);
}
