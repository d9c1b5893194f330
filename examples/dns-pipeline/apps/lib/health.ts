// The gRPC health service (grpc.health.v1.Health), which Kubernetes grpc probes and the mesh's health checks call.
import * as grpc from '@grpc/grpc-js';
import { HealthClient, type ServingStatus } from './protos.ts';

const MAX_WATCHERS = 64;

/** Serving status per service name; "" is the whole server. */
export class HealthStatus {
  private readonly statuses = new Map<string, ServingStatus>([['', 'SERVING']]);
  private readonly watchers = new Set<{ service: string; call: grpc.ServerWritableStream<{ service: string }, { status: ServingStatus }> }>();

  set(service: string, status: ServingStatus): void {
    this.statuses.set(service, status);
    for (const w of this.watchers) if (w.service === service) w.call.write({ status });
  }

  /** Every service NOT_SERVING (on shutdown), and open Watch streams ended. */
  shutdown(): void {
    for (const s of this.statuses.keys()) this.set(s, 'NOT_SERVING');
    for (const w of this.watchers) w.call.end();
    this.watchers.clear();
  }

  addTo(server: grpc.Server): void {
    server.addService(HealthClient.service, {
      Check: (call: grpc.ServerUnaryCall<{ service: string }, { status: ServingStatus }>, cb: grpc.sendUnaryData<{ status: ServingStatus }>) => {
        const s = this.statuses.get(call.request.service);
        if (s === undefined) cb({ code: grpc.status.NOT_FOUND, details: `unknown service "${call.request.service}"` });
        else cb(null, { status: s });
      },
      Watch: (call: grpc.ServerWritableStream<{ service: string }, { status: ServingStatus }>) => {
        if (this.watchers.size >= MAX_WATCHERS) {
          call.emit('error', { code: grpc.status.RESOURCE_EXHAUSTED, details: 'too many health watchers' });
          return;
        }
        const w = { service: call.request.service, call };
        this.watchers.add(w);
        call.on('cancelled', () => this.watchers.delete(w));
        call.write({ status: this.statuses.get(w.service) ?? 'SERVICE_UNKNOWN' });
      },
    });
  }
}
