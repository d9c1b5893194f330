// examples/dns-pipeline end to end without the mesh: the apps as real processes, each given the environment a pod
// gets (POD_IP, POD_NAME, the Kubernetes service variables), on loopback addresses of their own. A record changed
// through zone-web's REST API is answered by the edge's DNS server; zone-api crashes and loses nothing.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { queryUdp } from './dns-client.ts';
import { AppProcess, eventually, tempDir } from './dns-pipeline-support.ts';

const IP = { zoneApi: '127.0.5.31', edge: '127.0.5.32', zoneWeb: '127.0.5.33', publisher: '127.0.5.34', loadgen: '127.0.5.35', intruder: '127.0.5.36' };

/** The service variables Kubernetes gives every pod (here straight to the pods: there is no proxy in between). */
const SERVICES = {
  ZONE_API_SERVICE_HOST: IP.zoneApi,
  ZONE_API_SERVICE_PORT: '9090',
  ZONE_API_SERVICE_PORT_GRPC: '9090',
  EDGE_SERVICE_HOST: IP.edge,
  EDGE_SERVICE_PORT: '9091',
  EDGE_SERVICE_PORT_GRPC: '9091',
  ZONE_WEB_SERVICE_HOST: IP.zoneWeb,
  ZONE_WEB_SERVICE_PORT: '8080',
  ZONE_WEB_SERVICE_PORT_HTTP: '8080',
};

const pod = (name: string, ip: string, extra: Record<string, string> = {}): Record<string, string> => ({ POD_NAME: name, POD_NAMESPACE: 'dns', POD_IP: ip, ...SERVICES, ...extra });

async function put(records: { name: string; type: string; ttl?: number; data: string }[], op = 'replace'): Promise<{ status: number; body: { zone?: { serial: number } } }> {
  const res = await fetch(`http://${IP.zoneWeb}:8080/api/zones/example.com/records`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ changes: records.map((record) => ({ op, record })) }),
    signal: AbortSignal.timeout(5000),
  });
  return { status: res.status, body: (await res.json()) as { zone?: { serial: number } } };
}

async function dnsA(name: string): Promise<string[]> {
  const a = await queryUdp(IP.edge, 5353, name, 'A', {});
  return a.answers.filter((r) => r.type === 'A').map((r) => r.data);
}

