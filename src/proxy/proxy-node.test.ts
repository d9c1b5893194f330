// The proxy's xDS node: Istio's id form in and out, the short NS/POD form, and bad input refused.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseNode, type XdsNode } from '../xds/xds-node.ts';
import { parseProxyNode, xdsNodeFor, type XdsNodeMessage } from './proxy-node.ts';
import { ProxyError } from './proxy-error.ts';

/** Reads a node message back the way the control plane does, via a Struct. */
function parseXdsNodeForTest(n: XdsNodeMessage): XdsNode {
  const fields: Record<string, { string_value: string }> = {};
  for (const [k, v] of Object.entries(n.metadata)) if (typeof v === 'string') fields[k] = { string_value: v };
  return parseNode({ id: n.id, cluster: n.cluster, metadata: { fields } });
}

describe('proxy node', () => {
  it('reads the Istio sidecar id and round-trips it through the control plane parser', () => {
    const p = parseProxyNode('sidecar~127.0.2.5~api-0.shop~shop.svc.cluster.local', { outboundIp: '127.0.3.5' });
    assert.deepEqual(p, { mode: 'sidecar', namespace: 'shop', podName: 'api-0', ip: '127.0.2.5', outboundIp: '127.0.3.5' });
    const n = xdsNodeFor(p);
    assert.equal(n.id, 'sidecar~127.0.2.5~api-0.shop~shop.svc.cluster.local');
    assert.equal(n.metadata.OUTBOUND_IP, '127.0.3.5');
    const seen = parseXdsNodeForTest(n);
    assert.equal(seen.namespace, 'shop');
    assert.equal(seen.pod, 'shop/api-0');
  });

  it('takes NS/POD with --ip, and node mode', () => {
    assert.deepEqual(parseProxyNode('dns/zone-api-1', { ip: '127.0.2.9' }), { mode: 'sidecar', namespace: 'dns', podName: 'zone-api-1', ip: '127.0.2.9' });
    const node = parseProxyNode('node~127.0.0.5~worker-1~trellis', {});
    assert.equal(node.mode, 'node');
    assert.equal(node.nodeName, 'worker-1');
    assert.equal(xdsNodeFor(node).metadata.NODE_NAME, 'worker-1');
  });

  it('refuses malformed nodes and addresses with a coded error', () => {
    for (const [node, opts] of [
      ['dns/zone-api-1', {}],
      ['Not A Pod', { ip: '127.0.0.1' }],
      ['sidecar~nope~a.b~b.svc.cluster.local', {}],
      ['dns/a', { ip: '127.0.0.1', appIp: 'localhost' }],
    ] as const) {
      assert.throws(() => parseProxyNode(node, opts), (e: unknown) => e instanceof ProxyError && e.code === 'bad-node');
    }
  });
});
