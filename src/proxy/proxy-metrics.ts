// The proxy's Prometheus metrics under Istio's standard names and labels (istio_requests_total, …), so existing
// dashboards work, plus per-policy drop counters and Hubble's flows-processed counter, on a Registry the proxy owns.
//
// Hot path. prom-client hashes every label of a sample on every inc()/observe(), and a child from labels() does
// the same (measured here: 2.5 µs per counter inc, 3.5 µs per histogram observe with Istio's 19 labels — 13 µs
// for one request's four samples). So the proxy keeps its own accumulators instead: a MetricScope interned per
// distinct (reporter, source, destination, service, security) tuple, taken once per connection, holding one
// series per (protocol, response code, gRPC status, flags) in a small map keyed by a number; a request is then
// one map lookup plus a few additions. prom-client formats the series when scraped. Both the scopes and the
// series are bounded (maxSeries); past the bound samples are counted in trellis_metrics_series_overflow_total.
import { Counter, Histogram, Registry } from 'prom-client';
import type { Flow } from '../observe/flow.ts';
import type { Endpoint } from '../policy/endpoint.ts';

/** Envoy's default histogram buckets, which Istio's standard histograms use (ms for durations, bytes for sizes). */
export const ISTIO_BUCKETS: readonly number[] = [0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000];

/** One end of a call as Istio labels it; `unknown` where nothing is known. */
export interface WorkloadLabels {
  workload: string;
  namespace: string;
  principal: string;
  app: string;
  version: string;
}

export interface ScopeLabels {
  reporter: 'source' | 'destination';
  source: WorkloadLabels;
  destination: WorkloadLabels;
  /** destination_service (the host, an FQDN), _name and _namespace; absent: `unknown`. */
  service?: { host: string; name: string; namespace: string };
  /** `mutual_tls` or `none` as the destination saw it; a source reporter says `unknown`, as Istio does. */
  security: 'mutual_tls' | 'none' | 'unknown';
}

export interface RequestSample {
  protocol: 'http' | 'grpc';
  responseCode: number;
  /** The grpc-status of a gRPC call; absent for plain HTTP. */
  grpcStatus?: number;
  /** Envoy's response flags (`UF`, `URX`, `NR`, …); absent: `-`. */
  responseFlags?: string;
  durationMs: number;
  requestBytes: number;
  responseBytes: number;
}

export const UNKNOWN_WORKLOAD: Readonly<WorkloadLabels> = Object.freeze({ workload: 'unknown', namespace: 'unknown', principal: 'unknown', app: 'unknown', version: 'unknown' });

const byPod = new WeakMap<object, WorkloadLabels>();

/** Istio's workload labels of an endpoint: the owning workload's name, its `app` and `version` labels. */
export function workloadLabels(ep: Endpoint, principal?: string): Readonly<WorkloadLabels> {
  if (ep.type !== 'pod') return principal === undefined ? UNKNOWN_WORKLOAD : { ...UNKNOWN_WORKLOAD, principal };
  let base = byPod.get(ep.pod);
  if (base === undefined) {
    const p = ep.pod;
    base = Object.freeze({
      workload: p.owner.kind === 'Pod' ? p.name : p.owner.name,
      namespace: p.namespace,
      principal: 'unknown',
      app: p.labels.app ?? p.labels['app.kubernetes.io/name'] ?? 'unknown',
      version: p.labels.version ?? p.labels['app.kubernetes.io/version'] ?? 'unknown',
    });
    byPod.set(ep.pod, base);
  }
  return principal === undefined ? base : { ...base, principal };
}

const N = ISTIO_BUCKETS.length;

/** Per-bucket (not cumulative) counts, then the sum, in one array. */
function bucketIndex(v: number): number {
  let i = 0;
  while (i < N && v > (ISTIO_BUCKETS[i] as number)) i++;
  return i; // N: only +Inf
}

class RequestSeries {
  count = 0;
  readonly duration = new Float64Array(N + 2);
  readonly requestBytes = new Float64Array(N + 2);
  readonly responseBytes = new Float64Array(N + 2);
  constructor(readonly labels: Readonly<Record<string, string>>) {}
}

