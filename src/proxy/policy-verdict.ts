// Turns src/policy's decisions (Cilium/Kubernetes direction decisions, Istio authz decisions) into the proxy's
// PolicyVerdict: the deciding policy as Hubble names it, the exact rule with its location, and a short message.
import type { FlowPolicy } from '../observe/flow.ts';
import type { AuthzDecision, AuthzPolicyHit } from '../policy/authz-decide.ts';
import type { DirectionDecision } from '../policy/decision.ts';
import { endpointName, type Endpoint } from '../policy/endpoint.ts';
import { explainDirection, ruleJson } from '../policy/explain.ts';
import { policyName, type PolicyRef, type RuleRef } from '../policy/ir.ts';
import type { PolicyVerdict } from './contracts.ts';

/** What a verdict says about one rule: computed once per rule and shared by every verdict it decides. */
export interface RuleInfo {
  /** `CiliumNetworkPolicy default/l7`. */
  policyName: string;
  policy: { kind: string; namespace: string; name: string };
  /** `file:line:col spec.ingress[0]`. */
  rule: string;
  /** `spec.ingress[0]`. */
  field: string;
}

const RULES = new WeakMap<RuleRef, RuleInfo>();

export function ruleInfo(r: RuleRef): RuleInfo {
  let info = RULES.get(r);
  if (info === undefined) {
    const j = ruleJson(r);
    info = { policyName: policyName(r.policy), policy: policyObject(r.policy), rule: `${j.location} ${j.field}`, field: j.field };
    RULES.set(r, info);
  }
  return info;
}

function policyObject(p: PolicyRef): RuleInfo['policy'] {
  return { kind: p.kind, namespace: p.namespace ?? '', name: p.name };
}

/**
 * The verdict of one direction's L3/L4 (or, with an HTTP request, L7) decision. `subject` is the endpoint whose
 * policy decided (the destination for ingress, the source for egress); `request` names the request in L7 denials.
 */
export function directionVerdict(d: DirectionDecision, subject: Endpoint, request?: { method: string; path: string }): PolicyVerdict {
  const direction = d.direction;
  if (d.reason === 'allowed-by-rule' && d.rule !== undefined) {
    const i = ruleInfo(d.rule);
    const at = `${i.policyName} (${i.field})`;
    if (d.http !== undefined) {
      return { allowed: true, audit: false, policyName: i.policyName, policy: i.policy, rule: i.rule, direction, message: `allowed by ${at}, HTTP rule ${d.http.index} (${d.http.text})` };
    }
    if (d.l7 !== undefined) {
      return { allowed: true, audit: false, policyName: i.policyName, policy: i.policy, rule: i.rule, direction, l7Required: true, message: `allowed at L3/L4 by ${at}; each HTTP request is checked against its HTTP rules` };
    }
    return { allowed: true, audit: false, policyName: i.policyName, policy: i.policy, rule: i.rule, direction, message: `allowed by ${at}` };
  }
  if (d.verdict === 'allowed') return { allowed: true, audit: false, direction, message: explainDirection(d, subject) };
  // Denials.
  if ((d.reason === 'denied-by-rule' || d.reason === 'l7-denied') && d.rule !== undefined) {
    const i = ruleInfo(d.rule);
    const why = d.reason === 'l7-denied' ? `: no HTTP rule matches ${request ? `${request.method} ${pathOnly(request.path)}` : 'the request'}` : '';
    return { allowed: false, audit: true, policyName: i.policyName, policy: i.policy, rule: i.rule, direction, httpStatus: 403, message: `denied by ${i.policyName} (${i.field})${why}` };
  }
  const who = subject.type === 'node' ? `node ${subject.node.name}` : endpointName(subject);
  if (d.reason === 'requires-unmet') {
    const by = d.selectedBy.map(policyName).join(', ') || 'a policy';
    return { allowed: false, audit: true, policyName: by, direction, httpStatus: 403, message: `denied: ${by} requires every ${direction === 'ingress' ? 'source' : 'destination'} of ${who} to match ${d.requires ?? ''}` };
  }
  const isolating = d.selectedBy.length > 0 ? ` (${who} is isolated by ${d.selectedBy.map(policyName).join(', ')})` : ' (enforcement mode always)';
  return { allowed: false, audit: true, policyName: 'default deny', direction, httpStatus: 403, message: `denied by default: no policy allows this ${direction}${isolating}` };
}

