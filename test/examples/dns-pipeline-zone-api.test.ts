// examples/dns-pipeline zone-api, in process on loopback: all five RPCs over real grpc-js, persistence across a
// restart (write-ahead log, torn tail, snapshots), and a 100k-record GetZone that streams under backpressure.
import * as grpc from '@grpc/grpc-js';
import assert from 'node:assert/strict';
import { appendFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { silentLogger } from '../../examples/dns-pipeline/apps/lib/log.ts';
import { zoneServiceClient, type ZoneChangeMsg, type ZoneServiceApi } from '../../examples/dns-pipeline/apps/lib/protos.ts';
import { startZoneApi, type ZoneApi, type ZoneApiConfig } from '../../examples/dns-pipeline/apps/zone-api/server.ts';
import { deleteZone, eventually, getZone, listZones, rec, tempDir, up, upsert } from './dns-pipeline-support.ts';

const HOST = '127.0.5.10';

function config(dataDir: string, over: Partial<ZoneApiConfig> = {}): ZoneApiConfig {
  return { host: HOST, port: 0, dataDir, maxRecords: 200_000, compactBytes: 4 * 1024 * 1024, seedZones: ['example.com'], ...over };
}

describe('dns-pipeline zone-api', () => {
  const dir = tempDir('dns-zone-api-');
  let api: ZoneApi;
  let client: ZoneServiceApi;
  const open = async (over: Partial<ZoneApiConfig> = {}): Promise<void> => {
    api = await startZoneApi(config(dir.path, over), silentLogger);
    client = zoneServiceClient(`${HOST}:${api.port}`);
  };
  const restart = async (over: Partial<ZoneApiConfig> = {}): Promise<void> => {
    client.close();
    await api.close();
    await open(over);
  };

  before(() => open());
  after(async () => {
    client.close();
    await api.close();
    dir.remove();
  });

  it('seeds example.com once and lists it (ListZones)', async () => {
    const { zones } = await listZones(client);
    assert.equal(zones.length, 1);
    assert.equal(zones[0]?.name, 'example.com');
    assert.equal(zones[0]?.recordCount, 9);
    assert.ok((zones[0]?.serial ?? 0) > 1_700_000_000, 'serials start at the time in seconds');
  });

  it('streams a zone in batches, the zone info first (GetZone), and NOT_FOUND for an unknown zone', async () => {
    const { messages, records } = await getZone(client, 'example.com', 4);
    assert.deepEqual(messages.map((m) => m.records.length), [4, 4, 1]);
    assert.equal(messages[0]?.zone?.recordCount, 9);
    assert.equal(messages[1]?.zone, null);
    assert.ok(records.some((r) => r.name === 'www.example.com' && r.type === 'A' && r.data === '192.0.2.10'));
    await assert.rejects(getZone(client, 'nope.example'), (e: grpc.ServiceError) => e.code === grpc.status.NOT_FOUND);
    await assert.rejects(getZone(client, 'bad..name'), (e: grpc.ServiceError) => e.code === grpc.status.INVALID_ARGUMENT);
  });

  it('applies a client stream of changes atomically, bumps the serial, and refuses bad changes whole (UpsertRecords)', async () => {
    const before = (await listZones(client)).zones[0]?.serial ?? 0;
    const r = await upsert(client, 'example.com', [
      [up(rec('www.example.com', 'A', '192.0.2.20'), 'REPLACE'), up(rec('www.example.com', 'A', '192.0.2.21'), 'REPLACE')],
      [up(rec('new.example.com.', 'txt', 'hello'))],
      [{ op: 'DELETE', record: rec('mail.example.com', '', '') }],
    ]);
    assert.deepEqual([r.upserted, r.deleted, r.created, r.zone?.recordCount], [3, 1, false, 10]);
    assert.ok((r.zone?.serial ?? 0) > before);
    const www = (await getZone(client, 'example.com')).records.filter((x) => x.name === 'www.example.com' && x.type === 'A');
    assert.deepEqual(www.map((x) => x.data).sort(), ['192.0.2.20', '192.0.2.21']);
    for (const bad of [
      [up(rec('x.example.org', 'A', '192.0.2.1'))],
      [up(rec('x.example.com', 'A', 'not-an-ip'))],
      [up(rec('www.example.com', 'CNAME', 'other.example.com'))], // a CNAME cannot sit next to other records
      [up(rec('x.example.com', 'SOA', 'a.example.com b.example.com 1 2 3 4 5'))],
    ]) {
      await assert.rejects(upsert(client, 'example.com', [[up(rec('ok.example.com', 'A', '192.0.2.1')), ...bad]]), (e: grpc.ServiceError) => e.code === grpc.status.INVALID_ARGUMENT);
    }
    assert.equal((await listZones(client)).zones[0]?.recordCount, 10, 'no refused call changed anything');
    const created = await upsert(client, 'other.test', [[up(rec('other.test', 'NS', 'ns1.other.test'))]]);
    assert.equal(created.created, true);
  });

  it('notifies every watcher of changes, with the existing zones first when asked (WatchZones)', async () => {
    const seen: ZoneChangeMsg[][] = [[], []];
    const calls = seen.map((list, i) => {
      const call = client.WatchZones({ sendInitial: i === 0 }, new grpc.Metadata(), {});
      call.on('data', (m: ZoneChangeMsg) => list.push(m));
      call.on('error', () => undefined);
      return call;
    });
    await Promise.all(calls.map((c) => new Promise((r) => c.once('metadata', r))));
    const r = await upsert(client, 'watch.test', [[up(rec('a.watch.test', 'A', '192.0.2.1'))]]);
    await upsert(client, 'watch.test', [[up(rec('b.watch.test', 'A', '192.0.2.2'))]]);
    const del = await deleteZone(client, 'watch.test');
    await eventually(() => (seen.every((l) => l.some((m) => m.kind === 'DELETED')) ? true : undefined), 3000, 'DELETED notices');
    for (const c of calls) c.cancel();
    assert.deepEqual(seen[0]?.filter((m) => m.kind === 'EXISTING').map((m) => m.zone).sort(), ['example.com', 'other.test']);
    assert.equal(seen[1]?.filter((m) => m.kind === 'EXISTING').length, 0);
    for (const list of seen) {
      const mine = list.filter((m) => m.zone === 'watch.test');
      assert.equal(mine[0]?.kind, 'CREATED');
      assert.equal(mine[0]?.serial, r.zone?.serial);
      assert.equal(mine.at(-1)?.kind, 'DELETED');
      assert.equal(mine.at(-1)?.serial, del.serial);
    }
  });

  it('deletes a zone (DeleteZone); a re-created zone continues above the deletion serial', async () => {
    const d = await deleteZone(client, 'other.test');
    await assert.rejects(deleteZone(client, 'other.test'), (e: grpc.ServiceError) => e.code === grpc.status.NOT_FOUND);
    await restart();
    const again = await upsert(client, 'other.test', [[up(rec('other.test', 'TXT', 'back'))]]);
    assert.ok((again.zone?.serial ?? 0) > d.serial);
    assert.equal(again.zone?.recordCount, 1, 'nothing of the deleted zone came back');
  });

  it('keeps every acknowledged change across a restart, cuts a torn log tail, and does not re-seed', async () => {
    await deleteZone(client, 'example.com');
    const r = await upsert(client, 'keep.test', [[up(rec('www.keep.test', 'A', '192.0.2.7'))], [up(rec('keep.test', 'MX', '10 mail.keep.test'))]]);
    await restart();
    const wal = join(dir.path, 'zones', 'keep.test', 'wal.jsonl');
    const good = readFileSync(wal, 'utf8');
    appendFileSync(wal, '{"s":99999999999,"c":[["U","evil.keep.test","A",300,"192.0'); // a crash in the middle of a write
    await restart();
    const zones = (await listZones(client)).zones;
    assert.equal(zones.find((z) => z.name === 'example.com'), undefined, 'a deleted seed zone stays deleted');
    const keep = zones.find((z) => z.name === 'keep.test');
    assert.deepEqual([keep?.serial, keep?.recordCount], [r.zone?.serial, 2]);
    assert.equal(readFileSync(wal, 'utf8'), good, 'the torn tail was cut off');
    assert.deepEqual((await getZone(client, 'keep.test')).records.map((x) => x.data).sort(), ['10 mail.keep.test', '192.0.2.7']);
  });

  it('folds the log into a snapshot past its size limit and still restarts with every record', async () => {
    await restart({ compactBytes: 2000 });
    for (let i = 0; i < 30; i++) await upsert(client, 'big.test', [[up(rec(`h${i}.big.test`, 'TXT', `record number ${i} `.repeat(4)))]]);
    assert.ok(readFileSync(join(dir.path, 'zones', 'big.test', 'wal.jsonl'), 'utf8').length < 2000);
    await restart();
    assert.equal((await getZone(client, 'big.test')).records.length, 30);
  });

  it('streams a 100k-record zone under backpressure: a client that stops reading stops the server', async () => {
    const N = 100_000;
    const batches = Array.from({ length: N / 5000 }, (_, b) => Array.from({ length: 5000 }, (_, i) => up(rec(`host-${b * 5000 + i}.large.test`, 'A', `10.${b}.${(i >> 8) & 255}.${i & 255}`))));
    const created = await upsert(client, 'large.test', batches);
    assert.equal(created.zone?.recordCount, N);
    const sentBefore = api.metrics.getZoneRecords;
    const call = client.GetZone({ zone: 'large.test', batchSize: 500 }, new grpc.Metadata(), { deadline: Date.now() + 30_000 });
    let received = 0;
    let paused = false;
    const done = new Promise<void>((resolve, reject) => {
      call.on('data', (m: { records: unknown[] }) => {
        received += m.records.length;
        if (!paused) {
          paused = true;
          call.pause();
        }
      });
      call.on('end', resolve);
      call.on('error', reject);
    });
    await eventually(() => (paused ? true : undefined), 5000, 'first message');
    await new Promise((r) => setTimeout(r, 400));
    const sentWhilePaused = api.metrics.getZoneRecords - sentBefore;
    // What flow-control windows and socket buffers hold (about 16k records here), not the zone.
    assert.ok(sentWhilePaused < 0.3 * N, `the server kept sending to a client that stopped reading (${sentWhilePaused} of ${N} records)`);
    const heapBefore = process.memoryUsage().heapUsed;
    call.resume();
    await done;
    assert.equal(received, N);
    assert.equal(api.metrics.getZoneRecords - sentBefore, N);
    assert.ok(process.memoryUsage().heapUsed - heapBefore < 200 * 1024 * 1024);
  });
});
