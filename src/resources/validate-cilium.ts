// Validation of cilium.io/v2 CiliumNetworkPolicy and CiliumClusterwideNetworkPolicy, following Cilium's rule sanitizer.
import { describe, type Checker, type Json } from './checker.ts';
import type {
  CiliumCidrRule,
  CiliumEntity,
  CiliumHttpRule,
  CiliumNetworkPolicy,
  CiliumPeerRule,
  CiliumPortProtocolSpec,
  CiliumPortRule,
  CiliumRule,
  FieldPath,
  HttpHeaderMatch,
  LabelSelector,
  Origin,
} from './kinds.ts';
import { cidrWithin, isCidrError, parseCidr, parseIp, hostCidr } from './net.ts';
import { labelSelector, objectMeta, portNameProblem } from './validate-common.ts';

export const CILIUM_ENTITIES: readonly CiliumEntity[] = [
  'all', 'world', 'world-ipv4', 'world-ipv6', 'cluster', 'host', 'remote-node', 'kube-apiserver', 'ingress', 'health', 'init', 'unmanaged', 'none',
];

type Direction = 'ingress' | 'ingressDeny' | 'egress' | 'egressDeny';

/** Per direction: the field names of each L3 peer kind. Cilium rejects more than one kind in one rule. */
const L3_FIELDS = {
  ingress: { endpoints: 'fromEndpoints', requires: 'fromRequires', entities: 'fromEntities', cidr: 'fromCIDR', cidrSet: 'fromCIDRSet', nodes: 'fromNodes' },
  egress: { endpoints: 'toEndpoints', requires: 'toRequires', entities: 'toEntities', cidr: 'toCIDR', cidrSet: 'toCIDRSet', nodes: 'toNodes' },
} as const;

const OTHER_FIELDS: Record<Direction, readonly string[]> = {
  ingress: ['toPorts', 'icmps', 'authentication', 'fromGroups'],
  ingressDeny: ['toPorts', 'icmps', 'fromGroups'],
  egress: ['toPorts', 'icmps', 'authentication', 'toServices', 'toFQDNs', 'toGroups'],
  egressDeny: ['toPorts', 'icmps', 'toServices', 'toGroups'],
};

export function readCiliumPolicy(
  c: Checker,
  obj: Json,
  origin: Origin,
  kind: 'CiliumNetworkPolicy' | 'CiliumClusterwideNetworkPolicy',
): CiliumNetworkPolicy | undefined {
  const clusterwide = kind === 'CiliumClusterwideNetworkPolicy';
  const metadata = objectMeta(c, obj, !clusterwide, kind);
  if (!metadata) return undefined;
  const known = ['apiVersion', 'kind', 'metadata', 'spec', 'specs', 'status'];
  c.knownFields(obj, [], known);
  const rules: CiliumRule[] = [];
  if (obj.spec !== undefined && obj.spec !== null) {
    const r = rule(c, obj.spec, ['spec'], clusterwide);
    if (r) rules.push(r);
  }
  (c.array(obj.specs, ['specs']) ?? []).forEach((s, i) => {
    const r = rule(c, s, ['specs', i], clusterwide);
    if (r) rules.push(r);
  });
  // Cilium: "Invalid CiliumNetworkPolicy spec(s): empty policy".
  if ((obj.spec === undefined || obj.spec === null) && (!Array.isArray(obj.specs) || obj.specs.length === 0)) {
    if (obj.specs === undefined || obj.specs === null) c.error([], 'must have spec or specs', 'required');
    else if (Array.isArray(obj.specs)) c.error(['specs'], 'is empty and there is no spec: the policy has no rules', 'required', 'key');
  }
  return { kind, apiVersion: String(obj.apiVersion), metadata, origin, rules };
}

