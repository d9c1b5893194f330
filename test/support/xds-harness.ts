// Test support: a Trellis ADS server on loopback and proxyless grpc-js-xds clients bootstrapped against it.
import * as grpc from '@grpc/grpc-js';
import * as grpcXds from '@grpc/grpc-js-xds';
import { AdsServer, type XdsEvent } from '../../src/xds/ads-server.ts';
import { grpcBootstrap } from '../../src/xds/bootstrap.ts';
import type { ResourceProvider } from '../../src/xds/resource-provider.ts';

grpcXds.register();

export interface XdsTestServer {
  ads: AdsServer;
  port: number;
  events: XdsEvent[];
  close(): Promise<void>;
}

export async function startAds(provider: ResourceProvider): Promise<XdsTestServer> {
  const events: XdsEvent[] = [];
  const ads = new AdsServer({ provider, onEvent: (e) => events.push(e) });
  const server = new grpc.Server();
  ads.register(server);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  // ADS streams stay open as long as clients live, so a graceful shutdown would wait for ever.
  return { ads, port, events, close: () => Promise.resolve(server.forceShutdown()) };
}

/** A grpc-js-xds bootstrap for one node; the per-channel option keeps many clients in one process apart. */
export function bootstrap(xdsPort: number, node: { id: string; namespace?: string; labels?: Record<string, string> }): string {
  return JSON.stringify(grpcBootstrap({ xdsServer: `127.0.0.1:${xdsPort}`, nodeId: node.id, namespace: node.namespace ?? 'default', labels: node.labels ?? {} }));
}

export function xdsClient<C extends grpc.Client>(ctor: new (target: string, creds: grpc.ChannelCredentials, opts: grpc.ChannelOptions) => C, target: string, xdsPort: number, node: Parameters<typeof bootstrap>[1]): C {
  return new ctor(target, grpc.credentials.createInsecure(), { 'grpc.TEST_ONLY_DO_NOT_USE_IN_PROD.xds_bootstrap_config': bootstrap(xdsPort, node) });
}
