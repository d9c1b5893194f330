// Policy lint: findings that are valid input but almost certainly not what the author meant.
import type { Cluster, ModelPod } from '../model/cluster.ts';
import type { Diagnostic } from '../resources/diagnostics.ts';
import { formatPath } from '../resources/diagnostics.ts';
import type { FieldPath, Service } from '../resources/kinds.ts';
import { cidrContains, cidrWithin, isCidrError, parseCidr, parseIp } from '../resources/net.ts';
import type { PolicyEngine } from './engine.ts';
import { policyName, type Peer, type PolicyRef, type PolicyUnit, type PortMatch, type Rule } from './ir.ts';
import { selectorMatches } from './selector.ts';

/** Container port names and Service appProtocols that announce HTTP, HTTP/2 or gRPC (Istio's conventions). */
const HTTP_NAME = /^(https?|http2|h2c?|grpc(-web)?|web)([-_].*)?$/;
const HTTP_APP_PROTOCOL = /^(https?|http2|h2c|grpc|grpc-web|kubernetes\.io\/h2c|kubernetes\.io\/wss?)$/i;

export function lintPolicies(engine: PolicyEngine): Diagnostic[] {
  const out: Diagnostic[] = [];
  const cluster = engine.cluster;
  const podsById = new Map<number, ModelPod[]>();
  for (const p of cluster.pods.values()) {
    if (p.hostNetwork) continue;
    const l = podsById.get(p.identity);
    if (l) l.push(p);
    else podsById.set(p.identity, [p]);
  }
  const podsOf = (ids: Iterable<number>): ModelPod[] => [...ids].flatMap((id) => podsById.get(id) ?? []);
  const warn = (policy: PolicyRef, path: FieldPath, code: string, message: string): void => {
    out.push({ severity: 'warning', code, message, location: policy.origin.locate(path, 'key'), resource: policyName(policy), field: formatPath(path) });
  };

  // Units with the same subject selector can shadow each other's rules; group them once.
  const bySubject = new Map<string, PolicyUnit[]>();
  for (const u of engine.units) {
    const k = `${u.subject.type}\0${u.subject.selector.key}`;
    const group = bySubject.get(k);
    if (group) group.push(u);
    else bySubject.set(k, [u]);
  }
  for (const u of engine.units) {
    const subjects = u.subject.type === 'pods' ? podsOf(engine.labelIndex.resolve(u.subject.selector)) : [];
    const subjectNodes = u.subject.type === 'nodes' ? [...cluster.nodes.values()].filter((n) => selectorMatches(u.subject.selector, { k8s: n.labels, reserved: new Set(['host']) })) : [];
    const selectorField = u.ref.kind === 'NetworkPolicy' ? 'podSelector' : u.subject.type === 'nodes' ? 'nodeSelector' : 'endpointSelector';
    if (subjects.length === 0 && subjectNodes.length === 0) {
      warn(u.ref, [...u.ref.path, selectorField], 'selects-nothing', `selects no ${u.subject.type === 'pods' ? 'pod' : 'node'}: the policy has no effect`);
    }
    for (const d of ['ingress', 'egress'] as const) {
      const rules = [...u.allow[d], ...u.deny[d]];
      for (const r of rules) {
        lintPeers(engine, r, warn);
        lintCidrsOverPods(cluster, r, warn);
        lintPorts(engine, cluster, r, d === 'ingress' ? subjects : undefined, podsOf, warn);
      }
      lintShadowing(engine, u, bySubject.get(`${u.subject.type}\0${u.subject.selector.key}`) ?? [u], d, warn);
    }
  }
  return out;
}

type Warn = (policy: PolicyRef, path: FieldPath, code: string, message: string) => void;

function lintPeers(engine: PolicyEngine, r: Rule, warn: Warn): void {
  (r.peers ?? []).forEach((p, i) => {
    if (p.type === 'selector' && !p.selector.reqs.some((q) => q.space === 'reserved') && engine.labelIndex.resolve(p.selector).size === 0) {
      warn(r.ref.policy, r.ref.path, 'peer-matches-nothing', `peer ${i} matches no pod in the loaded manifests`);
    }
    if (p.type === 'nodes' && ![...engine.cluster.nodes.values()].some((n) => selectorMatches(p.selector, { k8s: n.labels, reserved: new Set() }))) {
      warn(r.ref.policy, r.ref.path, 'peer-matches-nothing', `node peer ${i} matches no node in the loaded manifests`);
    }
  });
}

