// Validation of security.istio.io AuthorizationPolicy, following istio.io's reference and Istio's own validation.
import type { Checker, Json } from './checker.ts';
import type { FieldPath, Origin } from './kinds.ts';
import type {
  AuthorizationAction,
  AuthorizationCondition,
  AuthorizationOperation,
  AuthorizationPolicy,
  AuthorizationRule,
  AuthorizationSource,
} from './kinds-security.ts';
import { dnsLabelProblem, objectMeta } from './validate-common.ts';
import { ipOrCidrProblem, portStringProblem, stringList, targetRefs, wildcardProblem, workloadSelector } from './validate-security-common.ts';

const ACTIONS: readonly AuthorizationAction[] = ['ALLOW', 'DENY', 'AUDIT', 'CUSTOM'];
const HTTP_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH'];

/** The `when` keys istio.io documents, in the form `when[].key` takes. */
export const CONDITION_KEYS = [
  'request.headers[<name>]',
  'source.ip',
  'remote.ip',
  'source.namespace',
  'source.principal',
  'request.auth.principal',
  'request.auth.audiences',
  'request.auth.presenter',
  'request.auth.claims[<claim>]',
  'destination.ip',
  'destination.port',
  'connection.sni',
  'experimental.envoy.filters.<filter>[<key>]',
] as const;

export function readAuthorizationPolicy(c: Checker, obj: Json, origin: Origin): AuthorizationPolicy | undefined {
  const metadata = objectMeta(c, obj, true, 'AuthorizationPolicy');
  if (!metadata) return undefined;
  c.knownFields(obj, [], ['apiVersion', 'kind', 'metadata', 'spec', 'status']);
  // `spec: {}` (or no spec) is the documented allow-nothing policy.
  const spec = c.object(obj.spec, ['spec']) ?? {};
  c.knownFields(spec, ['spec'], ['selector', 'targetRef', 'targetRefs', 'action', 'provider', 'rules']);
  const out: AuthorizationPolicy['spec'] = { targetRefs: targetRefs(c, spec), action: 'ALLOW' };
  if (spec.selector !== undefined && spec.selector !== null) {
    const sel = workloadSelector(c, spec.selector, ['spec', 'selector']);
    if (sel) out.selector = sel;
  }
  const action = c.string(spec.action, ['spec', 'action']);
  if (action !== undefined) {
    if ((ACTIONS as readonly string[]).includes(action)) out.action = action as AuthorizationAction;
    else {
      const fix = ACTIONS.find((a) => a.toLowerCase() === action.toLowerCase());
      c.error(['spec', 'action'], `must be one of ${ACTIONS.join(', ')}, not "${action}"${fix ? ` (values are case-sensitive: ${fix})` : ''}`);
    }
  }
  const provider = c.object(spec.provider, ['spec', 'provider']);
  if (provider) {
    c.knownFields(provider, ['spec', 'provider'], ['name']);
    const name = c.string(provider.name, ['spec', 'provider', 'name']);
    if (name !== undefined && name !== '') out.provider = name;
    if (out.action !== 'CUSTOM') c.error(['spec', 'provider'], `may only be set with action CUSTOM, not ${out.action}`, 'invalid-value', 'key');
  }
  const rulesRaw = c.array(spec.rules, ['spec', 'rules']);
  if (out.action === 'CUSTOM') {
    if (!rulesRaw) c.error(['spec'], 'a CUSTOM policy without rules is never triggered; add an empty rule {} to trigger it for every request', 'required');
    else if (out.provider === undefined) c.error(provider ? ['spec', 'provider', 'name'] : ['spec'], 'provider.name is required with action CUSTOM', 'required');
    c.warn(['spec', 'action'], `CUSTOM (external authorization${out.provider ? ` by provider "${out.provider}"` : ''}) is not supported by Trellis: requests its rules match are denied`, 'unsupported');
  }
  if (out.action === 'DENY' && !rulesRaw) {
    c.error(['spec'], 'a DENY policy without rules is never triggered; add an empty rule {} to deny every request', 'required');
  }
  if (rulesRaw) out.rules = rulesRaw.map((r, i) => rule(c, r, ['spec', 'rules', i], out.action)).filter((r): r is AuthorizationRule => r !== undefined);
  const dry = metadata.annotations['istio.io/dry-run'];
  let dryRun = false;
  if (dry !== undefined) {
    if (dry === 'true' || dry === 'false') dryRun = dry === 'true';
    else c.error(['metadata', 'annotations', 'istio.io/dry-run'], `must be "true" or "false", not "${dry}"`);
  }
  return { kind: 'AuthorizationPolicy', apiVersion: String(obj.apiVersion), metadata, origin, spec: out, dryRun };
}

