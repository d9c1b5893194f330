// Istio authorization decisions: may this caller make this request to this workload, and which policy says so.
import type { Location } from '../resources/diagnostics.ts';
import type { AuthorizationCondition, AuthorizationOperation, AuthorizationPolicy, AuthorizationRule, AuthorizationSource } from '../resources/kinds-security.ts';
import { cidrContains, hostCidr, isCidrError, parseCidr, parseIp, type Cidr } from '../resources/net.ts';
import { verifyJwt } from './jwt.ts';
import { mtlsModeFor, rulePath, workloadAuthz, type AuthzModel, type ScopedPolicy, type SecurityKind, type WorkloadAuthz } from './authz-model.ts';

/** One request as the destination's sidecar (or proxyless gRPC server) sees it. */
export interface AuthzRequest {
  source: {
    /** The peer's identity from mTLS, `cluster.local/ns/x/sa/y` (a leading `spiffe://` is ignored). Absent for plaintext. */
    principal?: string;
    /**
     * The caller's namespace, for display only: Istio reads `source.namespace` from the mTLS identity, so matching
     * always uses the namespace inside `principal` (a plaintext caller has none).
     */
    namespace?: string;
    /** The peer address of the connection (`source.ip`, `ipBlocks`). */
    ip: string;
    /** The original client address (`remote.ip`, `remoteIpBlocks`, from X-Forwarded-For); defaults to `ip`. */
    remoteIp?: string;
  };
  destination: {
    /** The workload the request reaches. */
    pod: { namespace: string; labels: Record<string, string>; ips?: readonly string[] };
    /** The address the request was sent to; defaults to the pod's first IP. */
    ip?: string;
    port: number;
  };
  /** TLS server name (`connection.sni`). */
  sni?: string;
  /**
   * The HTTP request. Without it the request is plain TCP: as Istio does on TCP, an ALLOW rule that names HTTP-only
   * attributes matches nothing, and a DENY or AUDIT rule is evaluated without them.
   */
  http?: {
    /** `:authority`. */
    host?: string;
    method: string;
    /** The path, with or without a query string. A gRPC call is `/package.Service/Method`. */
    path: string;
    /** Header names are case-insensitive. */
    headers?: Record<string, string | readonly string[]>;
  };
  /**
   * The JWT the request carries. A string is the raw compact token (e.g. from `authorization: Bearer …`): it is
   * verified (signature, issuer, audiences, exp/nbf at `now`) against the workload's RequestAuthentication rules.
   * `{claims}` are claims the caller has already verified: only issuer and audiences are checked.
   * Without it, the token is taken from the rules' locations in `http` (default `authorization: Bearer` and the
   * `access_token` query parameter). No token at all passes RequestAuthentication, with no request principal.
   */
  jwt?: string | { claims: Record<string, unknown> };
  /** The time of the request, milliseconds since the epoch: needed to check a raw token's `exp` and `nbf`. */
  now?: number;
}

export type AuthzReason =
  /** Port is in STRICT mTLS mode and the peer presented no identity. */
  | 'mtls-required'
  /** A JWT was presented that no applicable RequestAuthentication rule accepts (issuer, audience, time or signature): 401. */
  | 'jwt-invalid'
  /** A CUSTOM policy matched: external authorization is not supported, so the request is denied. */
  | 'custom-unsupported'
  | 'denied-by-policy'
  /** No ALLOW policy applies to the workload, so everything not denied is allowed. */
  | 'no-allow-policies'
  | 'allowed-by-policy'
  /** ALLOW policies apply to the workload and none matches. */
  | 'no-allow-match';

export interface AuthzPolicyHit {
  kind: SecurityKind;
  namespace: string;
  name: string;
  /** Index in `spec.rules`; absent when the policy is decisive as a whole (PeerAuthentication, RequestAuthentication). */
  ruleIndex?: number;
  /** `spec.rules[0]`, `spec.mtls.mode`, … */
  field: string;
  location: Location;
}

