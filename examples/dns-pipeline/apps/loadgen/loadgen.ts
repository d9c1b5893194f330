// loadgen: a steady, low rate of realistic calls (ListZones and GetZone on zone-api, now and then a record
// upsert through zone-web's REST API), so a fresh system shows live traffic. In-flight calls are bounded.
import * as grpc from '@grpc/grpc-js';
import { intEnv, serviceAddress, stringEnv, type Env } from '../lib/env.ts';
import { CHANNEL_OPTIONS, deadline } from '../lib/grpc-client.ts';
import type { Logger } from '../lib/log.ts';
import { zoneServiceClient, type ZoneServiceApi } from '../lib/protos.ts';

export interface LoadgenConfig {
  zoneApi: string;
  zoneWeb: string;
  zone: string;
  rps: number;
  upsertEvery: number;
  /** Stop after this many calls (0: never). */
  maxCalls: number;
  reportMs: number;
  timeoutMs: number;
}

export function loadgenConfig(env: Env): LoadgenConfig {
  return {
    zoneApi: serviceAddress(env, 'zone-api', 'grpc', 9090, 'ZONE_API_ADDR'),
    zoneWeb: `http://${serviceAddress(env, 'zone-web', 'http', 80, 'ZONE_WEB_ADDR')}`,
    zone: stringEnv(env, 'LOADGEN_ZONE', 'example.com'),
    rps: intEnv(env, 'LOADGEN_RPS', 5, 1, 50),
    upsertEvery: intEnv(env, 'LOADGEN_UPSERT_EVERY', 50, 1, 1_000_000),
    maxCalls: intEnv(env, 'LOADGEN_MAX_CALLS', 0, 0, Number.MAX_SAFE_INTEGER),
    reportMs: intEnv(env, 'LOADGEN_REPORT_MS', 10_000, 100, 3_600_000),
    timeoutMs: intEnv(env, 'CALL_TIMEOUT_MS', 5_000, 100, 60_000),
  };
}

export class Loadgen {
  /** Outcomes by call and status since the start: `ListZones OK`, `PUT 200`, `GetZone UNAVAILABLE`. */
  readonly totals = new Map<string, number>();
  private window = new Map<string, number>();
  private readonly client: ZoneServiceApi;
  private n = 0;
  private inFlight = 0;
  private skipped = 0;
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly idle = new Set<() => void>();

  constructor(
    private readonly cfg: LoadgenConfig,
    private readonly log: Logger,
  ) {
    this.client = zoneServiceClient(cfg.zoneApi, CHANNEL_OPTIONS);
  }

  start(): void {
    this.timers.push(setInterval(() => this.tick(), Math.round(1000 / this.cfg.rps)));
    this.timers.push(setInterval(() => this.report(), this.cfg.reportMs));
    this.log.info('sending load', { rps: this.cfg.rps, zoneApi: this.cfg.zoneApi, zoneWeb: this.cfg.zoneWeb, zone: this.cfg.zone });
  }

  private count(key: string): void {
    this.totals.set(key, (this.totals.get(key) ?? 0) + 1);
    this.window.set(key, (this.window.get(key) ?? 0) + 1);
  }

  private tick(): void {
    if (this.cfg.maxCalls > 0 && this.n >= this.cfg.maxCalls) return;
    if (this.inFlight >= this.cfg.rps * 2) {
      this.skipped++;
      return;
    }
    const i = this.n++;
    this.inFlight++;
    const call = i % this.cfg.upsertEvery === this.cfg.upsertEvery - 1 ? this.upsert(i) : i % 2 === 0 ? this.listZones() : this.getZone();
    void call.then((key) => {
      this.count(key);
      this.inFlight--;
      if (this.inFlight === 0) for (const f of this.idle) f();
    });
  }

  private listZones(): Promise<string> {
    return new Promise((resolve) => {
      this.client.ListZones({}, new grpc.Metadata(), { deadline: deadline(this.cfg.timeoutMs) }, (err) => resolve(`ListZones ${err ? grpc.status[err.code] : 'OK'}`));
    });
  }

  private getZone(): Promise<string> {
    return new Promise((resolve) => {
      const s = this.client.GetZone({ zone: this.cfg.zone, batchSize: 0 }, new grpc.Metadata(), { deadline: deadline(this.cfg.timeoutMs) });
      s.on('data', () => undefined);
      s.on('end', () => resolve('GetZone OK'));
      s.on('error', (e: grpc.ServiceError) => resolve(`GetZone ${grpc.status[e.code]}`));
    });
  }

  private async upsert(i: number): Promise<string> {
    const body = { changes: [{ op: 'replace', record: { name: `loadgen.${this.cfg.zone}`, type: 'TXT', ttl: 60, data: `tick ${i} at ${new Date().toISOString()}` } }] };
    try {
      const res = await fetch(`${this.cfg.zoneWeb}/api/zones/${encodeURIComponent(this.cfg.zone)}/records`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(this.cfg.timeoutMs),
      });
      await res.arrayBuffer();
      return `PUT ${res.status}`;
    } catch (e) {
      return `PUT ${(e as Error).name === 'TimeoutError' ? 'timeout' : 'unreachable'}`;
    }
  }

  private report(): void {
    if (this.window.size === 0 && this.skipped === 0) return;
    const fields: Record<string, number> = {};
    for (const [k, v] of [...this.window].sort()) fields[k.replace(' ', ':')] = v;
    if (this.skipped > 0) fields.skipped = this.skipped;
    this.log.info(`calls in the last ${Math.round(this.cfg.reportMs / 1000)}s`, fields);
    this.window = new Map();
    this.skipped = 0;
  }

  /** Stops sending, waits (briefly) for calls in flight, and closes the channel. */
  async close(): Promise<void> {
    for (const t of this.timers) clearInterval(t);
    if (this.inFlight > 0) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, this.cfg.timeoutMs);
        this.idle.add(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    this.report();
    this.client.close();
  }
}
