import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, describe, it } from 'node:test';
import type { Probe, ProbeHandler } from '../resources/kinds-container.ts';
import { ProbeRunner } from './probe-runner.ts';
import { ContainerHealth, ProbeWorker } from './probe-state.ts';

const probe = (over: Partial<Probe> = {}, handler: ProbeHandler = { type: 'tcpSocket', port: 1 }): Probe => ({ handler, initialDelaySeconds: 0, timeoutSeconds: 1, periodSeconds: 10, successThreshold: 1, failureThreshold: 3, ...over });

describe('ProbeWorker', () => {
  it('reports a change only when a run of equal outcomes reaches its threshold', () => {
    const w = new ProbeWorker('readiness', probe({ successThreshold: 2, failureThreshold: 2 }));
    w.containerStarted(0);
    assert.equal(w.result, 'failure', 'readiness starts not ready');
    assert.equal(w.record('success'), false);
    assert.equal(w.result, 'failure');
    assert.equal(w.record('success'), true);
    assert.equal(w.result, 'success');
    assert.equal(w.record('failure'), false);
    assert.equal(w.record('success'), false, 'a broken run starts over');
    assert.equal(w.record('failure'), false);
    assert.equal(w.record('failure'), true);
    assert.equal(w.result, 'failure');
    assert.equal(w.shouldRun(0, true), true, 'readiness keeps probing after failing');
  });

  it('waits out the initial delay in whole seconds, and holds liveness after a failure until a new instance', () => {
    const w = new ProbeWorker('liveness', probe({ initialDelaySeconds: 2, failureThreshold: 1 }));
    assert.equal(w.shouldRun(0, true), false, 'not running');
    w.containerStarted(1000);
    assert.equal(w.result, 'success', 'liveness starts as success');
    assert.equal(w.shouldRun(2999, true), false);
    assert.equal(w.shouldRun(3000, true), true);
    assert.equal(w.shouldRun(3000, false), false, 'gated until started');
    assert.equal(w.record('failure'), true);
    assert.equal(w.shouldRun(9000, true), false, 'on hold');
    w.containerStarted(10_000);
    assert.equal(w.result, 'success');
    assert.equal(w.shouldRun(12_000, true), true);
    const scaled = new ProbeWorker('liveness', probe({ initialDelaySeconds: 2 }));
    scaled.containerStarted(0);
    assert.equal(scaled.shouldRun(19, true, 0.01), false);
    assert.equal(scaled.shouldRun(20, true, 0.01), true);
  });
});

describe('ContainerHealth', () => {
  it('gates liveness and readiness on startup, and asks for a kill on liveness or startup failure', () => {
    const h = new ContainerHealth({ startupProbe: probe({ failureThreshold: 2 }), livenessProbe: probe({ failureThreshold: 1 }), readinessProbe: probe() });
    assert.equal(h.started, false);
    h.containerStarted(0);
    assert.equal(h.started, false);
    assert.equal(h.worker('startup')?.shouldRun(0, h.started), true);
    assert.equal(h.worker('liveness')?.shouldRun(0, h.started), false);
    assert.equal(h.record('startup', 'failure'), undefined);
    assert.equal(h.record('startup', 'success'), undefined);
    assert.equal(h.started, true);
    assert.equal(h.ready, false, 'readiness not yet probed');
    assert.equal(h.worker('startup')?.shouldRun(0, h.started), false, 'startup stops once started');
    assert.equal(h.record('readiness', 'success'), undefined);
    assert.equal(h.ready, true);
    assert.equal(h.record('liveness', 'failure'), 'kill');
    h.containerStopped();
    assert.equal(h.ready, false);
    h.containerStarted(5);
    assert.equal(h.started, false, 'a new instance must pass startup again');
    assert.equal(h.record('startup', 'failure'), undefined);
    assert.equal(h.record('startup', 'failure'), 'kill');
  });

  it('is ready as soon as it runs when there are no probes', () => {
    const h = new ContainerHealth({});
    h.containerStarted(0);
    assert.equal(h.ready, true);
  });
});

describe('ProbeRunner', () => {
  let healthy = false;
  let livenessCalls = 0;
  const server: Server = createServer((req, res) => {
    if (req.url === '/live') livenessCalls++;
    if (req.url === '/startup' || req.url === '/live') return void res.writeHead(healthy ? 200 : 500).end();
    res.writeHead(healthy ? 200 : 503).end();
  });
  after(() => server.close());
  const listening = new Promise<number>((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)));
  const http = (path: string, port: number): ProbeHandler => ({ type: 'httpGet', path, port, scheme: 'HTTP', httpHeaders: [] });
  const until = async (cond: () => boolean, ms = 3000) => {
    const end = Date.now() + ms;
    while (!cond()) {
      if (Date.now() > end) throw new Error('condition not met in time');
      await new Promise((r) => setTimeout(r, 5));
    }
  };

  it('probes real endpoints on scaled periods: startup gates liveness, readiness follows, liveness failure asks for a kill', async () => {
    const port = await listening;
    const readyChanges: boolean[] = [];
    const kills: string[] = [];
    const runner = new ProbeRunner({
      probes: {
        startupProbe: probe({ periodSeconds: 1, failureThreshold: 1000 }, http('/startup', port)),
        livenessProbe: probe({ periodSeconds: 1, failureThreshold: 2 }, http('/live', port)),
        readinessProbe: probe({ periodSeconds: 1, failureThreshold: 1 }, http('/ready', port)),
      },
      target: { host: '127.0.0.1', ports: [] },
      timeScale: 0.02,
      onReadyChange: (r) => readyChanges.push(r),
      onKill: (type, message) => kills.push(`${type}: ${message}`),
    });
    healthy = false;
    runner.start();
    await new Promise((r) => setTimeout(r, 150));
    assert.equal(livenessCalls, 0, 'liveness does not run before startup succeeds');
    assert.equal(runner.ready, false);
    healthy = true;
    await until(() => runner.ready);
    assert.ok(livenessCalls > 0);
    healthy = false;
    await until(() => kills.length > 0);
    assert.deepEqual(kills, ['liveness: HTTP probe failed with statuscode: 500']);
    await until(() => !runner.ready);
    const calls = livenessCalls;
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(livenessCalls, calls, 'liveness holds after asking for a kill');
    runner.stop();
    assert.deepEqual(readyChanges, [true, false]);
  });
});
