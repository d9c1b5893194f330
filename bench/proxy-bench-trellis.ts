// Starts Trellis in front of one benchmark upstream, for bench/proxy-bench.ts. The proxy engineers fill this in:
// `two-hop` is a client-side proxy (outbound listener) and a server-side proxy (inbound listener) with mesh mTLS
// between them, L7 policy on and flows on; `one-hop` is the server-side proxy alone. The returned url speaks the
// upstream's protocol (HTTP/1.1, h2c or gRPC over h2c); pids are every proxy process (CPU and RSS are read from
// them, not from helpers such as a control plane, which should be left out of pids). Until then it throws
// TrellisNotAvailable and the benchmark reports the Trellis rows as missing.
import type { BenchUpstream, RunningProxy } from './proxy-bench-types.ts';

export type TrellisMode = 'one-hop' | 'two-hop';

export class TrellisNotAvailable extends Error {
  readonly code = 'not-available';
  constructor(mode: TrellisMode) {
    super(`Trellis ${mode} is not available yet: bench/proxy-bench-trellis.ts does not start the proxy`);
    this.name = 'TrellisNotAvailable';
  }
}

export function startTrellis(mode: TrellisMode, upstream: BenchUpstream): Promise<RunningProxy> {
  void upstream;
  return Promise.reject(new TrellisNotAvailable(mode));
}