function rule(c: Checker, v: unknown, path: FieldPath, action: AuthorizationAction): AuthorizationRule | undefined {
  if (v === null) {
    c.error(path, 'a rule must not be null (write {} for a rule that matches every request)', 'required');
    return undefined;
  }
  const o = c.object(v, path);
  if (!o) return undefined;
  c.knownFields(o, path, ['from', 'to', 'when']);
  const out: AuthorizationRule = { path };
  const from = c.array(o.from, [...path, 'from']);
  if (from) {
    if (from.length === 0) c.error([...path, 'from'], 'must not be empty (leave it out to match any source)');
    out.from = from.map((f, i) => source(c, f, [...path, 'from', i], action));
  }
  const to = c.array(o.to, [...path, 'to']);
  if (to) {
    if (to.length === 0) c.error([...path, 'to'], 'must not be empty (leave it out to match any operation)');
    out.to = to.map((t, i) => operation(c, t, [...path, 'to', i]));
  }
  const when = c.array(o.when, [...path, 'when']);
  if (when) out.when = when.map((w, i) => condition(c, w, [...path, 'when', i], action)).filter((w): w is AuthorizationCondition => w !== undefined);
  return out;
}

const SOURCE_FIELDS = ['principals', 'notPrincipals', 'requestPrincipals', 'notRequestPrincipals', 'namespaces', 'notNamespaces', 'ipBlocks', 'notIpBlocks', 'remoteIpBlocks', 'notRemoteIpBlocks'] as const;
const OPERATION_FIELDS = ['hosts', 'notHosts', 'ports', 'notPorts', 'methods', 'notMethods', 'paths', 'notPaths'] as const;

function source(c: Checker, v: unknown, path: FieldPath, action: AuthorizationAction): AuthorizationSource {
  const out: AuthorizationSource = {};
  const o = c.object(v, path, true);
  if (!o) return out;
  c.knownFields(o, path, ['source']);
  const sp = [...path, 'source'];
  const s = c.object(o.source, sp);
  if (!s) {
    if (o.source === undefined || o.source === null) c.error(path, 'source is required', 'required');
    return out;
  }
  if ('serviceAccounts' in s || 'notServiceAccounts' in s) {
    for (const f of ['serviceAccounts', 'notServiceAccounts']) {
      if (f in s) c.error([...sp, f], 'is not supported by Trellis yet: use principals (<trust-domain>/ns/<namespace>/sa/<name>)', 'unsupported', 'key');
    }
  }
  c.knownFields(s, sp, [...SOURCE_FIELDS, 'serviceAccounts', 'notServiceAccounts']);
  for (const f of SOURCE_FIELDS) {
    const fp = [...sp, f];
    const check =
      f === 'principals' || f === 'notPrincipals'
        ? (x: string, p: FieldPath) => principalCheck(c, x, p)
        : f === 'requestPrincipals' || f === 'notRequestPrincipals'
          ? (x: string, p: FieldPath) => requestPrincipalCheck(c, x, p)
          : f === 'namespaces' || f === 'notNamespaces'
            ? (x: string, p: FieldPath) => namespaceCheck(c, x, p)
            : (x: string, p: FieldPath) => {
                const prob = ipOrCidrProblem(x);
                if (prob) c.error(p, prob, 'invalid-cidr');
              };
    const list = stringList(c, s[f], fp, check);
    if (list) out[f] = list;
  }
  if (SOURCE_FIELDS.every((f) => s[f] === undefined || s[f] === null || (Array.isArray(s[f]) && s[f].length === 0)) && !('serviceAccounts' in s || 'notServiceAccounts' in s)) {
    c.error(sp, 'must not be empty: set at least one of principals, requestPrincipals, namespaces, ipBlocks, remoteIpBlocks or their not* forms', 'required');
  }
  if (action === 'CUSTOM') {
    for (const f of ['principals', 'notPrincipals', 'requestPrincipals', 'notRequestPrincipals', 'namespaces', 'notNamespaces'] as const) {
      if (out[f]) c.error([...sp, f], 'is not supported with action CUSTOM', 'invalid-value', 'key');
    }
  }
  return out;
}