export interface AuthzDecision {
  verdict: 'allow' | 'deny';
  /** The policy (and rule) that decided; absent when the default decided. */
  policy?: AuthzPolicyHit;
  /** True when an AUDIT policy matched: the request is marked for audit logging whatever the verdict. */
  audit: boolean;
  /** The AUDIT rules that matched. */
  auditedBy: AuthzPolicyHit[];
  /** Dry-run policies (`istio.io/dry-run`) whose rules matched, with what they would have done. */
  dryRun: { action: AuthorizationPolicy['spec']['action']; policy: AuthzPolicyHit }[];
  reason: AuthzReason;
  /** `iss/sub` of the JWT the request carried, once accepted. */
  requestPrincipal?: string;
  /** One line for people. */
  message: string;
}

/** Decides one request against the model. Pure; for many requests to one workload use decideForWorkload. */
export function decideAuthz(model: AuthzModel, request: AuthzRequest): AuthzDecision {
  return decideForWorkload(workloadAuthz(model, request.destination.pod), request);
}

/** Request facts derived once: identities, claims and the normalized path. */
interface Facts {
  req: AuthzRequest;
  /** Full SPIFFE ID without `spiffe://`, when the connection is mTLS. */
  principal?: string;
  namespace?: string;
  claims?: Record<string, unknown>;
  requestPrincipal?: { iss: string; sub: string };
  path?: string;
  headers: Map<string, string>;
  destIp?: string;
}

