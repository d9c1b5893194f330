// The proxy's policy enforcer: src/policy's compiled engine and Istio authz model (the code `trellis policy` and
// `trellis authz` run), built once per policy snapshot, answering per connection (identity, mTLS mode, L3/L4) and
// per request (Cilium L7 rules, RequestAuthentication, AuthorizationPolicy), so the proxy, CLI and UI agree.
import { buildCluster, type Cluster, type ModelPod } from '../model/cluster.ts';
import { decideForWorkload, type AuthzDecision, type AuthzRequest } from '../policy/authz-decide.ts';
import { buildAuthzModel, mtlsModeFor, workloadAuthz, type AuthzModel, type WorkloadAuthz } from '../policy/authz-model.ts';
import type { EnforcementMode } from '../policy/decision.ts';
import { endpointForIp, resolveEndpoint, type Endpoint } from '../policy/endpoint.ts';
import { PolicyEngine } from '../policy/engine.ts';
import type { HttpRequest } from '../policy/http.ts';
import { parseIp } from '../resources/net.ts';
import type { ConnectionDecision, ConnectionInfo, PolicyEnforcer, PolicyVerdict, RequestFacts, RequestTarget } from './contracts.ts';
import type { PolicySnapshot } from './proxy-config.ts';
import { ProxyError } from './proxy-error.ts';
import { authzVerdict, directionVerdict, identityMismatchVerdict, unconfiguredVerdict } from './policy-verdict.ts';

export interface PolicyRuntimeOptions {
  /** Cilium's policy enforcement mode (agent-wide): default, always or never. Istio policies apply in every mode. */
  enforcement?: EnforcementMode;
  /** Istio's root namespace when the snapshot names none; default `istio-system`. */
  rootNamespace?: string;
  /** The clock JWT `exp`/`nbf` are checked against, ms since the epoch; default Date.now. */
  now?: () => number;
}

export type ConnectionQuery = Parameters<PolicyEnforcer['decideConnection']>[0];

/** Istio's view of one local pod, built on first use and kept for the life of the snapshot. */
interface WorkloadEntry {
  authz: WorkloadAuthz;
  /** The pod as AuthzRequest.destination.pod wants it (built once). */
  pod: AuthzRequest['destination']['pod'];
  /** Some port of the pod is in STRICT mTLS mode. */
  strict: boolean;
  /** No Istio policy can change a verdict for this pod (PERMISSIVE, no JWT rules, no enforced AuthorizationPolicy): skip it. */
  inert: boolean;
}

const SPIFFE = 'spiffe://';
const TRUST_DOMAIN = /^[a-z0-9._-]{1,255}$/;

export class PolicyRuntime implements PolicyEnforcer {
  readonly version: string;
  readonly trustDomain: string;
  readonly enforcement: EnforcementMode;
  readonly cluster: Cluster;
  readonly engine: PolicyEngine;
  readonly authz: AuthzModel;
  private readonly now: () => number;
  private readonly opts: PolicyRuntimeOptions;
  private readonly workloads = new Map<ModelPod, WorkloadEntry>();
  private readonly spiffeIds = new Map<ModelPod, string>();
  private builds = 0;

  /** Compiles a snapshot (config time). Throws ProxyError `bad-config` when the snapshot itself is malformed. */
  static fromSnapshot(snapshot: PolicySnapshot, opts: PolicyRuntimeOptions = {}): PolicyRuntime {
    return new PolicyRuntime(snapshot, opts);
  }

  /** The runtime for `snapshot`: `prev` itself when neither the snapshot's version nor the options changed. */
  static forSnapshot(prev: PolicyRuntime | undefined, snapshot: PolicySnapshot, opts: PolicyRuntimeOptions = {}): PolicyRuntime {
    if (prev !== undefined && prev.version === snapshot.version && prev.trustDomain === snapshot.trustDomain && sameOptions(prev.opts, opts)) return prev;
    return new PolicyRuntime(snapshot, opts);
  }

  private constructor(snapshot: PolicySnapshot, opts: PolicyRuntimeOptions) {
    if (typeof snapshot.trustDomain !== 'string' || !TRUST_DOMAIN.test(snapshot.trustDomain)) {
      throw new ProxyError('bad-config', `policy snapshot ${snapshot.version}: trust domain ${JSON.stringify(snapshot.trustDomain)} is not a valid SPIFFE trust domain`);
    }
    if (!Array.isArray(snapshot.resources)) throw new ProxyError('bad-config', `policy snapshot ${snapshot.version}: resources must be a list`);
    this.version = snapshot.version;
    this.trustDomain = snapshot.trustDomain;
    this.opts = opts;
    this.enforcement = opts.enforcement ?? 'default';
    this.now = opts.now ?? Date.now;
    this.cluster = buildCluster(snapshot.resources);
    this.engine = PolicyEngine.fromResources(this.cluster, snapshot.resources);
    const rootNamespace = snapshot.rootNamespace ?? opts.rootNamespace;
    this.authz = buildAuthzModel(snapshot.resources, rootNamespace !== undefined ? { trustDomain: this.trustDomain, rootNamespace } : { trustDomain: this.trustDomain });
  }

