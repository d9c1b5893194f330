// One upstream cluster as the data plane runs it: its hosts (kept across config updates by address:port), the
// balancer over the hosts that may take traffic, outlier detection, active health checks and circuit breakers.
import type { ConnectionOptions } from 'node:tls';
import type { RequestOutcome, UpstreamCluster, UpstreamHost } from '../contracts.ts';
import type { ProxyCluster } from '../proxy-config.ts';
import type { Endpoint, EndpointSet } from '../../routing/model.ts';
import { CircuitBreaker, type CircuitBreakerStats } from './circuit-breaker.ts';
import { HealthChecker } from './health-checker.ts';
import { createLoadBalancer, type LoadBalancer } from './load-balancer.ts';
import { OutlierDetector, type OutlierDetectorStats } from './outlier-detector.ts';
import { Host, hostKey, type HostStats } from './upstream-host.ts';

/** Envoy's healthy_panic_threshold default. */
export const ENVOY_DEFAULT_PANIC_THRESHOLD_PERCENT = 50;

/**
 * The healthy panic threshold of a cluster, in percent. Below it (available hosts / ready hosts), Envoy balances over
 * every ready host, ejected or failing its health checks, rather than pile all load on the few left.
 *
 * Envoy's default is 50%. Istio, which our DestinationRules speak, writes `healthy_panic_threshold` from
 * `outlierDetection.minHealthPercent`, whose default is 0% (panic off) "as it's not typically applicable in k8s
 * environments with few pods per service". So: a cluster with outlier detection never panics (all hosts out means
 * no host: 503 / UNAVAILABLE, fail closed); one without keeps Envoy's 50%, which only active health checks can reach.
 * Hosts that EDS lists as not ready are never picked, panic or not (Istio does not even send them by default).
 */
export function healthyPanicThresholdPercent(spec: ProxyCluster): number {
  return spec.outlierDetection ? 0 : ENVOY_DEFAULT_PANIC_THRESHOLD_PERCENT;
}

export interface ClusterStats extends CircuitBreakerStats, OutlierDetectorStats {
  name: string;
  lb_policy: string;
  membership_total: number;
  membership_healthy: number;
  /** The cluster is in panic now, and how many picks were made in panic. */
  panic: boolean;
  lb_healthy_panic: number;
  upstream_rq_total: number;
  /** Picks that found no host. */
  upstream_cx_none_healthy: number;
  hosts: HostStats[];
}

export interface ClusterDeps {
  tlsOptions: (cluster: UpstreamCluster, host: UpstreamHost, alpn: string[]) => ConnectionOptions | undefined;
  random?: () => number;
}

/** LOGICAL_DNS clusters with no endpoint set reach their one DNS name (the connection resolves it). */
function endpointsOf(spec: ProxyCluster, set: EndpointSet | undefined): readonly Pick<Endpoint, 'address' | 'port' | 'healthy' | 'weight' | 'pod'>[] {
  if (set) return set.endpoints;
  if (spec.discovery === 'LOGICAL_DNS') {
    const dns = spec.dns ?? { host: spec.host, port: spec.port };
    return [{ address: dns.host, port: dns.port, healthy: true, weight: 1 }];
  }
  return [];
}

export class Cluster implements UpstreamCluster {
  private hosts = new Map<string, Host>();
  private lb: LoadBalancer<Host>;
  private panic = false;
  private panicPicks = 0;
  private nonePicks = 0;
  private requestsTotal = 0;
  private readonly breaker: CircuitBreaker;
  private readonly outlier: OutlierDetector<Host>;
  private checker: HealthChecker<Host> | undefined;
  private closed = false;

  constructor(
    public spec: ProxyCluster,
    endpoints: EndpointSet | undefined,
    private readonly deps: ClusterDeps,
  ) {
    this.breaker = new CircuitBreaker(spec.circuitBreakers);
    this.outlier = new OutlierDetector<Host>(spec.outlierDetection, () => this.rebuild());
    this.lb = createLoadBalancer(spec.lbPolicy, []);
    this.update(spec, endpoints);
  }

