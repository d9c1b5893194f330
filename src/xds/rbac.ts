// Envoy RBAC HTTP filter configs (envoy.extensions.filters.http.rbac.v3.RBAC) from a workload's Istio authorization
// policies, as plain objects with the .proto field names, translated the way Istio's authz builder does.
import type { AuthorizationAction, AuthorizationCondition, AuthorizationPolicy, AuthorizationRule } from '../resources/kinds-security.ts';
import { isCidrError, parseCidr, parseIp, formatIp } from '../resources/net.ts';
import type { ScopedPolicy, WorkloadAuthz } from '../policy/authz-model.ts';

export const RBAC_FILTER_NAME = 'envoy.filters.http.rbac';
export const RBAC_TYPE_URL = 'type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC';
/** Where Envoy's jwt_authn filter puts the verified payload (Istio's `payload_in_metadata`). */
export const JWT_FILTER = 'envoy.filters.http.jwt_authn';
export const JWT_PAYLOAD_KEY = 'payload';

// envoy.type.matcher.v3 and envoy.config.rbac.v3 messages, with the proto field names (one member of each oneof set).
export type StringMatcher = ({ exact: string } | { prefix: string } | { suffix: string } | { safe_regex: { regex: string } }) & { ignore_case?: boolean };
export type ValueMatcher = { string_match: StringMatcher } | { list_match: { one_of: ValueMatcher } } | { or_match: { value_matchers: ValueMatcher[] } };
export interface MetadataMatcher {
  filter: string;
  path: { key: string }[];
  value: ValueMatcher;
}
export interface HeaderMatcher {
  name: string;
  string_match?: StringMatcher;
  present_match?: boolean;
}
/** envoy.config.core.v3.CidrRange; `prefix_len` is a google.protobuf.UInt32Value, so it is `{ value }`. */
export interface CidrRange {
  address_prefix: string;
  prefix_len: { value: number };
}
export type Permission =
  | { and_rules: { rules: Permission[] } }
  | { or_rules: { rules: Permission[] } }
  | { not_rule: Permission }
  | { any: true }
  | { header: HeaderMatcher }
  | { url_path: { path: StringMatcher } }
  | { destination_ip: CidrRange }
  | { destination_port: number }
  | { metadata: MetadataMatcher }
  | { requested_server_name: StringMatcher };
export type Principal =
  | { and_ids: { ids: Principal[] } }
  | { or_ids: { ids: Principal[] } }
  | { not_id: Principal }
  | { any: true }
  | { authenticated: { principal_name: StringMatcher } }
  | { direct_remote_ip: CidrRange }
  | { remote_ip: CidrRange }
  | { header: HeaderMatcher }
  | { metadata: MetadataMatcher };
export interface RbacPolicy {
  permissions: Permission[];
  principals: Principal[];
}
export interface RbacRules {
  action: 'ALLOW' | 'DENY' | 'LOG';
  policies: Record<string, RbacPolicy>;
}
/** envoy.extensions.filters.http.rbac.v3.RBAC. */
export interface RbacFilterConfig {
  rules?: RbacRules;
  shadow_rules?: RbacRules;
  shadow_rules_stat_prefix?: string;
}
/** An HttpFilter of the HTTP connection manager, with its typed config as a JSON-style Any. */
export interface RbacHttpFilter {
  name: string;
  typed_config: { '@type': typeof RBAC_TYPE_URL } & RbacFilterConfig;
}

/** `envoy`: a full Envoy proxy. `grpc`: @grpc/grpc-js-xds, which implements a subset of the matchers. */
export type RbacTarget = 'envoy' | 'grpc';

export interface RbacDiagnostic {
  severity: 'error' | 'warning';
  namespace: string;
  name: string;
  ruleIndex?: number;
  /** e.g. `spec.rules[0].when[1]`. */
  field?: string;
  message: string;
}

export interface RbacBuild {
  /** In the order they must run: CUSTOM, AUDIT, DENY, ALLOW. */
  filters: RbacHttpFilter[];
  diagnostics: RbacDiagnostic[];
}

