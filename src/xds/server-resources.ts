// Server-side xDS for proxyless gRPC servers (gRFC A36, A29, A41) and the client half of mTLS, as plain objects
// with the .proto field names. Pure: data in, data out.
//
// A grpc-js-xds XdsServer bound to host:port asks for the Listener named by its bootstrap's
// `server_listener_resource_name_template`, Istio's being `grpc/server?xds.resource.listening_address=%s`. It wants
// the bound address back in `address`, and filter chains whose only filter is an HttpConnectionManager with an
// inline route config (routes with NonForwardingAction), its HTTP filters (RBAC, then the router last), and an
// optional DownstreamTlsContext naming certificate provider instances of the server's bootstrap.
//
// What grpc-js-xds cannot do, and what Trellis does instead:
// - It matches filter chains only on addresses, source type and source ports: a chain whose filter_chain_match
//   names a transport_protocol other than `raw_buffer` (or server names, ALPN, a destination port) never matches,
//   and it has no TLS inspector. One port therefore cannot take both mTLS and plaintext, so PeerAuthentication
//   PERMISSIVE is served as plaintext, as Istio's grpcgen does. STRICT is mTLS with client certificates required;
//   DISABLE is plaintext. Under plaintext, RBAC rules on principals or namespaces never match (no peer
//   certificate): ALLOW rules that need them allow nothing, so that side fails closed.
// - It rejects two HTTP filters of one name, so the RBAC filters get unique names.
// - The server checks only the client's chain to the CA (no SAN matching server-side); who the client is, is
//   decided by RBAC on the URI SAN (the SPIFFE ID).
// - On the client, SANs are matched with match_subject_alt_names (exact values match any SAN type, URI included);
//   match_typed_subject_alt_names is not read.
import type { AuthzModel, WorkloadAuthz } from '../policy/authz-model.ts';
import { mtlsModeFor, workloadAuthz } from '../policy/authz-model.ts';
import type { ClusterSpec, EndpointSet } from '../routing/model.ts';
import { buildRbacFilters, type RbacDiagnostic } from './rbac.ts';
import type { XdsNode } from './xds-node.ts';

type Obj = Record<string, unknown>;

/** Istio's server listener name prefix: the rest is the listening address, `host:port` (`[v6]:port`). */
export const SERVER_LISTENER_PREFIX = 'grpc/server?xds.resource.listening_address=';
/** The bootstrap template that makes an XdsServer ask for these listeners. */
export const SERVER_LISTENER_TEMPLATE = `${SERVER_LISTENER_PREFIX}%s`;
/** The certificate provider instance (bootstrap `certificate_providers`) holding the workload's certificate and roots. */
export const DEFAULT_CERTIFICATE_PROVIDER = 'trellis';

const T = {
  hcm: 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
  router: 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router',
  downstreamTls: 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext',
  upstreamTls: 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext',
} as const;
const TLS_SOCKET = 'envoy.transport_sockets.tls';
const HCM_FILTER = 'envoy.filters.network.http_connection_manager';
const ROUTER = 'envoy.filters.http.router';

export interface ListeningAddress {
  host: string;
  port: number;
}

/** The listening address in a server listener name, or undefined when the name is not one. */
export function parseServerListenerName(name: string): ListeningAddress | undefined {
  if (!name.startsWith(SERVER_LISTENER_PREFIX)) return undefined;
  const addr = name.slice(SERVER_LISTENER_PREFIX.length);
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(addr);
  if (!m) return undefined;
  const port = Number(m[3]);
  if (port < 1 || port > 65535) return undefined;
  return { host: m[1] ?? m[2] ?? '', port };
}

export interface TlsOptions {
  /** Certificate provider instance name for the workload's own certificate (default `trellis`). */
  identityProvider?: string;
  /** Certificate provider instance name for the trust roots (default: the identity provider). */
  rootProvider?: string;
}

function providers(o: TlsOptions): { identity: string; root: string } {
  const identity = o.identityProvider ?? DEFAULT_CERTIFICATE_PROVIDER;
  return { identity, root: o.rootProvider ?? identity };
}