function rule(c: Checker, v: unknown, path: FieldPath, clusterwide: boolean): CiliumRule | undefined {
  const o = c.object(v, path);
  if (!o) return undefined;
  c.knownFields(o, path, ['endpointSelector', 'nodeSelector', 'ingress', 'ingressDeny', 'egress', 'egressDeny', 'labels', 'description', 'enableDefaultDeny', 'log']);
  const out: CiliumRule = { enableDefaultDeny: {}, path };
  const hasEp = o.endpointSelector !== undefined && o.endpointSelector !== null;
  const hasNode = o.nodeSelector !== undefined && o.nodeSelector !== null;
  if (hasEp && hasNode) c.error([...path, 'nodeSelector'], 'may not be combined with endpointSelector: a rule selects either endpoints or nodes', 'exclusive-fields', 'key');
  else if (!hasEp && !hasNode) c.error(path, 'must have endpointSelector or nodeSelector', 'required');
  if (hasEp) out.endpointSelector = labelSelector(c, o.endpointSelector, [...path, 'endpointSelector'], { ciliumKeys: true });
  if (hasNode) {
    if (!clusterwide) c.error([...path, 'nodeSelector'], 'host policies (nodeSelector) are only allowed in CiliumClusterwideNetworkPolicy', 'invalid-value', 'key');
    out.nodeSelector = labelSelector(c, o.nodeSelector, [...path, 'nodeSelector'], { ciliumKeys: true });
  }
  if (typeof o.description === 'string') out.description = o.description;
  const edd = c.object(o.enableDefaultDeny, [...path, 'enableDefaultDeny']);
  if (edd) {
    c.knownFields(edd, [...path, 'enableDefaultDeny'], ['ingress', 'egress']);
    const ing = c.boolean(edd.ingress, [...path, 'enableDefaultDeny', 'ingress']);
    const eg = c.boolean(edd.egress, [...path, 'enableDefaultDeny', 'egress']);
    if (ing !== undefined) out.enableDefaultDeny.ingress = ing;
    if (eg !== undefined) out.enableDefaultDeny.egress = eg;
  }
  if (['ingress', 'ingressDeny', 'egress', 'egressDeny'].every((d) => o[d] === undefined || o[d] === null)) {
    c.warn(path, 'has no ingress, ingressDeny, egress or egressDeny section, so it has no effect', 'no-effect');
  }
  for (const dir of ['ingress', 'ingressDeny', 'egress', 'egressDeny'] as const) {
    const list = c.array(o[dir], [...path, dir]);
    if (list) out[dir] = list.map((r, i) => peerRule(c, r, [...path, dir, i], dir, hasNode && !hasEp));
  }
  return out;
}

function peerRule(c: Checker, v: unknown, path: FieldPath, dir: Direction, hostPolicy: boolean): CiliumPeerRule {
  const o = c.object(v, path) ?? {};
  const egress = dir === 'egress' || dir === 'egressDeny';
  const deny = dir === 'ingressDeny' || dir === 'egressDeny';
  const names = egress ? L3_FIELDS.egress : L3_FIELDS.ingress;
  c.knownFields(o, path, [...Object.values(names), ...OTHER_FIELDS[dir]]);
  // Cilium's sanitizer: "combining toEndpoints and toCIDR is not supported yet", and so on for every pair.
  const l3 = [names.endpoints, names.entities, names.cidr, names.cidrSet, names.nodes, ...(egress ? ['toServices', 'toFQDNs', 'toGroups'] : ['fromGroups'])];
  const set = l3.filter((f) => Array.isArray(o[f]) && (o[f] as unknown[]).length > 0);
  if (set.length > 1) {
    c.error([...path, set[1] ?? ''], `combining ${set[0]} and ${set[1]} in one rule is not supported; write them as separate rules`, 'exclusive-fields', 'key');
  }
  if (nonEmpty(o.icmps) && nonEmpty(o.toPorts)) {
    c.error([...path, 'icmps'], 'may only be present without toPorts; define a separate rule for toPorts', 'exclusive-fields', 'key');
  }
  const out: CiliumPeerRule = { path };
  const selectors = (field: string): LabelSelector[] | undefined =>
    c.array(o[field], [...path, field])?.map((s, i) => labelSelector(c, s, [...path, field, i], { ciliumKeys: true }));
  const endpoints = selectors(names.endpoints);
  if (endpoints) out.endpoints = endpoints;
  const requires = selectors(names.requires);
  if (requires) out.requires = requires;
  const nodes = selectors(names.nodes);
  if (nodes) out.nodes = nodes;
  const entities = c.array(o[names.entities], [...path, names.entities]);
  if (entities) {
    out.entities = [];
    entities.forEach((e, i) => {
      const s = c.string(e, [...path, names.entities, i], true);
      if (s === undefined) return;
      if (!(CILIUM_ENTITIES as readonly string[]).includes(s)) {
        const fix = CILIUM_ENTITIES.find((x) => x === s.toLowerCase() || x === s.toLowerCase().replace(/[_ ]/g, '-'));
        c.error([...path, names.entities, i], `unsupported entity "${s}"${fix ? ` (did you mean "${fix}"?)` : ''}; must be one of ${CILIUM_ENTITIES.join(', ')}`);
      }
      else out.entities?.push(s as CiliumEntity);
    });
  }
  const cidrs = c.array(o[names.cidr], [...path, names.cidr]);
  if (cidrs) {
    out.cidr = [];
    cidrs.forEach((x, i) => {
      const t = cidrText(c, x, [...path, names.cidr, i]);
      if (t) out.cidr?.push(t);
    });
  }
  const sets = c.array(o[names.cidrSet], [...path, names.cidrSet]);
  if (sets) out.cidrSet = sets.map((s, i) => cidrSet(c, s, [...path, names.cidrSet, i])).filter((x): x is CiliumCidrRule => x !== undefined);
  for (const unsupported of ['fromGroups', 'toGroups', 'toServices', 'toFQDNs']) {
    if (o[unsupported] !== undefined) {
      out.opaqueL3 = true;
      c.warn([...path, unsupported], `${unsupported} depends on runtime state (cloud groups, DNS answers, service backends) and is not evaluated offline; this rule allows nothing through it`, 'unsupported');
    }
  }
  if (o.icmps !== undefined && o.icmps !== null) {
    icmps(c, o.icmps, [...path, 'icmps']);
    c.warn([...path, 'icmps'], 'ICMP rules are accepted but not evaluated: Trellis decides TCP, UDP and SCTP flows', 'unsupported');
  }
  const ports = c.array(o.toPorts, [...path, 'toPorts']);
  if (ports) out.toPorts = ports.map((p, i) => portRule(c, p, [...path, 'toPorts', i], deny, hostPolicy, egress));
  return out;
}

