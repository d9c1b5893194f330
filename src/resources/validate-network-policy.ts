// Validation of networking.k8s.io/v1 NetworkPolicy, following the API server's own rules (ValidateNetworkPolicy).
import { describe, type Checker, type Json } from './checker.ts';
import type { FieldPath, IpBlock, NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort, NetworkPolicyRule, Origin } from './kinds.ts';
import { cidrWithin, isCidrError, parseCidr } from './net.ts';
import { labelSelector, objectMeta, portNameProblem, protocol } from './validate-common.ts';

export function readNetworkPolicy(c: Checker, obj: Json, origin: Origin): NetworkPolicy | undefined {
  const metadata = objectMeta(c, obj, true, 'NetworkPolicy');
  if (!metadata) return undefined;
  c.knownFields(obj, [], ['apiVersion', 'kind', 'metadata', 'spec', 'status']);
  const spec = c.object(obj.spec, ['spec'], true) ?? {};
  c.knownFields(spec, ['spec'], ['podSelector', 'policyTypes', 'ingress', 'egress']);
  const out: NetworkPolicy['spec'] = { podSelector: labelSelector(c, spec.podSelector, ['spec', 'podSelector']) };
  const types = c.array(spec.policyTypes, ['spec', 'policyTypes']);
  if (types) {
    out.policyTypes = [];
    // The API server allows at most two entries, each Ingress or Egress (a repeated value is accepted).
    if (types.length > 2) c.error(['spec', 'policyTypes'], `may not specify more than two policyTypes (found ${types.length})`);
    types.forEach((t, i) => {
      if (t !== 'Ingress' && t !== 'Egress') {
        const fix = typeof t === 'string' ? ['Ingress', 'Egress'].find((x) => x.toLowerCase() === t.toLowerCase()) : undefined;
        c.error(['spec', 'policyTypes', i], `must be Ingress or Egress, not ${typeof t === 'string' ? `"${t}"` : describe(t)}${fix ? ` (values are case-sensitive: ${fix})` : ''}`);
      } else if (out.policyTypes?.includes(t)) c.warn(['spec', 'policyTypes', i], `"${t}" is listed twice`, 'duplicate');
      else out.policyTypes?.push(t);
    });
  }
  for (const dir of ['ingress', 'egress'] as const) {
    const rules = c.array(spec[dir], ['spec', dir]);
    if (rules) out[dir] = rules.map((r, i) => rule(c, r, ['spec', dir, i], dir === 'ingress' ? 'from' : 'to'));
  }
  return { kind: 'NetworkPolicy', apiVersion: String(obj.apiVersion), metadata, origin, spec: out };
}

function rule(c: Checker, v: unknown, path: FieldPath, peerField: 'from' | 'to'): NetworkPolicyRule {
  const o = c.object(v, path) ?? {};
  c.knownFields(o, path, [peerField, 'ports']);
  const out: NetworkPolicyRule = {};
  const peers = c.array(o[peerField], [...path, peerField]);
  if (peers) out.peers = peers.map((p, i) => peer(c, p, [...path, peerField, i]));
  const ports = c.array(o.ports, [...path, 'ports']);
  if (ports) out.ports = ports.map((p, i) => port(c, p, [...path, 'ports', i]));
  return out;
}