/** A DownstreamTlsContext requiring a client certificate that chains to the Trellis roots. */
export function downstreamMtls(o: TlsOptions = {}): Obj {
  const p = providers(o);
  return {
    name: TLS_SOCKET,
    typed_config: {
      '@type': T.downstreamTls,
      common_tls_context: {
        tls_certificate_provider_instance: { instance_name: p.identity, certificate_name: 'default' },
        validation_context: { ca_certificate_provider_instance: { instance_name: p.root, certificate_name: 'ROOTCA' } },
      },
      require_client_certificate: { value: true },
    },
  };
}

/** An UpstreamTlsContext: present the workload certificate, and accept only a server holding one of `subjectAltNames`. */
export function upstreamMtls(subjectAltNames: readonly SanMatch[], o: TlsOptions = {}): Obj {
  const p = providers(o);
  return {
    name: TLS_SOCKET,
    typed_config: {
      '@type': T.upstreamTls,
      common_tls_context: {
        tls_certificate_provider_instance: { instance_name: p.identity, certificate_name: 'default' },
        validation_context: {
          ca_certificate_provider_instance: { instance_name: p.root, certificate_name: 'ROOTCA' },
          match_subject_alt_names: subjectAltNames.map((s) => ({ ...s })),
        },
      },
    },
  };
}

export type SanMatch = { exact: string } | { prefix: string };

export interface ServerListenerBuild {
  listener: Obj;
  /** The transport the listener asks for. */
  mode: 'STRICT' | 'PLAINTEXT';
  diagnostics: RbacDiagnostic[];
}

/**
 * The server Listener for one workload listening on `address`: one filter chain (no match, so every connection),
 * HCM with an inline route config (every path, NonForwardingAction), the RBAC filters in the order
 * buildRbacFilters gives (CUSTOM, DENY, ALLOW), then the router; mTLS when the port's PeerAuthentication is STRICT.
 */
export function serverListener(name: string, address: ListeningAddress, authz: WorkloadAuthz, o: TlsOptions = {}): ServerListenerBuild {
  const rbac = buildRbacFilters(authz, { target: 'grpc' });
  const httpFilters = [
    // grpc-js-xds refuses duplicate filter names; every RBAC filter is called envoy.filters.http.rbac.
    ...rbac.filters.map((f, i) => ({ ...f, name: i === 0 ? f.name : `${f.name}.${i}` })),
    { name: ROUTER, typed_config: { '@type': T.router } },
  ];
  const hcm = {
    '@type': T.hcm,
    stat_prefix: 'inbound',
    route_config: {
      name: 'inbound',
      virtual_hosts: [{ name: 'inbound', domains: ['*'], routes: [{ name: 'default', match: { prefix: '/' }, non_forwarding_action: {} }] }],
    },
    http_filters: httpFilters,
  };
  const strict = mtlsModeFor(authz.mtls, address.port) === 'STRICT';
  const chain: Obj = { name: strict ? 'inbound-mtls' : 'inbound-plaintext', filters: [{ name: HCM_FILTER, typed_config: hcm }] };
  if (strict) chain.transport_socket = downstreamMtls(o);
  return {
    listener: { name, address: { socket_address: { address: address.host, port_value: address.port } }, filter_chains: [chain] },
    mode: strict ? 'STRICT' : 'PLAINTEXT',
    diagnostics: rbac.diagnostics,
  };
}

/** The server listener `name` (listening on `address`) for the workload `node` is: its namespace and labels. */
export function serverListenerForNode(name: string, address: ListeningAddress, node: XdsNode, s: MeshSecurity): ServerListenerBuild {
  return serverListener(name, address, workloadAuthz(s.authz, { namespace: node.namespace, labels: node.labels }), s.tls);
}

/** A stable key for the parts of a node a server listener depends on. */
export function serverListenerKey(name: string, node: XdsNode): string {
  const labels = Object.keys(node.labels)
    .sort()
    .map((k) => `${k}=${node.labels[k] ?? ''}`)
    .join(',');
  return `${name}|${node.namespace}|${labels}`;
}

