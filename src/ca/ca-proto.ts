// Loads trellis.ca.v1 (proto/ca.proto) with @grpc/proto-loader and types its messages.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { CaError } from './ca-error.ts';

export interface CreateCertificateRequest {
  csr: string;
  /** int64, loaded as a decimal string so no precision is lost. */
  validity_seconds: string;
}

export interface CreateCertificateResponse {
  cert_chain: string[];
}

export const CERTIFICATE_SERVICE = 'trellis.ca.v1.CertificateService';

// From src/ca (tsx) the file sits beside this module; from the compiled dist/ca it is found in the source tree.
const CANDIDATES = ['./proto/ca.proto', '../../src/ca/proto/ca.proto'];

let cached: grpc.ServiceDefinition | undefined;

/** The CertificateService definition. */
export function certificateServiceDefinition(): grpc.ServiceDefinition {
  if (cached) return cached;
  const path = CANDIDATES.map((c) => fileURLToPath(new URL(c, import.meta.url))).find((p) => existsSync(p));
  if (!path) throw new CaError('INVALID_STATE', 'proto/ca.proto not found beside the CA module');
  const pkg = protoLoader.loadSync(path, { keepCase: true, longs: String, defaults: true, enums: String });
  const def = grpc.loadPackageDefinition(pkg) as unknown as { trellis: { ca: { v1: { CertificateService: grpc.ServiceClientConstructor } } } };
  cached = def.trellis.ca.v1.CertificateService.service;
  return cached;
}
