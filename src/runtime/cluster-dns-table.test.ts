import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildCluster, type ModelPod } from '../model/cluster.ts';
import { formatDiagnostic } from '../resources/diagnostics.ts';
import { loadManifests } from '../resources/load.ts';
import { ClusterDnsTable, type DnsAnswer } from './cluster-dns-table.ts';
import { QTYPE, RCODE } from './dns-wire.ts';

const MANIFESTS = `apiVersion: v1
kind: Namespace
metadata: {name: dns}
---
apiVersion: v1
kind: Namespace
metadata: {name: web}
---
apiVersion: v1
kind: Service
metadata: {name: zone-api, namespace: dns}
spec:
  clusterIP: 10.96.0.10
  selector: {app: api}
  ports: [{name: grpc, port: 9090}, {name: http, port: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: edge, namespace: dns}
spec:
  clusterIP: None
  selector: {app: edge}
  ports: [{name: dns, port: 53, protocol: UDP, targetPort: dns}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: edge, namespace: dns}
spec:
  serviceName: edge
  replicas: 2
  selector: {matchLabels: {app: edge}}
  template:
    metadata: {labels: {app: edge}}
    spec: {containers: [{name: dns, ports: [{name: dns, containerPort: 5353, protocol: UDP}]}]}
---
apiVersion: v1
kind: Service
metadata: {name: workers, namespace: dns}
spec: {clusterIP: None, publishNotReadyAddresses: true, selector: {app: worker}, ports: [{port: 1}]}
---
apiVersion: v1
kind: Pod
metadata: {name: w1, namespace: dns, labels: {app: worker}}
spec: {hostname: first, subdomain: workers, containers: [{name: c}]}
status: {podIP: 10.244.9.1, conditions: [{type: Ready, status: "False"}]}
---
apiVersion: v1
kind: Pod
metadata: {name: w2, namespace: dns, labels: {app: worker}}
spec: {containers: [{name: c}]}
status: {podIP: 10.244.9.2}
---
apiVersion: v1
kind: Service
metadata: {name: upstream, namespace: dns}
spec: {type: ExternalName, externalName: registry.example.com.}
---
apiVersion: v1
kind: Service
metadata: {name: alias, namespace: web}
spec: {type: ExternalName, externalName: zone-api.dns.svc.cluster.local}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: site, namespace: web}
spec:
  selector: {matchLabels: {app: site}}
  template:
    metadata: {labels: {app: site}}
    spec: {containers: [{name: c}]}
`;

const loaded = loadManifests([{ name: 'dns.yaml', text: MANIFESTS }]);
assert.deepEqual(loaded.diagnostics.map(formatDiagnostic), []);
const cluster = buildCluster(loaded.resources);
const pod = (pred: (p: ModelPod) => boolean): ModelPod => [...cluster.pods.values()].find(pred) as ModelPod;
const site = pod((p) => p.namespace === 'web');
const edge0 = pod((p) => p.name === 'edge-0');
const edge1 = pod((p) => p.name === 'edge-1');
const table = new ClusterDnsTable({ cluster, resources: loaded.resources });
const fromDns = edge0.ips[0] ?? '';
const fromWeb = site.ips[0] ?? '';

function summary(a: DnsAnswer): string[] {
  return a.answers.map((r) => {
    const d = r.data;
    const v = d.type === 'A' || d.type === 'AAAA' ? d.address : d.type === 'SRV' ? `${d.port} ${d.target} w${d.weight}` : d.type === 'CNAME' || d.type === 'PTR' || d.type === 'NS' ? d.target : d.type;
    return `${r.name} ${d.type} ${v}`;
  });
}

