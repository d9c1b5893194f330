// Who an xDS client is: its node id, namespace and labels, read from the node it sends (Istio's conventions).

export interface XdsNode {
  id: string;
  cluster: string;
  /** The client's namespace, for namespace-local names and per-namespace configuration. */
  namespace: string;
  labels: Record<string, string>;
  /** The client's pod (`namespace/name`) when known. */
  pod?: string;
  /** Set only for Trellis proxies (metadata TRELLIS_PROXY); see sidecar-resources.ts for the contract. */
  proxy?: TrellisProxyMeta;
}

/** What a Trellis proxy says about itself in its node metadata. */
export interface TrellisProxyMeta {
  /** TRELLIS_PROXY: `sidecar`, `node` or `gateway` (anything else serves nothing). */
  mode: string;
  nodeName?: string;
  appIp?: string;
  outboundIp?: string;
  /** OBSERVER_ADDRESS: where the proxy serves the Observer API (`host:port`, loopback), for the relay. */
  observerAddress?: string;
}

/** A google.protobuf.Value; protobufjs gives camelCase names for Struct's wrapper, other decoders snake_case. */
interface StructValue {
  string_value?: string;
  stringValue?: string;
  struct_value?: { fields?: Record<string, StructValue> };
  structValue?: { fields?: Record<string, StructValue> };
}

interface NodeMessage {
  id?: string;
  cluster?: string;
  metadata?: { fields?: Record<string, StructValue> } | null;
}

function str(v: StructValue | undefined): string | undefined {
  return v?.string_value ?? v?.stringValue;
}

/**
 * Reads the node. Namespace: metadata NAMESPACE, else the Istio id form `sidecar~IP~POD.NS~NS.svc.cluster.local`,
 * else `default`. Labels: metadata LABELS (a struct of strings).
 */
export function parseNode(n: NodeMessage | null | undefined): XdsNode {
  const id = n?.id ?? '';
  const fields = n?.metadata?.fields ?? {};
  let namespace = str(fields.NAMESPACE);
  let pod: string | undefined;
  const parts = id.split('~');
  if (parts.length === 4) {
    const podNs = parts[2] ?? '';
    const dot = podNs.lastIndexOf('.');
    if (dot > 0) {
      namespace ??= podNs.slice(dot + 1);
      pod = `${podNs.slice(dot + 1)}/${podNs.slice(0, dot)}`;
    }
  }
  const podName = str(fields.POD_NAME) ?? str(fields.NAME);
  namespace ??= 'default';
  if (podName) pod = `${namespace}/${podName}`;
  const labels: Record<string, string> = {};
  const labelFields = fields.LABELS?.struct_value?.fields ?? fields.LABELS?.structValue?.fields ?? {};
  for (const [k, v] of Object.entries(labelFields)) {
    const s = str(v);
    if (s !== undefined) labels[k] = s;
  }
  const out: XdsNode = { id, cluster: n?.cluster ?? '', namespace, labels };
  if (pod) out.pod = pod;
  const mode = str(fields.TRELLIS_PROXY);
  if (mode !== undefined) {
    const proxy: TrellisProxyMeta = { mode };
    const nodeName = str(fields.NODE_NAME);
    const appIp = str(fields.APP_IP);
    const outboundIp = str(fields.OUTBOUND_IP);
    if (nodeName) proxy.nodeName = nodeName;
    if (appIp) proxy.appIp = appIp;
    if (outboundIp) proxy.outboundIp = outboundIp;
    const observerAddress = str(fields.OBSERVER_ADDRESS);
    if (observerAddress) proxy.observerAddress = observerAddress;
    out.proxy = proxy;
  }
  return out;
}