/** Istio's policy key in `policies`: `ns[<namespace>]-policy[<name>]-rule[<index>]`. */
export function rbacPolicyName(p: AuthorizationPolicy, ruleIndex: number): string {
  return `ns[${p.metadata.namespace ?? 'default'}]-policy[${p.metadata.name}]-rule[${ruleIndex}]`;
}

/** A policy that never matches, for a policy without rules (an ALLOW with no rules then denies everything). */
const MATCH_NEVER: RbacPolicy = { permissions: [{ not_rule: { any: true } }], principals: [{ not_id: { any: true } }] };

/**
 * Builds the RBAC HTTP filters for one workload. CUSTOM policies (external authorization is not supported) become a
 * DENY filter over their rules, as Istio does when a provider is unusable. Dry-run policies go to shadow_rules.
 * For `grpc`, conditions grpc-js-xds cannot evaluate (JWT and other metadata, SNI) fail closed: an ALLOW rule using
 * them is left out, and they are left out of a DENY rule (which then denies more), each with a diagnostic.
 */
export function buildRbacFilters(w: WorkloadAuthz, opts: { target?: RbacTarget } = {}): RbacBuild {
  const target = opts.target ?? 'envoy';
  const diagnostics: RbacDiagnostic[] = [];
  const filters: RbacHttpFilter[] = [];
  const dry = (a: AuthorizationAction): ScopedPolicy[] => w.dryRun.filter((d) => d.policy.spec.action === a);
  const add = (enforced: ScopedPolicy[], shadow: ScopedPolicy[], action: RbacRules['action'], translateAs: 'ALLOW' | 'DENY'): void => {
    if (target === 'grpc') shadow = [];
    if (enforced.length === 0 && shadow.length === 0) return;
    const config: RbacFilterConfig = {};
    if (enforced.length > 0) config.rules = rules(enforced, action, translateAs, target, diagnostics);
    if (shadow.length > 0) {
      config.shadow_rules = rules(shadow, action, translateAs, target, diagnostics);
      if (action !== 'LOG') config.shadow_rules_stat_prefix = action === 'ALLOW' ? 'istio_dry_run_allow_' : 'istio_dry_run_deny_';
    }
    filters.push({ name: RBAC_FILTER_NAME, typed_config: { '@type': RBAC_TYPE_URL, ...config } });
  };
  for (const sp of w.policies.CUSTOM) {
    diagnostics.push({ severity: 'warning', namespace: ns(sp.policy), name: sp.policy.metadata.name, field: 'spec.action', message: 'CUSTOM action is not supported: requests its rules match are denied' });
  }
  add(w.policies.CUSTOM, [], 'DENY', 'DENY');
  if (target === 'grpc') {
    for (const sp of [...w.policies.AUDIT, ...dry('AUDIT')]) {
      diagnostics.push({ severity: 'warning', namespace: ns(sp.policy), name: sp.policy.metadata.name, field: 'spec.action', message: 'AUDIT (RBAC action LOG) is not supported by proxyless gRPC: the policy is left out (it never changes a verdict)' });
    }
  } else add(w.policies.AUDIT, dry('AUDIT'), 'LOG', 'DENY');
  add(w.policies.DENY, dry('DENY'), 'DENY', 'DENY');
  add(w.policies.ALLOW, dry('ALLOW'), 'ALLOW', 'ALLOW');
  return { filters, diagnostics };
}

function ns(p: AuthorizationPolicy): string {
  return p.metadata.namespace ?? 'default';
}

function rules(list: ScopedPolicy[], action: RbacRules['action'], translateAs: 'ALLOW' | 'DENY', target: RbacTarget, diags: RbacDiagnostic[]): RbacRules {
  const policies: Record<string, RbacPolicy> = {};
  for (const { policy } of list) {
    const rs = policy.spec.rules ?? [];
    if (rs.length === 0) policies[rbacPolicyName(policy, 0)] = MATCH_NEVER;
    rs.forEach((r, i) => {
      const ctx: Ctx = { policy, ruleIndex: i, target, allow: translateAs === 'ALLOW', diags, dropRule: false };
      const generated = translateRule(r, ctx);
      if (!ctx.dropRule) policies[rbacPolicyName(policy, i)] = generated;
    });
  }
  return { action, policies };
}

