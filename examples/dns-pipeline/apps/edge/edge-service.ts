// dns.v1.EdgeService/PushZone: a header, then record batches; the zone is checked whole and only then served.
import * as grpc from '@grpc/grpc-js';
import { AppError, grpcErrorOf } from '../lib/app-error.ts';
import type { Logger } from '../lib/log.ts';
import type { PushHeader, PushZoneRequest, PushZoneResponse } from '../lib/protos.ts';
import { normalizeName, normalizeRecord } from '../lib/records.ts';
import { addRecord, emptyZone, type ZoneData } from '../lib/zone-data.ts';
import type { EdgeStore } from './edge-store.ts';

export interface EdgeIdentity {
  version: string;
  pod: string;
}

export function edgeService(store: EdgeStore, id: EdgeIdentity, maxRecords: number, log: Logger): grpc.UntypedServiceImplementation {
  return {
    PushZone: (call: grpc.ServerReadableStream<PushZoneRequest, PushZoneResponse>, cb: grpc.sendUnaryData<PushZoneResponse>) => {
      let header: PushHeader | undefined;
      let zone: ZoneData | undefined;
      let failed = false;
      const started = Date.now();
      const refuse = (e: unknown): void => {
        if (failed) return;
        failed = true;
        const err = grpcErrorOf(e);
        log.warn('refused a push', { zone: header?.zone, code: grpc.status[err.code], error: err.details, peer: call.getPeer() });
        cb(err);
      };
      call.on('data', (m: PushZoneRequest) => {
        if (failed) return;
        try {
          if (m.header) {
            if (header) throw new AppError('INVALID_ARGUMENT', 'a push has one header');
            header = { ...m.header, zone: normalizeName(m.header.zone, 'zone') };
            if (header.recordCount > maxRecords) throw new AppError('RESOURCE_EXHAUSTED', `a zone may hold ${maxRecords} records, not ${header.recordCount}`);
            zone = emptyZone(header.zone, header.serial);
            return;
          }
          if (!header || !zone) throw new AppError('INVALID_ARGUMENT', 'a push starts with its header');
          if (header.deleted) throw new AppError('INVALID_ARGUMENT', 'a deletion carries no records');
          for (const r of m.records?.records ?? []) {
            if (zone.count >= header.recordCount) throw new AppError('INVALID_ARGUMENT', `more records than the header's ${header.recordCount}`);
            addRecord(zone, normalizeRecord(header.zone, r), maxRecords);
          }
        } catch (e) {
          refuse(e);
        }
      });
      call.on('error', () => (failed = true));
      call.on('end', () => {
        if (failed) return;
        if (!header || !zone) return refuse(new AppError('INVALID_ARGUMENT', 'a push starts with its header'));
        const h = header;
        if (!h.deleted && zone.count !== h.recordCount) return refuse(new AppError('INVALID_ARGUMENT', `the push ended after ${zone.count} of ${h.recordCount} records`));
        (h.deleted ? store.remove(h.zone, h.serial) : store.install(zone)).then(
          (r) => {
            log.info(h.deleted ? 'zone removed' : r.applied ? 'zone installed' : 'kept a newer serial', {
              zone: h.zone,
              serial: h.serial,
              served: r.serial,
              records: h.deleted ? undefined : zone?.count,
              ms: Date.now() - started,
            });
            cb(null, { zone: h.zone, serial: r.serial, applied: r.applied, recordCount: zone?.count ?? 0, edgeVersion: id.version, edgePod: id.pod });
          },
          (e: unknown) => refuse(e),
        );
      });
    },
  };
}
