import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatDiagnostic } from './diagnostics.ts';
import type { Pod, Service, Workload } from './kinds.ts';
import { loadManifests } from './load.ts';

function load(text: string) {
  const r = loadManifests([{ name: 'c.yaml', text }]);
  return { ...r, lines: r.diagnostics.map(formatDiagnostic) };
}

describe('container run fields', () => {
  it('reads command, args, workingDir, image, env, envFrom and probes with the API defaults', () => {
    const r = load(`apiVersion: v1
kind: Pod
metadata: {name: p, namespace: dns}
spec:
  restartPolicy: OnFailure
  terminationGracePeriodSeconds: 5
  enableServiceLinks: false
  hostname: h
  subdomain: zone
  containers:
  - name: api
    image: zone-api:1
    command: [node, server.js]
    args: ["--port", "$(PORT)"]
    workingDir: ./zone-api
    ports: [{name: grpc, containerPort: 9090}]
    env:
    - {name: PORT, value: "9090"}
    - name: POD_IP
      valueFrom: {fieldRef: {fieldPath: status.podIP}}
    - name: APP
      valueFrom: {fieldRef: {apiVersion: v1, fieldPath: "metadata.labels['app']"}}
    - name: LEVEL
      valueFrom: {configMapKeyRef: {name: cfg, key: log.level, optional: true}}
    - name: TOKEN
      valueFrom: {secretKeyRef: {name: creds, key: token}}
    - name: CPUS
      valueFrom: {resourceFieldRef: {resource: limits.cpu, divisor: 1m}}
    envFrom:
    - {prefix: CFG_, configMapRef: {name: cfg}}
    - secretRef: {name: creds, optional: true}
    readinessProbe:
      grpc: {port: 9090}
      periodSeconds: 2
    livenessProbe:
      httpGet: {port: grpc, httpHeaders: [{name: X-Probe, value: "1"}]}
      failureThreshold: 0
    startupProbe:
      exec: {command: [test, -f, ready]}
`);
    assert.deepEqual(r.lines, []);
    const pod = r.resources[0] as Pod;
    const { restartPolicy, terminationGracePeriodSeconds, enableServiceLinks, hostname, subdomain } = pod.spec;
    assert.deepEqual({ restartPolicy, terminationGracePeriodSeconds, enableServiceLinks, hostname, subdomain }, { restartPolicy: 'OnFailure', terminationGracePeriodSeconds: 5, enableServiceLinks: false, hostname: 'h', subdomain: 'zone' });
    const c = pod.spec.containers[0];
    assert.deepEqual(c?.command, ['node', 'server.js']);
    assert.deepEqual(c?.args, ['--port', '$(PORT)']);
    assert.equal(c?.workingDir, './zone-api');
    assert.equal(c?.image, 'zone-api:1');
    assert.deepEqual(c?.env, [
      { name: 'PORT', value: '9090' },
      { name: 'POD_IP', valueFrom: { type: 'fieldRef', fieldPath: 'status.podIP' } },
      { name: 'APP', valueFrom: { type: 'fieldRef', fieldPath: "metadata.labels['app']" } },
      { name: 'LEVEL', valueFrom: { type: 'configMapKeyRef', name: 'cfg', key: 'log.level', optional: true } },
      { name: 'TOKEN', valueFrom: { type: 'secretKeyRef', name: 'creds', key: 'token', optional: false } },
      { name: 'CPUS', valueFrom: { type: 'resourceFieldRef', resource: 'limits.cpu', divisor: '1m' } },
    ]);
    assert.deepEqual(c?.envFrom, [
      { prefix: 'CFG_', source: 'configMapRef', name: 'cfg', optional: false },
      { source: 'secretRef', name: 'creds', optional: true },
    ]);
    assert.deepEqual(c?.readinessProbe, { handler: { type: 'grpc', port: 9090 }, initialDelaySeconds: 0, timeoutSeconds: 1, periodSeconds: 2, successThreshold: 1, failureThreshold: 3 });
    assert.deepEqual(c?.livenessProbe?.handler, { type: 'httpGet', path: '/', port: 'grpc', scheme: 'HTTP', httpHeaders: [{ name: 'X-Probe', value: '1' }] });
    assert.equal(c?.livenessProbe?.failureThreshold, 3);
    assert.deepEqual(c?.startupProbe?.handler, { type: 'exec', command: ['test', '-f', 'ready'] });
  });

  it('reports every env, envFrom and probe error at its field', () => {
    const r = load(`apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  restartPolicy: Sometimes
  containers:
  - name: a
    env:
    - {name: "A=B", value: x}
    - {name: X, value: y, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
    - {name: Y, valueFrom: {fieldRef: {fieldPath: metadata.labels}}}
    - {name: Z, valueFrom: {configMapKeyRef: {name: Cfg, key: "a/b"}, secretKeyRef: {name: s, key: k}}}
    - {name: W, valueFrom: {}}
    - {name: X, value: again}
    - {name: R, valueFrom: {resourceFieldRef: {resource: limits.memory, divisor: 1m}}}
    envFrom:
    - {prefix: "P=", configMapRef: {name: c}}
    - {}
    readinessProbe:
      tcpSocket: {port: "8080"}
      grpc: {port: 1}
      terminationGracePeriodSeconds: 3
    livenessProbe:
      httpGet: {port: 0, scheme: http, httpHeaders: [{name: "bad header", value: v}]}
      successThreshold: 2
      periodSeconds: -1
    startupProbe:
      grpc: {port: web}
  - name: a
    startupProbe: {tcpSocket: {port: metrics}, initialDelaySeconds: 1}
`);
    assert.deepEqual(r.lines, [
      'c.yaml:5:18: Pod default/p: spec.restartPolicy: unsupported value "Sometimes": supported values: "Always", "OnFailure", "Never"',
      'c.yaml:9:14: Pod default/p: spec.containers[0].env[0].name: "A=B" is not a valid environment variable name: use printable ASCII characters other than "="',
      'c.yaml:10:27: Pod default/p: spec.containers[0].env[1].valueFrom: may not be specified when `value` is not empty',
      'c.yaml:11:51: Pod default/p: spec.containers[0].env[2].valueFrom.fieldRef.fieldPath: unsupported value "metadata.labels": supported values: "metadata.name", "metadata.namespace", "metadata.uid", "spec.nodeName", "spec.serviceAccountName", "status.hostIP", "status.hostIPs", "status.podIP", "status.podIPs" (in env, name one key: metadata.labels[\'key\'])',
      'c.yaml:12:53: Pod default/p: spec.containers[0].env[3].valueFrom.configMapKeyRef.name: "Cfg" must be a DNS subdomain: lowercase alphanumerics, "-" and ".", at most 253 characters',
      'c.yaml:12:63: Pod default/p: spec.containers[0].env[3].valueFrom.configMapKeyRef.key: key "a/b" must consist of alphanumeric characters, "-", "_" or "."',
      'c.yaml:12:71: Pod default/p: spec.containers[0].env[3].valueFrom.secretKeyRef: may not have more than one field specified at a time',
      'c.yaml:13:28: Pod default/p: spec.containers[0].env[4].valueFrom: must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`',
      'c.yaml:14:8: warning: Pod default/p: spec.containers[0].env[5].name: hides previous definition of "X" (env[1])',
      'c.yaml:15:82: Pod default/p: spec.containers[0].env[6].valueFrom.resourceFieldRef.divisor: only divisor values 1, 1k, 1M, 1G, 1T, 1P, 1E, 1Ki, 1Mi, 1Gi, 1Ti, 1Pi, 1Ei are supported with limits.memory',
      'c.yaml:17:16: Pod default/p: spec.containers[0].envFrom[0].prefix: "P=" is not a valid prefix: use printable ASCII characters other than "="',
      'c.yaml:18:7: Pod default/p: spec.containers[0].envFrom[1]: must specify one of: `configMapRef` or `secretRef`',
      'c.yaml:20:25: Pod default/p: spec.containers[0].readinessProbe.tcpSocket.port: port name "8080" must contain at least one letter (write the number without quotes for a port number)',
      'c.yaml:21:7: Pod default/p: spec.containers[0].readinessProbe.grpc: may not specify more than 1 handler type',
      'c.yaml:22:7: Pod default/p: spec.containers[0].readinessProbe.terminationGracePeriodSeconds: must not be set for readinessProbes',
      'c.yaml:24:23: Pod default/p: spec.containers[0].livenessProbe.httpGet.port: must be an integer 1-65535',
      'c.yaml:24:34: Pod default/p: spec.containers[0].livenessProbe.httpGet.scheme: unsupported value "http": supported values: "HTTP", "HTTPS"',
      'c.yaml:24:61: Pod default/p: spec.containers[0].livenessProbe.httpGet.httpHeaders[0].name: "bad header" is not a valid HTTP header name: use letters, digits and "-"',
      'c.yaml:25:25: Pod default/p: spec.containers[0].livenessProbe.successThreshold: must be 1',
      'c.yaml:26:22: Pod default/p: spec.containers[0].livenessProbe.periodSeconds: must be an integer 0-2147483647',
      'c.yaml:28:20: Pod default/p: spec.containers[0].startupProbe.grpc.port: must be an integer 1-65535',
      'c.yaml:29:11: Pod default/p: spec.containers[1].name: duplicate container name "a"',
      'c.yaml:30:32: warning: Pod default/p: spec.containers[1].startupProbe.tcpSocket.port: no port named "metrics" in this container: the probe will fail',
    ]);
    assert.equal(r.resources.length, 0);
  });

  it('lets workload templates restart only Always, and reads StatefulSet serviceName and publishNotReadyAddresses', () => {
    const r = load(`apiVersion: apps/v1
kind: Deployment
metadata: {name: d}
spec:
  selector: {matchLabels: {app: d}}
  template:
    metadata: {labels: {app: d}}
    spec: {restartPolicy: Never, containers: [{name: c, command: [x]}]}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  serviceName: db
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec: {restartPolicy: Always, containers: [{name: c}]}
---
apiVersion: v1
kind: Service
metadata: {name: db}
spec: {clusterIP: None, publishNotReadyAddresses: true, selector: {app: db}, ports: [{port: 5432}]}
`);
    assert.deepEqual(r.lines, ['c.yaml:8:27: Deployment default/d: spec.template.spec.restartPolicy: unsupported value "Never": supported values: "Always"']);
    const sts = r.resources[0] as Workload;
    assert.equal(sts.serviceName, 'db');
    assert.equal(sts.template.spec.restartPolicy, 'Always');
    assert.equal((r.resources[1] as Service).spec.publishNotReadyAddresses, true);
  });

  it('leaves containers without run fields as they were (pod names from the template hash do not move)', () => {
    const r = load(`apiVersion: v1
kind: Pod
metadata: {name: p}
spec: {containers: [{name: c, ports: [{containerPort: 80}]}]}
`);
    assert.deepEqual((r.resources[0] as Pod).spec, { serviceAccountName: 'default', hostNetwork: false, containers: [{ name: 'c', ports: [{ containerPort: 80, protocol: 'TCP' }] }] });
  });
});
