// `trellis up` in loopback isolation, end to end with real processes: a server and a client Deployment (the client
// calls the server by its Kubernetes service variables) behind their sidecars, a NetworkPolicy, `trellis status`,
// and `trellis down` leaving no process behind. Addresses: 127.77.0.0/16 (pods), 127.78.0.0/16 (Service VIPs).
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Flow } from '../../src/observe/flow.ts';
import type { UpState } from '../../src/runtime/up-state.ts';
import { queryUdp } from '../examples/dns-client.ts';

const ROOT = new URL('../..', import.meta.url).pathname;
const CLI = join(ROOT, 'src/cli/trellis.ts');
const RANGES = ['--pod-range', '127.77.0.0/16', '--service-range', '127.78.0.0/16'];

const SERVER = `import http from 'node:http';
import { existsSync } from 'node:fs';
const host = process.env.POD_IP;
const srv = http.createServer((req, res) => {
  if (req.url === '/healthz') { res.statusCode = existsSync('unready') ? 503 : 200; res.end(); return; }
  console.log('request ' + req.url + ' host=' + req.headers.host);
  res.end('hello from ' + process.env.POD_NAME);
});
srv.listen(8080, host, () => console.log('listening on ' + host + ':8080'));
process.on('SIGTERM', () => { srv.close(); process.exit(0); });
`;

const CLIENT = `const url = 'http://' + process.env.SERVER_SERVICE_HOST + ':' + process.env.SERVER_SERVICE_PORT + '/hello';
console.log('calling ' + url);
const t = setInterval(async () => {
  try { const r = await fetch(url); console.log('status ' + r.status + ' ' + (await r.text()).trim()); }
  catch (e) { console.log('error ' + (e.cause?.code ?? e.message)); }
}, 300);
process.on('SIGTERM', () => { clearInterval(t); process.exit(0); });
`;

const MANIFESTS = `apiVersion: v1
kind: Namespace
metadata: {name: demo}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: server, namespace: demo}
spec:
  replicas: 1
  selector: {matchLabels: {app: server}}
  template:
    metadata: {labels: {app: server}}
    spec:
      serviceAccountName: server
      terminationGracePeriodSeconds: 5
      containers:
      - name: http
        image: example/server
        command: [node, server.mjs]
        ports: [{name: http, containerPort: 8080}]
        env:
        - name: POD_IP
          valueFrom: {fieldRef: {fieldPath: status.podIP}}
        - name: POD_NAME
          valueFrom: {fieldRef: {fieldPath: metadata.name}}
        readinessProbe:
          httpGet: {path: /healthz, port: http}
          periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata: {name: server, namespace: demo}
spec:
  selector: {app: server}
  ports: [{name: http, port: 8081, targetPort: http, appProtocol: http}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: client, namespace: demo}
spec:
  replicas: 1
  selector: {matchLabels: {app: client}}
  template:
    metadata: {labels: {app: client}}
    spec:
      serviceAccountName: client
      terminationGracePeriodSeconds: 5
      containers:
      - name: main
        image: example/client
        command: [node, client.mjs]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: server-from-client, namespace: demo}
spec:
  podSelector: {matchLabels: {app: server}}
  policyTypes: [Ingress]
  ingress:
  - from: [{podSelector: {matchLabels: {app: client}}}]
    ports: [{port: 8080}]
`;

function trellis(args: string[]): { code: number | null; out: string; err: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', CLI, ...args], { cwd: ROOT, encoding: 'utf8', timeout: 30_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

/** Whether the process runs: a zombie (exited, waiting for its new parent, PID 1, to reap it) does not. */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

function readState(stateDir: string): UpState | undefined {
  try {
    return JSON.parse(readFileSync(join(stateDir, 'up.json'), 'utf8')) as UpState;
  } catch {
    return undefined;
  }
}

/** Polls up.json until every pod is ready (proxy and containers). */
async function waitAllReady(stateDir: string, child: ChildProcess, logs: () => string, pods: number): Promise<UpState> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const state = readState(stateDir);
    // The state of this run (a killed run leaves its file behind until the next one replaces it).
    if (state && state.pid === child.pid && state.pods.length === pods && state.pods.every((p) => p.ready)) return state;
    assert.ok(Date.now() < deadline, `pods not ready in 60 s:\n${JSON.stringify(state?.pods, null, 1)}\n${logs().slice(-4000)}`);
    assert.equal(child.exitCode, null, `up exited:\n${logs().slice(-4000)}`);
    await sleep(200);
  }
}