interface Ctx {
  policy: AuthorizationPolicy;
  ruleIndex: number;
  target: RbacTarget;
  allow: boolean;
  diags: RbacDiagnostic[];
  /** Set when an ALLOW rule uses something the target cannot evaluate: the rule is left out (fail closed). */
  dropRule: boolean;
}

/** A group of matchers for one attribute: the values ORed, and the notValues ORed and negated. */
interface Part<T> {
  /** Field path for diagnostics. */
  field: string;
  /** Whether the target cannot evaluate these matchers. */
  unsupported?: string;
  items: T[];
}

/** Istio's rule model: one principal per `from` entry and one permission per `to` entry, `when` folded into each. */
function translateRule(r: AuthorizationRule, ctx: Ctx): RbacPolicy {
  const base = `spec.rules[${ctx.ruleIndex}]`;
  const whenPrincipals: Part<Principal>[] = [];
  const whenPermissions: Part<Permission>[] = [];
  (r.when ?? []).forEach((c, i) => condition(c, `${base}.when[${i}]`, whenPrincipals, whenPermissions));
  const principals = (r.from ?? [undefined]).map((f, i) => {
    const parts: Part<Principal>[] = [];
    if (f) {
      const p = `${base}.from[${i}].source`;
      parts.push(...pair(`${p}.principals`, f.principals, f.notPrincipals, (v) => ({ authenticated: { principal_name: withPrefix(v, 'spiffe://') } }), notIds, orIds));
      parts.push(...jwtPrincipalParts(`${p}.requestPrincipals`, f.requestPrincipals, f.notRequestPrincipals));
      parts.push(...pair(`${p}.namespaces`, f.namespaces, f.notNamespaces, namespacePrincipal, notIds, orIds));
      parts.push(...pair(`${p}.remoteIpBlocks`, f.remoteIpBlocks, f.notRemoteIpBlocks, (v) => ({ remote_ip: cidr(v) }), notIds, orIds));
      parts.push(...pair(`${p}.ipBlocks`, f.ipBlocks, f.notIpBlocks, (v) => ({ direct_remote_ip: cidr(v) }), notIds, orIds));
    }
    parts.push(...whenPrincipals);
    const ids = keep(parts, ctx);
    return { and_ids: { ids: ids.length > 0 ? ids : [{ any: true as const }] } } satisfies Principal;
  });
  const permissions = (r.to ?? [undefined]).map((t, i) => {
    const parts: Part<Permission>[] = [];
    if (t) {
      const p = `${base}.to[${i}].operation`;
      parts.push(...pair(`${p}.hosts`, t.hosts, t.notHosts, (v) => ({ header: headerMatcher(':authority', v, true) }), notRule, orRules));
      parts.push(...pair(`${p}.methods`, t.methods, t.notMethods, (v) => ({ header: headerMatcher(':method', v, false) }), notRule, orRules));
      parts.push(...pair(`${p}.paths`, t.paths, t.notPaths, (v) => ({ url_path: { path: withPrefix(v, '') } }), notRule, orRules));
      parts.push(...pair(`${p}.ports`, t.ports?.map(String), t.notPorts?.map(String), (v) => ({ destination_port: Number(v) }), notRule, orRules));
    }
    parts.push(...whenPermissions);
    const rules = keep(parts, ctx);
    return { and_rules: { rules: rules.length > 0 ? rules : [{ any: true as const }] } } satisfies Permission;
  });
  return { permissions, principals };
}

/** Applies the target's limits: ALLOW drops the whole rule, DENY drops just the part. */
function keep<T>(parts: Part<T>[], ctx: Ctx): T[] {
  const out: T[] = [];
  for (const part of parts) {
    if (ctx.target === 'grpc' && part.unsupported) {
      const base = { severity: 'warning' as const, namespace: ns(ctx.policy), name: ctx.policy.metadata.name, ruleIndex: ctx.ruleIndex, field: part.field };
      if (ctx.allow) {
        if (!ctx.dropRule) ctx.diags.push({ ...base, message: `${part.unsupported} cannot be evaluated by proxyless gRPC: this ALLOW rule is left out, so requests it would allow are denied` });
        ctx.dropRule = true;
      } else {
        ctx.diags.push({ ...base, message: `${part.unsupported} cannot be evaluated by proxyless gRPC: the condition is left out, so this rule denies more requests` });
      }
      continue;
    }
    out.push(...part.items);
  }
  return out;
}