function nonEmpty(v: unknown): boolean {
  return Array.isArray(v) ? v.length > 0 : v !== undefined && v !== null;
}

/** ICMP type names Cilium accepts besides numbers (pkg/policy/api/icmp.go), for IPv4 and IPv6. */
const ICMP_TYPE_NAMES = new Set([
  'EchoReply', 'DestinationUnreachable', 'Redirect', 'Echo', 'EchoRequest', 'RouterAdvertisement', 'RouterSelection', 'TimeExceeded', 'ParameterProblem',
  'Timestamp', 'TimestampReply', 'Photuris', 'ExtendedEchoRequest', 'ExtendedEchoReply', 'PacketTooBig', 'MLDQuery', 'MLDReport', 'MLDDone',
  'NeighborSolicitation', 'NeighborAdvertisement', 'RouterSolicitation', 'RedirectMessage', 'MLDv2Report', 'ExtendedEchoRequest', 'ExtendedEchoReply',
]);

function icmps(c: Checker, v: unknown, path: FieldPath): void {
  (c.array(v, path) ?? []).forEach((r, i) => {
    const o = c.object(r, [...path, i]);
    if (!o) return;
    c.knownFields(o, [...path, i], ['fields']);
    const fields = c.array(o.fields, [...path, i, 'fields']) ?? [];
    if (fields.length > 40) c.error([...path, i, 'fields'], `too many types (${fields.length}); Cilium allows at most 40`);
    fields.forEach((f, j) => {
      const fp = [...path, i, 'fields', j];
      const fo = c.object(f, fp);
      if (!fo) return;
      c.knownFields(fo, fp, ['type', 'family']);
      const family = fo.family;
      if (family !== undefined && family !== null && family !== '' && family !== 'IPv4' && family !== 'IPv6') {
        c.error([...fp, 'family'], `wrong family ${typeof family === 'string' ? `"${family}"` : describe(family)}; must be IPv4 or IPv6`);
      }
      const t = fo.type;
      if (t === undefined || t === null) c.error([...fp, 'type'], 'is required', 'required');
      else if (typeof t === 'number' || (typeof t === 'string' && /^[0-9]+$/.test(t))) {
        if (!Number.isInteger(Number(t)) || Number(t) > 255 || Number(t) < 0) c.error([...fp, 'type'], 'must be an ICMP type 0-255 or a type name such as EchoRequest');
      } else if (typeof t !== 'string' || !ICMP_TYPE_NAMES.has(t)) {
        c.error([...fp, 'type'], 'must be an ICMP type 0-255 or a type name such as EchoRequest');
      }
    });
  });
}