export function decideForWorkload(w: WorkloadAuthz, req: AuthzRequest): AuthzDecision {
  const out = (verdict: AuthzDecision['verdict'], reason: AuthzReason, message: string, policy?: AuthzPolicyHit): AuthzDecision => {
    const d: AuthzDecision = { verdict, audit: auditedBy.length > 0, auditedBy, dryRun, reason, message };
    if (policy) d.policy = policy;
    if (facts.requestPrincipal) d.requestPrincipal = `${facts.requestPrincipal.iss}/${facts.requestPrincipal.sub}`;
    return d;
  };
  const auditedBy: AuthzPolicyHit[] = [];
  const dryRun: AuthzDecision['dryRun'] = [];

  const mode = mtlsModeFor(w.mtls, req.destination.port);
  const rawPrincipal = req.source.principal?.replace(/^spiffe:\/\//, '');
  const facts: Facts = { req, headers: new Map() };
  // DISABLE: the sidecar does not terminate mTLS, so the request carries no peer identity.
  if (rawPrincipal && mode !== 'DISABLE') {
    facts.principal = rawPrincipal;
    const m = /\/ns\/([^/]*)\//.exec(rawPrincipal);
    if (m) facts.namespace = m[1];
  }
  if (req.http) {
    facts.path = req.http.path.replace(/[?#].*$/, '');
    for (const [k, v] of Object.entries(req.http.headers ?? {})) facts.headers.set(k.toLowerCase(), typeof v === 'string' ? v : v.join(','));
  }
  facts.destIp = req.destination.ip ?? req.destination.pod.ips?.[0];

  if (mode === 'STRICT' && facts.principal === undefined) {
    const port = req.destination.port;
    const byPort = w.mtls.ports[port] !== undefined;
    const ref = byPort ? w.mtls.portsFrom : w.mtls.modeFrom;
    const path = byPort ? ['spec', 'portLevelMtls', String(port), 'mode'] : ['spec', 'mtls', 'mode'];
    const hit = ref ? { kind: ref.kind, namespace: ref.namespace, name: ref.name, field: byPort ? `spec.portLevelMtls.${port}.mode` : 'spec.mtls.mode', location: ref.origin.locate(path) } : undefined;
    return out('deny', 'mtls-required', `port ${req.destination.port} requires mTLS (STRICT) and the peer presented no identity`, hit);
  }

  if (w.jwtRules.length > 0) {
    const token = req.jwt ?? extractToken(w, facts);
    if (token !== undefined) {
      const v = checkJwt(w, token, req.now);
      if (!v.ok) {
        const r = (v.ruleIndex !== undefined ? w.jwtRules[v.ruleIndex] : undefined) ?? w.jwtRules[0];
        const path = v.ruleIndex !== undefined && r ? r.rule.path : ['spec', 'jwtRules'];
        const hit = r ? { kind: r.policy.kind, namespace: r.policy.namespace, name: r.policy.name, field: formatFieldPath(path), location: r.policy.origin.locate(path) } : undefined;
        return out('deny', 'jwt-invalid', `invalid JWT (401): ${v.reason}`, hit);
      }
      facts.claims = v.claims;
      const sub = v.claims.sub;
      if (typeof sub === 'string') facts.requestPrincipal = { iss: v.issuer, sub };
    }
  }

  for (const sp of w.policies.AUDIT) {
    const i = firstMatch(sp.policy, facts, false);
    if (i !== undefined) auditedBy.push(hit(sp, i));
  }
  for (const sp of w.dryRun) {
    const i = firstMatch(sp.policy, facts, sp.policy.spec.action === 'ALLOW');
    if (i !== undefined) dryRun.push({ action: sp.policy.spec.action, policy: hit(sp, i) });
  }
  for (const sp of w.policies.CUSTOM) {
    const i = firstMatch(sp.policy, facts, false);
    if (i !== undefined) {
      return out('deny', 'custom-unsupported', `CUSTOM policy ${name(sp)} matched and external authorization is not supported: denied`, hit(sp, i));
    }
  }
  for (const sp of w.policies.DENY) {
    const i = firstMatch(sp.policy, facts, false);
    if (i !== undefined) return out('deny', 'denied-by-policy', `denied by DENY policy ${name(sp)} ${ruleField(sp.policy, i)}`, hit(sp, i));
  }
  if (w.policies.ALLOW.length === 0) return out('allow', 'no-allow-policies', 'no ALLOW policy applies to the workload and no DENY policy matched');
  for (const sp of w.policies.ALLOW) {
    const i = firstMatch(sp.policy, facts, true);
    if (i !== undefined) return out('allow', 'allowed-by-policy', `allowed by ALLOW policy ${name(sp)} ${ruleField(sp.policy, i)}`, hit(sp, i));
  }
  return out('deny', 'no-allow-match', `ALLOW policies apply to the workload (${w.policies.ALLOW.map(name).join(', ')}) and none matches`);
}

type JwtCheck = { ok: true; issuer: string; claims: Record<string, unknown> } | { ok: false; reason: string; ruleIndex?: number };

function checkJwt(w: WorkloadAuthz, token: string | { claims: Record<string, unknown> }, now: number | undefined): JwtCheck {
  if (typeof token === 'string') {
    if (now === undefined) return { ok: false, reason: 'the request has no time (`now`), so the token\'s validity cannot be checked' };
    const v = verifyJwt(token, w.jwtRules.map((r) => r.verifier), now);
    if (v.ok) return { ok: true, issuer: v.issuer, claims: v.claims };
    return v.ruleIndex === undefined ? { ok: false, reason: v.reason } : { ok: false, reason: v.reason, ruleIndex: v.ruleIndex };
  }
  // Claims already verified by the caller: issuer and audiences only.
  const claims = token.claims;
  const iss = claims.iss;
  const aud = claims.aud;
  const auds = typeof aud === 'string' ? [aud] : Array.isArray(aud) ? aud.filter((x): x is string => typeof x === 'string') : [];
  if (typeof iss !== 'string') return { ok: false, reason: 'the token has no "iss" claim' };
  const byIssuer = w.jwtRules.findIndex((r) => r.rule.issuer === iss);
  if (byIssuer < 0) return { ok: false, reason: `issuer ${JSON.stringify(iss)} is not configured in any RequestAuthentication rule` };
  const accepted = w.jwtRules.some((r) => r.rule.issuer === iss && (r.rule.audiences.length === 0 || r.rule.audiences.some((a) => auds.includes(a))));
  if (!accepted) return { ok: false, reason: `audience ${JSON.stringify(aud ?? null)} is not accepted for issuer ${iss}`, ruleIndex: byIssuer };
  return { ok: true, issuer: iss, claims };
}

/** The token at the first location a rule names: `fromHeaders`/`fromParams`, or Istio's defaults when a rule names none. */
function extractToken(w: WorkloadAuthz, f: Facts): string | undefined {
  const h = f.req.http;
  if (!h) return undefined;
  const q = h.path.indexOf('?');
  const query = q >= 0 ? new URLSearchParams(h.path.slice(q + 1).replace(/#.*$/, '')) : undefined;
  for (const { rule } of w.jwtRules) {
    const custom = rule.fromHeaders.length > 0 || rule.fromParams.length > 0;
    const headers = custom ? rule.fromHeaders : [{ name: 'authorization', prefix: 'Bearer ' }];
    const params = custom ? rule.fromParams : ['access_token'];
    for (const { name, prefix } of headers) {
      const v = f.headers.get(name.toLowerCase());
      if (v === undefined) continue;
      if (prefix === undefined) return v.trim();
      if (v.slice(0, prefix.length).toLowerCase() === prefix.toLowerCase()) return v.slice(prefix.length).trim();
    }
    for (const p of params) {
      const v = query?.get(p);
      if (v !== undefined && v !== null) return v;
    }
  }
  return undefined;
}

function formatFieldPath(path: readonly (string | number)[]): string {
  return path.map((s) => (typeof s === 'number' ? `[${s}]` : s)).join('.').replace(/\.\[/g, '[');
}

function name(sp: ScopedPolicy): string {
  return `${sp.policy.metadata.namespace ?? 'default'}/${sp.policy.metadata.name}`;
}

function ruleField(p: AuthorizationPolicy, i: number): string {
  return rulePath(p, i)
    .map((s) => (typeof s === 'number' ? `[${s}]` : s))
    .join('.')
    .replace(/\.\[/g, '[');
}

function hit(sp: ScopedPolicy, i: number): AuthzPolicyHit {
  const p = sp.policy;
  return { kind: 'AuthorizationPolicy', namespace: p.metadata.namespace ?? 'default', name: p.metadata.name, ruleIndex: i, field: ruleField(p, i), location: p.origin.locate(rulePath(p, i)) };
}

/** Index of the first rule of the policy that matches; a policy without rules matches nothing. */
function firstMatch(p: AuthorizationPolicy, f: Facts, allow: boolean): number | undefined {
  const rules = p.spec.rules ?? [];
  for (let i = 0; i < rules.length; i++) {
    const r = rules[i];
    if (r && ruleMatches(r, f, allow)) return i;
  }
  return undefined;
}

/**
 * A rule matches when its from, to and when all match: one source of `from` and one operation of `to` (absent lists
 * match anything) and every condition. On a TCP request (no HTTP), an HTTP-only attribute makes an ALLOW rule match
 * nothing and is left out of a DENY or AUDIT rule, as Istio generates TCP filters.
 */
function ruleMatches(r: AuthorizationRule, f: Facts, allow: boolean): boolean {
  const tcp = f.req.http === undefined;
  if (r.from && !r.from.some((s) => sourceMatches(s, f, tcp, allow))) return false;
  if (r.to && !r.to.some((o) => operationMatches(o, f, tcp, allow))) return false;
  for (const c of r.when ?? []) {
    const m = conditionMatches(c, f, tcp, allow);
    if (!m) return false;
  }
  return true;
}

/** Values are ORed; notValues must all miss. Absent lists do not constrain. `undefined` from `test` means "HTTP only on TCP". */
function field(values: readonly string[] | undefined, notValues: readonly string[] | undefined, test: (v: string) => boolean): boolean {
  if (values && values.length > 0 && !values.some(test)) return false;
  if (notValues && notValues.some(test)) return false;
  return true;
}

function httpOnly(tcp: boolean, allow: boolean, has: boolean, evaluate: () => boolean): boolean {
  if (!has) return true;
  if (tcp) return !allow;
  return evaluate();
}

function sourceMatches(s: AuthorizationSource, f: Facts, tcp: boolean, allow: boolean): boolean {
  return (
    field(s.principals, s.notPrincipals, (v) => principalMatches(v, f.principal)) &&
    httpOnly(tcp, allow, !!(s.requestPrincipals || s.notRequestPrincipals), () => field(s.requestPrincipals, s.notRequestPrincipals, (v) => requestPrincipalMatches(v, f))) &&
    field(s.namespaces, s.notNamespaces, (v) => namespaceMatches(v, f.namespace)) &&
    field(s.ipBlocks, s.notIpBlocks, (v) => ipMatches(v, f.req.source.ip)) &&
    field(s.remoteIpBlocks, s.notRemoteIpBlocks, (v) => ipMatches(v, f.req.source.remoteIp ?? f.req.source.ip))
  );
}

function operationMatches(o: AuthorizationOperation, f: Facts, tcp: boolean, allow: boolean): boolean {
  const h = f.req.http;
  return (
    httpOnly(tcp, allow, !!(o.hosts || o.notHosts), () => field(o.hosts, o.notHosts, (v) => headerValueMatches(v, h?.host, true))) &&
    httpOnly(tcp, allow, !!(o.methods || o.notMethods), () => field(o.methods, o.notMethods, (v) => headerValueMatches(v, h?.method, false))) &&
    httpOnly(tcp, allow, !!(o.paths || o.notPaths), () => field(o.paths, o.notPaths, (v) => stringMatches(v, f.path, false))) &&
    field(o.ports?.map(String), o.notPorts?.map(String), (v) => Number(v) === f.req.destination.port)
  );
}

function conditionMatches(c: AuthorizationCondition, f: Facts, tcp: boolean, allow: boolean): boolean {
  const k = c.key;
  const req = f.req;
  const run = (test: (v: string) => boolean): boolean => field(c.values, c.notValues, test);
  if (k.startsWith('request.headers[')) return httpOnly(tcp, allow, true, () => run((v) => headerValueMatches(v, f.headers.get(k.slice(16, -1).toLowerCase()), false)));
  if (k.startsWith('request.auth.claims[')) {
    const path = (k.slice('request.auth.claims'.length).match(/\[([^\]]+)\]/g) ?? []).map((s) => s.slice(1, -1));
    return httpOnly(tcp, allow, true, () => run((v) => claimMatches(v, f.claims, path)));
  }
  // Envoy dynamic metadata of other filters is not known offline: such a condition never matches.
  if (k.startsWith('experimental.envoy.filters.')) return run(() => false);
  switch (k) {
    case 'source.ip':
      return run((v) => ipMatches(v, req.source.ip));
    case 'remote.ip':
      return run((v) => ipMatches(v, req.source.remoteIp ?? req.source.ip));
    case 'source.namespace':
      return run((v) => namespaceMatches(v, f.namespace));
    case 'source.principal':
      return run((v) => principalMatches(v, f.principal));
    case 'request.auth.principal':
      return httpOnly(tcp, allow, true, () => run((v) => requestPrincipalMatches(v, f)));
    case 'request.auth.audiences':
      return httpOnly(tcp, allow, true, () => run((v) => claimMatches(v, f.claims, ['aud'])));
    case 'request.auth.presenter':
      return httpOnly(tcp, allow, true, () => run((v) => claimMatches(v, f.claims, ['azp'])));
    case 'destination.ip':
      return run((v) => f.destIp !== undefined && ipMatches(v, f.destIp));
    case 'destination.port':
      return run((v) => Number(v) === req.destination.port);
    case 'connection.sni':
      return run((v) => stringMatches(v, req.sni, false));
    default:
      return false;
  }
}

/**
 * Istio's string match: `*` matches any non-empty value, `*x` a suffix, `x*` a prefix, anything else exactly.
 * An absent value matches nothing.
 */
export function stringMatches(pattern: string, value: string | undefined, ignoreCase: boolean): boolean {
  if (value === undefined) return false;
  const p = ignoreCase ? pattern.toLowerCase() : pattern;
  const v = ignoreCase ? value.toLowerCase() : value;
  if (p === '*') return v.length > 0;
  if (p.startsWith('*')) return v.endsWith(p.slice(1));
  if (p.endsWith('*')) return v.startsWith(p.slice(0, -1));
  return v === p;
}

/** Headers (`:authority`, `:method`, request.headers[…]): `*` means the header is present, even empty. */
function headerValueMatches(pattern: string, value: string | undefined, ignoreCase: boolean): boolean {
  if (pattern === '*') return value !== undefined;
  return stringMatches(pattern, value, ignoreCase);
}

/** `principals`: matched against the SPIFFE ID without `spiffe://`; a plaintext peer has none. */
function principalMatches(pattern: string, principal: string | undefined): boolean {
  return stringMatches(pattern, principal, false);
}

/** `namespaces`: the `/ns/<namespace>/` part of the peer's identity. */
function namespaceMatches(pattern: string, ns: string | undefined): boolean {
  if (ns === undefined) return false;
  if (pattern === '*') return true;
  return stringMatches(pattern, ns, false);
}

/** `requestPrincipals`: `<iss>/<sub>` from the validated JWT, split at the last `/` as Istio does. */
function requestPrincipalMatches(pattern: string, f: Facts): boolean {
  const rp = f.requestPrincipal;
  if (!rp) return false;
  if (pattern === '*') return rp.iss.length > 0 && rp.sub.length > 0;
  const idx = pattern.lastIndexOf('/');
  if (idx < 0) {
    if (pattern.startsWith('*')) return rp.iss.length > 0 && rp.sub.endsWith(pattern.slice(1));
    if (pattern.endsWith('*')) return rp.iss.startsWith(pattern.slice(0, -1)) && rp.sub.length > 0;
    return rp.iss === pattern && rp.sub === '';
  }
  const iss = pattern.slice(0, idx);
  const sub = pattern.slice(idx + 1);
  if (pattern.startsWith('*')) return (iss === '*' ? rp.iss.length > 0 : rp.iss.endsWith(iss.slice(1))) && rp.sub === sub;
  if (pattern.endsWith('*')) return rp.iss === iss && (sub === '*' ? rp.sub.length > 0 : rp.sub.startsWith(sub.slice(0, -1)));
  return rp.iss === iss && rp.sub === sub;
}

/** A claim (possibly nested) matches when it is a string that matches, or a list with a string element that matches. */
function claimMatches(pattern: string, claims: Record<string, unknown> | undefined, path: readonly string[]): boolean {
  let v: unknown = claims;
  for (const seg of path) {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) return false;
    v = (v as Record<string, unknown>)[seg];
  }
  if (typeof v === 'string') return stringMatches(pattern, v, false);
  if (Array.isArray(v)) return v.some((x) => typeof x === 'string' && stringMatches(pattern, x, false));
  return false;
}

function toCidr(text: string): Cidr | undefined {
  if (text.includes('/')) {
    const r = parseCidr(text);
    return isCidrError(r) ? undefined : r;
  }
  const ip = parseIp(text);
  return ip ? hostCidr(ip) : undefined;
}

export function ipMatches(block: string, ip: string): boolean {
  const c = toCidr(block);
  const b = parseIp(ip);
  return c !== undefined && b !== undefined && c.bytes.length === b.length && cidrContains(c, b);
}
