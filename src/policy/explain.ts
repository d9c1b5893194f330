// Explanations: decisions as sentences for people and as plain objects for JSON, naming the exact rule.
import { formatPath } from '../resources/diagnostics.ts';
import type { Decision, DirectionDecision, FlowQuery } from './decision.ts';
import { endpointName, type Endpoint } from './endpoint.ts';
import { policyName, type PolicyRef, type RuleRef } from './ir.ts';

export interface RuleJson {
  kind: string;
  namespace?: string;
  name: string;
  direction: string;
  deny: boolean;
  index: number;
  field: string;
  location: string;
}

export function ruleJson(r: RuleRef): RuleJson {
  const loc = r.policy.origin.locate(r.path, 'key');
  const out: RuleJson = { kind: r.policy.kind, name: r.policy.name, direction: r.direction, deny: r.deny, index: r.index, field: formatPath(r.path), location: `${loc.file}:${loc.line}:${loc.column}` };
  if (r.policy.namespace !== undefined) out.namespace = r.policy.namespace;
  return out;
}

function policyJson(p: PolicyRef): { kind: string; namespace?: string; name: string } {
  return p.namespace === undefined ? { kind: p.kind, name: p.name } : { kind: p.kind, namespace: p.namespace, name: p.name };
}

/** `CiliumNetworkPolicy shop/api-l7 spec.ingress[0] (policies.yaml:22:3)`. */
export function describeRule(r: RuleRef): string {
  const j = ruleJson(r);
  return `${policyName(r.policy)} ${j.field} (${j.location})`;
}

function subjectText(e: Endpoint): string {
  return e.type === 'node' ? `node ${e.node.name}` : endpointName(e);
}

/** One sentence on why a direction was allowed or denied. */
export function explainDirection(d: DirectionDecision, subject: Endpoint): string {
  const who = subjectText(subject);
  const isolating = d.selectedBy.map(policyName).join(', ');
  switch (d.reason) {
    case 'not-selected':
      return `allowed: no policy selects ${who} for ${d.direction}`;
    case 'enforcement-disabled':
      return 'allowed: policy enforcement mode is never';
    case 'outside-cluster':
      return `allowed: ${endpointName(subject)} is outside the cluster, so no ${d.direction} policy applies there`;
    case 'self':
      return 'allowed: a pod can always reach itself';
    case 'local-host':
      return `allowed: traffic from the node ${who} runs on is always allowed (kubelet probes)`;
    case 'allowed-by-rule': {
      const rule = d.rule ? describeRule(d.rule) : 'a rule';
      if (d.http) return `allowed by ${rule}, HTTP rule ${d.http.index} (${d.http.text})`;
      if (d.l7) {
        const list = d.l7.rules.flatMap((x) => x.http.map((h) => `${h.text}`));
        return `allowed at L3/L4 by ${rule}; each HTTP request must match one of: ${list.join('; ')}`;
      }
      return `allowed by ${rule}`;
    }
    case 'denied-by-rule':
      return `denied by ${d.rule ? describeRule(d.rule) : 'a deny rule'} (deny rules win over every allow)`;
    case 'default-deny':
      return d.selectedBy.length > 0
        ? `denied by default: ${isolating} ${d.selectedBy.length === 1 ? 'selects' : 'select'} ${who} for ${d.direction} and no rule allows it`
        : `denied by default: enforcement mode always isolates ${who} for ${d.direction} and no rule allows it`;
    case 'l7-denied':
      return `denied at L7 (HTTP 403): the request matches none of the HTTP rules of ${d.rule ? describeRule(d.rule) : 'the port'}`;
    case 'requires-unmet':
      return `denied: ${isolating || 'a policy'} requires every ${d.direction === 'ingress' ? 'source' : 'destination'} of ${who} to match ${d.requires ?? ''}`;
  }
}

export function directionJson(d: DirectionDecision, subject: Endpoint): Record<string, unknown> {
  const out: Record<string, unknown> = { verdict: d.verdict, reason: d.reason, explanation: explainDirection(d, subject) };
  if (d.rule) out.rule = ruleJson(d.rule);
  if (d.http) out.http = d.http;
  if (d.l7) out.l7 = d.l7.rules.map((x) => ({ rule: ruleJson(x.rule), http: x.http }));
  out.selectedBy = d.selectedBy.map(policyJson);
  return out;
}

function endpointJson(e: Endpoint): Record<string, unknown> {
  switch (e.type) {
    case 'pod':
      return { pod: e.pod.key, ip: e.ip, identity: e.pod.identity };
    case 'node':
      return { node: e.node.name, ip: e.ip };
    case 'world':
      return { ip: e.ip, world: true };
  }
}

export function decisionJson(q: FlowQuery, d: Decision): Record<string, unknown> {
  const out: Record<string, unknown> = {
    verdict: d.verdict,
    from: endpointJson(q.from),
    to: endpointJson(q.to),
    port: q.port,
    protocol: q.protocol,
  };
  if (q.http) out.http = q.http;
  out.egress = directionJson(d.egress, q.from);
  out.ingress = directionJson(d.ingress, q.to);
  return out;
}

export function decisionText(q: FlowQuery, d: Decision): string {
  const http = q.http ? ` ${q.http.method ?? ''} ${q.http.path ?? ''}`.trimEnd() : '';
  return [
    `${d.verdict.toUpperCase()}: ${endpointName(q.from)} -> ${endpointName(q.to)} ${q.protocol}/${q.port}${http}`,
    `  egress  (${endpointName(q.from)}): ${explainDirection(d.egress, q.from)}`,
    `  ingress (${endpointName(q.to)}): ${explainDirection(d.ingress, q.to)}`,
  ].join('\n');
}