function cidrText(c: Checker, v: unknown, path: FieldPath, allowBareIp = true): string | undefined {
  const s = c.string(v, path, true);
  if (s === undefined) return undefined;
  if (s === '') {
    c.error(path, 'IP must be specified', 'required');
    return undefined;
  }
  // Cilium accepts a bare address as a host prefix in fromCIDR/toCIDR (not in a CIDRSet's cidr).
  if (!s.includes('/') && allowBareIp) {
    const ip = parseIp(s);
    if (ip) return hostCidr(ip).text;
  }
  const p = parseCidr(s);
  if (isCidrError(p)) {
    c.error(path, p.error, 'invalid-cidr');
    return undefined;
  }
  return p.text;
}

function cidrSet(c: Checker, v: unknown, path: FieldPath): CiliumCidrRule | undefined {
  const o = c.object(v, path);
  if (!o) return undefined;
  c.knownFields(o, path, ['cidr', 'except', 'cidrGroupRef', 'cidrGroupSelector']);
  // Cilium: exactly one of cidr, cidrGroupRef or cidrGroupSelector.
  const given = ['cidr', 'cidrGroupRef', 'cidrGroupSelector'].filter((f) => o[f] !== undefined && o[f] !== null && o[f] !== '');
  if (given.length === 0) {
    c.error(path, 'one of cidr, cidrGroupRef or cidrGroupSelector is required', 'required');
    return undefined;
  }
  if (given.length > 1) {
    c.error([...path, given[1] ?? ''], `may not be combined with ${given[0]}: set only one of cidr, cidrGroupRef or cidrGroupSelector`, 'exclusive-fields', 'key');
    return undefined;
  }
  if (given[0] !== 'cidr') {
    c.warn(path, 'CiliumCIDRGroup references are not evaluated offline; this entry matches nothing', 'unsupported');
    return undefined;
  }
  if (typeof o.cidr === 'string' && !o.cidr.includes('/') && parseIp(o.cidr)) {
    c.error([...path, 'cidr'], `must be a CIDR in <ip>/<length> form (did you mean ${hostCidr(parseIp(o.cidr) ?? new Uint8Array(4)).text}?)`, 'invalid-cidr');
    return undefined;
  }
  const cidr = cidrText(c, o.cidr, [...path, 'cidr'], false);
  if (!cidr) return undefined;
  const outer = parseCidr(cidr);
  const except: string[] = [];
  (c.array(o.except, [...path, 'except']) ?? []).forEach((e, i) => {
    const t = cidrText(c, e, [...path, 'except', i]);
    if (!t) return;
    const inner = parseCidr(t);
    if (!isCidrError(inner) && !isCidrError(outer) && !cidrWithin(inner, outer)) {
      c.error([...path, 'except', i], `${t} is not contained in cidr ${cidr}`, 'invalid-cidr');
      return;
    }
    except.push(t);
  });
  return { cidr, except };
}

