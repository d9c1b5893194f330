// One upstream endpoint of a cluster and everything known about it: EDS health and weight, requests and
// connections in flight, outlier ejection and active health state. Its identity is `address:port`.
import type { UpstreamHost } from '../contracts.ts';
import { newHealthState, type HealthState } from './health-checker.ts';
import { newOutlierState, type OutlierState } from './outlier-detector.ts';

export function hostKey(address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}

export type HostHealth = 'healthy' | 'eds-unhealthy' | 'ejected' | 'failed-health-check' | 'pending-health-check';

export interface HostStats {
  address: string;
  port: number;
  pod?: string;
  weight: number;
  health: HostHealth;
  rq_active: number;
  rq_total: number;
  rq_error: number;
  cx_active: number;
  ejections: number;
  ejected: boolean;
  consecutive_5xx: number;
  health_checks: number;
  last_health_check_failure?: string;
}

export class Host implements UpstreamHost {
  readonly key: string;
  pod: string | undefined;
  weight: number;
  /** EDS said HEALTHY (a ready pod). Hosts that are not are never picked, not even in panic. */
  edsHealthy: boolean;
  activeRequests = 0;
  activeConnections = 0;
  requestsTotal = 0;
  requestErrors = 0;
  readonly outlier: OutlierState = newOutlierState();
  readonly health: HealthState = newHealthState();
  /** The cluster runs active health checks, so `health` counts. */
  healthChecked = false;

  constructor(
    readonly address: string,
    readonly port: number,
    init: { pod?: string | undefined; weight: number; healthy: boolean },
  ) {
    this.key = hostKey(address, port);
    this.pod = init.pod;
    this.weight = init.weight;
    this.edsHealthy = init.healthy;
  }

  get available(): boolean {
    return this.edsHealthy && !this.outlier.ejected && (!this.healthChecked || this.health.healthy);
  }

  healthState(): HostHealth {
    if (!this.edsHealthy) return 'eds-unhealthy';
    if (this.outlier.ejected) return 'ejected';
    if (this.healthChecked && !this.health.healthy) return this.health.pending ? 'pending-health-check' : 'failed-health-check';
    return 'healthy';
  }

  stats(): HostStats {
    const s: HostStats = {
      address: this.address,
      port: this.port,
      weight: this.weight,
      health: this.healthState(),
      rq_active: this.activeRequests,
      rq_total: this.requestsTotal,
      rq_error: this.requestErrors,
      cx_active: this.activeConnections,
      ejections: this.outlier.ejectionsTotal,
      ejected: this.outlier.ejected,
      consecutive_5xx: this.outlier.consecutive5xx,
      health_checks: this.health.checksTotal,
    };
    if (this.pod !== undefined) s.pod = this.pod;
    if (this.health.lastFailure !== undefined) s.last_health_check_failure = this.health.lastFailure;
    return s;
  }
}
