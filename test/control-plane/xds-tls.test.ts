// --xds-tls: the xDS port takes only mTLS with Trellis workload certificates, and a node gets only the
// configuration of the namespace its certificate names.
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { pino } from 'pino';
import { CertificateAuthority, createCsr } from '../../src/ca/index.ts';
import { exportPrivateKeyPem, generateP256KeyPair } from '../../src/ca/keys.ts';
import { ControlPlane } from '../../src/control-plane/control-plane.ts';
import { TYPE } from '../../src/xds/type-urls.ts';
import { openSotw, rawNode, resourceName } from '../support/ads-raw-client.ts';

const CONTROL_PLANE_ID = 'spiffe://cluster.local/ns/trellis-system/sa/trellis-control-plane';

async function workloadCredentials(ca: CertificateAuthority, namespace: string, serviceAccount: string): Promise<grpc.ChannelCredentials> {
  const keys = await generateP256KeyPair();
  const issued = await ca.issue(await createCsr(keys), { namespace, serviceAccount });
  return grpc.credentials.createSsl(Buffer.from(ca.trustBundle()), Buffer.from(await exportPrivateKeyPem(keys.privateKey)), Buffer.from(issued.certChain.join('\n')), {
    // The control plane is named by its SPIFFE ID, not by a host name.
    checkServerIdentity: (_host, cert) => (cert.subjectaltname?.includes(`URI:${CONTROL_PLANE_ID}`) ? undefined : new Error(`server is not ${CONTROL_PLANE_ID}`)),
  });
}

describe('control plane with --xds-tls', () => {
  const dir = mkdtempSync(join(tmpdir(), 'trellis-xdstls-'));
  let cp: ControlPlane;

  before(async () => {
    writeFileSync(join(dir, 'svc.yaml'), 'apiVersion: v1\nkind: Service\nmetadata: {name: zone-api, namespace: dns}\nspec:\n  selector: {app: zone-api}\n  ports: [{name: grpc, port: 50051}]\n');
    cp = new ControlPlane({ paths: [join(dir, 'svc.yaml')], stateDir: join(dir, 'state'), xdsPort: 0, adminPort: 0, caPort: 0, xdsTls: true, logger: pino({ level: 'silent' }) });
    await cp.start();
  });
  after(async () => {
    await cp.stop();
  });

  it('serves a node whose certificate names its namespace', async () => {
    const s = openSotw(cp.xdsPort, await workloadCredentials(cp.ca as CertificateAuthority, 'dns', 'edge'));
    try {
      const r = await s.request({ node: rawNode('edge-1', 'dns'), type_url: TYPE.listener, resource_names: ['zone-api'] }, 5000);
      assert.deepEqual(r.resources.map(resourceName), ['zone-api']);
    } finally {
      s.close();
    }
  });

  it('refuses a node that claims another namespace, with PERMISSION_DENIED', async () => {
    const s = openSotw(cp.xdsPort, await workloadCredentials(cp.ca as CertificateAuthority, 'dns', 'edge'));
    try {
      await assert.rejects(s.request({ node: rawNode('edge-1', 'payments'), type_url: TYPE.listener, resource_names: ['zone-api'] }, 5000), (e: grpc.ServiceError) => {
        assert.equal(e.code, grpc.status.PERMISSION_DENIED);
        assert.match(e.details, /asks for namespace payments, but its certificate is for dns/);
        return true;
      });
    } finally {
      s.close();
    }
  });

  it('refuses plaintext and certificates from another CA', async () => {
    const plain = openSotw(cp.xdsPort);
    try {
      await assert.rejects(plain.request({ node: rawNode('p', 'dns'), type_url: TYPE.listener, resource_names: [] }, 5000), (e: grpc.ServiceError) => e.code === grpc.status.UNAVAILABLE);
    } finally {
      plain.close();
    }
    const other = await CertificateAuthority.loadOrCreate({ stateDir: join(dir, 'other-ca') });
    const keys = await generateP256KeyPair();
    const issued = await other.issue(await createCsr(keys), { namespace: 'dns', serviceAccount: 'edge' });
    const creds = grpc.credentials.createSsl(Buffer.from((cp.ca as CertificateAuthority).trustBundle()), Buffer.from(await exportPrivateKeyPem(keys.privateKey)), Buffer.from(issued.certChain.join('\n')), { checkServerIdentity: () => undefined });
    const forged = openSotw(cp.xdsPort, creds);
    try {
      await assert.rejects(forged.request({ node: rawNode('f', 'dns'), type_url: TYPE.listener, resource_names: [] }, 5000), (e: grpc.ServiceError) => e.code === grpc.status.UNAVAILABLE);
    } finally {
      forged.close();
    }
  });
});
