import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildCluster, type ModelPod } from '../model/cluster.ts';
import { formatDiagnostic } from '../resources/diagnostics.ts';
import { loadManifests } from '../resources/load.ts';
import { expandVars } from './env-expansion.ts';
import { indexConfig, podEnv, type PodEnvInput } from './pod-env.ts';
import { indexPodSources, podSource } from './pod-source.ts';

const MANIFESTS = `apiVersion: v1
kind: ConfigMap
metadata: {name: cfg, namespace: dns}
data: {LEVEL: debug, PORT: "7000", dir: /zones}
---
apiVersion: v1
kind: Secret
metadata: {name: creds, namespace: dns}
stringData: {token: s3cret}
---
apiVersion: v1
kind: Service
metadata: {name: zone-api, namespace: dns}
spec:
  selector: {app: api}
  ports: [{name: grpc, port: 9090}, {name: http-web, port: 8080, protocol: TCP}]
---
apiVersion: v1
kind: Service
metadata: {name: edge-dns, namespace: dns}
spec: {type: NodePort, ports: [{port: 53, protocol: UDP}]}
---
apiVersion: v1
kind: Service
metadata: {name: headless, namespace: dns}
spec: {clusterIP: None, ports: [{port: 1}]}
---
apiVersion: v1
kind: Service
metadata: {name: ext, namespace: dns}
spec: {type: ExternalName, externalName: example.com}
---
apiVersion: v1
kind: Service
metadata: {name: elsewhere, namespace: other}
spec: {ports: [{port: 80}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: api, namespace: dns}
spec:
  selector: {matchLabels: {app: api}}
  template:
    metadata: {labels: {app: api}, annotations: {team: zones}}
    spec:
      serviceAccountName: api-sa
      containers:
      - name: main
        command: [node, "$(DIR)/server.js"]
        args: ["--port=$(PORT)", "--literal=$$(PORT)", "--api=$(ZONE_API_SERVICE_HOST):$(ZONE_API_SERVICE_PORT_GRPC)"]
        envFrom:
        - {configMapRef: {name: cfg}}
        - {prefix: S_, secretRef: {name: creds}}
        - {configMapRef: {name: nope, optional: true}}
        env:
        - {name: DIR, value: "$(dir)/$(LATER)"}
        - {name: PORT, value: "9090"}
        - {name: LATER, value: later}
        - {name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
        - {name: POD_NAMESPACE, valueFrom: {fieldRef: {fieldPath: metadata.namespace}}}
        - {name: POD_IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}
        - {name: POD_IPS, valueFrom: {fieldRef: {fieldPath: status.podIPs}}}
        - {name: NODE, valueFrom: {fieldRef: {fieldPath: spec.nodeName}}}
        - {name: SA, valueFrom: {fieldRef: {fieldPath: spec.serviceAccountName}}}
        - {name: APP, valueFrom: {fieldRef: {fieldPath: "metadata.labels['app']"}}}
        - {name: TEAM, valueFrom: {fieldRef: {fieldPath: "metadata.annotations['team']"}}}
        - {name: TOKEN, valueFrom: {secretKeyRef: {name: creds, key: token}}}
        - {name: MAYBE, valueFrom: {configMapKeyRef: {name: cfg, key: absent, optional: true}}}
        - {name: MILLICORES, valueFrom: {resourceFieldRef: {resource: limits.cpu, divisor: 1m}}}
        - {name: MEM_MI, valueFrom: {resourceFieldRef: {resource: requests.memory, divisor: 1Mi}}}
        - {name: EMPTY}
      - name: broken
        env:
        - {name: A, valueFrom: {configMapKeyRef: {name: cfg, key: missing}}}
        - {name: B, valueFrom: {secretKeyRef: {name: gone, key: k}}}
        envFrom:
        - {configMapRef: {name: absent}}
      - name: nolinks
        env: [{name: X, value: "$(ZONE_API_SERVICE_HOST)"}]
`;

function setup(extra = '') {
  const loaded = loadManifests([{ name: 'pod.yaml', text: MANIFESTS + extra }]);
  assert.deepEqual(loaded.diagnostics.map(formatDiagnostic), []);
  const cluster = buildCluster(loaded.resources);
  const pod = [...cluster.pods.values()].find((p) => p.owner.name === 'api') as ModelPod;
  const source = podSource(indexPodSources(loaded.resources), pod);
  assert.ok(source);
  const base: PodEnvInput = {
    pod,
    source,
    containerIndex: 0,
    podIps: ['127.10.0.4'],
    nodeName: 'laptop',
    config: indexConfig(loaded.resources),
    services: cluster.services,
    serviceAddress: (svc) => (svc.metadata.name === 'zone-api' ? '127.96.0.7' : '127.96.0.9'),
    node: { cpus: 2, memoryBytes: 3 * 2 ** 20 + 1, ephemeralStorageBytes: 0 },
  };
  return { pod, base };
}

describe('$(VAR) expansion', () => {
  it('follows the kubelet: known names expand, unknown stay, $$ escapes, stray $ and unclosed $( are kept', () => {
    const vars = new Map([['A', 'x'], ['B', '$(A)']]);
    const get = (n: string) => vars.get(n);
    assert.equal(expandVars('$(A)-$(B)-$(C)', get), 'x-$(A)-$(C)');
    assert.equal(expandVars('$$(A) $$ $$$(A)', get), '$(A) $ $x');
    assert.equal(expandVars('cost: $5 $ $(A', get), 'cost: $5 $ $(A');
    assert.equal(expandVars('$()', get), '$()');
    assert.equal(expandVars('end$', get), 'end$');
  });
});

