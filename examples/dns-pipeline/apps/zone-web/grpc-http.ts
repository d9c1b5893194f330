// How zone-web reports a gRPC failure over HTTP: the status code's HTTP counterpart and a JSON body.
import { status, type ServiceError } from '@grpc/grpc-js';

const HTTP: Partial<Record<status, number>> = {
  [status.INVALID_ARGUMENT]: 400,
  [status.FAILED_PRECONDITION]: 400,
  [status.OUT_OF_RANGE]: 400,
  [status.NOT_FOUND]: 404,
  [status.ALREADY_EXISTS]: 409,
  [status.PERMISSION_DENIED]: 403,
  [status.UNAUTHENTICATED]: 401,
  [status.RESOURCE_EXHAUSTED]: 429,
  [status.UNIMPLEMENTED]: 501,
  [status.UNAVAILABLE]: 503,
  [status.DEADLINE_EXCEEDED]: 504,
  [status.CANCELLED]: 499,
};

export function httpStatusOf(code: status): number {
  return HTTP[code] ?? 502;
}

export function errorBody(e: ServiceError | { code: status; details: string }): { error: { code: string; message: string } } {
  return { error: { code: status[e.code] ?? 'UNKNOWN', message: e.details } };
}
