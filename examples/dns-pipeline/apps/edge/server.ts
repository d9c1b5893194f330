// edge: EdgeService (gRPC) takes zone pushes; an authoritative DNS server (UDP and TCP) answers from them.
import * as grpc from '@grpc/grpc-js';
import { bindHost, dataDir, intEnv, podName, stringEnv, type Env } from '../lib/env.ts';
import { HealthStatus } from '../lib/health.ts';
import type { Logger } from '../lib/log.ts';
import { EdgeServiceClient } from '../lib/protos.ts';
import { startDnsServer, type DnsServer } from './dns-server.ts';
import { edgeService } from './edge-service.ts';
import { EdgeStore } from './edge-store.ts';

export interface EdgeConfig {
  host: string;
  grpcPort: number;
  dnsPort: number;
  version: string;
  pod: string;
  dataDir: string;
  maxRecords: number;
}

export function edgeConfig(env: Env): EdgeConfig {
  return {
    host: bindHost(env),
    grpcPort: intEnv(env, 'PORT', 9091, 0, 65535),
    dnsPort: intEnv(env, 'DNS_PORT', 5353, 0, 65535),
    version: stringEnv(env, 'EDGE_VERSION', 'v1'),
    pod: podName(env, 'edge'),
    dataDir: dataDir(env, 'edge'),
    maxRecords: intEnv(env, 'MAX_ZONE_RECORDS', 2_000_000, 1, 50_000_000),
  };
}

export interface Edge {
  grpcPort: number;
  dnsPort: number;
  store: EdgeStore;
  dns: DnsServer;
  close(): Promise<void>;
}

export async function startEdge(cfg: EdgeConfig, log: Logger): Promise<Edge> {
  const store = await EdgeStore.open(cfg.dataDir, cfg.maxRecords, log);
  const dns = await startDnsServer({ host: cfg.host, port: cfg.dnsPort, table: store.table, log, maxTcpConnections: 256, tcpIdleMs: 10_000 });
  const server = new grpc.Server({ 'grpc.max_receive_message_length': 16 * 1024 * 1024 });
  server.addService(EdgeServiceClient.service, edgeService(store, { version: cfg.version, pod: cfg.pod }, cfg.maxRecords, log));
  const health = new HealthStatus();
  health.set('dns.v1.EdgeService', 'SERVING');
  health.addTo(server);
  let grpcPort: number;
  try {
    grpcPort = await new Promise<number>((resolve, reject) => {
      server.bindAsync(`${cfg.host.includes(':') ? `[${cfg.host}]` : cfg.host}:${cfg.grpcPort}`, grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p)));
    });
  } catch (e) {
    await dns.close();
    throw e;
  }
  log.info('serving dns.v1.EdgeService and DNS', { version: cfg.version, grpc: `${cfg.host}:${grpcPort}`, dns: `${cfg.host}:${dns.port}`, zones: store.table.size });
  let closing: Promise<void> | undefined;
  return {
    grpcPort,
    dnsPort: dns.port,
    store,
    dns,
    close: () =>
      (closing ??= (async () => {
        health.shutdown();
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
        await dns.close();
        await store.close();
      })()),
  };
}