describe('ClusterDnsTable', () => {
  it('answers Service names in every form, short ones relative to the asking pod', () => {
    assert.deepEqual(summary(table.resolve('zone-api', QTYPE.A, fromDns)), ['zone-api A 10.96.0.10']);
    assert.equal(table.resolve('zone-api', QTYPE.A, fromWeb).rcode, RCODE.REFUSED, 'not in web: not a cluster name from there');
    for (const n of ['zone-api.dns', 'zone-api.dns.svc', 'zone-api.dns.svc.cluster.local', 'Zone-API.DNS.svc.cluster.local.']) {
      const a = table.resolve(n, QTYPE.A, fromWeb);
      assert.deepEqual(summary(a), [`${n} A 10.96.0.10`], n);
      assert.equal(a.authoritative, true);
    }
    const aaaa = table.resolve('zone-api.dns', QTYPE.AAAA, fromWeb);
    assert.deepEqual([aaaa.rcode, aaaa.answers.length, aaaa.authority[0]?.data.type], [RCODE.NOERROR, 0, 'SOA'], 'NODATA with the SOA');
  });

  it('tells NXDOMAIN inside the zone from REFUSED outside it, and knows empty non-terminals', () => {
    const nx = table.resolve('nope.dns.svc.cluster.local', QTYPE.A, fromDns);
    assert.deepEqual([nx.rcode, nx.authority[0]?.data.type], [RCODE.NXDOMAIN, 'SOA']);
    assert.equal(table.resolve('dns.svc.cluster.local', QTYPE.A, fromDns).rcode, RCODE.NOERROR);
    assert.equal(table.resolve('www.example.com', QTYPE.A, fromDns).rcode, RCODE.REFUSED);
    assert.equal(table.resolve('example.com', QTYPE.A, '127.0.0.1').rcode, RCODE.REFUSED);
    assert.deepEqual(summary(table.resolve('cluster.local', QTYPE.SOA, fromDns)), ['cluster.local SOA SOA']);
  });

  it('answers headless Services with ready pods, StatefulSet pods by name, Pods by hostname, others by dashed IP', () => {
    const ips = [edge0.ips[0], edge1.ips[0]];
    assert.deepEqual(summary(table.resolve('edge', QTYPE.A, fromDns)), ips.map((ip) => `edge A ${ip}`));
    assert.deepEqual(summary(table.resolve('edge-1.edge.dns.svc.cluster.local', QTYPE.A, fromWeb)), [`edge-1.edge.dns.svc.cluster.local A ${edge1.ips[0]}`]);
    assert.deepEqual(summary(table.resolve('workers.dns', QTYPE.A, fromWeb)), ['workers.dns A 10.244.9.1', 'workers.dns A 10.244.9.2'], 'publishNotReadyAddresses lists the pod that is not ready');
    assert.deepEqual(summary(table.resolve('first.workers.dns.svc.cluster.local', QTYPE.A, fromWeb)), ['first.workers.dns.svc.cluster.local A 10.244.9.1']);
    assert.deepEqual(summary(table.resolve('10-244-9-2.workers.dns.svc.cluster.local', QTYPE.A, fromWeb)), ['10-244-9-2.workers.dns.svc.cluster.local A 10.244.9.2']);
    const ip = site.ips[0] ?? '';
    assert.deepEqual(summary(table.resolve(`${ip.replace(/\./g, '-')}.web.pod.cluster.local`, QTYPE.A, fromDns)), [`${ip.replace(/\./g, '-')}.web.pod.cluster.local A ${ip}`]);
  });

  it('gives SRV records for named ports, with targets and their addresses', () => {
    const svc = table.resolve('_grpc._tcp.zone-api.dns.svc.cluster.local', QTYPE.SRV, fromWeb);
    assert.deepEqual(summary(svc), ['_grpc._tcp.zone-api.dns.svc.cluster.local SRV 9090 zone-api.dns.svc.cluster.local w100']);
    assert.deepEqual(svc.additional.map((r) => `${r.name} ${r.data.type}`), ['zone-api.dns.svc.cluster.local A']);
    const headless = table.resolve('_dns._udp.edge', QTYPE.SRV, fromDns);
    assert.deepEqual(summary(headless), ['_dns._udp.edge SRV 5353 edge-0.edge.dns.svc.cluster.local w50', '_dns._udp.edge SRV 5353 edge-1.edge.dns.svc.cluster.local w50']);
    assert.equal(headless.additional.length, 2);
    assert.equal(table.resolve('_dns._tcp.edge.dns.svc.cluster.local', QTYPE.SRV, fromDns).rcode, RCODE.NXDOMAIN);
  });

  it('answers ExternalName with a CNAME, followed when it points inside the cluster', () => {
    assert.deepEqual(summary(table.resolve('upstream.dns', QTYPE.A, fromWeb)), ['upstream.dns CNAME registry.example.com']);
    assert.deepEqual(summary(table.resolve('alias', QTYPE.A, fromWeb)), ['alias CNAME zone-api.dns.svc.cluster.local', 'zone-api.dns.svc.cluster.local A 10.96.0.10']);
  });

  it('answers PTR for Service addresses and named headless endpoints; refuses other reverse names', () => {
    assert.deepEqual(summary(table.resolve('10.0.96.10.in-addr.arpa', QTYPE.PTR, fromDns)), ['10.0.96.10.in-addr.arpa PTR zone-api.dns.svc.cluster.local']);
    const rev = (edge0.ips[0] ?? '').split('.').reverse().join('.');
    assert.deepEqual(summary(table.resolve(`${rev}.in-addr.arpa`, QTYPE.PTR, fromDns)), [`${rev}.in-addr.arpa PTR edge-0.edge.dns.svc.cluster.local`]);
    assert.equal(table.resolve('1.1.168.192.in-addr.arpa', QTYPE.PTR, fromDns).rcode, RCODE.REFUSED);
  });

  it('lets the runtime decide the address each client gets for a Service (a per-pod outbound address)', () => {
    const perClient = new ClusterDnsTable({
      cluster,
      resources: loaded.resources,
      serviceAddress: (svc, client) => (client ? `127.10.0.${client.namespace === 'web' ? 6 : 10}` : `127.96.0.${svc.metadata.name.length}`),
      clientPod: (ip) => (ip === '127.10.0.4' ? site : undefined),
      defaultNamespace: 'dns',
    });
    assert.deepEqual(summary(perClient.resolve('zone-api.dns', QTYPE.A, '127.10.0.4')), ['zone-api.dns A 127.10.0.6']);
    assert.deepEqual(summary(perClient.resolve('zone-api', QTYPE.A, '127.0.0.1')), ['zone-api A 127.96.0.8'], 'a non-pod client searches the default namespace');
    assert.deepEqual(summary(perClient.resolve('8.0.96.127.in-addr.arpa', QTYPE.PTR, '127.0.0.1')), ['8.0.96.127.in-addr.arpa PTR zone-api.dns.svc.cluster.local']);
  });
});
