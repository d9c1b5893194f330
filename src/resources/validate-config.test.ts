import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatDiagnostic } from './diagnostics.ts';
import type { ConfigMap, Secret } from './kinds-container.ts';
import { loadManifests } from './load.ts';

function load(text: string) {
  const r = loadManifests([{ name: 'cfg.yaml', text }]);
  return { ...r, lines: r.diagnostics.map(formatDiagnostic) };
}

describe('ConfigMap and Secret', () => {
  it('reads data, binaryData, base64 Secret data with stringData merged over it', () => {
    const r = load(`apiVersion: v1
kind: ConfigMap
metadata: {name: zone-config, namespace: dns}
data: {log.level: debug, ZONE_DIR: /var/zones}
binaryData: {blob: AAEC}
immutable: true
---
apiVersion: v1
kind: Secret
metadata: {name: creds, namespace: dns}
type: kubernetes.io/basic-auth
data: {username: YWRtaW4=, password: b2xk}
stringData: {password: new}
`);
    assert.deepEqual(r.lines, []);
    const cm = r.resources[0] as ConfigMap;
    assert.deepEqual(cm.data, { 'log.level': 'debug', ZONE_DIR: '/var/zones' });
    assert.deepEqual([...(cm.binaryData.blob ?? [])], [0, 1, 2]);
    assert.equal(cm.immutable, true);
    const s = r.resources[1] as Secret;
    assert.equal(s.type, 'kubernetes.io/basic-auth');
    assert.deepEqual(Object.fromEntries(Object.entries(s.data).map(([k, v]) => [k, Buffer.from(v).toString()])), { username: 'admin', password: 'new' });
  });

  it('reports bad names, keys, base64, duplicates, sizes and missing keys of typed Secrets', () => {
    const big = 'x'.repeat(1024 * 1024);
    const r = load(`apiVersion: v1
kind: ConfigMap
metadata: {name: Bad_Name}
data: {"..x": a, "a b": c, n: 5}
binaryData: {n2: "not base64!", "a b": AA==}
---
apiVersion: v1
kind: Secret
metadata: {name: tls}
type: kubernetes.io/tls
data: {tls.crt: "YQ="}
---
apiVersion: v1
kind: Secret
metadata: {name: pull}
type: kubernetes.io/dockerconfigjson
stringData: {.dockerconfigjson: "[1]"}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: big}
data: {a: "${big}", b: "y"}
`);
    assert.deepEqual(r.lines, [
      'cfg.yaml:3:18: ConfigMap default/Bad_Name: metadata.name: "Bad_Name" must be a DNS subdomain: lowercase alphanumerics, "-" and ".", at most 253 characters',
      'cfg.yaml:4:8: ConfigMap default/Bad_Name: data...x: key "..x" must not start with ".."',
      'cfg.yaml:4:18: ConfigMap default/Bad_Name: data.a b: key "a b" must consist of alphanumeric characters, "-", "_" or "."',
      'cfg.yaml:4:31: ConfigMap default/Bad_Name: data.n: must be a string (quote it: "5")',
      'cfg.yaml:5:18: ConfigMap default/Bad_Name: binaryData.n2: must be base64-encoded (use stringData for plain text)',
      'cfg.yaml:5:33: ConfigMap default/Bad_Name: binaryData.a b: key "a b" must consist of alphanumeric characters, "-", "_" or "."',
      'cfg.yaml:5:33: ConfigMap default/Bad_Name: binaryData.a b: duplicate of key present in data',
      'cfg.yaml:11:7: Secret default/tls: data: is missing key "tls.key", required for type kubernetes.io/tls',
      'cfg.yaml:11:17: Secret default/tls: data.tls.crt: must be base64-encoded (use stringData for plain text)',
      'cfg.yaml:17:33: Secret default/pull: stringData..dockerconfigjson: must be a JSON object for type kubernetes.io/dockerconfigjson',
      'cfg.yaml:19:1: ConfigMap default/big: ConfigMap data must be no more than 1048576 bytes (has 1048577)',
    ]);
    assert.equal(r.resources.length, 0);
  });
});
