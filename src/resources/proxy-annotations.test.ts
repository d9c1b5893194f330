import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatDiagnostic } from './diagnostics.ts';
import { loadManifests } from './load.ts';
import { proxyLimitsOf } from './proxy-annotations.ts';

describe('proxy limit annotations', () => {
  it('reports each bad value at its annotation, on pods and pod templates', () => {
    const r = loadManifests([
      {
        name: 'pods.yaml',
        text: `apiVersion: v1
kind: Pod
metadata:
  name: web
  annotations:
    trellis.dev/request-headers-timeout: soon
    trellis.dev/max-request-headers: "0"
    trellis.dev/idle-timeout: 90s
    trellis.dev/max-header-count: "5"
spec: {containers: [{name: app, image: app}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: api}
spec:
  selector: {matchLabels: {app: api}}
  template:
    metadata:
      labels: {app: api}
      annotations: {trellis.dev/max-concurrent-streams: "many"}
    spec: {containers: [{name: app, image: app}]}
`,
      },
    ]);
    const lines = r.diagnostics.map(formatDiagnostic);
    assert.deepEqual(lines, [
      'pods.yaml:6:42: Pod default/web: metadata.annotations.trellis.dev/request-headers-timeout: "soon" is not a duration such as 5s or 300ms',
      'pods.yaml:7:38: Pod default/web: metadata.annotations.trellis.dev/max-request-headers: 0 is out of range (1..8192)',
      'pods.yaml:9:5: warning: Pod default/web: metadata.annotations.trellis.dev/max-header-count: unknown proxy annotation; known ones are trellis.dev/request-headers-timeout, trellis.dev/idle-timeout, trellis.dev/max-request-headers, trellis.dev/max-request-headers-kb, trellis.dev/max-concurrent-streams',
      'pods.yaml:20:57: Deployment default/api: spec.template.metadata.annotations.trellis.dev/max-concurrent-streams: "many" is not a whole number',
    ]);
  });

  it('reads the valid values back for the control plane', () => {
    assert.deepEqual(
      proxyLimitsOf({ 'trellis.dev/request-headers-timeout': '1.5s', 'trellis.dev/idle-timeout': '2m', 'trellis.dev/max-request-headers': '50', 'trellis.dev/max-request-headers-kb': '16', 'trellis.dev/max-concurrent-streams': '8', other: 'x' }),
      { requestHeadersTimeoutMs: 1500, idleTimeoutMs: 120_000, maxRequestHeaders: 50, maxRequestHeadersKb: 16, maxConcurrentStreams: 8 },
    );
    assert.deepEqual(proxyLimitsOf({ 'trellis.dev/max-request-headers': '0', 'trellis.dev/idle-timeout': 'x' }), {});
    assert.deepEqual(proxyLimitsOf(undefined), {});
  });
});
