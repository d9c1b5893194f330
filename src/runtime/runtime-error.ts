// The local runtime's single error type: every failure in src/runtime carries one of these codes.
import type { Diagnostic } from '../resources/diagnostics.ts';

export type RuntimeErrorCode =
  | 'INVALID_ARGUMENT'
  | 'CONTAINER_CONFIG'
  | 'ADDRESS_PLAN'
  | 'STATE_FILE'
  | 'SPAWN_FAILED'
  | 'DNS_BIND'
  | 'DNS_MESSAGE';

export class RuntimeError extends Error {
  readonly code: RuntimeErrorCode;
  /** Located problems in the manifests, when the error comes from them. */
  readonly diagnostics: Diagnostic[];

  constructor(code: RuntimeErrorCode, message: string, options?: { cause?: unknown; diagnostics?: Diagnostic[] }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'RuntimeError';
    this.code = code;
    this.diagnostics = options?.diagnostics ?? [];
  }
}
