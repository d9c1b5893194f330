// zone-publisher: watches zone-api for changes and pushes each changed zone to the edge, streaming GetZone into
// PushZone. The first push of a change goes through the edge Service as the mesh routes it (the 90/10 split);
// then one push per other version named in EDGE_VERSIONS, pinned by a header the VirtualService routes on.
import * as grpc from '@grpc/grpc-js';
import { intEnv, listEnv, serviceAddress, stringEnv, type Env } from '../lib/env.ts';
import { Backoff, CHANNEL_OPTIONS, deadline, sleep } from '../lib/grpc-client.ts';
import type { Logger } from '../lib/log.ts';
import { edgeServiceClient, zoneServiceClient, type EdgeServiceApi, type GetZoneResponse, type PushZoneResponse, type ZoneChangeMsg, type ZoneServiceApi } from '../lib/protos.ts';

export interface PublisherConfig {
  zoneApi: string;
  edge: string;
  edgeVersions: string[];
  versionHeader: string;
  pushTimeoutMs: number;
  backoffMinMs: number;
  backoffMaxMs: number;
}

export function publisherConfig(env: Env): PublisherConfig {
  return {
    zoneApi: serviceAddress(env, 'zone-api', 'grpc', 9090, 'ZONE_API_ADDR'),
    edge: serviceAddress(env, 'edge', 'grpc', 9091, 'EDGE_ADDR'),
    edgeVersions: listEnv(env, 'EDGE_VERSIONS'),
    versionHeader: stringEnv(env, 'EDGE_VERSION_HEADER', 'x-edge-version').toLowerCase(),
    pushTimeoutMs: intEnv(env, 'PUSH_TIMEOUT_MS', 120_000, 100, 3_600_000),
    backoffMinMs: intEnv(env, 'BACKOFF_MIN_MS', 200, 1, 60_000),
    backoffMaxMs: intEnv(env, 'BACKOFF_MAX_MS', 10_000, 1, 600_000),
  };
}

export interface PublisherStats {
  /** Pushes routed by the mesh, by the edge version that took them. */
  split: Record<string, number>;
  pinned: Record<string, number>;
  failures: number;
  watchConnects: number;
}

export interface PushOutcome {
  route: string;
  response: PushZoneResponse;
}

export class Publisher {
  readonly stats: PublisherStats = { split: {}, pinned: {}, failures: 0, watchConnects: 0 };
  private readonly zoneApi: ZoneServiceApi;
  private readonly edge: EdgeServiceApi;
  private readonly queue = new Map<string, ZoneChangeMsg>();
  /** The serial each zone was last delivered at (to every version). */
  private readonly delivered = new Map<string, number>();
  private readonly abort = new AbortController();
  private watchCall: grpc.ClientReadableStream<ZoneChangeMsg> | undefined;
  private wake: (() => void) | undefined;
  private worker: Promise<void> | undefined;
  private readonly watchBackoff: Backoff;

  constructor(
    private readonly cfg: PublisherConfig,
    private readonly log: Logger,
    /** Called after every push (tests and logs). */
    private readonly onPush: (zone: string, o: PushOutcome) => void = () => undefined,
  ) {
    this.zoneApi = zoneServiceClient(cfg.zoneApi, CHANNEL_OPTIONS);
    this.edge = edgeServiceClient(cfg.edge, CHANNEL_OPTIONS);
    this.watchBackoff = new Backoff(cfg.backoffMinMs, cfg.backoffMaxMs);
  }

  start(): void {
    this.watch();
    this.worker = this.work();
    this.log.info('publishing zone changes', { zoneApi: this.cfg.zoneApi, edge: this.cfg.edge, pinnedVersions: this.cfg.edgeVersions.join(',') || 'none' });
  }

  private watch(): void {
    if (this.abort.signal.aborted) return;
    const call = this.zoneApi.WatchZones({ sendInitial: true }, new grpc.Metadata(), {});
    this.watchCall = call;
    let ended = false;
    call.on('metadata', () => {
      this.stats.watchConnects++;
      this.watchBackoff.reset();
      this.log.info('watching zone-api for changes', { zoneApi: this.cfg.zoneApi });
    });
    call.on('data', (n: ZoneChangeMsg) => {
      if (n.kind === 'EXISTING' && this.delivered.get(n.zone) === n.serial) return;
      this.queue.delete(n.zone);
      this.queue.set(n.zone, n);
      this.wake?.();
    });
    const again = (why: string): void => {
      if (ended) return;
      ended = true;
      if (this.abort.signal.aborted) return;
      const ms = this.watchBackoff.next();
      this.log.warn('watch ended; reconnecting', { why, inMs: ms });
      void sleep(ms, this.abort.signal).then(() => this.watch());
    };
    call.on('error', (e: grpc.ServiceError) => again(`${grpc.status[e.code]}: ${e.details}`));
    call.on('end', () => again('the server ended the stream'));
  }

