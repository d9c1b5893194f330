// zone-api: the zone store behind a gRPC server (dns.v1.ZoneService and grpc.health.v1.Health).
import * as grpc from '@grpc/grpc-js';
import { access, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { bindHost, dataDir, intEnv, listEnv, type Env } from '../lib/env.ts';
import { HealthStatus } from '../lib/health.ts';
import type { Logger } from '../lib/log.ts';
import { ZoneServiceClient } from '../lib/protos.ts';
import { normalizeName, normalizeRecord } from '../lib/records.ts';
import type { Change } from '../lib/zone-data.ts';
import { zoneService, type ZoneServiceMetrics } from './zone-service.ts';
import { ZoneStore } from './zone-store.ts';

export interface ZoneApiConfig {
  host: string;
  port: number;
  dataDir: string;
  maxRecords: number;
  compactBytes: number;
  /** Zones created with sample records the first time the data directory is used. */
  seedZones: string[];
}

export function zoneApiConfig(env: Env): ZoneApiConfig {
  return {
    host: bindHost(env),
    port: intEnv(env, 'PORT', 9090, 0, 65535),
    dataDir: dataDir(env, 'zone-api'),
    maxRecords: intEnv(env, 'MAX_ZONE_RECORDS', 2_000_000, 1, 50_000_000),
    compactBytes: intEnv(env, 'WAL_COMPACT_BYTES', 4 * 1024 * 1024, 1, 1 << 30),
    seedZones: listEnv(env, 'SEED_ZONES').map((z) => normalizeName(z, 'SEED_ZONES entry')),
  };
}

export interface ZoneApi {
  address: string;
  port: number;
  store: ZoneStore;
  metrics: ZoneServiceMetrics;
  close(): Promise<void>;
}

export function sampleRecords(zone: string): Change[] {
  const rows: [string, string, string][] = [
    [zone, 'SOA', `ns1.${zone} hostmaster.${zone} 0 3600 600 86400 60`],
    [zone, 'NS', `ns1.${zone}`],
    [`ns1.${zone}`, 'A', '192.0.2.53'],
    [`www.${zone}`, 'A', '192.0.2.10'],
    [`www.${zone}`, 'AAAA', '2001:db8::10'],
    [`mail.${zone}`, 'A', '192.0.2.25'],
    [zone, 'MX', `10 mail.${zone}`],
    [zone, 'TXT', 'v=spf1 mx -all'],
    [`api.${zone}`, 'CNAME', `www.${zone}`],
  ];
  return rows.map(([name, type, data]) => ({ op: 'UPSERT', record: normalizeRecord(zone, { name, type, ttl: 300, data }) }));
}

/** Creates the seed zones once per data directory (a marker file remembers it, so a deleted zone stays deleted). */
async function seed(store: ZoneStore, cfg: ZoneApiConfig, log: Logger): Promise<void> {
  const marker = join(cfg.dataDir, 'seeded');
  if (cfg.seedZones.length === 0) return;
  try {
    await access(marker);
    return;
  } catch {
    // not seeded yet
  }
  for (const zone of cfg.seedZones) {
    if (store.has(zone)) continue;
    const r = await store.apply(zone, sampleRecords(zone));
    log.info('seeded zone with sample records', { zone, serial: r.zone.serial, records: r.zone.count });
  }
  await writeFile(marker, `${new Date().toISOString()}\n`);
}

export async function startZoneApi(cfg: ZoneApiConfig, log: Logger): Promise<ZoneApi> {
  const store = await ZoneStore.open({ dir: cfg.dataDir, maxRecords: cfg.maxRecords, compactBytes: cfg.compactBytes, log });
  await seed(store, cfg, log);
  const svc = zoneService(store, { log, defaultBatch: 500, maxBatch: 5000, maxBatchBytes: 256 * 1024, maxChanges: cfg.maxRecords, maxWatchers: 256 });
  const health = new HealthStatus();
  health.set('dns.v1.ZoneService', 'SERVING');
  // A call carries at most 64 MiB (one UpsertRecords message of a big zone); per-message size is bounded too.
  const server = new grpc.Server({ 'grpc.max_receive_message_length': 16 * 1024 * 1024, 'grpc.max_concurrent_streams': 1000 });
  server.addService(ZoneServiceClient.service, svc.handlers);
  health.addTo(server);
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(`${cfg.host.includes(':') ? `[${cfg.host}]` : cfg.host}:${cfg.port}`, grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p)));
  });
  log.info('serving dns.v1.ZoneService', { address: `${cfg.host}:${port}`, dataDir: cfg.dataDir, zones: store.list().length });
  let closing: Promise<void> | undefined;
  return {
    address: cfg.host,
    port,
    store,
    metrics: svc.metrics,
    close: () =>
      (closing ??= (async () => {
        health.shutdown();
        svc.watchers.close();
        await new Promise<void>((resolve) => {
          const t = setTimeout(() => {
            server.forceShutdown();
            resolve();
          }, 2000);
          server.tryShutdown(() => {
            clearTimeout(t);
            resolve();
          });
        });
        await store.close();
      })()),
  };
}
