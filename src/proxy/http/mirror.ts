// Request mirroring (Envoy's request_mirror_policies, Istio's mirror): a sampled, fire-and-forget copy of the
// request to another cluster with `-shadow` appended to the authority; its response is read and dropped, and its
// body copy is abandoned as soon as it lags (bounded by the retry buffer).
import type { RequestOutcome, UpstreamCluster, UpstreamHost } from '../contracts.ts';
import type { EngineContext } from './engine-context.ts';
import type { HeaderRecord } from './headers.ts';
import type { RequestBody } from './request-body.ts';
import type { Failure } from './upstream-pool.ts';
import { H1Attempt, H2Attempt, type Attempt, type AttemptOwner } from './upstream-request.ts';

class MirrorOwner implements AttemptOwner {
  private status = 0;
  private ended = false;
  constructor(
    private readonly cluster: UpstreamCluster,
    private readonly host: UpstreamHost,
    private readonly body: RequestBody | undefined,
  ) {}

  onAttemptReady(a: Attempt): void {
    if (this.body && a.sink) this.body.tee(a.sink);
  }
  onAttemptHeaders(a: Attempt, status: number, _h: unknown, endStream: boolean): void {
    this.status = status;
    if (endStream) this.end(status >= 500 ? 'gateway-error' : 'success');
    else a.body?.resume();
  }
  onAttemptEnd(): void {
    this.end(this.status >= 500 ? (this.status >= 502 && this.status <= 504 ? 'gateway-error' : '5xx') : 'success');
  }
  onAttemptError(_a: Attempt, f: Failure): void {
    this.end(f.kind === 'overflow' ? 'success' : f.kind === 'connect-failure' ? 'connect-failure' : 'gateway-error');
  }
  private end(outcome: RequestOutcome): void {
    if (this.ended) return;
    this.ended = true;
    this.cluster.endRequest(this.host, outcome);
  }
}

function shadowAuthority(authority: string): string {
  const m = /^(.*?)(:\d+)?$/.exec(authority)!;
  return `${m[1]}-shadow${m[2] ?? ''}`;
}

export function startMirror(
  ctx: EngineContext,
  mirror: { cluster: string; percent: number },
  headers: HeaderRecord,
  method: string,
  path: string,
  authority: string,
  body: RequestBody | undefined,
  localAddress: string | undefined,
): void {
  if (mirror.percent < 100 && Math.random() * 100 >= mirror.percent) return;
  if (body && !body.replayable) return;
  const cluster = ctx.clusters.get(mirror.cluster);
  const host = cluster?.pick({});
  if (!cluster || !host || !cluster.tryBeginRequest(host)) return;
  const h: HeaderRecord = {};
  for (const k in headers) if (k.charCodeAt(0) !== 58 && k !== 'host' && headers[k] !== undefined) h[k] = headers[k];
  const shadow = shadowAuthority(authority);
  const owner = new MirrorOwner(cluster, host, body);
  let a: Attempt;
  if (cluster.spec.http2 || headers[':method'] !== undefined) {
    Object.assign(h, { ':method': method, ':path': path, ':authority': shadow, ':scheme': 'http' });
    a = new H2Attempt(owner, ctx.pool, cluster, host, localAddress, h, body === undefined);
  } else {
    h.host = shadow;
    a = new H1Attempt(owner, ctx.pool.agentFor(cluster, host, localAddress), host, method, path, h, body !== undefined);
  }
  a.start();
}
