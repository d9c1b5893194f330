// The proxy layer's one error type: a code for programs, a message for people.

export type ProxyErrorCode =
  /** `--node` or an address flag is malformed. */
  | 'bad-node'
  /** A configuration from xDS is invalid (it is NACKed and the last good one stays). */
  | 'bad-config'
  /** A listener could not be bound. */
  | 'bind-failed'
  /** No certificate could be obtained or read. */
  | 'no-certificate'
  /** A mesh peer's certificate does not carry the SPIFFE ID expected of it. */
  | 'peer-identity'
  /** A `trellis.extension` module could not be loaded. */
  | 'extension-failed';

export class ProxyError extends Error {
  readonly code: ProxyErrorCode;
  constructor(code: ProxyErrorCode, message: string) {
    super(message);
    this.name = 'ProxyError';
    this.code = code;
  }
}