class TcpSeries {
  opened = 0;
  closed = 0;
  sent = 0;
  received = 0;
  constructor(readonly labels: Readonly<Record<string, string>>) {}
}

function observe(h: Float64Array, v: number): void {
  (h[bucketIndex(v)] as number)++;
  h[N + 1] = (h[N + 1] as number) + v;
}

/** The series of one label tuple minus the per-request labels; take one per connection with ProxyMetrics.scope(). */
export class MetricScope {
  /** @internal */ readonly req = new Map<number | string, RequestSeries>();
  /** @internal */ readonly tcp = new Map<string, TcpSeries>();
  /** @internal */ constructor(
    readonly base: Readonly<Record<string, string>>,
    readonly security: string,
    readonly active: boolean,
  ) {}
}

export interface DropPolicy {
  kind: string;
  namespace: string;
  name: string;
}

export class ProxyMetrics {
  readonly registry: Registry;
  private readonly maxSeries: number;
  private readonly scopes = new Map<string, MetricScope>();
  private readonly requestSeries: RequestSeries[] = [];
  private readonly tcpSeries: TcpSeries[] = [];
  private readonly drops = new Map<string, { labels: Record<string, string>; n: number }>();
  private readonly flows = new Map<string, { labels: Record<string, string>; n: number }>();
  private readonly overflow: Counter;
  private readonly dead = new MetricScope({}, 'unknown', false);

  constructor(opts: { registry?: Registry; maxSeries?: number } = {}) {
    this.registry = opts.registry ?? new Registry();
    this.maxSeries = opts.maxSeries ?? 20_000;
    const registers = [this.registry];
    const fromTable = (name: string, help: string, labelNames: string[], table: Map<string, { labels: Record<string, string>; n: number }>): void => {
      const c: Counter = new Counter({
        name,
        help,
        labelNames,
        registers,
        collect: () => {
          c.reset();
          for (const { labels, n } of table.values()) c.inc(labels, n);
        },
      });
    };
    const fromTcp = (name: string, help: string, pick: (s: TcpSeries) => number): void => {
      const c: Counter = new Counter({
        name,
        help,
        labelNames: TCP_LABELS,
        registers,
        collect: () => {
          c.reset();
          for (const s of this.tcpSeries) {
            const v = pick(s);
            if (v > 0) c.inc(s.labels, v);
          }
        },
      });
    };
    const requests: Counter = new Counter({
      name: 'istio_requests_total',
      help: 'Requests handled, by Istio standard labels',
      labelNames: REQUEST_LABELS,
      registers,
      collect: () => {
        requests.reset();
        for (const s of this.requestSeries) requests.inc(s.labels, s.count);
      },
    });
    new SeriesHistogram('istio_request_duration_milliseconds', 'Request duration (ms)', registers, this.requestSeries, (s) => s.duration);
    new SeriesHistogram('istio_request_bytes', 'Request body sizes (bytes)', registers, this.requestSeries, (s) => s.requestBytes);
    new SeriesHistogram('istio_response_bytes', 'Response body sizes (bytes)', registers, this.requestSeries, (s) => s.responseBytes);
    fromTcp('istio_tcp_sent_bytes_total', 'Bytes sent to the downstream during TCP connections', (s) => s.sent);
    fromTcp('istio_tcp_received_bytes_total', 'Bytes received from the downstream during TCP connections', (s) => s.received);
    fromTcp('istio_tcp_connections_opened_total', 'TCP connections opened', (s) => s.opened);
    fromTcp('istio_tcp_connections_closed_total', 'TCP connections closed', (s) => s.closed);
    fromTable('trellis_policy_drops_total', 'Connections and requests denied, by the deciding policy', ['policy_kind', 'policy_namespace', 'policy_name', 'direction'], this.drops);
    fromTable('hubble_flows_processed_total', 'Flows processed, as Hubble counts them', ['type', 'subtype', 'verdict'], this.flows);
    this.overflow = new Counter({ name: 'trellis_metrics_series_overflow_total', help: 'Samples not recorded because the series bound was reached', registers });
  }