const notIds = (p: Principal): Principal => ({ not_id: p });
const orIds = (ps: Principal[]): Principal => ({ or_ids: { ids: ps } });
const notRule = (p: Permission): Permission => ({ not_rule: p });
const orRules = (ps: Permission[]): Permission => ({ or_rules: { rules: ps } });

function pair<T>(field: string, values: readonly string[] | undefined, notValues: readonly string[] | undefined, one: (v: string) => T, not: (t: T) => T, or: (ts: T[]) => T, unsupported?: string): Part<T>[] {
  const items: T[] = [];
  if (values && values.length > 0) items.push(or(values.map(one)));
  if (notValues && notValues.length > 0) items.push(not(or(notValues.map(one))));
  if (items.length === 0) return [];
  const part: Part<T> = { field, items };
  if (unsupported) part.unsupported = unsupported;
  return [part];
}

const JWT_UNSUPPORTED = 'a JWT condition (Envoy dynamic metadata of jwt_authn)';

function jwtMetadata(path: readonly string[], value: ValueMatcher): { metadata: MetadataMatcher } {
  return { metadata: { filter: JWT_FILTER, path: [JWT_PAYLOAD_KEY, ...path].map((key) => ({ key })), value } };
}

/** `requestPrincipals`: the JWT's `iss` and `sub`, split at the last `/` as Istio does. */
function requestPrincipal(v: string): Principal {
  const any: StringMatcher = { safe_regex: { regex: '.+' } };
  const idx = v.lastIndexOf('/');
  const found = idx >= 0;
  const iss = found ? v.slice(0, idx) : v;
  const sub = found ? v.slice(idx + 1) : '';
  let mi: StringMatcher;
  let ms: StringMatcher;
  if (v === '*') [mi, ms] = [any, any];
  else if (v.startsWith('*')) [mi, ms] = found ? [iss === '*' ? any : { suffix: iss.slice(1) }, { exact: sub }] : [any, { suffix: v.slice(1) }];
  else if (v.endsWith('*')) [mi, ms] = found ? [{ exact: iss }, sub === '*' ? any : { prefix: sub.slice(0, -1) }] : [{ prefix: v.slice(0, -1) }, any];
  else [mi, ms] = [{ exact: iss }, { exact: sub }];
  return { and_ids: { ids: [jwtMetadata(['iss'], { string_match: mi }), jwtMetadata(['sub'], { string_match: ms })] } };
}

function jwtPrincipalParts(field: string, values: readonly string[] | undefined, notValues: readonly string[] | undefined): Part<Principal>[] {
  return pair(field, values, notValues, requestPrincipal, notIds, orIds, JWT_UNSUPPORTED);
}

/** A claim matches as a string or as a list containing the string (Istio's extended JWT matcher). */
function claimPrincipal(path: readonly string[], values: readonly string[]): Principal {
  const ms: ValueMatcher[] = values.map((v) => ({ string_match: withPrefix(v, '') }));
  const one: ValueMatcher = ms.length === 1 && ms[0] ? ms[0] : { or_match: { value_matchers: ms } };
  return jwtMetadata(path, { or_match: { value_matchers: [{ list_match: { one_of: one } }, one] } });
}