function principalCheck(c: Checker, s: string, p: FieldPath): void {
  if (s.startsWith('spiffe://')) {
    c.error(p, `"${s}" must be written without "spiffe://" (e.g. ${s.slice('spiffe://'.length)})`);
    return;
  }
  const w = wildcardProblem(s);
  if (w) c.error(p, w);
  else if (!s.includes('*') && !/^[^/]+\/ns\/[^/]+\/sa\/[^/]+$/.test(s)) {
    c.warn(p, `"${s}" is not of the form <trust-domain>/ns/<namespace>/sa/<service-account>, so no workload identity matches it`, 'principal-format');
  }
}

function requestPrincipalCheck(c: Checker, s: string, p: FieldPath): void {
  const w = wildcardProblem(s);
  if (w) c.error(p, w);
  else if (!s.includes('*') && !s.includes('/')) c.warn(p, `"${s}" has no "/": a request principal is <issuer>/<subject>`, 'principal-format');
}

function namespaceCheck(c: Checker, s: string, p: FieldPath): void {
  const w = wildcardProblem(s);
  if (w) c.error(p, w);
  else if (!s.includes('*')) {
    const prob = dnsLabelProblem(s);
    if (prob) c.error(p, prob);
  }
}

function operation(c: Checker, v: unknown, path: FieldPath): AuthorizationOperation {
  const out: AuthorizationOperation = {};
  const o = c.object(v, path, true);
  if (!o) return out;
  c.knownFields(o, path, ['operation']);
  const op = [...path, 'operation'];
  const s = c.object(o.operation, op);
  if (!s) {
    if (o.operation === undefined || o.operation === null) c.error(path, 'operation is required', 'required');
    return out;
  }
  c.knownFields(s, op, OPERATION_FIELDS);
  for (const f of OPERATION_FIELDS) {
    const fp = [...op, f];
    if (f === 'ports' || f === 'notPorts') {
      const list = stringList(c, s[f], fp, (x, p) => {
        const prob = portStringProblem(x);
        if (prob) c.error(p, prob);
      });
      if (list) out[f] = list.filter((x) => !portStringProblem(x)).map(Number);
      continue;
    }
    const list = stringList(c, s[f], fp, (x, p) => {
      const w = wildcardProblem(x);
      if ((f === 'paths' || f === 'notPaths') && /[{}]/.test(x)) c.error(p, `"${x}": path templates ({*}, {**}) are not supported by Trellis`, 'unsupported');
      else if (w) c.error(p, w);
      else if ((f === 'paths' || f === 'notPaths') && !x.startsWith('/') && !x.startsWith('*')) c.error(p, `"${x}" must start with "/" (or be a "*" suffix match)`);
      else if ((f === 'methods' || f === 'notMethods') && x !== x.toUpperCase() && HTTP_METHODS.includes(x.toUpperCase())) {
        c.warn(p, `methods are matched case-sensitively: "${x}" never matches ${x.toUpperCase()}`, 'case');
      }
    });
    if (list) out[f] = list;
  }
  if (OPERATION_FIELDS.every((f) => s[f] === undefined || s[f] === null || (Array.isArray(s[f]) && s[f].length === 0))) {
    c.error(op, 'must not be empty: set at least one of hosts, ports, methods, paths or their not* forms', 'required');
  }
  return out;
}

