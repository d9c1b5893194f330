// dns.v1.ZoneService over the zone store: ListZones, GetZone (batched, with backpressure), UpsertRecords,
// DeleteZone and WatchZones. Authorization is the mesh's job: the server checks input, not callers.
import * as grpc from '@grpc/grpc-js';
import { AppError, grpcErrorOf } from '../lib/app-error.ts';
import type { Logger } from '../lib/log.ts';
import type * as pb from '../lib/protos.ts';
import { normalizeName } from '../lib/records.ts';
import { normalizeChange, type Change } from '../lib/zone-data.ts';
import type { ZoneInfo, ZoneStore } from './zone-store.ts';
import { WatcherSet } from './watchers.ts';

export interface ZoneServiceOptions {
  log: Logger;
  /** Records per GetZone message when the caller does not say (it is capped at maxBatch). */
  defaultBatch: number;
  maxBatch: number;
  /** A GetZone message is sent once its records reach this many bytes, whatever the batch size. */
  maxBatchBytes: number;
  /** Changes one UpsertRecords call may carry. */
  maxChanges: number;
  maxWatchers: number;
}

export interface ZoneServiceMetrics {
  getZoneStreams: number;
  getZoneMessages: number;
  getZoneRecords: number;
  upserts: number;
  watchers: number;
}

const zoneMsg = (z: ZoneInfo): pb.ZoneMsg => ({ name: z.name, serial: z.serial, recordCount: z.count });

function fail(e: unknown, log: Logger, method: string): Partial<grpc.StatusObject> {
  const err = grpcErrorOf(e);
  if (err.code === grpc.status.INTERNAL) log.error('unexpected error', { method, error: (e as Error).message });
  return err;
}

/** Resolves when the stream can take more, or the call is cancelled (without leaving listeners behind). */
function drained(call: grpc.ServerWritableStream<unknown, unknown>): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      call.off('drain', done);
      call.off('cancelled', done);
      resolve();
    };
    call.on('drain', done);
    call.on('cancelled', done);
  });
}

export function zoneService(store: ZoneStore, o: ZoneServiceOptions): { handlers: grpc.UntypedServiceImplementation; metrics: ZoneServiceMetrics; watchers: WatcherSet } {
  const metrics: ZoneServiceMetrics = { getZoneStreams: 0, getZoneMessages: 0, getZoneRecords: 0, upserts: 0, watchers: 0 };
  const watchers = new WatcherSet(store, o.maxWatchers, metrics);

  const handlers = {
    ListZones: (_call: grpc.ServerUnaryCall<object, pb.ListZonesResponse>, cb: grpc.sendUnaryData<pb.ListZonesResponse>) => {
      cb(null, { zones: store.list().map(zoneMsg) });
    },

    GetZone: async (call: grpc.ServerWritableStream<pb.GetZoneRequest, pb.GetZoneResponse>) => {
      let cancelled = false;
      call.on('cancelled', () => (cancelled = true));
      try {
        const zone = normalizeName(call.request.zone, 'zone');
        const snap = store.snapshot(zone);
        if (!snap) throw new AppError('NOT_FOUND', `zone ${zone} does not exist`);
        metrics.getZoneStreams++;
        const size = Math.min(call.request.batchSize || o.defaultBatch, o.maxBatch);
        let first: pb.ZoneMsg | null = { name: snap.name, serial: snap.serial, recordCount: snap.count };
        let batch: pb.RecordMsg[] = [];
        let bytes = 0;
        const flush = async (): Promise<void> => {
          const ok = call.write({ zone: first, records: batch });
          metrics.getZoneMessages++;
          metrics.getZoneRecords += batch.length;
          first = null;
          batch = [];
          bytes = 0;
          // Memory stays flat: wait until the transport has taken what was written.
          if (!ok && !cancelled) await drained(call);
        };
        for (const set of snap.sets) {
          for (const r of set) {
            batch.push(r);
            bytes += r.name.length + r.data.length + 16;
            if (batch.length >= size || bytes >= o.maxBatchBytes) await flush();
            if (cancelled) return;
          }
        }
        if (batch.length > 0 || first) await flush();
        call.end();
      } catch (e) {
        if (!cancelled) call.emit('error', fail(e, o.log, 'GetZone'));
      }
    },

    UpsertRecords: (call: grpc.ServerReadableStream<pb.UpsertRecordsRequest, pb.UpsertRecordsResponse>, cb: grpc.sendUnaryData<pb.UpsertRecordsResponse>) => {
      let zone: string | undefined;
      const changes: Change[] = [];
      let failed = false;
      const refuse = (e: unknown): void => {
        if (failed) return;
        failed = true;
        cb(fail(e, o.log, 'UpsertRecords'));
      };
      call.on('data', (m: pb.UpsertRecordsRequest) => {
        if (failed) return;
        try {
          if (zone === undefined) zone = normalizeName(m.zone, 'zone');
          else if (m.zone !== '' && normalizeName(m.zone, 'zone') !== zone) throw new AppError('INVALID_ARGUMENT', `one call changes one zone (${zone}), not also ${m.zone}`);
          if (changes.length + m.changes.length > o.maxChanges) throw new AppError('RESOURCE_EXHAUSTED', `one call may carry at most ${o.maxChanges} changes`);
          for (const c of m.changes) changes.push(normalizeChange(zone, c.op, c.record));
        } catch (e) {
          refuse(e);
        }
      });
      call.on('end', () => {
        if (failed) return;
        if (zone === undefined) return refuse(new AppError('INVALID_ARGUMENT', 'the call named no zone'));
        store.apply(zone, changes).then(
          (r) => {
            metrics.upserts++;
            o.log.info('records changed', { zone: r.zone.name, serial: r.zone.serial, upserted: r.upserted, deleted: r.deleted, created: r.created });
            cb(null, { zone: zoneMsg(r.zone), upserted: r.upserted, deleted: r.deleted, created: r.created });
          },
          (e: unknown) => refuse(e),
        );
      });
      call.on('error', () => (failed = true));
    },

    DeleteZone: (call: grpc.ServerUnaryCall<{ zone: string }, pb.DeleteZoneResponse>, cb: grpc.sendUnaryData<pb.DeleteZoneResponse>) => {
      let zone: string;
      try {
        zone = normalizeName(call.request.zone, 'zone');
      } catch (e) {
        return cb(fail(e, o.log, 'DeleteZone'));
      }
      store.deleteZone(zone).then(
        (r) => {
          o.log.info('zone deleted', { zone, serial: r.serial });
          cb(null, { zone, serial: r.serial });
        },
        (e: unknown) => cb(fail(e, o.log, 'DeleteZone')),
      );
    },

    WatchZones: (call: grpc.ServerWritableStream<{ sendInitial: boolean }, pb.ZoneChangeMsg>) => {
      try {
        watchers.add(call, call.request.sendInitial);
      } catch (e) {
        call.emit('error', fail(e, o.log, 'WatchZones'));
      }
    },
  };
  return { handlers, metrics, watchers };
}
