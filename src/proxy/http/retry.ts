// Which upstream results a RetryPolicy retries (Envoy's retry_on words, including the gRPC ones read from
// grpc-status in response headers), and the jittered exponential backoff between tries.
import type { RetryPolicy } from '../../routing/model.ts';
import type { FailureKind } from './upstream-pool.ts';

const GRPC_RETRY_ON: Readonly<Record<string, number>> = {
  cancelled: 1,
  'deadline-exceeded': 4,
  'resource-exhausted': 8,
  internal: 13,
  unavailable: 14,
};

/** A response (its status, and grpc-status when the headers carry one) that the policy retries. */
export function retriableResponse(policy: RetryPolicy, status: number, grpcStatus: number | undefined): boolean {
  for (const on of policy.retryOn) {
    switch (on) {
      case '5xx':
        if (status >= 500) return true;
        break;
      case 'gateway-error':
        if (status === 502 || status === 503 || status === 504) return true;
        break;
      case 'retriable-4xx':
        if (status === 409) return true;
        break;
      case 'retriable-status-codes':
        if (policy.retriableStatusCodes?.includes(status)) return true;
        break;
      default: {
        const code = GRPC_RETRY_ON[on];
        if (code !== undefined && grpcStatus === code) return true;
      }
    }
  }
  return false;
}

/** A failure before any response (connect failure, refused stream, reset, per-try timeout) that the policy retries. */
export function retriableFailure(policy: RetryPolicy, kind: FailureKind): boolean {
  if (kind === 'overflow') return false;
  for (const on of policy.retryOn) {
    if (on === '5xx' || on === 'gateway-error') return true;
    if (on === 'reset' && (kind === 'reset' || kind === 'timeout' || kind === 'connect-failure')) return true;
    if (on === 'connect-failure' && kind === 'connect-failure') return true;
    if (on === 'refused-stream' && kind === 'refused-stream') return true;
  }
  return false;
}

const BASE_MS = 25;
const MAX_MS = 250;

/** Full-jitter exponential backoff before retry number `n` (1-based): random in [0, min(250, 25·(2^n − 1))) ms. */
export function backoffMs(n: number, random: number = Math.random()): number {
  return Math.floor(random * Math.min(MAX_MS, BASE_MS * (2 ** n - 1)));
}