  /** How many per-pod Istio views were built (each pod's once per snapshot). */
  get authzBuilds(): number {
    return this.builds;
  }

  endpointForIp(ip: string): Endpoint {
    // Dual-stack sockets report IPv4 peers as `::ffff:a.b.c.d`.
    const text = ip.startsWith('::ffff:') && ip.includes('.') ? ip.slice(7) : ip;
    const bytes = parseIp(text);
    // An unparseable address is outside the cluster: nothing grants it a pod's or node's rights.
    if (bytes === undefined) return { type: 'world', ip: text, bytes: new Uint8Array(4) };
    return endpointForIp(this.cluster, bytes);
  }

  endpointForPod(pod: string): Endpoint | undefined {
    if (!this.cluster.pods.has(pod)) return undefined;
    try {
      return resolveEndpoint(this.cluster, { pod });
    } catch {
      return undefined;
    }
  }

  /** The SPIFFE ID a pod's certificate carries: `spiffe://<trust domain>/ns/<namespace>/sa/<service account>`. */
  spiffeIdOf(pod: ModelPod): string {
    let id = this.spiffeIds.get(pod);
    if (id === undefined) {
      id = `${SPIFFE}${this.trustDomain}/ns/${pod.namespace}/sa/${pod.serviceAccount}`;
      this.spiffeIds.set(pod, id);
    }
    return id;
  }

  decideConnection(q: ConnectionQuery): ConnectionDecision {
    const source = this.own(q.source);
    const destination = this.own(q.destination);
    // An address cannot borrow another workload's identity: the certificate must name the pod that owns the address.
    if (q.transport === 'mtls' && source.type === 'pod') {
      const expected = this.spiffeIdOf(source.pod);
      if (q.peerSpiffeId !== expected) return identityMismatchVerdict(source, expected, q.peerSpiffeId, q.direction);
    }
    // PeerAuthentication STRICT refuses plaintext peers before anything else is read.
    if (q.direction === 'ingress' && q.transport === 'plaintext' && destination.type === 'pod') {
      const w = this.workload(destination.pod);
      if (w.strict && mtlsModeFor(w.authz.mtls, q.port) === 'STRICT') {
        return authzVerdict(decideForWorkload(w.authz, { source: { ip: source.ip }, destination: { pod: w.pod, ip: destination.ip, port: q.port } }));
      }
    }
    const d = this.engine.decide({ from: source, to: destination, port: q.port, protocol: q.protocol }, this.enforcement);
    return q.direction === 'ingress' ? directionVerdict(d.ingress, destination) : directionVerdict(d.egress, source);
  }

  decideRequest(conn: ConnectionInfo, req: RequestFacts, target?: RequestTarget): PolicyVerdict {
    const egress = conn.listener.direction === 'outbound';
    const source = this.own(conn.source);
    const destination = this.own(target?.destination ?? conn.destination);
    const port = target?.port ?? conn.local.port;
    const headers = stringHeaders(req.headers);
    // (a) Cilium L7 rules of the port, through the same decision as L3/L4 (so a policy changed since the connection
    // was admitted is enforced on its next request).
    const http: HttpRequest = { method: req.method, path: req.path, host: req.authority, headers };
    const d = this.engine.decide({ from: source, to: destination, port, protocol: 'TCP', http }, this.enforcement);
    const cilium = egress ? directionVerdict(d.egress, source, req) : directionVerdict(d.ingress, destination, req);
    // (b) Istio: enforced by the destination's sidecar, so on inbound (and gateway) listeners only.
    if (!cilium.allowed || egress || destination.type !== 'pod') return cilium;
    const w = this.workload(destination.pod);
    if (w.inert) return cilium;
    const a = decideForWorkload(w.authz, this.authzRequest(conn, source, destination, w, port, { host: req.authority, method: req.method, path: req.path, headers }));
    return combine(cilium, a);
  }

  decideTcp(conn: ConnectionInfo): PolicyVerdict {
    const source = this.own(conn.source);
    const destination = this.own(conn.destination);
    if (conn.listener.direction === 'outbound' || destination.type !== 'pod') return conn.admission;
    const w = this.workload(destination.pod);
    if (w.inert) return conn.admission;
    return combine({ ...conn.admission }, decideForWorkload(w.authz, this.authzRequest(conn, source, destination, w, conn.local.port, undefined)));
  }

