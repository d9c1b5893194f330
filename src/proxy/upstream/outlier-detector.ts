// Passive health checking as Envoy's outlier detection: consecutive 5xx and consecutive gateway failures eject a host
// inline, for base_ejection_time × the times it was ejected; a sweep every `interval` returns hosts whose time is up.
import type { OutlierDetection } from '../../routing/model.ts';
import type { RequestOutcome } from '../contracts.ts';

/** Envoy's consecutive_5xx default, used when detection is configured without a count. */
export const DEFAULT_CONSECUTIVE_5XX = 5;
/** Envoy's max_ejection_time default; a host is never ejected longer than this (or base_ejection_time if larger). */
export const DEFAULT_MAX_EJECTION_TIME_MS = 300_000;

/** The per-host state the detector keeps (on the cluster's host objects, so it survives config updates). */
export interface OutlierState {
  consecutive5xx: number;
  consecutiveGatewayFailures: number;
  ejected: boolean;
  /** performance.now() of the last ejection. */
  ejectedAt: number;
  /** Ejection time multiplier: grows by one per ejection, shrinks by one per interval of good behaviour. */
  ejectionMultiplier: number;
  lastUnejectedAt: number | undefined;
  ejectionsTotal: number;
}

export function newOutlierState(): OutlierState {
  return { consecutive5xx: 0, consecutiveGatewayFailures: 0, ejected: false, ejectedAt: 0, ejectionMultiplier: 0, lastUnejectedAt: undefined, ejectionsTotal: 0 };
}

export interface OutlierDetectorStats {
  ejections_active: number;
  ejections_enforced_total: number;
  ejections_enforced_consecutive_5xx: number;
  ejections_enforced_consecutive_gateway_failure: number;
  /** Ejections refused by max_ejection_percent. */
  ejections_overflow: number;
}

/**
 * One cluster's detector over its hosts (the ones that may take traffic). `onChange` runs whenever a host is ejected
 * or returned, so that the cluster rebuilds its balancer.
 *
 * max_ejection_percent, as Envoy's outlier detection overview states it: when no host is ejected, an outlier is
 * ejected at once; otherwise only if the ejected hosts, this one included, stay within the percentage. A cluster of 3
 * with the default 10% can thus lose one host to ejection, never two. 0% ejects nothing.
 */
export class OutlierDetector<H extends { outlier: OutlierState }> {
  private config: OutlierDetection | undefined;
  private hosts: readonly H[] = [];
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private enforced5xx = 0;
  private enforcedGateway = 0;
  private overflow = 0;

  constructor(
    config: OutlierDetection | undefined,
    private readonly onChange: () => void,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.configure(config);
  }

  get enabled(): boolean {
    return this.config !== undefined;
  }

  configure(config: OutlierDetection | undefined): void {
    if (this.closed) return;
    const old = this.config;
    this.config = config;
    if (old && config && old.intervalMs === config.intervalMs) return;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    if (config) {
      this.timer = setInterval(() => this.sweep(), Math.max(1, config.intervalMs));
      this.timer.unref();
    } else if (old) {
      // Detection turned off: nothing would ever return the ejected hosts, so return them now.
      let changed = false;
      for (const h of this.hosts) {
        if (h.outlier.ejected) changed = true;
        this.uneject(h);
        h.outlier.ejectionMultiplier = 0;
      }
      if (changed) this.onChange();
    }
  }

  /** The hosts that count for max_ejection_percent and that the sweep visits. */
  setHosts(hosts: readonly H[]): void {
    this.hosts = hosts;
  }

