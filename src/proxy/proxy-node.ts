// Who a Trellis proxy is to the control plane: its xDS node (Istio's id form plus Trellis metadata). The control
// plane derives the proxy's listener set from it (src/xds/sidecar-resources.ts reads the same names).
import { isIP } from 'node:net';
import { ProxyError } from './proxy-error.ts';

export type ProxyMode = 'sidecar' | 'node' | 'gateway';

export interface ProxyIdentity {
  mode: ProxyMode;
  /** Sidecar: the pod it serves. */
  namespace: string;
  podName?: string;
  /** The pod's IP (sidecar) or the node's address (node mode). */
  ip: string;
  /** Node mode: the node whose pods it serves. */
  nodeName?: string;
  /** Where the local app listens (default 127.0.0.1). */
  appIp?: string;
  /** Where outbound listeners bind (default 127.0.0.1). */
  outboundIp?: string;
  labels?: Record<string, string>;
  /** Where this proxy serves the Observer API (`host:port`), announced to the control plane's relay. */
  observerAddress?: string;
}

export interface XdsNodeMessage {
  id: string;
  cluster: string;
  metadata: Record<string, unknown>;
}

/**
 * Reads `--node`: either Istio's full id `sidecar~IP~POD.NS~NS.svc.cluster.local`, or the short `NS/POD`
 * (the IP then comes from `--ip`). Node mode takes `node~IP~NODENAME~trellis`.
 */
export function parseProxyNode(node: string, opts: { ip?: string; mode?: ProxyMode; appIp?: string; outboundIp?: string }): ProxyIdentity {
  const parts = node.split('~');
  let id: ProxyIdentity;
  if (parts.length === 4) {
    const [kind, ip, who] = parts as [string, string, string, string];
    if (kind === 'node') id = { mode: 'node', namespace: 'default', ip, nodeName: who };
    else {
      const dot = who.lastIndexOf('.');
      if (dot <= 0) throw new ProxyError('bad-node', `--node ${node}: expected sidecar~IP~POD.NAMESPACE~NAMESPACE.svc.cluster.local`);
      id = { mode: kind === 'router' ? 'gateway' : 'sidecar', namespace: who.slice(dot + 1), podName: who.slice(0, dot), ip };
    }
  } else {
    const m = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?)\/([a-z0-9]([-.a-z0-9]*[a-z0-9])?)$/.exec(node);
    if (!m) throw new ProxyError('bad-node', `--node ${node}: expected NAMESPACE/POD or sidecar~IP~POD.NAMESPACE~NAMESPACE.svc.cluster.local`);
    if (!opts.ip) throw new ProxyError('bad-node', `--node ${node}: the short form needs --ip (the pod's IP)`);
    id = { mode: opts.mode ?? 'sidecar', namespace: m[1]!, podName: m[3]!, ip: opts.ip };
  }
  if (opts.mode) id.mode = opts.mode;
  if (isIP(id.ip) === 0) throw new ProxyError('bad-node', `--node ${node}: ${id.ip} is not an IP address`);
  for (const [flag, v] of [['--app-ip', opts.appIp], ['--outbound-ip', opts.outboundIp]] as const) {
    if (v !== undefined && isIP(v) === 0) throw new ProxyError('bad-node', `${flag} ${v}: not an IP address`);
  }
  if (opts.appIp) id.appIp = opts.appIp;
  if (opts.outboundIp) id.outboundIp = opts.outboundIp;
  return id;
}

/** The node message the proxy sends on every xDS stream. */
export function xdsNodeFor(p: ProxyIdentity): XdsNodeMessage {
  const metadata: Record<string, unknown> = { TRELLIS_PROXY: p.mode, NAMESPACE: p.namespace, INSTANCE_IPS: p.ip };
  if (p.podName) metadata.POD_NAME = p.podName;
  if (p.nodeName) metadata.NODE_NAME = p.nodeName;
  if (p.appIp) metadata.APP_IP = p.appIp;
  if (p.outboundIp) metadata.OUTBOUND_IP = p.outboundIp;
  if (p.labels) metadata.LABELS = p.labels;
  if (p.observerAddress) metadata.OBSERVER_ADDRESS = p.observerAddress;
  const id =
    p.mode === 'node'
      ? `node~${p.ip}~${p.nodeName ?? ''}~trellis`
      : `${p.mode === 'gateway' ? 'router' : 'sidecar'}~${p.ip}~${p.podName ?? ''}.${p.namespace}~${p.namespace}.svc.cluster.local`;
  return { id, cluster: p.podName ? `${p.podName}.${p.namespace}` : (p.nodeName ?? 'trellis'), metadata };
}
