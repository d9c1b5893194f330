// The certificate authority's single error type: every failure in src/ca carries one of these codes.

export type CaErrorCode =
  | 'INVALID_TRUST_DOMAIN'
  | 'INVALID_SPIFFE_ID'
  | 'INVALID_IDENTITY'
  | 'INVALID_CSR'
  | 'INVALID_CA_MATERIAL'
  | 'INVALID_STATE'
  | 'INVALID_ARGUMENT'
  | 'UNAUTHENTICATED'
  | 'ISSUE_FAILED'
  | 'RPC_FAILED';

export class CaError extends Error {
  readonly code: CaErrorCode;

  constructor(code: CaErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'CaError';
    this.code = code;
  }
}
