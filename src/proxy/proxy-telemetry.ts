// Where everything the data plane observes goes: each flow into the ring buffer (served to the relay and the
// admin API), denied and AUDIT flows into the audit log, and the Istio and Hubble metrics derived from flows and
// from TCP connection hooks. The listener manager and the HTTP engine report here and know nothing of the sinks.
import type { AuditLog } from '../observe/audit-log.ts';
import type { Flow, FlowEndpoint } from '../observe/flow.ts';
import type { FlowRing } from '../observe/flow-ring.ts';
import type { Route } from '../routing/model.ts';
import type { ListenerHooks } from './connection-handler.ts';
import type { ConnectionInfo, FlowReporter, PolicyVerdict } from './contracts.ts';
import { UNKNOWN_WORKLOAD, workloadLabels, type MetricScope, type ProxyMetrics, type WorkloadLabels } from './proxy-metrics.ts';
import type { TcpProxyResult } from './tcp-proxy.ts';

const MAX_WORKLOADS = 10_000;

export class ProxyTelemetry implements FlowReporter, ListenerHooks {
  /** Workload labels per Hubble endpoint object (flowEndpointOf shares one object per pod). */
  private readonly workloads = new WeakMap<FlowEndpoint, WorkloadLabels>();
  private readonly scopes = new Map<string, MetricScope>();
  private readonly tcpScopes = new WeakMap<ConnectionInfo, MetricScope>();

  constructor(
    readonly ring: FlowRing,
    readonly metrics: ProxyMetrics,
    readonly audit: AuditLog | undefined,
    private readonly trustDomain: string | (() => string | undefined),
  ) {}

  report(flow: Flow, _route?: Route): void {
    this.ring.push(flow);
    this.metrics.observeFlow(flow);
    if (flow.verdict === 'DROPPED' || flow.verdict === 'AUDIT') this.audit?.push(flow);
    if (flow.Type !== 'L7' || flow.l7?.type !== 'RESPONSE' || !flow.l7.http) return;
    const http = flow.l7.http;
    const grpc = flow.trellis?.grpc_status;
    const sample = {
      protocol: grpc !== undefined ? ('grpc' as const) : ('http' as const),
      responseCode: http.code,
      durationMs: flow.l7.latency_ns / 1e6,
      requestBytes: flow.trellis?.bytes_received ?? 0,
      responseBytes: flow.trellis?.bytes_sent ?? 0,
      ...(grpc !== undefined ? { grpcStatus: grpc } : {}),
      ...(flow.verdict === 'DROPPED' ? { responseFlags: 'UAEX' } : {}),
    };
    this.metrics.recordRequest(this.scopeOf(flow), sample);
  }

  // ListenerHooks: Istio's TCP series and the policy drop counters for connections.

  tcpOpened(info: ConnectionInfo): void {
    const scope = this.connectionScope(info);
    this.tcpScopes.set(info, scope);
    this.metrics.recordTcpOpen(scope);
  }

  tcpClosed(info: ConnectionInfo, result: TcpProxyResult): void {
    const scope = this.tcpScopes.get(info) ?? this.connectionScope(info);
    this.metrics.recordTcpClose(scope, result.bytesSent, result.bytesReceived, result.outcome === 'closed' ? undefined : tcpFlags(result.outcome));
  }

  connectionDenied(info: ConnectionInfo, verdict: PolicyVerdict): void {
    this.metrics.recordDrop(verdict.direction ?? (info.listener.direction === 'outbound' ? 'egress' : 'ingress'), verdict.policy);
  }

  private principalOf(ep: { type: string; pod?: { namespace: string; serviceAccount: string } }): string | undefined {
    const td = typeof this.trustDomain === 'function' ? this.trustDomain() : this.trustDomain;
    if (ep.type !== 'pod' || !ep.pod || !td) return undefined;
    return `spiffe://${td}/ns/${ep.pod.namespace}/sa/${ep.pod.serviceAccount}`;
  }

  private connectionScope(info: ConnectionInfo): MetricScope {
    const inbound = info.listener.direction !== 'outbound';
    return this.metrics.scope({
      reporter: inbound ? 'destination' : 'source',
      source: workloadLabels(info.source, info.peerSpiffeId ?? this.principalOf(info.source)),
      destination: workloadLabels(info.destination, this.principalOf(info.destination)),
      security: inbound ? (info.transport === 'mtls' ? 'mutual_tls' : 'none') : 'unknown',
    });
  }

  /** One interned scope per (direction, client, server, service, transport) seen in flows. */
  private scopeOf(flow: Flow): MetricScope {
    const inbound = flow.traffic_direction === 'INGRESS';
    const transport = flow.trellis?.transport;
    // A reply flow runs from the server back to the client (Hubble's is_reply); Istio's source is the client.
    const client = flow.is_reply ? flow.destination : flow.source;
    const server = flow.is_reply ? flow.source : flow.destination;
    const svc = flow.destination_service ?? flow.source_service;
    const key = `${inbound ? 'd' : 's'}|${client.namespace}/${client.pod_name}|${server.namespace}/${server.pod_name}|${svc ? `${svc.namespace}/${svc.name}` : ''}|${transport ?? ''}`;
    let scope = this.scopes.get(key);
    if (scope) return scope;
    const service = svc ? { host: `${svc.name}.${svc.namespace}.svc.cluster.local`, name: svc.name, namespace: svc.namespace } : undefined;
    scope = this.metrics.scope({
      reporter: inbound ? 'destination' : 'source',
      source: this.workloadOf(client),
      destination: this.workloadOf(server),
      ...(service ? { service } : {}),
      security: inbound ? (transport === 'mtls' ? 'mutual_tls' : 'none') : 'unknown',
    });
    if (this.scopes.size < MAX_WORKLOADS) this.scopes.set(key, scope);
    return scope;
  }

  private workloadOf(ep: FlowEndpoint): WorkloadLabels {
    if (!ep.pod_name) return UNKNOWN_WORKLOAD;
    let w = this.workloads.get(ep);
    if (w) return w;
    const label = (k: string): string | undefined => {
      const prefix = `k8s:${k}=`;
      const hit = ep.labels.find((l) => l.startsWith(prefix));
      return hit?.slice(prefix.length);
    };
    const td = typeof this.trustDomain === 'function' ? this.trustDomain() : this.trustDomain;
    const sa = label('io.cilium.k8s.policy.serviceaccount');
    w = {
      workload: ep.workloads[0]?.name ?? ep.pod_name,
      namespace: ep.namespace,
      principal: td && sa ? `spiffe://${td}/ns/${ep.namespace}/sa/${sa}` : 'unknown',
      app: label('app') ?? label('app.kubernetes.io/name') ?? 'unknown',
      version: label('version') ?? label('app.kubernetes.io/version') ?? 'unknown',
    };
    this.workloads.set(ep, w);
    return w;
  }
}

/** Envoy's response flags for how a TCP connection ended. */
function tcpFlags(outcome: TcpProxyResult['outcome']): string {
  switch (outcome) {
    case 'no-host':
      return 'UH';
    case 'overflow':
      return 'UO';
    case 'connect-failed':
      return 'UF';
    case 'denied':
      return 'UAEX';
    case 'idle-timeout':
      return 'IT';
    case 'reset':
      return 'UR';
    case 'aborted':
      return 'DC';
    default:
      return '-';
  }
}
