// Istio security policies compiled per workload: which AuthorizationPolicies, mTLS mode and JWT rules apply to a pod.
import type { FieldPath, Origin, Resource } from '../resources/kinds.ts';
import type {
  AuthorizationAction,
  AuthorizationPolicy,
  JwtRule,
  MtlsMode,
  PeerAuthentication,
  RequestAuthentication,
  WorkloadSelector,
} from '../resources/kinds-security.ts';
import { compileJwtRule, type CompiledJwtRule } from './jwt.ts';

export const DEFAULT_ROOT_NAMESPACE = 'istio-system';
export const DEFAULT_TRUST_DOMAIN = 'cluster.local';

export interface AuthzOptions {
  /** The mesh's root namespace: policies there without a selector apply mesh-wide. Default `istio-system`. */
  rootNamespace?: string;
  trustDomain?: string;
}

export type SecurityKind = 'AuthorizationPolicy' | 'PeerAuthentication' | 'RequestAuthentication';

/** Names one security policy (and where it was written). */
export interface SecurityPolicyRef {
  kind: SecurityKind;
  namespace: string;
  name: string;
  origin: Origin;
}

/** Istio's policy scopes, from widest to narrowest. */
export type PolicyScope = 'mesh' | 'namespace' | 'workload';

/** The security policies of every namespace, indexed once; per-workload views are filtered from a namespace's few. */
export interface AuthzModel {
  rootNamespace: string;
  trustDomain: string;
  authorization: Map<string, AuthorizationPolicy[]>;
  peer: Map<string, PeerAuthentication[]>;
  request: Map<string, RequestAuthentication[]>;
  /** Every JWT rule with its JWKS parsed once. */
  jwt: Map<JwtRule, CompiledJwtRule>;
}

/** The target of a policy: a pod's namespace and labels. */
export interface WorkloadRef {
  namespace: string;
  labels: Record<string, string>;
}

export interface ScopedPolicy {
  policy: AuthorizationPolicy;
  scope: PolicyScope;
}

export interface ResolvedMtls {
  /** The effective mode (never UNSET): PERMISSIVE when nothing says otherwise. */
  mode: Exclude<MtlsMode, 'UNSET'>;
  /** Effective modes of the ports a workload-level policy names. */
  ports: Record<number, Exclude<MtlsMode, 'UNSET'>>;
  /** The policy that set `mode` (none: the PERMISSIVE default). */
  modeFrom?: SecurityPolicyRef;
  /** The workload policy that set `ports`. */
  portsFrom?: SecurityPolicyRef;
}

export interface ScopedJwtRule {
  rule: JwtRule;
  /** The rule with its keys, ready to verify tokens. */
  verifier: CompiledJwtRule;
  policy: SecurityPolicyRef;
}

/** Everything Istio security says about one workload. */
export interface WorkloadAuthz {
  workload: WorkloadRef;
  /** Enforced policies by action, mesh-wide first, then namespace, then workload; input order within a scope. */
  policies: Record<AuthorizationAction, ScopedPolicy[]>;
  /** Policies annotated `istio.io/dry-run: "true"`: evaluated, never enforced. */
  dryRun: ScopedPolicy[];
  /** Policies attached by targetRef(s), which bind gateways and waypoints, not a workload's sidecar. */
  notApplied: ScopedPolicy[];
  mtls: ResolvedMtls;
  /** Every JWT rule from every RequestAuthentication that applies (Istio merges them). */
  jwtRules: ScopedJwtRule[];
}

export function buildAuthzModel(resources: readonly Resource[], opts: AuthzOptions = {}): AuthzModel {
  const model: AuthzModel = {
    rootNamespace: opts.rootNamespace ?? DEFAULT_ROOT_NAMESPACE,
    trustDomain: opts.trustDomain ?? DEFAULT_TRUST_DOMAIN,
    authorization: new Map(),
    peer: new Map(),
    request: new Map(),
    jwt: new Map(),
  };
  const push = <T>(m: Map<string, T[]>, ns: string, v: T): void => {
    const list = m.get(ns);
    if (list) list.push(v);
    else m.set(ns, [v]);
  };
  for (const r of resources) {
    const ns = r.metadata.namespace ?? 'default';
    if (r.kind === 'AuthorizationPolicy') push(model.authorization, ns, r);
    else if (r.kind === 'PeerAuthentication') push(model.peer, ns, r);
    else if (r.kind === 'RequestAuthentication') {
      push(model.request, ns, r);
      for (const rule of r.spec.jwtRules) model.jwt.set(rule, compileJwtRule(rule));
    }
  }
  return model;
}

export function policyRef(p: AuthorizationPolicy | PeerAuthentication | RequestAuthentication): SecurityPolicyRef {
  return { kind: p.kind, namespace: p.metadata.namespace ?? 'default', name: p.metadata.name, origin: p.origin };
}

function selects(sel: WorkloadSelector | undefined, labels: Record<string, string>): boolean {
  if (!sel) return true;
  for (const [k, v] of Object.entries(sel.matchLabels)) if (labels[k] !== v) return false;
  return true;
}

/**
 * The scope of a policy for a workload, or undefined when it does not apply. A policy in the root namespace applies
 * to every namespace (its selector, if any, picks workloads in all of them); elsewhere only to its own namespace.
 */