function portRule(c: Checker, v: unknown, path: FieldPath, deny: boolean, hostPolicy: boolean, egress: boolean): CiliumPortRule {
  const o = c.object(v, path) ?? {};
  // Deny rules take a PortDenyRule: ports only (rules gets its own message below).
  c.knownFields(o, path, deny ? ['ports', 'rules'] : ['ports', 'rules', 'terminatingTLS', 'originatingTLS', 'serverNames', 'listener']);
  const out: CiliumPortRule = { ports: [] };
  const ports = c.array(o.ports, [...path, 'ports']) ?? [];
  if (ports.length > 40) c.error([...path, 'ports'], `too many ports (${ports.length}); Cilium allows at most 40 per toPorts entry`);
  ports.forEach((p, i) => {
    const pp = portProtocol(c, p, [...path, 'ports', i]);
    if (pp) out.ports.push(pp);
  });
  const rules = c.object(o.rules, [...path, 'rules']);
  if (rules) {
    c.knownFields(rules, [...path, 'rules'], ['http', 'kafka', 'dns', 'l7proto', 'l7']);
    const l7Kinds = ['http', 'kafka', 'dns', 'l7'].filter((k) => rules[k] !== undefined);
    if (deny) c.error([...path, 'rules'], 'L7 rules are not allowed in deny rules', 'invalid-value', 'key');
    if (l7Kinds.length > 1) c.error([...path, 'rules', l7Kinds[1] ?? ''], `may not be combined with ${l7Kinds[0]} rules`, 'exclusive-fields', 'key');
    if (hostPolicy && !egress && l7Kinds.length > 0) c.error([...path, 'rules'], 'L7 policy is not supported on host ingress (nodeSelector)', 'invalid-value', 'key');
    else if (hostPolicy && rules.http !== undefined) c.error([...path, 'rules', 'http'], 'HTTP rules are not supported in host policies (nodeSelector); only DNS rules are allowed on host egress', 'invalid-value', 'key');
    if (!egress && rules.dns !== undefined) c.error([...path, 'rules', 'dns'], 'DNS rules are not allowed on ingress', 'invalid-value', 'key');
    for (const [i, pp] of out.ports.entries()) {
      const pathI = [...path, 'ports', i];
      if (rules.dns === undefined && l7Kinds.length > 0 && pp.protocol !== 'TCP') {
        const why = pp.protocol === 'ANY' ? 'ANY, the default when protocol is not set' : pp.protocol;
        c.error([...pathI, 'protocol'], `L7 rules can only apply to TCP (not ${why}); set protocol: TCP`, 'invalid-value', 'key');
      }
      if (rules.dns !== undefined && pp.endPort !== undefined) c.error([...pathI, 'endPort'], 'DNS rules do not support port ranges', 'invalid-value', 'key');
      if (pp.port === 0 && l7Kinds.length > 0) c.error([...pathI, 'port'], 'L7 rules can not be used when a port is 0 (every port)');
    }
    if (rules.http !== undefined) {
      out.http = (c.array(rules.http, [...path, 'rules', 'http']) ?? []).map((h, i) => httpRule(c, h, [...path, 'rules', 'http', i]));
    }
    if (rules.kafka !== undefined || rules.l7 !== undefined || rules.l7proto !== undefined) {
      c.warn([...path, 'rules'], 'Kafka and generic L7 rules are not evaluated by Trellis; the port is treated as allowed at L4', 'unsupported');
    }
  }
  return out;
}

function portProtocol(c: Checker, v: unknown, path: FieldPath): CiliumPortProtocolSpec | undefined {
  const o = c.object(v, path);
  if (!o) return undefined;
  c.knownFields(o, path, ['port', 'endPort', 'protocol']);
  const protoText = o.protocol === undefined || o.protocol === null || o.protocol === '' ? 'ANY' : c.string(o.protocol, [...path, 'protocol']);
  let protocol: CiliumPortProtocolSpec['protocol'] = 'ANY';
  if (protoText === 'TCP' || protoText === 'UDP' || protoText === 'SCTP' || protoText === 'ANY') protocol = protoText;
  else if (protoText !== undefined) {
    const upper = protoText.toUpperCase();
    const hint = ['TCP', 'UDP', 'SCTP', 'ANY'].includes(upper)
      ? ` (the CRD only accepts upper case: ${upper})`
      : ['ICMP', 'ICMPV6', 'ICMPV4'].includes(upper)
        ? ' (ICMP goes in icmps, in a separate rule from toPorts)'
        : '';
    c.error([...path, 'protocol'], `must be TCP, UDP, SCTP or ANY${hint}`);
  }
  let port: number | string = 0;
  const raw = o.port;
  if (raw === undefined || raw === null || raw === '') {
    // Cilium: "port must be specified"; "0" is how a rule says every port.
    c.error(raw === undefined ? path : [...path, 'port'], 'port must be specified (use "0" for every port)', 'required');
  } else if (typeof raw === 'number' || (typeof raw === 'string' && /^[0-9]+$/.test(raw))) {
    const n = Number(raw);
    if (!Number.isInteger(n) || n > 65535 || n < 0) c.error([...path, 'port'], `must be 0-65535 or an IANA port name, not ${String(raw)}`);
    else port = n;
  } else if (typeof raw === 'string') {
    // Cilium lowercases named ports when it sanitizes a rule.
    const name = raw.toLowerCase();
    const prob = portNameProblem(name);
    if (prob) c.error([...path, 'port'], `must be 0-65535 or an IANA port name: ${prob}`);
    else port = name;
  } else c.error([...path, 'port'], `must be 0-65535 or an IANA port name, not ${describe(raw)}`);
  const out: CiliumPortProtocolSpec = { port, protocol };
  if (o.endPort !== undefined && o.endPort !== null) {
    const end = c.integer(o.endPort, [...path, 'endPort'], 0, 65535);
    // Cilium ignores endPort for named ports (layer4.rst) rather than rejecting the rule.
    if (typeof port === 'string') c.warn([...path, 'endPort'], 'is ignored when port is a named port', 'ignored');
    else if (end !== undefined && end !== 0 && end < port) c.error([...path, 'endPort'], `must be greater than or equal to port (${port})`);
    else if (end !== undefined && end !== 0) out.endPort = end;
  }
  return out;
}