/** What the mesh's xDS needs for server listeners and client mTLS. */
export interface MeshSecurity {
  /** AuthorizationPolicy, PeerAuthentication (and trust domain) of the mesh; `buildAuthzModel([])` for Istio's defaults. */
  authz: AuthzModel;
  /** `namespace/pod` → service account, for the SANs a client expects; without it, the namespace's SPIFFE prefix. */
  serviceAccounts?: ReadonlyMap<string, string>;
  /** Certificate provider instance names in the workloads' bootstraps. */
  tls?: TlsOptions;
}

/** The namespace of a cluster's host `<svc>.<ns>.svc.<domain>`, if it has that form. */
function hostNamespace(host: string): string | undefined {
  const parts = host.split('.');
  return parts.length >= 3 && parts[2] === 'svc' ? parts[1] : undefined;
}

/**
 * Whether the client side of a cluster uses Trellis mTLS, and the server SANs it accepts. A DestinationRule's
 * tls mode decides when set (ISTIO_MUTUAL: yes; DISABLE, SIMPLE, MUTUAL: no, the last two need credentials
 * proxyless gRPC does not take from xDS). Otherwise (auto mTLS) yes when any endpoint's port is STRICT: a STRICT
 * server refuses plaintext, and grpc-js has no per-endpoint transport sockets. SANs: the endpoints' SPIFFE IDs,
 * or `spiffe://<td>/ns/<ns>/sa/` prefixes where a pod's service account is unknown; a DestinationRule's
 * subjectAltNames replace them.
 */
export function upstreamSecurity(c: ClusterSpec, endpoints: EndpointSet | undefined, s: MeshSecurity): SanMatch[] | undefined {
  const mode = c.tls?.mode;
  if (mode === 'DISABLE' || mode === 'SIMPLE' || mode === 'MUTUAL') return undefined;
  const eps = endpoints?.endpoints ?? [];
  const nsOf = (pod: string | undefined): string | undefined => (pod ? pod.slice(0, pod.indexOf('/')) : hostNamespace(c.host));
  if (mode !== 'ISTIO_MUTUAL') {
    const strict = eps.some((ep) => {
      const namespace = nsOf(ep.pod);
      return namespace !== undefined && mtlsModeFor(workloadAuthz(s.authz, { namespace, labels: ep.labels }).mtls, ep.port) === 'STRICT';
    });
    if (!strict) return undefined;
  }
  if (c.tls?.subjectAltNames && c.tls.subjectAltNames.length > 0) return c.tls.subjectAltNames.map((exact) => ({ exact }));
  const td = s.authz.trustDomain;
  const sans = new Map<string, SanMatch>();
  for (const ep of eps) {
    const namespace = nsOf(ep.pod);
    if (namespace === undefined) continue;
    const sa = ep.pod ? s.serviceAccounts?.get(ep.pod) : undefined;
    const m: SanMatch = sa ? { exact: `spiffe://${td}/ns/${namespace}/sa/${sa}` } : { prefix: `spiffe://${td}/ns/${namespace}/sa/` };
    sans.set(JSON.stringify(m), m);
  }
  // No endpoint to name: accept the service's namespace (or, failing that, the trust domain), never anything at all.
  if (sans.size === 0) {
    const ns = hostNamespace(c.host);
    return [{ prefix: ns ? `spiffe://${td}/ns/${ns}/sa/` : `spiffe://${td}/` }];
  }
  return [...sans.keys()].sort().map((k) => sans.get(k)!);
}

/** The Cluster's transport_socket: Trellis mTLS when upstreamSecurity says so. */
export function clusterTransportSocket(c: ClusterSpec, endpoints: EndpointSet | undefined, s: MeshSecurity | undefined): Obj | undefined {
  if (!s) return undefined;
  const sans = upstreamSecurity(c, endpoints, s);
  return sans ? upstreamMtls(sans, s.tls) : undefined;
}