function scopeFor(ns: string, selector: WorkloadSelector | undefined, w: WorkloadRef, root: string): PolicyScope | undefined {
  if (ns !== root && ns !== w.namespace) return undefined;
  if (!selects(selector, w.labels)) return undefined;
  if (selector && Object.keys(selector.matchLabels).length > 0) return 'workload';
  return ns === root ? 'mesh' : 'namespace';
}

function candidates<T>(m: Map<string, T[]>, root: string, ns: string): T[] {
  const a = m.get(root) ?? [];
  return ns === root ? a : [...a, ...(m.get(ns) ?? [])];
}

const SCOPE_ORDER: Record<PolicyScope, number> = { mesh: 0, namespace: 1, workload: 2 };

export function workloadAuthz(model: AuthzModel, w: WorkloadRef): WorkloadAuthz {
  const root = model.rootNamespace;
  const out: WorkloadAuthz = {
    workload: w,
    policies: { CUSTOM: [], DENY: [], ALLOW: [], AUDIT: [] },
    dryRun: [],
    notApplied: [],
    mtls: { mode: 'PERMISSIVE', ports: {} },
    jwtRules: [],
  };
  for (const p of candidates(model.authorization, root, w.namespace)) {
    const ns = p.metadata.namespace ?? 'default';
    if (p.spec.targetRefs.length > 0) {
      if (ns === root || ns === w.namespace) out.notApplied.push({ policy: p, scope: 'workload' });
      continue;
    }
    const scope = scopeFor(ns, p.spec.selector, w, root);
    if (!scope) continue;
    if (p.dryRun) out.dryRun.push({ policy: p, scope });
    else out.policies[p.spec.action].push({ policy: p, scope });
  }
  for (const list of Object.values(out.policies)) list.sort((a, b) => SCOPE_ORDER[a.scope] - SCOPE_ORDER[b.scope]);
  out.mtls = resolveMtls(candidates(model.peer, root, w.namespace), w, root);
  for (const p of candidates(model.request, root, w.namespace)) {
    if (p.spec.targetRefs.length > 0) continue;
    if (!scopeFor(p.metadata.namespace ?? 'default', p.spec.selector, w, root)) continue;
    for (const rule of p.spec.jwtRules) out.jwtRules.push({ rule, verifier: model.jwt.get(rule) ?? compileJwtRule(rule), policy: policyRef(p) });
  }
  return out;
}

/**
 * PeerAuthentication: the workload policy (selector) wins over the namespace policy, which wins over the mesh policy
 * in the root namespace. UNSET inherits from the next wider level; with nothing set the mode is PERMISSIVE. Port-level
 * modes come only from the workload policy, and an UNSET port inherits the workload's mode. When several policies
 * compete at one level, the first in input order is used (Istio takes the oldest).
 */
export function resolveMtls(peers: readonly PeerAuthentication[], w: WorkloadRef, root: string): ResolvedMtls {
  let mesh: PeerAuthentication | undefined;
  let namespace: PeerAuthentication | undefined;
  let workload: PeerAuthentication | undefined;
  for (const p of peers) {
    const ns = p.metadata.namespace ?? 'default';
    const scope = scopeFor(ns, p.spec.selector, w, root);
    if (scope === 'mesh') mesh ??= p;
    else if (scope === 'namespace') namespace ??= p;
    // istio.io: a PeerAuthentication with a workload selector in the root namespace is ignored.
    else if (scope === 'workload' && ns === w.namespace && ns !== root) workload ??= p;
  }
  let modeFrom: SecurityPolicyRef | undefined;
  let mode: Exclude<MtlsMode, 'UNSET'> = 'PERMISSIVE';
  for (const p of [workload, namespace, mesh]) {
    if (!p) continue;
    const m = p.spec.mtls;
    if (m !== undefined && m !== 'UNSET') {
      mode = m;
      modeFrom = policyRef(p);
      break;
    }
  }
  const ports: Record<number, Exclude<MtlsMode, 'UNSET'>> = {};
  if (workload?.spec.portLevelMtls) {
    for (const [port, m] of Object.entries(workload.spec.portLevelMtls)) ports[Number(port)] = m === 'UNSET' ? mode : m;
  }
  const out: ResolvedMtls = { mode, ports };
  if (modeFrom) out.modeFrom = modeFrom;
  if (workload?.spec.portLevelMtls) out.portsFrom = policyRef(workload);
  return out;
}

/** The mode in force on one port of a workload. */
export function mtlsModeFor(m: ResolvedMtls, port: number): Exclude<MtlsMode, 'UNSET'> {
  return m.ports[port] ?? m.mode;
}

/** `<trust-domain>/ns/<namespace>/sa/<service-account>`: a workload's identity as AuthorizationPolicy principals write it. */
export function workloadPrincipal(pod: { namespace: string; serviceAccount: string }, trustDomain = DEFAULT_TRUST_DOMAIN): string {
  return `${trustDomain}/ns/${pod.namespace}/sa/${pod.serviceAccount}`;
}

/** Field path of a rule for locations: `spec.rules[i]`, or `spec` for a policy without rules. */
export function rulePath(p: AuthorizationPolicy, ruleIndex: number | undefined): FieldPath {
  return ruleIndex === undefined ? ['spec'] : ['spec', 'rules', ruleIndex];
}
