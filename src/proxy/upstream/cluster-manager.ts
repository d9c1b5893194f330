// The proxy's upstream cluster manager: one Cluster per configured cluster, updated in place as xDS delivers new
// configs (hosts keep their state), the TLS options to reach a host, and the per-cluster stats for /stats.
import { checkServerIdentity, type ConnectionOptions } from 'node:tls';
import type { ClusterManager, UpstreamCluster, UpstreamHost } from '../contracts.ts';
import type { ProxyCluster, ProxyConfig } from '../proxy-config.ts';
import type { EndpointSet } from '../../routing/model.ts';
import { ProxyError } from '../proxy-error.ts';
import { Cluster, type ClusterStats } from './upstream-cluster.ts';

/**
 * Supplied by the mesh TLS module: client TLS options with the proxy's current certificate, offering `alpn` and
 * accepting a peer whose SPIFFE ID is one of `expectedSpiffeIds` (empty: any in the trust domain). Undefined when no
 * certificate is available: tlsOptions then throws rather than let a mesh connection go out in plaintext.
 */
/** Mesh mTLS client options; `local` (the source address) picks the workload certificate in a node proxy. */
export type MeshTlsOptionsFactory = (alpn: string[], expectedSpiffeIds: string[], local?: string) => ConnectionOptions | undefined;

export interface ClusterManagerOptions {
  /** [0, 1) random source for the balancers; tests may seed it. */
  random?: () => number;
}

export class UpstreamClusterManager implements ClusterManager {
  private readonly clusters = new Map<string, { cluster: Cluster; spec: ProxyCluster; endpoints: EndpointSet | undefined }>();
  private closed = false;

  constructor(
    private readonly meshTls: MeshTlsOptionsFactory,
    private readonly opts: ClusterManagerOptions = {},
  ) {}

  update(config: ProxyConfig): void {
    if (this.closed) return;
    for (const [name, entry] of this.clusters) {
      if (config.clusters.has(name)) continue;
      entry.cluster.close();
      this.clusters.delete(name);
    }
    for (const [name, spec] of config.clusters) {
      const endpoints = config.endpoints.get(name);
      const entry = this.clusters.get(name);
      if (!entry) {
        const cluster = new Cluster(spec, endpoints, {
          tlsOptions: (c, h, alpn) => this.tlsOptions(c, h, alpn),
          ...(this.opts.random ? { random: this.opts.random } : {}),
        });
        this.clusters.set(name, { cluster, spec, endpoints });
      } else if (entry.spec !== spec || entry.endpoints !== endpoints) {
        // Unchanged objects are skipped; a new object rebuilds that cluster's balancer, nothing else.
        entry.cluster.update(spec, endpoints);
        entry.spec = spec;
        entry.endpoints = endpoints;
      }
    }
  }

  get(name: string): Cluster | undefined {
    return this.clusters.get(name)?.cluster;
  }

  /**
   * Mesh clusters (`spec.mtls`) get the mesh TLS module's options with the cluster's expected SPIFFE IDs; when it
   * has none (no certificate yet) this throws ProxyError `no-certificate`, so the caller fails the connection instead
   * of sending mesh traffic in plaintext. Local clusters and plaintext ones get undefined. DestinationRule
   * SIMPLE/MUTUAL TLS to a non-mesh host verifies the server against the system roots under the configured SNI and
   * subjectAltNames (no client certificate: we hold none for it, so a server that demands one refuses us).
   */
  tlsOptions(cluster: UpstreamCluster, _host: UpstreamHost, alpn: string[], local?: string): ConnectionOptions | undefined {
    const spec = cluster.spec;
    if (spec.local) return undefined;
    if (spec.mtls) {
      const opts = this.meshTls(alpn, spec.mtls.subjectAltNames, local);
      if (!opts) throw new ProxyError('no-certificate', `no mesh certificate to reach cluster ${spec.name}`);
      return opts;
    }
    const t = spec.tls;
    if (t && (t.mode === 'SIMPLE' || t.mode === 'MUTUAL')) {
      const servername = t.sni ?? spec.host;
      const out: ConnectionOptions = { servername, rejectUnauthorized: true };
      if (alpn.length > 0) out.ALPNProtocols = alpn;
      const sans = t.subjectAltNames;
      if (sans && sans.length > 0) {
        out.checkServerIdentity = (_name, cert) => {
          for (const san of sans) if (checkServerIdentity(san, cert) === undefined) return undefined;
          return new Error(`server certificate matches none of ${sans.join(', ')}`);
        };
      }
      return out;
    }
    return undefined;
  }

  /** Per cluster and per host counters and health, for the admin /stats endpoint. */
  stats(): ClusterStats[] {
    return [...this.clusters.values()].map((e) => e.cluster.stats());
  }

  /** Stops every timer and health check. Later updates are ignored. */
  close(): void {
    this.closed = true;
    for (const e of this.clusters.values()) e.cluster.close();
    this.clusters.clear();
  }
}