describe('dns-pipeline apps as processes', () => {
  const data = tempDir('dns-pipeline-apps-');
  const procs: AppProcess[] = [];
  const run = (app: string, env: Record<string, string>): AppProcess => {
    const p = new AppProcess(app, env);
    procs.push(p);
    return p;
  };
  const zoneApiEnv = pod('zone-api-0', IP.zoneApi, { DATA_DIR: `${data.path}/zone-api-0`, SEED_ZONES: 'example.com' });
  let zoneApi: AppProcess;
  let publisher: AppProcess;

  before(async () => {
    zoneApi = run('zone-api', zoneApiEnv);
    const edge = run('edge', pod('edge-v1-abc', IP.edge, { EDGE_VERSION: 'v1', DATA_DIR: `${data.path}/edge-v1`, DNS_PORT: '5353', PORT: '9091' }));
    const web = run('zone-web', pod('zone-web-abc', IP.zoneWeb, { JWT_SIGNING_KEY_FILE: 'keys/demo-signing-key.pem' }));
    publisher = run('zone-publisher', pod('zone-publisher-abc', IP.publisher, { BACKOFF_MAX_MS: '1000' }));
    await Promise.all([
      zoneApi.waitFor(/serving dns\.v1\.ZoneService address=127\.0\.5\.31:9090/),
      edge.waitFor(/serving dns\.v1\.EdgeService and DNS version=v1 grpc=127\.0\.5\.32:9091 dns=127\.0\.5\.32:5353/),
      web.waitFor(/serving the zone editor/),
      publisher.waitFor(/watching zone-api/),
    ]);
  });

  after(async () => {
    await Promise.all(procs.map((p) => p.stop()));
    data.remove();
  });

  it('publishes the seeded zone to the edge, found through the service variables', async () => {
    assert.deepEqual(await eventually(async () => ((await dnsA('www.example.com')).length ? dnsA('www.example.com') : undefined), 30_000, 'www.example.com at the edge'), ['192.0.2.10']);
    assert.match(await publisher.waitFor(/pushed zone to edge zone=example\.com/), /edge=v1 pod=edge-v1-abc route=split/);
  });

  it('answers a record changed through zone-web within 5 s', async () => {
    const r = await put([{ name: 'www.example.com', type: 'A', ttl: 60, data: '192.0.2.77' }]);
    assert.equal(r.status, 200);
    const started = Date.now();
    await eventually(async () => ((await dnsA('www.example.com')).join() === '192.0.2.77' ? true : undefined), 5000, 'the new address at the edge');
    assert.ok(Date.now() - started < 5000);
    const soa = await queryUdp(IP.edge, 5353, 'example.com', 'SOA');
    assert.equal(soa.answers[0]?.data.split(' ')[2], String(r.body.zone?.serial), 'the edge serves the serial zone-api acknowledged');
  });

  it('loses no acknowledged record when zone-api crashes, and the publisher reconnects by itself', async () => {
    const r = await put([{ name: 'crash.example.com', type: 'TXT', data: 'written just before the crash' }]);
    assert.equal(r.status, 200);
    assert.equal(await zoneApi.stop('SIGKILL'), null);
    zoneApi = run('zone-api', zoneApiEnv);
    await zoneApi.waitFor(/serving dns\.v1\.ZoneService/);
    assert.match(await zoneApi.waitFor(/loaded zone zone=example\.com/), new RegExp(`serial=${r.body.zone?.serial}`));
    await eventually(() => (publisher.lines.filter((l) => /watching zone-api/.test(l)).length >= 2 ? true : undefined), 30_000, 'the publisher watching again');
    const after = await eventually(async () => {
      const res = await put([{ name: 'after.example.com', type: 'A', data: '192.0.2.88' }]);
      return res.status === 200 ? res : undefined;
    }, 30_000, 'zone-web reaching zone-api again');
    assert.ok((after.body.zone?.serial ?? 0) > (r.body.zone?.serial ?? 0));
    await eventually(async () => ((await dnsA('after.example.com')).join() === '192.0.2.88' ? true : undefined), 5000, 'a change after the restart at the edge');
    const txt = await queryUdp(IP.edge, 5353, 'crash.example.com', 'TXT');
    assert.equal(txt.answers[0]?.data, 'written just before the crash');
  });

  it('loadgen sends ListZones, GetZone and REST upserts, and reports them', async () => {
    const lg = run('loadgen', pod('loadgen-abc', IP.loadgen, { LOADGEN_RPS: '20', LOADGEN_UPSERT_EVERY: '5', LOADGEN_REPORT_MS: '500' }));
    const line = await lg.waitFor(/calls in the last 1s .*PUT:200=/);
    assert.match(line, /GetZone:OK=\d+/);
    assert.match(line, /ListZones:OK=\d+/);
    assert.equal(await lg.stop(), 0);
  });

  it('intruder tries each forbidden call and logs the status it got (without the mesh, none is denied)', async () => {
    const intr = run('intruder', pod('intruder-abc', IP.intruder, { INTRUDER_ZONE: 'victim.test', INTRUDER_INTERVAL_MS: '60000' }));
    await intr.waitFor(/attempt="DELETE zone through zone-web"/);
    assert.equal(await intr.stop(), 0);
    const attempts = intr.lines.filter((l) => /attempt=/.test(l));
    assert.deepEqual(
      attempts.map((l) => /attempt="([^"]+)"/.exec(l)?.[1]),
      ['DeleteZone without a JWT', 'DeleteZone with a forged admin JWT', 'UpsertRecords without a JWT', 'PushZone (poison the edge)', 'DELETE zone through zone-web'],
    );
    for (const l of attempts) assert.match(l, /WARN .*NOT DENIED.* status=(OK|NOT_FOUND|"HTTP 200"|"HTTP 404")/);
  });
});