  /** Records one request's outcome; returns true when it ejected the host (`onChange` has then run). */
  record(host: H, outcome: RequestOutcome): boolean {
    const s = host.outlier;
    if (outcome === 'success') {
      s.consecutive5xx = 0;
      s.consecutiveGatewayFailures = 0;
      return false;
    }
    const cfg = this.config;
    if (!cfg || s.ejected) return false;
    // Connect failures are local-origin errors; without split_external_local_origin_errors Envoy maps them to 503.
    s.consecutive5xx++;
    if (outcome === '5xx') s.consecutiveGatewayFailures = 0;
    else s.consecutiveGatewayFailures++;
    const limit5xx = cfg.consecutive5xx ?? DEFAULT_CONSECUTIVE_5XX;
    const limitGateway = cfg.consecutiveGatewayErrors ?? 0;
    if (limitGateway > 0 && s.consecutiveGatewayFailures >= limitGateway) {
      if (this.eject(host)) {
        this.enforcedGateway++;
        return true;
      }
    } else if (limit5xx > 0 && s.consecutive5xx >= limit5xx) {
      if (this.eject(host)) {
        this.enforced5xx++;
        return true;
      }
    }
    return false;
  }

  private ejectedCount(): number {
    let n = 0;
    for (const h of this.hosts) if (h.outlier.ejected) n++;
    return n;
  }

  private eject(host: H): boolean {
    const cfg = this.config!;
    const s = host.outlier;
    s.consecutive5xx = 0;
    s.consecutiveGatewayFailures = 0;
    const ejected = this.ejectedCount();
    const total = Math.max(1, this.hosts.length);
    const allowed = cfg.maxEjectionPercent > 0 && (ejected === 0 || (ejected + 1) * 100 <= cfg.maxEjectionPercent * total);
    if (!allowed) {
      this.overflow++;
      return false;
    }
    const base = Math.max(1, cfg.baseEjectionTimeMs);
    const maxMultiplier = Math.max(1, Math.floor(Math.max(DEFAULT_MAX_EJECTION_TIME_MS, base) / base));
    s.ejectionMultiplier = Math.min(s.ejectionMultiplier + 1, maxMultiplier);
    s.ejected = true;
    s.ejectedAt = this.now();
    s.ejectionsTotal++;
    this.onChange();
    return true;
  }

  private uneject(h: H): void {
    if (!h.outlier.ejected) return;
    h.outlier.ejected = false;
    h.outlier.lastUnejectedAt = this.now();
  }

  /**
   * An active health check passed: as Envoy's successful_active_health_check_uneject_host (default true), an ejected
   * host returns at once. Its ejection multiplier stays, so a relapse ejects it longer.
   */
  healthCheckPassed(host: H): void {
    if (!host.outlier.ejected || this.closed) return;
    this.uneject(host);
    this.onChange();
  }

  /** How long `host` stays ejected this time, ms. */
  ejectionTimeMs(host: H): number {
    const base = Math.max(1, this.config?.baseEjectionTimeMs ?? 0);
    return Math.min(base * Math.max(1, host.outlier.ejectionMultiplier), Math.max(DEFAULT_MAX_EJECTION_TIME_MS, base));
  }

  /** The interval sweep: returns hosts whose ejection time is up, and lets good hosts' multipliers decay. */
  sweep(): void {
    const cfg = this.config;
    if (!cfg || this.closed) return;
    const now = this.now();
    let changed = false;
    for (const h of this.hosts) {
      const s = h.outlier;
      if (s.ejected) {
        if (now - s.ejectedAt >= this.ejectionTimeMs(h)) {
          this.uneject(h);
          changed = true;
        }
      } else if (s.ejectionMultiplier > 0 && s.lastUnejectedAt !== undefined && now - s.lastUnejectedAt >= cfg.intervalMs) {
        s.ejectionMultiplier--;
      }
    }
    if (changed) this.onChange();
  }

  stats(): OutlierDetectorStats {
    return {
      ejections_active: this.ejectedCount(),
      ejections_enforced_total: this.enforced5xx + this.enforcedGateway,
      ejections_enforced_consecutive_5xx: this.enforced5xx,
      ejections_enforced_consecutive_gateway_failure: this.enforcedGateway,
      ejections_overflow: this.overflow,
    };
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }
}
