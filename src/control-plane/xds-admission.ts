// Who may have which xDS configuration when the xDS port requires mTLS: a node is served only as the
// workload its certificate names — its own namespace, and its own pod's labels rather than claimed ones.
import { experimental } from '@grpc/grpc-js';
import { parseSpiffeId, type Identity } from '../ca/index.ts';
import { XdsAdmissionError, type PeerAuth } from '../xds/ads-server.ts';
import type { XdsNode } from '../xds/xds-node.ts';
import type { MeshConfig } from './mesh-config.ts';

export const CONTROL_PLANE_IDENTITY: Identity = { namespace: 'trellis-system', serviceAccount: 'trellis-control-plane' };

/** The SPIFFE ID in a peer certificate's URI SAN, if any. */
function peerSpiffeId(peer: PeerAuth): string | undefined {
  const uris = (peer.sslPeerCertificate?.subjectaltname ?? '').split(',').map((s) => s.trim()).filter((s) => s.startsWith('URI:'));
  // A workload certificate carries exactly one URI SAN, its SPIFFE ID.
  return uris.length === 1 && uris[0]?.startsWith('URI:spiffe://') ? uris[0].slice('URI:'.length) : undefined;
}

export function admitByCertificate(config: () => MeshConfig | undefined, trustDomain: string): (node: XdsNode, peer: PeerAuth) => XdsNode {
  return (node, peer) => {
    const id = peerSpiffeId(peer);
    if (!id) throw new XdsAdmissionError('a workload certificate with a SPIFFE ID is required');
    let who;
    try {
      who = parseSpiffeId(id);
    } catch (e) {
      throw new XdsAdmissionError(`bad SPIFFE ID ${id}: ${(e as Error).message}`);
    }
    if (who.trustDomain !== trustDomain) throw new XdsAdmissionError(`${id} is not in trust domain ${trustDomain}`);
    if (node.namespace !== who.namespace) {
      throw new XdsAdmissionError(`node ${node.id} asks for namespace ${node.namespace}, but its certificate is for ${who.namespace}`);
    }
    if (node.pod) {
      if (!node.pod.startsWith(`${who.namespace}/`)) throw new XdsAdmissionError(`node ${node.id} claims pod ${node.pod} outside its certificate's namespace ${who.namespace}`);
      const pod = config()?.cluster.pods.get(node.pod);
      if (pod && pod.serviceAccount !== who.serviceAccount) {
        throw new XdsAdmissionError(`node ${node.id} claims pod ${node.pod}, which runs as ${pod.serviceAccount}, not ${who.serviceAccount}`);
      }
      // Labels decide routes (sourceLabels) and policies: take them from the pod, never from the claim.
      if (pod) return { ...node, labels: { ...pod.labels } };
    }
    // An unknown pod claim is dropped, and so are claimed labels: nothing is served on a node's say-so.
    const { pod: _claimed, ...rest } = node;
    return { ...rest, labels: {} };
  };
}

/** A certificate provider that only ever offers the trust bundle, for checking client certificates. */
export function staticCaProvider(bundlePem: string): experimental.CertificateProvider {
  const update = { caCertificate: Buffer.from(bundlePem) };
  return {
    addCaCertificateListener: (l) => l(update),
    removeCaCertificateListener: () => undefined,
    addIdentityCertificateListener: (l) => l(null),
    removeIdentityCertificateListener: () => undefined,
  };
}