describe('podEnv', () => {
  it('builds env as the kubelet does: envFrom, env in order, downward API, service variables last', () => {
    const { pod, base } = setup();
    const r = podEnv(base);
    assert.deepEqual(r.diagnostics, []);
    const env = Object.fromEntries(r.env);
    assert.equal(env.LEVEL, 'debug');
    assert.equal(env.dir, '/zones');
    assert.equal(env.S_token, 's3cret');
    assert.equal(env.DIR, '/zones/$(LATER)', 'only variables defined before are expanded');
    assert.equal(env.PORT, '9090', 'env overrides envFrom');
    assert.equal(env.POD_NAME, pod.name);
    assert.equal(env.POD_NAMESPACE, 'dns');
    assert.equal(env.POD_IP, '127.10.0.4');
    assert.equal(env.POD_IPS, '127.10.0.4');
    assert.equal(env.NODE, 'laptop');
    assert.equal(env.SA, 'api-sa');
    assert.equal(env.APP, 'api');
    assert.equal(env.TEAM, 'zones');
    assert.equal(env.TOKEN, 's3cret');
    assert.equal('MAYBE' in env, false, 'an optional missing key is left out');
    assert.equal(env.MILLICORES, '2000');
    assert.equal(env.MEM_MI, '4', 'rounded up');
    assert.equal(env.EMPTY, '');
    const services = [...r.env.keys()].filter((k) => /_(SERVICE|PORT)/.test(k) && k !== 'PORT');
    assert.deepEqual(services, [
      'EDGE_DNS_SERVICE_HOST',
      'EDGE_DNS_SERVICE_PORT',
      'EDGE_DNS_PORT',
      'EDGE_DNS_PORT_53_UDP',
      'EDGE_DNS_PORT_53_UDP_PROTO',
      'EDGE_DNS_PORT_53_UDP_PORT',
      'EDGE_DNS_PORT_53_UDP_ADDR',
      'ZONE_API_SERVICE_HOST',
      'ZONE_API_SERVICE_PORT',
      'ZONE_API_SERVICE_PORT_GRPC',
      'ZONE_API_SERVICE_PORT_HTTP_WEB',
      'ZONE_API_PORT',
      'ZONE_API_PORT_9090_TCP',
      'ZONE_API_PORT_9090_TCP_PROTO',
      'ZONE_API_PORT_9090_TCP_PORT',
      'ZONE_API_PORT_9090_TCP_ADDR',
      'ZONE_API_PORT_8080_TCP',
      'ZONE_API_PORT_8080_TCP_PROTO',
      'ZONE_API_PORT_8080_TCP_PORT',
      'ZONE_API_PORT_8080_TCP_ADDR',
    ]);
    assert.equal(env.ZONE_API_SERVICE_HOST, '127.96.0.7');
    assert.equal(env.ZONE_API_SERVICE_PORT, '9090');
    assert.equal(env.ZONE_API_SERVICE_PORT_HTTP_WEB, '8080');
    assert.equal(env.ZONE_API_PORT, 'tcp://127.96.0.7:9090');
    assert.equal(env.ZONE_API_PORT_8080_TCP, 'tcp://127.96.0.7:8080');
    assert.equal(env.EDGE_DNS_PORT_53_UDP_PROTO, 'udp');
    assert.equal(env.EDGE_DNS_PORT_53_UDP_ADDR, '127.96.0.9');
    assert.equal([...r.env.keys()].indexOf('LEVEL'), 0, 'envFrom first');
    assert.deepEqual(r.command, ['node', '/zones/$(LATER)/server.js']);
    assert.deepEqual(r.args, ['--port=9090', '--literal=$(PORT)', '--api=127.96.0.7:9090']);
  });

  it('reports every missing ConfigMap, Secret and key at its field, and skips services when links are off', () => {
    const { base } = setup();
    const r = podEnv({ ...base, containerIndex: 1 });
    assert.deepEqual(r.diagnostics.map(formatDiagnostic), [
      'pod.yaml:74:67: Deployment dns/api: spec.template.spec.containers[1].env[0].valueFrom.configMapKeyRef.key: couldn\'t find key missing in ConfigMap dns/cfg',
      'pod.yaml:75:54: Deployment dns/api: spec.template.spec.containers[1].env[1].valueFrom.secretKeyRef.name: Secret dns/gone not found (set optional: true to start without it)',
      'pod.yaml:77:33: Deployment dns/api: spec.template.spec.containers[1].envFrom[0].configMapRef.name: ConfigMap dns/absent not found (set optional: true to start without it)',
    ]);
    const on = podEnv({ ...base, containerIndex: 2 });
    assert.equal(on.env.get('X'), '127.96.0.7', 'service variables are visible to $(VAR) expansion');
    const off: PodEnvInput = { ...base, source: { ...base.source, spec: { ...base.source.spec, enableServiceLinks: false } } };
    const r3 = podEnv({ ...off, containerIndex: 2 });
    assert.equal(r3.env.get('X'), '$(ZONE_API_SERVICE_HOST)');
    assert.equal([...r3.env.keys()].some((k) => k.endsWith('_SERVICE_HOST')), false);
    assert.equal(r3.command, undefined);
  });
});
