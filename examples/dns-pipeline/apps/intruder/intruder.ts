// intruder: every few seconds, tries calls it may not make and logs the status it got. Under the mesh's policies
// every attempt is denied; an attempt that succeeds is logged as a warning (the policies are not enforced).
import * as grpc from '@grpc/grpc-js';
import { generateKeyPairSync } from 'node:crypto';
import { intEnv, serviceAddress, stringEnv, type Env } from '../lib/env.ts';
import { CHANNEL_OPTIONS, deadline } from '../lib/grpc-client.ts';
import { signingKey, TokenSource } from '../lib/jwt.ts';
import type { Logger } from '../lib/log.ts';
import { edgeServiceClient, zoneServiceClient, type EdgeServiceApi, type ZoneServiceApi } from '../lib/protos.ts';

export interface IntruderConfig {
  zoneApi: string;
  edge: string;
  zoneWeb: string;
  zone: string;
  intervalMs: number;
  timeoutMs: number;
  issuer: string;
}

export function intruderConfig(env: Env): IntruderConfig {
  return {
    zoneApi: serviceAddress(env, 'zone-api', 'grpc', 9090, 'ZONE_API_ADDR'),
    edge: serviceAddress(env, 'edge', 'grpc', 9091, 'EDGE_ADDR'),
    zoneWeb: `http://${serviceAddress(env, 'zone-web', 'http', 80, 'ZONE_WEB_ADDR')}`,
    zone: stringEnv(env, 'INTRUDER_ZONE', 'example.com'),
    intervalMs: intEnv(env, 'INTRUDER_INTERVAL_MS', 5_000, 100, 3_600_000),
    timeoutMs: intEnv(env, 'CALL_TIMEOUT_MS', 3_000, 100, 60_000),
    issuer: stringEnv(env, 'JWT_ISSUER', 'https://zone-web.dns.example'),
  };
}

export interface Attempt {
  attempt: string;
  target: string;
  /** A gRPC status name, or `HTTP <code>`. */
  status: string;
  denied: boolean;
}

const DENIED_GRPC = new Set([grpc.status.PERMISSION_DENIED, grpc.status.UNAUTHENTICATED]);

export class Intruder {
  readonly attempts: Attempt[] = [];
  private readonly zoneApi: ZoneServiceApi;
  private readonly edge: EdgeServiceApi;
  /** A token with every role, signed with the intruder's own key: the mesh must not accept it. */
  private readonly forged: TokenSource;
  private timer: NodeJS.Timeout | undefined;
  private round: Promise<void> = Promise.resolve();

  constructor(
    private readonly cfg: IntruderConfig,
    private readonly log: Logger,
    private readonly onAttempt: (a: Attempt) => void = () => undefined,
  ) {
    this.zoneApi = zoneServiceClient(cfg.zoneApi, CHANNEL_OPTIONS);
    this.edge = edgeServiceClient(cfg.edge, CHANNEL_OPTIONS);
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    this.forged = new TokenSource(signingKey(privateKey.export({ format: 'pem', type: 'pkcs8' }).toString()), {
      issuer: cfg.issuer,
      audience: 'zone-api',
      subject: 'admin',
      roles: ['editor', 'admin'],
      ttlSeconds: 3600,
    });
  }

  start(): void {
    this.log.info('trying calls it may not make', { every: `${this.cfg.intervalMs}ms`, zone: this.cfg.zone, zoneApi: this.cfg.zoneApi, edge: this.cfg.edge, zoneWeb: this.cfg.zoneWeb });
    const go = (): void => {
      this.round = this.round.then(() => this.tryAll());
    };
    go();
    this.timer = setInterval(go, this.cfg.intervalMs);
  }

  private report(a: Attempt): void {
    this.attempts.push(a);
    if (this.attempts.length > 1000) this.attempts.shift();
    const fields = { attempt: a.attempt, target: a.target, status: a.status };
    if (a.denied) this.log.info('denied, as it should be', fields);
    else this.log.warn('NOT DENIED: the policies do not stop this call', fields);
    this.onAttempt(a);
  }

  private grpcOutcome(attempt: string, target: string, err: grpc.ServiceError | null): void {
    // A dropped connection (UNAVAILABLE, DEADLINE_EXCEEDED) also means the call did not get through.
    const denied = err !== null && (DENIED_GRPC.has(err.code) || err.code === grpc.status.UNAVAILABLE || err.code === grpc.status.DEADLINE_EXCEEDED);
    this.report({ attempt, target, status: err ? grpc.status[err.code] : 'OK', denied });
  }

  private md(token?: string): grpc.Metadata {
    const md = new grpc.Metadata();
    if (token) md.set('authorization', `Bearer ${token}`);
    return md;
  }

  async tryAll(): Promise<void> {
    const opts = (): grpc.CallOptions => ({ deadline: deadline(this.cfg.timeoutMs) });
    const unary = (attempt: string, token?: string): Promise<void> =>
      new Promise((resolve) => {
        this.zoneApi.DeleteZone({ zone: this.cfg.zone }, this.md(token), opts(), (err) => {
          this.grpcOutcome(attempt, 'zone-api', err);
          resolve();
        });
      });
    await unary('DeleteZone without a JWT');
    await unary('DeleteZone with a forged admin JWT', this.forged.token());
    await new Promise<void>((resolve) => {
      const call = this.zoneApi.UpsertRecords(this.md(), opts(), (err) => {
        this.grpcOutcome('UpsertRecords without a JWT', 'zone-api', err);
        resolve();
      });
      call.write({ zone: this.cfg.zone, changes: [{ op: 'REPLACE', record: { name: `pwned.${this.cfg.zone}`, type: 'TXT', ttl: 60, data: 'owned by the intruder' } }] });
      call.end();
    });
    await new Promise<void>((resolve) => {
      const call = this.edge.PushZone(this.md(), opts(), (err) => {
        this.grpcOutcome('PushZone (poison the edge)', 'edge', err);
        resolve();
      });
      // Serial 1 is older than any real one: an edge that took it anyway keeps its newer zone.
      call.write({ header: { zone: this.cfg.zone, serial: 1, deleted: false, recordCount: 1 } });
      call.write({ records: { records: [{ name: `www.${this.cfg.zone}`, type: 'A', ttl: 60, data: '203.0.113.66' }] } });
      call.end();
    });
    try {
      const res = await fetch(`${this.cfg.zoneWeb}/api/zones/${encodeURIComponent(this.cfg.zone)}`, { method: 'DELETE', signal: AbortSignal.timeout(this.cfg.timeoutMs) });
      await res.arrayBuffer();
      this.report({ attempt: 'DELETE zone through zone-web', target: 'zone-web', status: `HTTP ${res.status}`, denied: res.status === 401 || res.status === 403 });
    } catch (e) {
      this.report({ attempt: 'DELETE zone through zone-web', target: 'zone-web', status: (e as Error).name === 'TimeoutError' ? 'timeout' : 'unreachable', denied: true });
    }
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.round;
    this.zoneApi.close();
    this.edge.close();
  }
}