  private async work(): Promise<void> {
    const backoff = new Backoff(this.cfg.backoffMinMs, this.cfg.backoffMaxMs);
    while (!this.abort.signal.aborted) {
      const first = this.queue.entries().next();
      if (first.done) {
        await new Promise<void>((resolve) => (this.wake = resolve));
        this.wake = undefined;
        continue;
      }
      const [zone, notice] = first.value;
      this.queue.delete(zone);
      try {
        await this.deliver(notice);
        backoff.reset();
      } catch (e) {
        if (this.abort.signal.aborted) return;
        this.stats.failures++;
        const err = e as grpc.ServiceError;
        if (err.code === grpc.status.NOT_FOUND) continue; // deleted meanwhile: its DELETED notice follows
        const ms = backoff.next();
        this.log.warn('push failed; retrying', { zone, code: grpc.status[err.code] ?? 'ERROR', error: err.details ?? err.message, inMs: ms });
        if (!this.queue.has(zone)) this.queue.set(zone, notice);
        await sleep(ms, this.abort.signal);
      }
    }
  }

  /** Pushes one change: through the split, then pinned to each other version. */
  private async deliver(n: ZoneChangeMsg): Promise<void> {
    const deleted = n.kind === 'DELETED';
    const first = await this.push(n.zone, deleted ? n.serial : undefined);
    this.record(n.zone, 'split', first);
    for (const v of this.cfg.edgeVersions) {
      if (v === first.edgeVersion) continue;
      const r = await this.push(n.zone, deleted ? n.serial : undefined, v);
      this.record(n.zone, `pinned:${v}`, r);
      if (r.edgeVersion !== v) this.log.warn('a push pinned to one version was taken by another (no mesh routing by header?)', { zone: n.zone, wanted: v, got: r.edgeVersion });
    }
    this.delivered.set(n.zone, first.serial);
    if (deleted) this.delivered.delete(n.zone);
  }

  private record(zone: string, route: string, r: PushZoneResponse): void {
    const bucket = route === 'split' ? this.stats.split : this.stats.pinned;
    bucket[r.edgeVersion] = (bucket[r.edgeVersion] ?? 0) + 1;
    this.log.info(r.applied ? 'pushed zone to edge' : 'edge kept a newer serial', { zone, serial: r.serial, records: r.recordCount, edge: r.edgeVersion, pod: r.edgePod, route });
    this.onPush(zone, { route, response: r });
  }

  /** One PushZone call; a deletion when `deletedSerial` is given, else the zone streamed from GetZone. */
  private push(zone: string, deletedSerial?: number, pin?: string): Promise<PushZoneResponse> {
    return new Promise((resolve, reject) => {
      let settled = false;
      const settle = (e: unknown, r?: PushZoneResponse): void => {
        if (settled) return;
        settled = true;
        if (e || !r) reject(e instanceof Error ? e : new Error('push failed'));
        else resolve(r);
      };
      const md = new grpc.Metadata();
      if (pin) md.set(this.cfg.versionHeader, pin);
      const opts = { deadline: deadline(this.cfg.pushTimeoutMs) };
      const pushCall = this.edge.PushZone(md, opts, (err, r) => settle(err, r));
      if (deletedSerial !== undefined) {
        pushCall.write({ header: { zone, serial: deletedSerial, deleted: true, recordCount: 0 } });
        pushCall.end();
        return;
      }
      const get = this.zoneApi.GetZone({ zone, batchSize: 1000 }, new grpc.Metadata(), opts);
      get.on('data', (m: GetZoneResponse) => {
        if (m.zone) pushCall.write({ header: { zone, serial: m.zone.serial, deleted: false, recordCount: m.zone.recordCount } });
        if (m.records.length > 0 && !pushCall.write({ records: { records: m.records } })) {
          get.pause();
          pushCall.once('drain', () => get.resume());
        }
      });
      get.on('end', () => pushCall.end());
      get.on('error', (e) => {
        pushCall.cancel();
        settle(e);
      });
      // A push that fails ends the read too.
      pushCall.on('error', () => get.cancel());
    });
  }

  async close(): Promise<void> {
    this.abort.abort();
    this.watchCall?.cancel();
    this.wake?.();
    await this.worker;
    this.zoneApi.close();
    this.edge.close();
  }
}
