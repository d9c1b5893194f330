import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatDiagnostic } from './diagnostics.ts';
import type { Service, Workload } from './kinds.ts';
import { loadManifests } from './load.ts';

function load(text: string, name = 'core.yaml') {
  const r = loadManifests([{ name, text }]);
  return { ...r, lines: r.diagnostics.map(formatDiagnostic) };
}

describe('core kinds', () => {
  it('validates Services: type, ports, names, nodePort, clusterIP', () => {
    const r = load(`apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  clusterIP: 10.96.0.300
  ports:
  - {name: http, port: 80, targetPort: Http_Port}
  - {name: http, port: 70000, protocol: tcp}
  - {port: 443, nodePort: 30443}
`);
    assert.deepEqual(r.lines, [
      'core.yaml:5:14: Service shop/web: spec.clusterIP: must be an IP address, "None" (headless) or empty',
      'core.yaml:7:40: Service shop/web: spec.ports[0].targetPort: port name "Http_Port" may contain only lowercase letters, digits and "-"',
      'core.yaml:8:12: Service shop/web: spec.ports[1].name: duplicate port name "http"',
      'core.yaml:8:24: Service shop/web: spec.ports[1].port: must be an integer 1-65535',
      'core.yaml:8:41: Service shop/web: spec.ports[1].protocol: must be TCP, UDP or SCTP (protocol names are upper case: TCP)',
      'core.yaml:9:5: Service shop/web: spec.ports[2].name: is required when a Service has more than one port',
      'core.yaml:9:27: Service shop/web: spec.ports[2].nodePort: may only be set when type is NodePort or LoadBalancer',
    ]);
  });

  it('reads a valid Service', () => {
    const r = load(`apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  type: NodePort
  selector: {app: web}
  ports:
  - {name: http, port: 80, targetPort: "8080", nodePort: 30080}
  - {name: grpc, port: 9090, targetPort: grpc, protocol: TCP}
`);
    assert.deepEqual(r.lines, []);
    const s = r.resources[0] as Service;
    assert.deepEqual(s.spec.ports, [
      { name: 'http', port: 80, protocol: 'TCP', targetPort: 8080, nodePort: 30080 },
      { name: 'grpc', port: 9090, protocol: 'TCP', targetPort: 'grpc' },
    ]);
  });

  it('checks workloads: selector against template labels, replicas, container ports', () => {
    const r = load(`apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  replicas: -1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: website}}
    spec:
      containers:
      - name: web
        ports:
        - {containerPort: 8080, name: http}
        - {containerPort: 8081, name: http}
        - {containerPort: 0, name: HTTP}
`);
    assert.deepEqual(r.lines, [
      'core.yaml:5:13: Deployment shop/web: spec.replicas: must be an integer 0-100000',
      'core.yaml:6:33: Deployment shop/web: spec.selector.matchLabels.app: selector does not match template labels (template has app=website)',
      'core.yaml:14:39: Deployment shop/web: spec.template.spec.containers[0].ports[1].name: duplicate port name "http" in this container',
      'core.yaml:15:27: Deployment shop/web: spec.template.spec.containers[0].ports[2].containerPort: must be an integer 1-65535',
      'core.yaml:15:36: Deployment shop/web: spec.template.spec.containers[0].ports[2].name: port name "HTTP" may contain only lowercase letters, digits and "-"',
    ]);
  });

  it('reads a DaemonSet and a StatefulSet', () => {
    const r = load(`apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent, namespace: kube-system}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec: {hostNetwork: true, containers: [{name: a}]}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  replicas: 3
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db, tier: data}}
    spec: {serviceAccountName: db, containers: [{name: pg, ports: [{containerPort: 5432, name: pg}]}]}
`);
    assert.deepEqual(r.lines, []);
    const [ds, sts] = r.resources as Workload[];
    assert.equal(ds?.template.spec.hostNetwork, true);
    assert.equal(sts?.metadata.namespace, 'default');
    assert.equal(sts?.replicas, 3);
    assert.equal(sts?.template.spec.serviceAccountName, 'db');
  });

  it('checks Pod IPs, Node CIDRs and addresses, and names', () => {
    const r = load(`apiVersion: v1
kind: Pod
metadata: {name: p, namespace: Shop}
spec: {containers: [{name: c}]}
status: {podIP: 10.0.0.999}
---
apiVersion: v1
kind: Node
metadata: {name: n1, namespace: x}
spec: {podCIDRs: [10.244.0.0/24, 10.244.1.0]}
status:
  addresses:
  - {type: InternalIP, address: not-an-ip}
  - {type: Hostname, address: n1}
---
apiVersion: v1
kind: Namespace
metadata: {generateName: ns-}
`);
    assert.deepEqual(r.lines, [
      'core.yaml:3:32: Pod Shop/p: metadata.namespace: "Shop" must be a DNS label: at most 63 lowercase alphanumerics or "-", starting and ending with an alphanumeric',
      'core.yaml:5:17: Pod Shop/p: status.podIP: "10.0.0.999" is not a valid IP address',
      'core.yaml:9:22: warning: Node n1: metadata.namespace: Node is cluster-scoped; metadata.namespace is ignored',
      'core.yaml:10:34: Node n1: spec.podCIDRs[1]: must be a CIDR such as 10.0.0.0/16',
      'core.yaml:13:33: Node n1: status.addresses[0].address: "not-an-ip" is not a valid IP address',
      'core.yaml:18:12: Namespace <unnamed>: metadata.generateName: generateName is not supported: give the object a name',
    ]);
  });
});