function condition(c: AuthorizationCondition, field: string, principals: Part<Principal>[], permissions: Part<Permission>[]): void {
  const k = c.key;
  const P = (one: (v: string) => Principal, unsupported?: string) => principals.push(...pair(field, c.values, c.notValues, one, notIds, orIds, unsupported));
  const Q = (one: (v: string) => Permission, unsupported?: string) => permissions.push(...pair(field, c.values, c.notValues, one, notRule, orRules, unsupported));
  const claims = (path: string[]): void => {
    const items: Principal[] = [];
    if (c.values && c.values.length > 0) items.push(claimPrincipal(path, c.values));
    if (c.notValues && c.notValues.length > 0) items.push({ not_id: claimPrincipal(path, c.notValues) });
    if (items.length > 0) principals.push({ field, items, unsupported: JWT_UNSUPPORTED });
  };
  if (k.startsWith('request.headers[')) return void P((v) => ({ header: headerMatcher(k.slice('request.headers['.length, -1), v, false) }));
  if (k.startsWith('request.auth.claims[')) return claims((k.slice('request.auth.claims'.length).match(/\[([^\]]+)\]/g) ?? []).map((s) => s.slice(1, -1)));
  if (k.startsWith('experimental.envoy.filters.')) {
    const m = /^experimental\.(.+)\[([^\]]+)\]$/.exec(k);
    const filter = m?.[1] ?? '';
    const key = m?.[2] ?? '';
    return void Q(
      (v) => ({
        metadata: {
          filter,
          path: [{ key }],
          value: v.startsWith('[') && v.endsWith(']') ? { list_match: { one_of: { string_match: withPrefix(v.slice(1, -1), '') } } } : { string_match: withPrefix(v, '') },
        },
      }),
      'Envoy dynamic metadata',
    );
  }
  switch (k) {
    case 'source.ip':
      return void P((v) => ({ direct_remote_ip: cidr(v) }));
    case 'remote.ip':
      return void P((v) => ({ remote_ip: cidr(v) }));
    case 'source.namespace':
      return void P(namespacePrincipal);
    case 'source.principal':
      return void P((v) => ({ authenticated: { principal_name: withPrefix(v, 'spiffe://') } }));
    case 'request.auth.principal':
      return void P(requestPrincipal, JWT_UNSUPPORTED);
    case 'request.auth.audiences':
      return claims(['aud']);
    case 'request.auth.presenter':
      return claims(['azp']);
    case 'destination.ip':
      return void Q((v) => ({ destination_ip: cidr(v) }));
    case 'destination.port':
      return void Q((v) => ({ destination_port: Number(v) }));
    case 'connection.sni':
      return void Q((v) => ({ requested_server_name: withPrefix(v, '') }), 'connection.sni (requested_server_name)');
    default:
      return;
  }
}

/** Escapes a literal for RE2. */
function re(s: string): string {
  return s.replace(/[\\^$.*+?()[\]{}|]/g, '\\$&');
}

/** Istio's StringMatcherWithPrefix: `*` → regex `.+`; `*x` → suffix (regex when a prefix is added); `x*` → prefix. */
export function withPrefix(v: string, prefix: string): StringMatcher {
  if (v === '*') return { safe_regex: { regex: '.+' } };
  if (v.startsWith('*')) return prefix === '' ? { suffix: v.slice(1) } : { safe_regex: { regex: `${re(prefix)}.*${re(v.slice(1))}` } };
  if (v.endsWith('*')) return { prefix: prefix + v.slice(0, -1) };
  return { exact: prefix + v };
}

/** `namespaces`: the `/ns/<namespace>/` segment of the peer's SPIFFE ID. */
function namespacePrincipal(v: string): Principal {
  const nsPattern = v.split('*').map(re).join('.*');
  return { authenticated: { principal_name: { safe_regex: { regex: `.*/ns/${nsPattern}/.*` } } } };
}

/** Header match: `*` means present; hosts compare case-insensitively. */
function headerMatcher(name: string, v: string, ignoreCase: boolean): HeaderMatcher {
  if (v === '*') return { name, present_match: true };
  const m = withPrefix(v, '');
  return { name, string_match: ignoreCase ? { ...m, ignore_case: true } : m };
}

function cidr(v: string): CidrRange {
  if (v.includes('/')) {
    const c = parseCidr(v);
    if (!isCidrError(c)) return { address_prefix: formatIp(c.bytes), prefix_len: { value: c.prefix } };
  }
  const ip = parseIp(v);
  return ip ? { address_prefix: formatIp(ip), prefix_len: { value: ip.length * 8 } } : { address_prefix: v, prefix_len: { value: 32 } };
}