function peer(c: Checker, v: unknown, path: FieldPath): NetworkPolicyPeer {
  const o = c.object(v, path) ?? {};
  c.knownFields(o, path, ['podSelector', 'namespaceSelector', 'ipBlock']);
  const out: NetworkPolicyPeer = {};
  if (o.podSelector !== undefined && o.podSelector !== null) out.podSelector = labelSelector(c, o.podSelector, [...path, 'podSelector']);
  if (o.namespaceSelector !== undefined && o.namespaceSelector !== null) {
    out.namespaceSelector = labelSelector(c, o.namespaceSelector, [...path, 'namespaceSelector']);
  }
  if (o.ipBlock !== undefined && o.ipBlock !== null) {
    if (out.podSelector || out.namespaceSelector) {
      c.error([...path, 'ipBlock'], 'may not be combined with podSelector or namespaceSelector in one peer', 'exclusive-fields', 'key');
    }
    const b = ipBlock(c, o.ipBlock, [...path, 'ipBlock']);
    if (b) out.ipBlock = b;
  }
  if (!out.podSelector && !out.namespaceSelector && o.ipBlock === undefined) {
    c.error(path, 'must specify a peer: podSelector, namespaceSelector or ipBlock', 'required');
  }
  return out;
}

function ipBlock(c: Checker, v: unknown, path: FieldPath): IpBlock | undefined {
  const o = c.object(v, path);
  if (!o) return undefined;
  c.knownFields(o, path, ['cidr', 'except']);
  const text = c.string(o.cidr, [...path, 'cidr'], true);
  if (text === undefined) return undefined;
  if (text === '') {
    c.error([...path, 'cidr'], 'is required', 'required');
    return undefined;
  }
  const cidr = parseCidr(text);
  if (isCidrError(cidr)) {
    c.error([...path, 'cidr'], cidr.error, 'invalid-cidr');
    return undefined;
  }
  // The API server accepts host bits (it masks them); say what the block really is.
  if (isCidrError(parseCidr(text, true))) c.warn([...path, 'cidr'], `has host bits set; it means ${cidr.text}`, 'host-bits');
  const except: string[] = [];
  (c.array(o.except, [...path, 'except']) ?? []).forEach((e, i) => {
    const ep = [...path, 'except', i];
    const s = c.string(e, ep, true);
    if (s === undefined) return;
    const ex = parseCidr(s);
    if (isCidrError(ex)) c.error(ep, ex.error, 'invalid-cidr');
    else if (!cidrWithin(ex, cidr) || ex.prefix === cidr.prefix) c.error(ep, `${ex.text} is not a strict subset of cidr ${cidr.text}`, 'invalid-cidr');
    else except.push(ex.text);
  });
  return { cidr: cidr.text, except };
}

function port(c: Checker, v: unknown, path: FieldPath): NetworkPolicyPort {
  const o = c.object(v, path) ?? {};
  c.knownFields(o, path, ['protocol', 'port', 'endPort']);
  const out: NetworkPolicyPort = { protocol: protocol(c, o.protocol, [...path, 'protocol']) };
  const p = o.port;
  if (typeof p === 'number') {
    if (!Number.isInteger(p) || p < 1 || p > 65535) c.error([...path, 'port'], 'must be 1-65535 or an IANA port name');
    else out.port = p;
  } else if (typeof p === 'string') {
    if (/^[0-9]+$/.test(p)) c.error([...path, 'port'], `must be 1-65535 or an IANA port name (write the number unquoted: ${p})`);
    else {
      const prob = portNameProblem(p);
      if (prob) c.error([...path, 'port'], `must be 1-65535 or an IANA port name: ${prob}`);
      else out.port = p;
    }
  } else if (p !== undefined && p !== null) c.error([...path, 'port'], 'must be 1-65535 or an IANA port name');
  if (o.endPort !== undefined && o.endPort !== null) {
    const end = c.integer(o.endPort, [...path, 'endPort'], 1, 65535);
    if (p === undefined || p === null) c.error([...path, 'endPort'], 'may not be specified when port is not specified', 'invalid-value', 'key');
    else if (typeof p === 'string') c.error([...path, 'endPort'], 'may not be specified when port is non-numeric (a named port)', 'invalid-value', 'key');
    else if (end !== undefined && typeof out.port === 'number' && end < out.port) {
      c.error([...path, 'endPort'], `must be greater than or equal to port (${out.port})`);
    } else if (end !== undefined) out.endPort = end;
  }
  return out;
}