  private authzRequest(conn: ConnectionInfo, source: Endpoint, destination: Endpoint, w: WorkloadEntry, port: number, http: AuthzRequest['http']): AuthzRequest {
    const req: AuthzRequest = { source: { ip: source.ip }, destination: { pod: w.pod, ip: destination.ip, port }, now: this.now() };
    const id = conn.peerSpiffeId;
    if (conn.transport === 'mtls' && id !== undefined) req.source.principal = id.startsWith(SPIFFE) ? id.slice(SPIFFE.length) : id;
    if (source.type === 'pod') req.source.namespace = source.pod.namespace;
    if (conn.sni !== undefined) req.sni = conn.sni;
    if (http !== undefined) req.http = http;
    return req;
  }

  /** Istio's view of a pod, built once per snapshot. */
  private workload(pod: ModelPod): WorkloadEntry {
    let e = this.workloads.get(pod);
    if (e === undefined) {
      this.builds++;
      const ref = { namespace: pod.namespace, labels: pod.labels, ips: pod.ips };
      const authz = workloadAuthz(this.authz, ref);
      const p = authz.policies;
      let strict = authz.mtls.mode === 'STRICT';
      for (const m of Object.values(authz.mtls.ports)) strict ||= m === 'STRICT';
      const inert = !strict && p.ALLOW.length === 0 && p.DENY.length === 0 && p.AUDIT.length === 0 && p.CUSTOM.length === 0 && authz.jwtRules.length === 0;
      e = { authz, pod: ref, strict, inert };
      this.workloads.set(pod, e);
    }
    return e;
  }

  /**
   * The endpoint as this snapshot knows it. Endpoints resolved under an earlier snapshot carry that snapshot's pod
   * objects and identity numbers, which the engine must not read: they are resolved again by address.
   */
  private own(e: Endpoint): Endpoint {
    const c = this.cluster;
    if (e.type === 'pod') return c.pods.get(e.pod.key) === e.pod ? e : endpointForIp(c, e.bytes);
    if (e.type === 'node') return c.nodes.get(e.node.name) === e.node ? e : endpointForIp(c, e.bytes);
    return c.podsByIp.has(e.ip) || c.nodesByIp.has(e.ip) ? endpointForIp(c, e.bytes) : e;
  }
}

/**
 * Cilium (or Kubernetes) allowed the request; Istio decides now. A denial is Istio's; an allowance names the
 * AuthorizationPolicy that allowed it, else the Cilium/Kubernetes verdict, with Istio's audit flag and request principal.
 */
function combine(cilium: PolicyVerdict, a: AuthzDecision): PolicyVerdict {
  if (a.verdict === 'deny' || a.reason === 'allowed-by-policy') {
    const v = authzVerdict(a);
    if (v.allowed && cilium.l7Required) v.l7Required = true;
    return v;
  }
  // `cilium` is this request's own object (directionVerdict builds one per call).
  if (a.audit) {
    cilium.audit = true;
    cilium.message = `${cilium.message}; audited by ${a.auditedBy.map((h) => `AuthorizationPolicy ${h.namespace}/${h.name}`).join(', ')}`;
  }
  if (a.requestPrincipal !== undefined) cilium.requestPrincipal = a.requestPrincipal;
  return cilium;
}

/** Headers as policies read them: one string per name (repeated values joined by `,`); the same object when already so. */
function stringHeaders(h: RequestFacts['headers']): Record<string, string> {
  let clean = true;
  for (const k in h) {
    if (typeof h[k] !== 'string') {
      clean = false;
      break;
    }
  }
  if (clean) return h as Record<string, string>;
  const out: Record<string, string> = {};
  for (const k in h) {
    const v = h[k];
    if (typeof v === 'string') out[k] = v;
    else if (v !== undefined) out[k] = v.join(',');
  }
  return out;
}

function sameOptions(a: PolicyRuntimeOptions, b: PolicyRuntimeOptions): boolean {
  return (a.enforcement ?? 'default') === (b.enforcement ?? 'default') && a.rootNamespace === b.rootNamespace && a.now === b.now;
}

/** The enforcer before the first policy snapshot: it knows no endpoint and denies everything (fail closed). */
export class UnconfiguredPolicy implements PolicyEnforcer {
  endpointForIp(ip: string): Endpoint {
    const text = ip.startsWith('::ffff:') && ip.includes('.') ? ip.slice(7) : ip;
    return { type: 'world', ip: text, bytes: parseIp(text) ?? new Uint8Array(4) };
  }

  endpointForPod(_pod: string): Endpoint | undefined {
    return undefined;
  }

  decideConnection(q: ConnectionQuery): ConnectionDecision {
    return unconfiguredVerdict(q.direction);
  }

  decideRequest(conn: ConnectionInfo): PolicyVerdict {
    return unconfiguredVerdict(conn.listener.direction === 'outbound' ? 'egress' : 'ingress');
  }

  decideTcp(conn: ConnectionInfo): PolicyVerdict {
    return unconfiguredVerdict(conn.listener.direction === 'outbound' ? 'egress' : 'ingress');
  }
}
