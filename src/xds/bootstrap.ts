// The bootstrap a proxyless gRPC application (grpc-js-xds, grpc-go, grpc-java) needs to reach Trellis:
// the ADS server, its node identity, the server listener name template and, for mTLS, file-watched certificates.

import { DEFAULT_CERTIFICATE_PROVIDER, SERVER_LISTENER_TEMPLATE } from './server-resources.ts';

export interface BootstrapOptions {
  /** host:port of the Trellis ADS server. */
  xdsServer: string;
  nodeId: string;
  namespace: string;
  labels?: Record<string, string>;
  podName?: string;
  /** Directory with cert-chain.pem, key.pem and root-cert.pem (the CA's rotator writes it). */
  certDir?: string;
  /** How often gRPC re-reads the certificate files, in seconds. */
  refreshSeconds?: number;
}


export function grpcBootstrap(o: BootstrapOptions): Record<string, unknown> {
  const metadata: Record<string, unknown> = { NAMESPACE: o.namespace, LABELS: o.labels ?? {} };
  if (o.podName) metadata.POD_NAME = o.podName;
  const out: Record<string, unknown> = {
    xds_servers: [{ server_uri: o.xdsServer, channel_creds: [{ type: 'insecure' }], server_features: ['xds_v3'] }],
    node: { id: o.nodeId, cluster: o.namespace, metadata, locality: {} },
    server_listener_resource_name_template: SERVER_LISTENER_TEMPLATE,
  };
  if (o.certDir) {
    const dir = o.certDir.replace(/\/+$/, '');
    out.certificate_providers = {
      [DEFAULT_CERTIFICATE_PROVIDER]: {
        plugin_name: 'file_watcher',
        config: {
          certificate_file: `${dir}/cert-chain.pem`,
          private_key_file: `${dir}/key.pem`,
          ca_certificate_file: `${dir}/root-cert.pem`,
          refresh_interval: `${o.refreshSeconds ?? 60}s`,
        },
      },
    };
  }
  return out;
}