  /** A new spec and endpoint set: hosts that stay keep their state; the balancer is rebuilt. */
  update(spec: ProxyCluster, endpoints: EndpointSet | undefined): void {
    if (this.closed) return;
    this.spec = spec;
    const next = new Map<string, Host>();
    for (const ep of endpointsOf(spec, endpoints)) {
      const key = hostKey(ep.address, ep.port);
      if (next.has(key)) continue; // a duplicate address: the first entry wins
      const weight = Math.max(1, ep.weight || 1);
      let h = this.hosts.get(key);
      if (h) {
        h.weight = weight;
        h.edsHealthy = ep.healthy;
        h.pod = ep.pod;
      } else {
        h = new Host(ep.address, ep.port, { pod: ep.pod, weight, healthy: ep.healthy });
      }
      next.set(key, h);
    }
    this.hosts = next;
    this.breaker.configure(spec.circuitBreakers);
    this.outlier.configure(spec.outlierDetection);
    if (spec.healthCheck) {
      if (this.checker) this.checker.configure(spec.healthCheck);
      else {
        this.checker = new HealthChecker<Host>(spec.healthCheck, {
          http2: () => this.spec.http2,
          authority: () => this.spec.host,
          tlsFor: (host, alpn) => this.deps.tlsOptions(this, host, alpn),
          onChange: () => this.rebuild(),
          onPass: (host) => this.outlier.healthCheckPassed(host),
        });
      }
    } else if (this.checker) {
      this.checker.close();
      this.checker = undefined;
    }
    for (const h of next.values()) h.healthChecked = this.checker !== undefined;
    const ready = [...next.values()].filter((h) => h.edsHealthy);
    this.outlier.setHosts(ready);
    this.checker?.setHosts(ready);
    this.rebuild();
  }

  /** Recomputes the pickable set (available hosts, or every ready host in panic) and its balancer. */
  private rebuild(): void {
    if (this.closed) return;
    const ready: Host[] = [];
    const available: Host[] = [];
    for (const h of this.hosts.values()) {
      if (!h.edsHealthy) continue;
      ready.push(h);
      if (h.available) available.push(h);
    }
    const threshold = healthyPanicThresholdPercent(this.spec);
    this.panic = ready.length > 0 && available.length * 100 < threshold * ready.length;
    const set = this.panic ? ready : available;
    this.lb = createLoadBalancer(this.spec.lbPolicy, set, {
      keys: set.map((h) => h.key),
      ...(this.spec.ringHash ? { ringHash: this.spec.ringHash } : {}),
      ...(this.deps.random ? { random: this.deps.random } : {}),
    });
  }

  /** The host with this address, if the cluster has it. */
  host(address: string, port: number): Host | undefined {
    return this.hosts.get(hostKey(address, port));
  }

  allHosts(): Host[] {
    return [...this.hosts.values()];
  }

  pick(ctx: { hash?: number; exclude?: ReadonlySet<UpstreamHost> }): UpstreamHost | undefined {
    if (this.panic) this.panicPicks++;
    const h = this.lb.pick(ctx.hash, ctx.exclude as ReadonlySet<Host> | undefined);
    if (!h) this.nonePicks++;
    return h;
  }

  tryBeginRequest(host: UpstreamHost): boolean {
    if (!this.breaker.tryBeginRequest()) return false;
    this.requestsTotal++;
    if (host instanceof Host) {
      host.activeRequests++;
      host.requestsTotal++;
    }
    return true;
  }

  endRequest(host: UpstreamHost, outcome: RequestOutcome): void {
    this.breaker.endRequest();
    if (!(host instanceof Host)) return;
    if (host.activeRequests > 0) host.activeRequests--;
    if (outcome !== 'success') host.requestErrors++;
    // A host that left the cluster meanwhile no longer counts for detection.
    if (this.hosts.get(host.key) === host) this.outlier.record(host, outcome);
  }

  tryBeginRetry(): boolean {
    return this.breaker.tryBeginRetry();
  }

  endRetry(): void {
    this.breaker.endRetry();
  }

  tryBeginConnection(host: UpstreamHost): boolean {
    if (!this.breaker.tryBeginConnection()) return false;
    if (host instanceof Host) host.activeConnections++;
    return true;
  }

  endConnection(host: UpstreamHost): void {
    this.breaker.endConnection();
    if (host instanceof Host && host.activeConnections > 0) host.activeConnections--;
  }

  tryBeginPending(): boolean {
    return this.breaker.tryBeginPending();
  }

  endPending(): void {
    this.breaker.endPending();
  }

  stats(): ClusterStats {
    const hosts = [...this.hosts.values()];
    return {
      name: this.spec.name,
      lb_policy: this.spec.lbPolicy,
      membership_total: hosts.length,
      membership_healthy: hosts.filter((h) => h.available).length,
      panic: this.panic,
      lb_healthy_panic: this.panicPicks,
      upstream_rq_total: this.requestsTotal,
      upstream_cx_none_healthy: this.nonePicks,
      ...this.breaker.stats(),
      ...this.outlier.stats(),
      hosts: hosts.map((h) => h.stats()),
    };
  }

  /** Stops health checks and the outlier sweep; counters keep working for requests still in flight. */
  close(): void {
    this.closed = true;
    this.outlier.close();
    this.checker?.close();
    this.checker = undefined;
  }
}
