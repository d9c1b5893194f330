// The observe layer's one error type (flow ring, audit log, flow building): a code for programs, a message for people.

export type ObserveErrorCode =
  /** A ring capacity that is not a power of two in range, or another invalid option. */
  | 'bad-option'
  /** The audit log file or its directory could not be opened. */
  | 'open-failed'
  /** The audit log was used after close(). */
  | 'closed'
  /** A FlowFilter (or GetFlows request) that cannot be understood. */
  | 'bad-filter'
  /** An Observer endpoint could not be reached or answered with an error. */
  | 'unavailable';

export class ObserveError extends Error {
  readonly code: ObserveErrorCode;
  constructor(code: ObserveErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ObserveError';
    this.code = code;
  }
}