/** Queries are left out of messages: they may carry tokens. */
function pathOnly(path: string): string {
  const q = path.indexOf('?');
  return q >= 0 ? path.slice(0, q) : path;
}

function hitInfo(h: AuthzPolicyHit): RuleInfo {
  return {
    policyName: `${h.kind} ${h.namespace}/${h.name}`,
    policy: { kind: h.kind, namespace: h.namespace, name: h.name },
    rule: `${h.location.file}:${h.location.line}:${h.location.column} ${h.field}`,
    field: h.field,
  };
}

/** The verdict of Istio's RequestAuthentication and AuthorizationPolicy for one request (always the ingress side). */
export function authzVerdict(d: AuthzDecision): PolicyVerdict {
  const i = d.policy !== undefined ? hitInfo(d.policy) : undefined;
  const audited = d.auditedBy.length > 0 ? `; audited by ${d.auditedBy.map((h) => `AuthorizationPolicy ${h.namespace}/${h.name}`).join(', ')}` : '';
  const v: PolicyVerdict = { allowed: d.verdict === 'allow', audit: d.audit || d.verdict === 'deny', direction: 'ingress', message: '' };
  if (i !== undefined) {
    v.policyName = i.policyName;
    v.policy = i.policy;
    v.rule = i.rule;
  }
  if (d.requestPrincipal !== undefined) v.requestPrincipal = d.requestPrincipal;
  switch (d.reason) {
    case 'allowed-by-policy':
      v.message = `allowed by ${i?.policyName ?? 'AuthorizationPolicy'} (${i?.field ?? ''})${audited}`;
      break;
    case 'no-allow-policies':
      v.message = `allowed: no AuthorizationPolicy denies it and none of action ALLOW applies${audited}`;
      break;
    case 'jwt-invalid':
      v.httpStatus = 401;
      v.message = `Jwt verification fails${i ? ` (${i.policyName})` : ''}: ${d.message.replace(/^invalid JWT \(401\): /, '')}`;
      break;
    case 'mtls-required':
      v.httpStatus = 403;
      v.policyName ??= 'PeerAuthentication STRICT';
      v.message = `denied by ${v.policyName}: mTLS is required and the peer presented no identity`;
      break;
    case 'no-allow-match':
      v.httpStatus = 403;
      v.policyName = 'AuthorizationPolicy default deny';
      v.message = `RBAC: access denied: ${d.message}`;
      break;
    case 'denied-by-policy':
    case 'custom-unsupported':
      v.httpStatus = 403;
      v.message = `RBAC: access denied by ${i?.policyName ?? 'AuthorizationPolicy'}${d.reason === 'custom-unsupported' ? ' (CUSTOM action, external authorization is not supported)' : ''}`;
      break;
  }
  return v;
}

/** An mTLS peer whose certificate names another workload than the pod that owns its address. */
export function identityMismatchVerdict(source: Endpoint & { type: 'pod' }, expected: string, presented: string | undefined, direction: 'ingress' | 'egress'): PolicyVerdict {
  return {
    allowed: false,
    audit: true,
    policyName: 'identity mismatch',
    direction,
    httpStatus: 403,
    message: `denied: identity mismatch: ${source.ip} is pod ${source.pod.key} (${expected}), but the peer presented ${presented ?? 'no SPIFFE identity'}`,
  };
}

/** Everything denied: the proxy has no policy configuration (fail closed). */
export function unconfiguredVerdict(direction?: 'ingress' | 'egress'): PolicyVerdict {
  const v: PolicyVerdict = { allowed: false, audit: true, policyName: 'no policy configuration', httpStatus: 403, message: 'denied: the proxy has no policy configuration yet' };
  if (direction !== undefined) v.direction = direction;
  return v;
}

/** Hubble's flow.Policy for a verdict's policy (cluster-wide policies have an empty namespace). */
export function flowPolicyOf(v: PolicyVerdict): FlowPolicy | undefined {
  const p = v.policy;
  return p === undefined ? undefined : { name: p.name, namespace: p.namespace, labels: [], revision: 0, kind: p.kind };
}
