// Prometheus metrics of the control plane, under Istio's pilot_* names so existing dashboards work.
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { XdsEvent } from '../xds/ads-server.ts';
import { shortType } from '../xds/type-urls.ts';

export class ControlPlaneMetrics {
  readonly registry = new Registry();
  private readonly pushes = new Counter({ name: 'pilot_xds_pushes', help: 'xDS responses sent, by type', labelNames: ['type'], registers: [this.registry] });
  private readonly rejects = new Counter({ name: 'pilot_total_xds_rejects', help: 'xDS responses rejected (NACKed) by clients, by type', labelNames: ['type'], registers: [this.registry] });
  private readonly connected = new Gauge({ name: 'pilot_xds', help: 'Connected xDS clients', labelNames: ['stream'], registers: [this.registry] });
  private readonly convergence = new Histogram({
    name: 'pilot_proxy_convergence_time',
    help: 'Seconds from sending a configuration to the client ACKing it',
    labelNames: ['type'],
    buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });
  readonly reloads = new Counter({ name: 'trellis_config_reloads_total', help: 'Configuration reloads, by result (applied or refused)', labelNames: ['result'], registers: [this.registry] });
  readonly configErrors = new Gauge({ name: 'trellis_config_errors', help: 'Errors in the last refused configuration (0 once a good one applies)', registers: [this.registry] });
  private readonly sentAt = new Map<string, number>();

  /** Feeds on the ADS server's events. */
  readonly onXdsEvent = (e: XdsEvent): void => {
    switch (e.kind) {
      case 'connect':
        this.connected.inc({ stream: e.stream });
        break;
      case 'disconnect':
        this.connected.dec({ stream: e.stream });
        break;
      case 'push':
        this.pushes.inc({ type: shortType(e.type) });
        this.sentAt.set(`${e.node.id}\0${e.type}\0${e.nonce}`, performance.now());
        break;
      case 'ack':
      case 'nack': {
        const key = `${e.node.id}\0${e.type}\0${e.nonce}`;
        const t = this.sentAt.get(key);
        this.sentAt.delete(key);
        if (e.kind === 'nack') this.rejects.inc({ type: shortType(e.type) });
        else if (t !== undefined) this.convergence.observe({ type: shortType(e.type) }, (performance.now() - t) / 1000);
        break;
      }
    }
    // Bound the pending map: a client that never answers must not grow it without end.
    if (this.sentAt.size > 100_000) this.sentAt.clear();
  };
}