function httpRule(c: Checker, v: unknown, path: FieldPath): CiliumHttpRule {
  const o = c.object(v, path) ?? {};
  c.knownFields(o, path, ['method', 'path', 'host', 'headers', 'headerMatches']);
  const out: CiliumHttpRule = { headers: [], headerMatches: [] };
  for (const f of ['method', 'path', 'host'] as const) {
    const s = c.string(o[f], [...path, f]);
    if (s === undefined) continue;
    const problem = regexProblem(s);
    if (problem) {
      c.error([...path, f], `"${s}" is not a valid regular expression: ${problem}`, 'invalid-regex');
      continue;
    }
    out[f] = s;
  }
  (c.array(o.headers, [...path, 'headers']) ?? []).forEach((h, i) => {
    const s = c.string(h, [...path, 'headers', i], true);
    if (s !== undefined && s.trim() !== '') out.headers.push(s);
    else if (s !== undefined) c.error([...path, 'headers', i], 'must name a header, optionally with ": value"');
  });
  (c.array(o.headerMatches, [...path, 'headerMatches']) ?? []).forEach((h, i) => {
    const hp = [...path, 'headerMatches', i];
    const ho = c.object(h, hp);
    if (!ho) return;
    c.knownFields(ho, hp, ['name', 'value', 'mismatch', 'secret']);
    const name = c.string(ho.name, [...hp, 'name'], true);
    if (name === undefined) return;
    if (name.trim() === '') {
      c.error([...hp, 'name'], 'header name missing', 'required');
      return;
    }
    const m: HttpHeaderMatch = { name };
    const value = c.string(ho.value, [...hp, 'value']);
    if (value !== undefined) m.value = value;
    if (ho.secret !== undefined) c.warn([...hp, 'secret'], 'header values from Secrets are not read offline; the header must be present', 'unsupported');
    const mm = c.string(ho.mismatch, [...hp, 'mismatch']);
    if (mm !== undefined) {
      if (mm === 'LOG' || mm === 'ADD' || mm === 'DELETE' || mm === 'REPLACE') m.mismatch = mm;
      else c.error([...hp, 'mismatch'], 'must be LOG, ADD, DELETE or REPLACE');
    }
    out.headerMatches.push(m);
  });
  return out;
}

/** Cilium compiles path, method and host as Go (RE2) regular expressions; JavaScript's syntax is close enough to check them. */
function regexProblem(s: string): string | undefined {
  // RE2 has no lookaround and no backreferences; JavaScript would accept them.
  if (/\(\?<?[=!]/.test(s)) return 'lookahead and lookbehind are not supported (Go RE2 syntax)';
  if (/(^|[^\\])\\[1-9]/.test(s)) return 'backreferences are not supported (Go RE2 syntax)';
  // A leading flag group such as (?i) is RE2 syntax that JavaScript lacks: check the rest.
  const body = s.replace(/^\(\?[imsU]+\)/, '');
  try {
    new RegExp(`^(?:${body})$`);
    return undefined;
  } catch (e) {
    const m = /: ([^:]*)$/.exec((e as Error).message);
    return (m?.[1] ?? (e as Error).message).trim().toLowerCase();
  }
}
