// Test support: proxyless gRPC servers (grpc-js-xds XdsServer) and mTLS-capable proxyless clients, each with its own
// bootstrap, against a Trellis ADS server; workload certificates from a real Trellis CA, written as files for
// grpc-js-xds's file_watcher certificate provider.
import './xds-rbac-env.ts';
import { createServer } from 'node:net';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as grpcXds from '@grpc/grpc-js-xds';
import { CERT_CHAIN_FILE, KEY_FILE, ROOT_CERT_FILE, writeCertificateFiles, type CertificateAuthority, type Identity } from '../../src/ca/index.ts';
import { createCsr } from '../../src/ca/csr.ts';
import { exportPrivateKeyPem, generateP256KeyPair } from '../../src/ca/keys.ts';
import { DEFAULT_CERTIFICATE_PROVIDER, SERVER_LISTENER_TEMPLATE } from '../../src/xds/server-resources.ts';
import { startEchoServer, type EchoServer, type EchoReply, type EchoRequest } from './echo-service.ts';

grpcXds.register();

export interface XdsWorkload {
  id: string;
  namespace: string;
  labels?: Record<string, string>;
  /** Where the workload's cert-chain.pem, key.pem and root-cert.pem are; none: no certificate provider. */
  certDir?: string;
}

/** A bootstrap for one workload: its node, the server listener template, and its certificates as provider `trellis`. */
export function workloadBootstrap(xdsPort: number, w: XdsWorkload): string {
  const b: Record<string, unknown> = {
    xds_servers: [{ server_uri: `127.0.0.1:${xdsPort}`, channel_creds: [{ type: 'insecure' }], server_features: ['xds_v3'] }],
    node: { id: w.id, cluster: 'test', metadata: { NAMESPACE: w.namespace, LABELS: w.labels ?? {} }, locality: {} },
    server_listener_resource_name_template: SERVER_LISTENER_TEMPLATE,
  };
  if (w.certDir) {
    b.certificate_providers = {
      [DEFAULT_CERTIFICATE_PROVIDER]: {
        plugin_name: 'file_watcher',
        config: {
          certificate_file: join(w.certDir, CERT_CHAIN_FILE),
          private_key_file: join(w.certDir, KEY_FILE),
          ca_certificate_file: join(w.certDir, ROOT_CERT_FILE),
          refresh_interval: '60s',
        },
      },
    };
  }
  return JSON.stringify(b);
}

/** Issues a workload certificate from `ca` for `identity` and writes the three files into `dir`. */
export async function issueCertificateFiles(ca: CertificateAuthority, dir: string, identity: Identity): Promise<string> {
  const keys = await generateP256KeyPair();
  const issued = await ca.issue(await createCsr(keys), identity);
  await writeCertificateFiles(dir, { certChainPem: issued.certChain.join('\n'), keyPem: await exportPrivateKeyPem(keys.privateKey), rootCertPem: issued.rootCert });
  return dir;
}

/** A port free right now on host (an XdsServer must bind a non-zero port: its listener is named after it). */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.on('error', reject);
    s.listen(0, host, () => {
      const a = s.address();
      const port = typeof a === 'object' && a ? a.port : 0;
      s.close(() => resolve(port));
    });
  });
}

/**
 * An Echo server on an XdsServer: it serves once the control plane's Listener for host:port is accepted, with the
 * transport (XdsServerCredentials, insecure fallback) and RBAC that Listener says. Rejects after timeoutMs when it
 * never serves (a rejected Listener, say).
 */
export async function startXdsEchoServer(name: string, xdsPort: number, w: XdsWorkload, host = '127.0.0.1', timeoutMs = 10_000): Promise<EchoServer> {
  const port = await freePort(host);
  const creds = new grpcXds.XdsServerCredentials(grpc.ServerCredentials.createInsecure());
  // startEchoServer binds host:0 with insecure credentials; an XdsServer needs the real port and xDS credentials.
  class Server extends grpcXds.XdsServer {
    override bindAsync(_port: string, _creds: grpc.ServerCredentials, cb: (error: Error | null, port: number) => void): void {
      super.bindAsync(`${host}:${port}`, creds, cb);
    }
  }
  const server = new Server({ 'grpc.TEST_ONLY_DO_NOT_USE_IN_PROD.xds_bootstrap_config': workloadBootstrap(xdsPort, w), drainGraceTimeMs: 100 });
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`XdsServer ${name} on ${host}:${port} did not start serving in ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    const state = await Promise.race([startEchoServer(name, host, server), timeout]);
    state.close = () => {
      server.forceShutdown();
      return Promise.resolve();
    };
    return state;
  } catch (err) {
    server.forceShutdown();
    throw err;
  } finally {
    clearTimeout(timer);
  }
}

/** A proxyless client: XdsChannelCredentials (TLS when the Cluster says so, else plaintext) and its own bootstrap. */
export function workloadClient<C extends grpc.Client>(ctor: new (target: string, creds: grpc.ChannelCredentials, opts: grpc.ChannelOptions) => C, target: string, xdsPort: number, w: XdsWorkload): C {
  return new ctor(target, new grpcXds.XdsChannelCredentials(grpc.credentials.createInsecure()), { 'grpc.TEST_ONLY_DO_NOT_USE_IN_PROD.xds_bootstrap_config': workloadBootstrap(xdsPort, w) });
}

/** A server-streaming call, collected: resolves with every reply, rejects with the call's error. */
export function serverStream(client: grpc.Client, req: EchoRequest, deadlineMs = 5000): Promise<EchoReply[]> {
  return new Promise((resolve, reject) => {
    const c = client as unknown as { ServerStream: (r: EchoRequest, m: grpc.Metadata, o: grpc.CallOptions) => grpc.ClientReadableStream<EchoReply> };
    const call = c.ServerStream(req, new grpc.Metadata(), { deadline: Date.now() + deadlineMs });
    const out: EchoReply[] = [];
    call.on('data', (r: EchoReply) => out.push(r));
    call.on('error', reject);
    call.on('end', () => resolve(out));
  });
}