function lintCidrsOverPods(cluster: Cluster, r: Rule, warn: Warn): void {
  for (const p of r.peers ?? []) {
    if (p.type !== 'cidr' || p.semantics !== 'cilium') continue;
    const c = parseCidr(p.cidr);
    if (isCidrError(c)) continue;
    const covered = [...cluster.podsByIp.keys()].filter((ip) => {
      const b = parseIp(ip);
      return b !== undefined && cidrContains(c, b);
    });
    if (covered.length > 0) {
      const field = r.ref.direction === 'ingress' ? 'fromCIDR' : 'toCIDR';
      warn(r.ref.policy, r.ref.path, 'cidr-covers-pods', `${field} ${p.cidr} covers ${covered.length} pod IP(s) (e.g. ${covered[0] ?? ''}), but Cilium CIDR rules never match pods; select them with ${r.ref.direction === 'ingress' ? 'fromEndpoints' : 'toEndpoints'}`);
    }
  }
}

/** The pods that receive traffic under a rule: the subjects for ingress, the selected peers for egress. */
function destinations(engine: PolicyEngine, r: Rule, subjects: ModelPod[] | undefined, podsOf: (ids: Iterable<number>) => ModelPod[]): ModelPod[] {
  if (subjects) return subjects;
  if (!r.peers) return [...engine.cluster.pods.values()];
  return r.peers.flatMap((p) => {
    if (p.type === 'selector') return podsOf(engine.labelIndex.resolve(p.selector));
    if (p.type === 'entities' && p.allPods) return [...engine.cluster.pods.values()];
    return [];
  });
}

function servesHttp(pod: ModelPod, port: number, services: readonly Service[]): boolean {
  const cp = pod.ports.find((p) => p.containerPort === port && p.protocol === 'TCP');
  if (cp?.name && HTTP_NAME.test(cp.name)) return true;
  for (const s of services) {
    if (s.metadata.namespace !== pod.namespace || !s.spec.selector) continue;
    if (!Object.entries(s.spec.selector).every(([k, v]) => pod.labels[k] === v)) continue;
    for (const sp of s.spec.ports) {
      const target = typeof sp.targetPort === 'number' ? sp.targetPort : pod.ports.find((p) => p.name === sp.targetPort)?.containerPort;
      if (target !== port) continue;
      if ((sp.name && HTTP_NAME.test(sp.name)) || (sp.appProtocol && HTTP_APP_PROTOCOL.test(sp.appProtocol))) return true;
    }
  }
  return false;
}

function lintPorts(engine: PolicyEngine, cluster: Cluster, r: Rule, subjects: ModelPod[] | undefined, podsOf: (ids: Iterable<number>) => ModelPod[], warn: Warn): void {
  if (!r.ports) return;
  const dests = destinations(engine, r, subjects, podsOf);
  const seen = new Set<string>();
  r.ports.forEach((pm: PortMatch) => {
    if (typeof pm.port === 'string' && !seen.has(`n:${pm.port}`)) {
      seen.add(`n:${pm.port}`);
      const defined = dests.some((p) => p.ports.some((cp) => cp.name === pm.port && (pm.protocol === undefined || cp.protocol === pm.protocol)));
      if (!defined) {
        warn(r.ref.policy, r.ref.path, 'unknown-named-port', `named port "${pm.port}" is defined by none of the ${dests.length} pod(s) it would apply to, so it matches nothing`);
      }
    }
    if (pm.http && typeof pm.port === 'number' && !seen.has(`h:${pm.port}`)) {
      seen.add(`h:${pm.port}`);
      const http = dests.filter((p) => servesHttp(p, pm.port as number, cluster.services));
      if (dests.length > 0 && http.length === 0) {
        const declared = dests.flatMap((p) => p.ports.filter((cp) => cp.containerPort === pm.port).map((cp) => `${p.name} calls it "${cp.name ?? 'unnamed'}"`));
        warn(r.ref.policy, r.ref.path, 'l7-on-non-http-port', `HTTP rules on port ${pm.port}, but no pod they apply to serves HTTP there${declared.length ? ` (${declared.slice(0, 2).join('; ')})` : ' (no pod declares the port)'}; name the port http-* or grpc-*, or set appProtocol on its Service`);
      }
    }
  });
}