  /** The scope for one label tuple (interned: equal labels give the same scope). Take it once per connection. */
  scope(l: ScopeLabels): MetricScope {
    const s = l.source;
    const d = l.destination;
    const svc = l.service;
    const key = [l.reporter, s.workload, s.namespace, s.principal, s.app, s.version, d.workload, d.namespace, d.principal, d.app, d.version, svc?.host, svc?.name, svc?.namespace, l.security].join('\0');
    let scope = this.scopes.get(key);
    if (scope !== undefined) return scope;
    if (this.scopes.size >= this.maxSeries) return this.dead;
    scope = new MetricScope(
      Object.freeze({
        reporter: l.reporter,
        source_workload: s.workload,
        source_workload_namespace: s.namespace,
        source_principal: s.principal,
        source_app: s.app,
        source_version: s.version,
        destination_workload: d.workload,
        destination_workload_namespace: d.namespace,
        destination_principal: d.principal,
        destination_app: d.app,
        destination_version: d.version,
        destination_service: svc?.host ?? 'unknown',
        destination_service_name: svc?.name ?? 'unknown',
        destination_service_namespace: svc?.namespace ?? 'unknown',
      }),
      l.security,
      true,
    );
    this.scopes.set(key, scope);
    return scope;
  }

  recordRequest(scope: MetricScope, r: RequestSample): void {
    const grpc = r.grpcStatus;
    const flags = r.responseFlags;
    let key: number | string = ((r.responseCode >>> 0) * 32 + (grpc === undefined ? 0 : grpc + 1)) * 2 + (r.protocol === 'grpc' ? 1 : 0);
    if ((grpc !== undefined && (grpc < 0 || grpc > 30 || !Number.isInteger(grpc))) || r.responseCode > 999 || (flags !== undefined && flags !== '-')) {
      key = `${r.protocol}|${r.responseCode}|${grpc ?? ''}|${flags ?? '-'}`;
    }
    let series = scope.req.get(key);
    if (series === undefined) {
      if (!scope.active || this.requestSeries.length >= this.maxSeries) return this.overflow.inc();
      series = new RequestSeries(
        Object.freeze({
          ...scope.base,
          request_protocol: r.protocol,
          response_code: String(r.responseCode),
          grpc_response_status: grpc === undefined ? '' : String(grpc),
          response_flags: flags ?? '-',
          connection_security_policy: scope.security,
        }),
      );
      this.requestSeries.push(series);
      scope.req.set(key, series);
    }
    series.count++;
    observe(series.duration, r.durationMs);
    observe(series.requestBytes, r.requestBytes);
    observe(series.responseBytes, r.responseBytes);
  }

  recordTcpOpen(scope: MetricScope): void {
    const s = this.tcpOf(scope, undefined);
    if (s !== undefined) s.opened++;
  }

  /** Bytes moved so far on a long connection (Istio reports them periodically as well as at close). */
  recordTcpBytes(scope: MetricScope, sent: number, received: number, responseFlags?: string): void {
    const s = this.tcpOf(scope, responseFlags);
    if (s === undefined) return;
    s.sent += sent;
    s.received += received;
  }

  /** A closed connection, with the bytes not yet reported by recordTcpBytes. */
  recordTcpClose(scope: MetricScope, sent: number, received: number, responseFlags?: string): void {
    const s = this.tcpOf(scope, responseFlags);
    if (s === undefined) return;
    s.closed++;
    s.sent += sent;
    s.received += received;
  }

  /** A denial; without a policy (nothing allowed it: default deny) the policy labels say `none`/`default-deny`. */
  recordDrop(direction: 'ingress' | 'egress', policy?: DropPolicy): void {
    const kind = policy?.kind ?? 'none';
    const ns = policy?.namespace ?? '';
    const name = policy?.name ?? 'default-deny';
    count(this.drops, `${direction}\0${kind}\0${ns}\0${name}`, () => ({ policy_kind: kind, policy_namespace: ns, policy_name: name, direction }), this.maxSeries);
  }

  /**
   * Counts a flow as Hubble's flows-processed metric does: L7 flows are `L7`/`HTTP`; connection flows are `Drop`
   * when dropped, else `PolicyVerdict` (the event a new connection's policy decision produces in Cilium).
   */
  observeFlow(flow: Flow): void {
    count(this.flows, `${flow.Type}\0${flow.verdict}`, () => hubbleLabels(flow), this.maxSeries);
  }

