// Test support: load manifests from strings, build the model and both evaluators, and decide flows with
// both — every answer is cross-checked against the naive evaluator, so the compiled engine cannot drift.
import assert from 'node:assert/strict';
import { buildCluster, type Cluster } from '../../src/model/cluster.ts';
import type { Decision, EnforcementMode } from '../../src/policy/decision.ts';
import { resolveEndpoint } from '../../src/policy/endpoint.ts';
import { PolicyEngine } from '../../src/policy/engine.ts';
import type { HttpRequest } from '../../src/policy/http.ts';
import type { Protocol } from '../../src/policy/ir.ts';
import { NaiveEvaluator } from '../../src/policy/naive-evaluator.ts';
import { formatDiagnostic } from '../../src/resources/diagnostics.ts';
import { loadManifests } from '../../src/resources/load.ts';
import type { Resource } from '../../src/resources/kinds.ts';

export interface Harness {
  cluster: Cluster;
  engine: PolicyEngine;
  resources: Resource[];
  /** Decides with the compiled engine and asserts that the naive evaluator agrees. */
  decide(from: string, to: string, port: number, opts?: { protocol?: Protocol; http?: HttpRequest; mode?: EnforcementMode }): Decision;
  allowed(from: string, to: string, port: number, opts?: { protocol?: Protocol; http?: HttpRequest; mode?: EnforcementMode }): boolean;
}

/** Loads YAML documents (joined with `---`); fails the test on any validation error. */
export function harness(...yamlDocs: string[]): Harness {
  const loaded = loadManifests(yamlDocs.map((text, i) => ({ name: `doc${i}.yaml`, text })));
  const errors = loaded.diagnostics.filter((d) => d.severity === 'error');
  assert.equal(errors.length, 0, errors.map(formatDiagnostic).join('\n'));
  const cluster = buildCluster(loaded.resources);
  const engine = PolicyEngine.fromResources(cluster, loaded.resources);
  const naive = new NaiveEvaluator(cluster, engine.units);
  const decide: Harness['decide'] = (from, to, port, opts = {}) => {
    const q = { from: resolveEndpoint(cluster, from), to: resolveEndpoint(cluster, to), port, protocol: opts.protocol ?? 'TCP', ...(opts.http ? { http: opts.http } : {}) };
    const d = engine.decide(q, opts.mode ?? 'default');
    const n = naive.decide(q, opts.mode ?? 'default');
    assert.deepEqual(strip(d), strip(n), `compiled and naive evaluators disagree on ${from} -> ${to}:${port}`);
    return d;
  };
  return { cluster, engine, resources: loaded.resources, decide, allowed: (f, t, p, o) => decide(f, t, p, o).verdict === 'allowed' };
}

function strip(d: Decision): unknown {
  const dir = (x: Decision['egress']) => ({ verdict: x.verdict, reason: x.reason, rule: x.rule ? `${x.rule.policy.kind}/${x.rule.policy.namespace ?? ''}/${x.rule.policy.name}/${x.rule.path.join('.')}` : undefined, http: x.http?.index });
  return { verdict: d.verdict, egress: dir(d.egress), ingress: dir(d.ingress) };
}
