// The example apps' single error type: every failure they raise on purpose carries one of these codes.
import { status } from '@grpc/grpc-js';

export type AppErrorCode =
  | 'INVALID_CONFIG'
  | 'INVALID_ARGUMENT'
  | 'NOT_FOUND'
  | 'FAILED_PRECONDITION'
  | 'RESOURCE_EXHAUSTED'
  | 'CORRUPT_DATA'
  | 'STORAGE_FAILED';

export class AppError extends Error {
  readonly code: AppErrorCode;

  constructor(code: AppErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'AppError';
    this.code = code;
  }
}

const GRPC_STATUS: Record<AppErrorCode, status> = {
  INVALID_CONFIG: status.INTERNAL,
  INVALID_ARGUMENT: status.INVALID_ARGUMENT,
  NOT_FOUND: status.NOT_FOUND,
  FAILED_PRECONDITION: status.FAILED_PRECONDITION,
  RESOURCE_EXHAUSTED: status.RESOURCE_EXHAUSTED,
  CORRUPT_DATA: status.DATA_LOSS,
  STORAGE_FAILED: status.UNAVAILABLE,
};

/** The gRPC status a server answers with for an error (unexpected errors become INTERNAL, without details). */
export function grpcErrorOf(e: unknown): { code: status; details: string } {
  if (e instanceof AppError) return { code: GRPC_STATUS[e.code], details: e.message };
  return { code: status.INTERNAL, details: 'internal error' };
}