/** Rule `a` is covered by `b` when every peer and port of `a` is also a peer and port of `b`. */
function lintShadowing(engine: PolicyEngine, u: PolicyUnit, siblings: readonly PolicyUnit[], d: 'ingress' | 'egress', warn: Warn): void {
  for (const a of u.allow[d]) {
    for (const o of siblings) {
      const deny = o.deny[d].find((b) => covers(engine, b, a, false));
      if (deny) {
        warn(a.ref.policy, a.ref.path, 'shadowed-rule', `never takes effect: ${policyName(deny.ref.policy)} ${formatPath(deny.ref.path)} denies everything it allows`);
        break;
      }
      const wider = o.allow[d].find((b) => b !== a && covers(engine, b, a, true) && !(covers(engine, a, b, true) && (o.id > u.id || (o.id === u.id && b.id > a.id))));
      if (wider) {
        warn(a.ref.policy, a.ref.path, 'shadowed-rule', `is shadowed by the broader ${policyName(wider.ref.policy)} ${formatPath(wider.ref.path)}, which allows everything it does`);
        break;
      }
    }
  }
}

function covers(engine: PolicyEngine, b: Rule, a: Rule, checkL7: boolean): boolean {
  return peersCover(engine, b, a) && portsCover(b, a, checkL7);
}

function peersCover(engine: PolicyEngine, b: Rule, a: Rule): boolean {
  if (!b.peers) return true;
  if (!a.peers || a.peers.length === 0) return a.peers !== undefined;
  return a.peers.every((pa) => b.peers?.some((pb) => peerCovers(engine, pb, pa)) ?? true);
}

function peerCovers(engine: PolicyEngine, pb: Peer, pa: Peer): boolean {
  if (pa.type === 'selector' && pb.type === 'selector') {
    if (pa.selector.reqs.some((q) => q.space === 'reserved') || pb.selector.reqs.some((q) => q.space === 'reserved')) return pa.selector.key === pb.selector.key;
    const sa = engine.labelIndex.resolve(pa.selector);
    const sb = engine.labelIndex.resolve(pb.selector);
    // Only a selector that is at least as wide in form covers another; equal pod sets alone could be chance.
    return sa.size > 0 && [...sa].every((x) => sb.has(x)) && pb.selector.reqs.every((q) => pa.selector.reqs.some((r) => r.key === q.key && r.space === q.space && r.op === q.op && r.values.every((v) => q.values.includes(v))));
  }
  if (pa.type === 'selector' && pb.type === 'entities') return pb.allPods && !pa.selector.reqs.some((q) => q.space === 'reserved');
  if (pa.type === 'entities' && pb.type === 'entities') return (!pa.allPods || pb.allPods) && [...pa.reserved].every((r) => pb.reserved.has(r));
  if (pa.type === 'cidr' && pb.type === 'cidr' && pa.semantics === pb.semantics) {
    const ca = parseCidr(pa.cidr);
    const cb = parseCidr(pb.cidr);
    if (isCidrError(ca) || isCidrError(cb) || !cidrWithin(ca, cb)) return false;
    // Every exception of the wider block must be an exception of the narrower one too (or outside it).
    return pb.except.every((e) => {
      const ce = parseCidr(e);
      return isCidrError(ce) || !cidrWithin(ca, ce) ? pa.except.includes(e) || !overlaps(ce, ca) : false;
    });
  }
  return false;
}

function overlaps(a: ReturnType<typeof parseCidr>, b: ReturnType<typeof parseCidr>): boolean {
  if (isCidrError(a) || isCidrError(b)) return false;
  return cidrWithin(a, b) || cidrWithin(b, a);
}

function portsCover(b: Rule, a: Rule, checkL7: boolean): boolean {
  if (!b.ports) return true;
  if (!a.ports) return false;
  return a.ports.every((pa) => b.ports?.some((pb) => portCovers(pb, pa, checkL7)) ?? true);
}

function portCovers(pb: PortMatch, pa: PortMatch, checkL7: boolean): boolean {
  if (pb.protocol !== undefined && pb.protocol !== pa.protocol) return false;
  if (checkL7 && pb.http && !(pa.http && pa.http.every((h) => pb.http?.some((x) => x.text === h.text)))) return false;
  if (pb.port === undefined) return true;
  if (pa.port === undefined) return false;
  if (typeof pb.port === 'string' || typeof pa.port === 'string') return pb.port === pa.port && pb.endPort === undefined && pa.endPort === undefined;
  const bEnd = pb.endPort ?? pb.port;
  const aEnd = pa.endPort ?? pa.port;
  return pb.port <= pa.port && aEnd <= bEnd;
}
