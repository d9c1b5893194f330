// Active health checking of a cluster's hosts, as Envoy's health checkers: TCP connect, HTTP GET (2xx is healthy)
// and grpc.health.v1.Health/Check, each with a timeout, run every interval, with healthy and unhealthy thresholds.
import type { ConnectionOptions } from 'node:tls';
import type { HealthCheckConfig } from '../proxy-config.ts';
import { probeGrpc, probeHttp1, probeHttp2, probeTcp, type ProbeTarget } from './health-probes.ts';

/** The per-host state the checker keeps (on the cluster's host objects, so it survives config updates). */
export interface HealthState {
  /** Passed its checks (as Envoy, a new host is unhealthy until its first check passes). */
  healthy: boolean;
  /** No check has completed yet. */
  pending: boolean;
  successes: number;
  failures: number;
  checksTotal: number;
  lastFailure?: string;
}

export function newHealthState(): HealthState {
  return { healthy: false, pending: true, successes: 0, failures: 0, checksTotal: 0 };
}

export interface CheckedHost {
  readonly address: string;
  readonly port: number;
  readonly health: HealthState;
}

export interface HealthCheckerOptions<H> {
  /** Use HTTP/2 for HTTP checks (the cluster speaks HTTP/2); gRPC checks always do. */
  http2: () => boolean;
  /** `:authority` / Host of HTTP and gRPC checks (Envoy uses the cluster's name; we use the service host). */
  authority: () => string;
  /** TLS to reach the host (mesh mTLS), or undefined for plaintext. */
  tlsFor: (host: H, alpn: string[]) => ConnectionOptions | undefined;
  /** A host's health changed: the cluster rebuilds its balancer. */
  onChange: () => void;
  /** A check passed (Envoy's successful_active_health_check_uneject_host: the cluster returns an ejected host). */
  onPass?: (host: H) => void;
}

interface Slot {
  timer: NodeJS.Timeout | undefined;
  abort: (() => void) | undefined;
}

/**
 * Checks every host given to `setHosts`: the first check at once, then one `intervalMs` after the previous one
 * finished. Transitions follow Envoy: a pending host becomes healthy on its first success; a healthy one turns
 * unhealthy after `unhealthyThreshold` consecutive failures; an unhealthy one recovers after `healthyThreshold`
 * consecutive successes. All timers are unref()'d; close() stops them and aborts checks in flight.
 */
export class HealthChecker<H extends CheckedHost> {
  private readonly slots = new Map<H, Slot>();
  private closed = false;

  constructor(
    private config: HealthCheckConfig,
    private readonly opts: HealthCheckerOptions<H>,
  ) {}

  configure(config: HealthCheckConfig): void {
    this.config = config;
  }

  setHosts(hosts: readonly H[]): void {
    if (this.closed) return;
    const keep = new Set(hosts);
    for (const [h, slot] of this.slots) {
      if (keep.has(h)) continue;
      this.stopSlot(slot);
      this.slots.delete(h);
    }
    for (const h of hosts) {
      if (this.slots.has(h)) continue;
      const slot: Slot = { timer: undefined, abort: undefined };
      this.slots.set(h, slot);
      this.run(h, slot);
    }
  }

  private stopSlot(slot: Slot): void {
    if (slot.timer) clearTimeout(slot.timer);
    slot.timer = undefined;
    slot.abort?.();
    slot.abort = undefined;
  }

  private run(host: H, slot: Slot): void {
    slot.timer = undefined;
    const cfg = this.config;
    const target: ProbeTarget = { address: host.address, port: host.port, timeoutMs: Math.max(1, cfg.timeoutMs) };
    let alpn: string[];
    let probe: (t: ProbeTarget, tls: ConnectionOptions | undefined) => { result: Promise<string | undefined>; abort: () => void };
    const authority = this.opts.authority();
    if (cfg.grpcService !== undefined) {
      alpn = ['h2'];
      const service = cfg.grpcService;
      probe = (t, tls) => probeGrpc(t, tls, authority, service);
    } else if (cfg.httpPath !== undefined) {
      const h2 = this.opts.http2();
      alpn = h2 ? ['h2'] : ['http/1.1'];
      const path = cfg.httpPath;
      probe = h2 ? (t, tls) => probeHttp2(t, tls, authority, path) : (t, tls) => probeHttp1(t, tls, authority, path);
    } else {
      alpn = [];
      probe = probeTcp;
    }
    let tls: ConnectionOptions | undefined;
    try {
      tls = this.opts.tlsFor(host, alpn);
    } catch (err) {
      // No certificate yet, or the TLS module refused: the check fails (fail closed) and is tried again later.
      this.finish(host, slot, `tls: ${(err as Error).message}`);
      return;
    }
    const p = probe(target, tls);
    slot.abort = p.abort;
    void p.result.then((failure) => {
      if (slot.abort !== p.abort) return; // stopped or replaced meanwhile
      slot.abort = undefined;
      this.finish(host, slot, failure);
    });
  }

  private finish(host: H, slot: Slot, failure: string | undefined): void {
    if (this.closed || this.slots.get(host) !== slot) return;
    this.apply(host, failure);
    slot.timer = setTimeout(() => this.run(host, slot), Math.max(1, this.config.intervalMs));
    slot.timer.unref();
  }

  private apply(host: H, failure: string | undefined): void {
    const s = host.health;
    const cfg = this.config;
    const was = s.healthy;
    s.checksTotal++;
    if (failure === undefined) {
      s.failures = 0;
      s.successes++;
      if (s.pending || s.successes >= Math.max(1, cfg.healthyThreshold)) s.healthy = true;
    } else {
      s.lastFailure = failure;
      s.successes = 0;
      s.failures++;
      if (s.pending || s.failures >= Math.max(1, cfg.unhealthyThreshold)) s.healthy = false;
    }
    s.pending = false;
    if (s.healthy !== was) this.opts.onChange();
    if (failure === undefined) this.opts.onPass?.(host);
  }

  close(): void {
    this.closed = true;
    for (const slot of this.slots.values()) this.stopSlot(slot);
    this.slots.clear();
  }
}