describe('trellis up (loopback)', { timeout: 150_000 }, () => {
  let dir: string;
  let stateDir: string;
  let up: ChildProcess | undefined;
  let out = '';
  let firstIps: string[] = [];

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'trellis-up-'));
    stateDir = join(dir, 'state');
    writeFileSync(join(dir, 'server.mjs'), SERVER);
    writeFileSync(join(dir, 'client.mjs'), CLIENT);
    writeFileSync(join(dir, 'mesh.yaml'), MANIFESTS);
  });

  after(async () => {
    if (up && up.exitCode === null && up.signalCode === null) {
      const exited = once(up, 'exit');
      up.kill('SIGTERM');
      await Promise.race([exited, sleep(20_000)]);
    }
    trellis(['down', '--state-dir', stateDir]);
    rmSync(dir, { recursive: true, force: true });
  });

  it('refuses invalid manifests with located errors and exit code 2, starting nothing', () => {
    const bad = join(dir, 'bad');
    rmSync(bad, { recursive: true, force: true });
    spawnSync('mkdir', ['-p', bad]);
    writeFileSync(join(bad, 'bad.yaml'), 'apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec:\n  ports: [{port: 99999}]\n');
    const r = trellis(['up', '-f', bad, '--state-dir', join(dir, 'bad-state'), ...RANGES]);
    assert.equal(r.code, 2, r.err);
    assert.match(r.err, /bad\.yaml:5:\d+/);
    assert.equal(existsSync(join(dir, 'bad-state', 'up.json')), false);
  });

  it('runs both pods behind sidecars; the client reaches the server through both; status; down leaves nothing', async () => {
    up = spawn(process.execPath, ['--import', 'tsx', CLI, 'up', '-f', join(dir, 'mesh.yaml'), '--state-dir', stateDir, ...RANGES], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    up.stdout?.setEncoding('utf8').on('data', (d: string) => (out = (out + d).slice(-200_000)));
    up.stderr?.setEncoding('utf8').on('data', (d: string) => (err = (err + d).slice(-50_000)));

    // Every pod becomes ready (its proxy and its containers).
    const state = await waitAllReady(stateDir, up, () => out + err, 2);
    const dns = /cluster DNS\s+127\.0\.0\.1:(\d+)/.exec(out);
    assert.ok(dns, out.slice(0, 2000));
    const server = state.pods.find((p) => p.key.startsWith('demo/server-'));
    const client = state.pods.find((p) => p.key.startsWith('demo/client-'));
    assert.ok(server && client);
    assert.match(server.podIp, /^127\.77\./);

    // The client called $SERVER_SERVICE_HOST:$SERVER_SERVICE_PORT (its own outbound address) and got the server's answer.
    const until = Date.now() + 20_000;
    while (!/status 200 hello from server-/.test(out)) {
      assert.ok(Date.now() < until, `no successful call in 20 s:\n${out.slice(-3000)}`);
      await sleep(200);
    }
    assert.ok(out.includes(`calling http://${client.outboundIp}:8081/hello`), out.slice(0, 3000));

    // Both sidecars saw it: the server's inbound L7 flow names the client pod as source.
    const flowsAt = async (admin: string): Promise<Flow[]> => {
      const body = (await (await fetch(`${admin}/flows?last=500`)).json()) as { flows?: Flow[] } | Flow[];
      return Array.isArray(body) ? body : (body.flows ?? []);
    };
    const clientName = client.key.split('/')[1];
    const serverName = server.key.split('/')[1];
    const inbound = (await flowsAt(server.proxy.admin)).find((f) => f.Type === 'L7' && f.l7?.http?.url.includes('/hello') === true && (f.source.pod_name === clientName || f.destination.pod_name === clientName));
    assert.ok(inbound, 'an L7 flow for /hello at the server proxy');
    assert.equal(inbound.verdict, 'FORWARDED');
    const outbound = (await flowsAt(client.proxy.admin)).find((f) => f.Type === 'L7' && f.l7?.http?.url.includes('/hello') === true && (f.source.pod_name === serverName || f.destination.pod_name === serverName));
    assert.ok(outbound, 'an L7 flow for /hello at the client proxy naming the server pod');

    // Cluster DNS answers the Service name (a client that is no pod gets the Service's virtual IP).
    const answer = await queryUdp('127.0.0.1', Number(dns[1]), 'server.demo.svc.cluster.local', 'A');
    assert.equal(answer.rcode, 0);
    assert.match(answer.answers[0]?.data ?? '', /^127\.78\./);
    firstIps = state.pods.map((p) => `${p.key} ${p.podIp}`).sort();

    // Only ready pods are endpoints: the server's readiness probe fails, the client gets 503 from its sidecar; back.
    const serverIs = async (ready: boolean, restarts = 0): Promise<void> => {
      const end = Date.now() + 20_000;
      for (;;) {
        const p = readState(stateDir)?.pods.find((x) => x.key === server.key);
        if (p && p.ready === ready && (p.containers[0]?.restarts ?? 0) >= restarts) return;
        assert.ok(Date.now() < end, `server pod not ${ready ? 'ready' : 'unready'} in 20 s: ${JSON.stringify(p)}`);
        await sleep(100);
      }
    };
    const logAfter = async (from: number, re: RegExp): Promise<void> => {
      const end = Date.now() + 20_000;
      while (!re.test(out.slice(from))) {
        assert.ok(Date.now() < end, `no ${re} in 20 s:\n${out.slice(from).slice(-2000)}`);
        await sleep(100);
      }
    };
    writeFileSync(join(dir, 'unready'), '');
    await serverIs(false);
    let mark = out.length;
    await logAfter(mark, /status 503/);
    rmSync(join(dir, 'unready'));
    await serverIs(true);
    mark = out.length;
    await logAfter(mark, /status 200 hello from server-/);

    // A crashed container restarts (the first restart at once), becomes ready again, and calls succeed again.
    const serverPid = readState(stateDir)?.pods.find((x) => x.key === server.key)?.containers[0]?.pid;
    assert.ok(serverPid);
    process.kill(serverPid, 'SIGKILL');
    await serverIs(true, 1);
    mark = out.length;
    await logAfter(mark, /status 200 hello from server-/);
    const after = readState(stateDir);
    assert.ok(after);
    state.pods = after.pods;

    // status: pods, readiness and the Service's endpoint.
    const st = trellis(['status', '--state-dir', stateDir]);
    assert.equal(st.code, 0, st.err);
    assert.match(st.out, new RegExp(`${server.key}\\s+2/2\\s+1`));
    assert.match(st.out, new RegExp(`demo/server\\s+ClusterIP\\s+${server.podIp.replace(/\./g, '\\.')}:8080\\n`));

    // down: up stops in order, and every process it recorded is gone.
    const pids = [state.pid, ...state.pods.flatMap((p) => [p.proxy.pid, ...p.containers.map((c) => c.pid)])].filter((p): p is number => typeof p === 'number');
    assert.equal(pids.length, 5);
    const exited = once(up, 'exit');
    const down = trellis(['down', '--state-dir', stateDir]);
    assert.equal(down.code, 0, down.err);
    await exited;
    assert.equal(up.exitCode, 0, err);
    assert.match(out, /draining proxies, then pods, then the control plane[\s\S]*stopped/);
    for (const pid of pids) assert.equal(alive(pid), false, `pid ${pid} still runs`);
    assert.equal(existsSync(join(stateDir, 'up.json')), false);
    assert.equal(trellis(['status', '--state-dir', stateDir]).code, 1);
  });

  it('edits apply live (a bad one is refused, located); after a SIGKILL of up its pods keep running until the next up removes them; addresses stay', async () => {
    let logs = '';
    up = spawn(process.execPath, ['--import', 'tsx', CLI, 'up', '-f', join(dir, 'mesh.yaml'), '--state-dir', stateDir, ...RANGES], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    up.stdout?.setEncoding('utf8').on('data', (d: string) => (logs += d));
    up.stderr?.setEncoding('utf8').on('data', (d: string) => (logs += d));
    const state = await waitAllReady(stateDir, up, () => logs, 2);
    assert.deepEqual(state.pods.map((p) => `${p.key} ${p.podIp}`).sort(), firstIps);

    // A bad edit is refused with its location, and nothing changes.
    const good = readFileSync(join(dir, 'mesh.yaml'), 'utf8');
    let mark = logs.length;
    writeFileSync(join(dir, 'mesh.yaml'), good.replace('ports: [{name: http, port: 8081,', 'ports: [{name: http, port: 98081,'));
    for (const end = Date.now() + 15_000; !/edit refused/.test(logs.slice(mark)); await sleep(100)) assert.ok(Date.now() < end, `no refusal:\n${logs.slice(mark)}`);
    assert.match(logs.slice(mark), /mesh\.yaml:\d+:\d+/);
    assert.deepEqual(readState(stateDir)?.pods.map((p) => `${p.key} ${p.podIp}`).sort(), firstIps);

    // A good edit applies live: two client replicas.
    mark = logs.length;
    writeFileSync(join(dir, 'mesh.yaml'), good.replace(/name: client, namespace: demo\}\nspec:\n {2}replicas: 1/, 'name: client, namespace: demo}\nspec:\n  replicas: 2'));
    const three = await waitAllReady(stateDir, up, () => logs, 3);
    assert.match(logs.slice(mark), /edit applied: 1 pod\(s\) started, 0 stopped/);
    const pids = three.pods.flatMap((p) => [p.proxy.pid, ...p.containers.map((c) => c.pid)]).filter((p): p is number => typeof p === 'number');
    assert.equal(pids.length, 6);

    const exited = once(up, 'exit');
    up.kill('SIGKILL');
    await exited;
    // Orphans: the pods run in their own process groups, so they outlive a killed up.
    for (const pid of pids) assert.equal(alive(pid), true, `pid ${pid} should still run after the SIGKILL`);
    // The next up cleans them up before it starts anything.
    mark = logs.length;
    up = spawn(process.execPath, ['--import', 'tsx', CLI, 'up', '-f', join(dir, 'mesh.yaml'), '--state-dir', stateDir, ...RANGES], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    up.stdout?.setEncoding('utf8').on('data', (d: string) => (logs += d));
    up.stderr?.setEncoding('utf8').on('data', (d: string) => (logs += d));
    const again = await waitAllReady(stateDir, up, () => logs, 3);
    // (Processes that write to their closed log pipe die of EPIPE by themselves; the quiet ones are left for up.)
    assert.match(logs.slice(mark), /stopped [1-6] process group\(s\) a previous run left behind/);
    for (const pid of pids) assert.equal(alive(pid), false, `pid ${pid} still runs after the next up`);
    const last = [again.pid, ...again.pods.flatMap((p) => [p.proxy.pid, ...p.containers.map((c) => c.pid)])].filter((p): p is number => typeof p === 'number');
    const downExit = once(up, 'exit');
    const down = trellis(['down', '--state-dir', stateDir]);
    assert.equal(down.code, 0, down.err);
    await downExit;
    for (const pid of last) assert.equal(alive(pid), false, `pid ${pid} still runs after down`);
  });
});