  /** FlowSink, so the metrics can sit beside the ring and the audit log. */
  push(flow: Flow): void {
    this.observeFlow(flow);
  }

  metrics(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  private tcpOf(scope: MetricScope, responseFlags: string | undefined): TcpSeries | undefined {
    const flags = responseFlags ?? '-';
    let s = scope.tcp.get(flags);
    if (s === undefined) {
      if (!scope.active || this.tcpSeries.length >= this.maxSeries) {
        this.overflow.inc();
        return undefined;
      }
      s = new TcpSeries(Object.freeze({ ...scope.base, request_protocol: 'tcp', response_flags: flags, connection_security_policy: scope.security }));
      this.tcpSeries.push(s);
      scope.tcp.set(flags, s);
    }
    return s;
  }
}

const PEER_LABELS = ['reporter', 'source_workload', 'source_workload_namespace', 'source_principal', 'source_app', 'source_version', 'destination_workload', 'destination_workload_namespace', 'destination_principal', 'destination_app', 'destination_version', 'destination_service', 'destination_service_name', 'destination_service_namespace'];
const TCP_LABELS = [...PEER_LABELS, 'request_protocol', 'response_flags', 'connection_security_policy'];
const REQUEST_LABELS = [...PEER_LABELS, 'request_protocol', 'response_code', 'grpc_response_status', 'response_flags', 'connection_security_policy'];

function count(table: Map<string, { labels: Record<string, string>; n: number }>, key: string, labels: () => Record<string, string>, max: number): void {
  const e = table.get(key);
  if (e !== undefined) e.n++;
  else if (table.size < max) table.set(key, { labels: labels(), n: 1 });
}

function hubbleLabels(flow: Flow): Record<string, string> {
  if (flow.Type === 'L7') return { type: 'L7', subtype: 'HTTP', verdict: flow.verdict };
  return { type: flow.verdict === 'DROPPED' ? 'Drop' : 'PolicyVerdict', subtype: '', verdict: flow.verdict };
}

type PromValue = { labels: Record<string, string | number>; value: number; metricName: string };
type HistogramData = Awaited<ReturnType<Histogram<string>['get']>>;

/**
 * A prom-client Histogram whose values come from our own per-series bucket arrays: registered, named, typed and
 * formatted by prom-client like any other; only where the numbers live differs. Its own observe() is not used.
 */
class SeriesHistogram extends Histogram<string> {
  constructor(
    private readonly metricName: string,
    private readonly metricHelp: string,
    registers: Registry[],
    private readonly series: readonly RequestSeries[],
    private readonly pick: (s: RequestSeries) => Float64Array,
  ) {
    super({ name: metricName, help: metricHelp, labelNames: REQUEST_LABELS, buckets: [...ISTIO_BUCKETS], registers });
  }

  override get(): Promise<HistogramData> {
    const values: PromValue[] = [];
    const bucket = `${this.metricName}_bucket`;
    for (const s of this.series) {
      const h = this.pick(s);
      let acc = 0;
      for (let i = 0; i < N; i++) {
        acc += h[i] as number;
        values.push({ labels: { ...s.labels, le: ISTIO_BUCKETS[i] as number }, value: acc, metricName: bucket });
      }
      values.push({ labels: { ...s.labels, le: '+Inf' }, value: s.count, metricName: bucket });
      values.push({ labels: s.labels, value: h[N + 1] as number, metricName: `${this.metricName}_sum` });
      values.push({ labels: s.labels, value: s.count, metricName: `${this.metricName}_count` });
    }
    // prom-client's typings declare `type` as a numeric enum; at run time it is the string the registry prints.
    return Promise.resolve({ name: this.metricName, help: this.metricHelp, type: 'histogram', values, aggregator: 'sum' } as unknown as HistogramData);
  }

  /** The registry formats from this when present (prom-client's own histogram splits labels here). */
  getForPromString(): Promise<HistogramData> {
    return this.get();
  }
}