/** Splits `[a][b]` into `['a', 'b']`; undefined when malformed. */
export function bracketNames(s: string): string[] | undefined {
  const out: string[] = [];
  let rest = s;
  while (rest.length > 0) {
    const m = /^\[([^[\]]+)\]/.exec(rest);
    if (!m) return undefined;
    out.push(m[1] ?? '');
    rest = rest.slice(m[0].length);
  }
  return out.length > 0 ? out : undefined;
}

type KeyClass = 'header' | 'ip' | 'port' | 'string' | 'claims' | 'envoy';

/** Classifies a `when` key, or returns the problem with it. */
export function conditionKeyKind(key: string): KeyClass | { error: string } {
  if (key.startsWith('request.headers')) {
    const names = bracketNames(key.slice('request.headers'.length));
    return names && names.length === 1 ? 'header' : { error: `"${key}" must name one header in brackets, e.g. request.headers[User-Agent]` };
  }
  if (key.startsWith('request.auth.claims')) {
    return bracketNames(key.slice('request.auth.claims'.length)) ? 'claims' : { error: `"${key}" must name a claim in brackets, e.g. request.auth.claims[groups] or request.auth.claims[a][b]` };
  }
  if (key.startsWith('experimental.envoy.filters.')) {
    return /^experimental\.envoy\.filters\.[^[\]]+\[[^[\]]+\]$/.test(key) ? 'envoy' : { error: `"${key}" must have the form experimental.envoy.filters.<filter>[<key>]` };
  }
  switch (key) {
    case 'source.ip':
    case 'remote.ip':
    case 'destination.ip':
      return 'ip';
    case 'destination.port':
      return 'port';
    case 'source.namespace':
    case 'source.principal':
    case 'request.auth.principal':
    case 'request.auth.audiences':
    case 'request.auth.presenter':
    case 'connection.sni':
      return 'string';
    default:
      return { error: `unknown attribute "${key}"; must be one of ${CONDITION_KEYS.join(', ')}` };
  }
}

function condition(c: Checker, v: unknown, path: FieldPath, action: AuthorizationAction): AuthorizationCondition | undefined {
  const o = c.object(v, path, true);
  if (!o) return undefined;
  c.knownFields(o, path, ['key', 'values', 'notValues']);
  const key = c.string(o.key, [...path, 'key'], true);
  if (key === '') c.error([...path, 'key'], 'is required', 'required');
  const kind = key ? conditionKeyKind(key) : undefined;
  if (kind !== undefined && typeof kind === 'object') c.error([...path, 'key'], kind.error);
  if (key && action === 'CUSTOM' && (key === 'source.namespace' || key === 'source.principal' || key.startsWith('request.auth.'))) {
    c.error([...path, 'key'], `"${key}" is not supported with action CUSTOM`);
  }
  const check = (x: string, p: FieldPath): void => {
    if (kind === 'ip') {
      const prob = ipOrCidrProblem(x);
      if (prob) c.error(p, prob, 'invalid-cidr');
    } else if (kind === 'port') {
      const prob = portStringProblem(x);
      if (prob) c.error(p, prob);
    } else if (kind === 'envoy' && x.startsWith('[') && x.endsWith(']')) {
      const w = wildcardProblem(x.slice(1, -1));
      if (w) c.error(p, w);
    } else {
      const w = wildcardProblem(x);
      if (w) c.error(p, w);
    }
  };
  const values = stringList(c, o.values, [...path, 'values'], check);
  const notValues = stringList(c, o.notValues, [...path, 'notValues'], check);
  if ((values?.length ?? 0) === 0 && (notValues?.length ?? 0) === 0) {
    c.error(path, `at least one of values or notValues must be set${key ? ` for key ${key}` : ''}`, 'required');
  }
  if (key === undefined || key === '' || typeof kind !== 'string') return undefined;
  const out: AuthorizationCondition = { key };
  if (values) out.values = values;
  if (notValues) out.notValues = notValues;
  return out;
}
