// The gRPC CSR service (trellis.ca.v1.CertificateService) over TLS on loopback: authenticate, validate, sign.
import * as grpc from '@grpc/grpc-js';
import { CaError } from './ca-error.ts';
import { certificateServiceDefinition, type CreateCertificateRequest, type CreateCertificateResponse } from './ca-proto.ts';
import type { CertificateAuthority } from './certificate-authority.ts';
import { MAX_CSR_BYTES } from './csr.ts';
import { hostPort, requireLoopback } from './loopback.ts';
import { ServingCertificateProvider } from './serving-certificate.ts';
import type { Authenticator } from './token-authenticator.ts';

export interface CaServerOptions {
  host: string;
  /** 0 picks a free port. */
  port: number;
  authenticator: Authenticator;
  /** Told about failures that have no caller to report to (renewing the server's own certificate). */
  onError?: (err: unknown) => void;
}

export interface CaServer {
  host: string;
  port: number;
  /** host:port for a gRPC client. */
  target: string;
  close(): Promise<void>;
}

/** Request bound: a CSR plus framing. */
const MAX_REQUEST_BYTES = MAX_CSR_BYTES + 1024;
const MAX_RESPONSE_BYTES = 64 * 1024;

export async function startCaServer(ca: CertificateAuthority, options: CaServerOptions): Promise<CaServer> {
  const host = requireLoopback(options.host);
  if (!Number.isInteger(options.port) || options.port < 0 || options.port > 65535) {
    throw new CaError('INVALID_ARGUMENT', `port must be 0-65535, got ${options.port}`);
  }
  const onError = options.onError ?? (() => {});
  const provider = await ServingCertificateProvider.start((csr, id) => ca.issue(csr, id), onError);
  const server = new grpc.Server({
    'grpc.max_receive_message_length': MAX_REQUEST_BYTES,
    'grpc.max_send_message_length': MAX_RESPONSE_BYTES,
    'grpc.max_concurrent_streams': 100,
  });
  server.addService(certificateServiceDefinition(), {
    CreateCertificate: (
      call: grpc.ServerUnaryCall<CreateCertificateRequest, CreateCertificateResponse>,
      callback: grpc.sendUnaryData<CreateCertificateResponse>,
    ) => {
      createCertificate(ca, options.authenticator, call).then(
        (res) => callback(null, res),
        (err: unknown) => callback(toStatus(err)),
      );
    },
  });
  // grpc-js names this function's first parameter the CA provider, but passes it on as the identity provider;
  // the second (client CA) is null because callers authenticate with tokens, not client certificates.
  const credentials = grpc.experimental.createCertificateProviderServerCredentials(provider, null, false);
  let port: number;
  try {
    port = await new Promise<number>((resolve, reject) => {
      server.bindAsync(hostPort(host, options.port), credentials, (err, p) => (err ? reject(err) : resolve(p)));
    });
  } catch (err) {
    provider.close();
    throw new CaError('INVALID_ARGUMENT', `cannot listen on ${hostPort(host, options.port)}: ${(err as Error).message}`, { cause: err });
  }
  return {
    host,
    port,
    target: hostPort(host, port),
    close: () =>
      new Promise<void>((resolve) => {
        provider.close();
        const force = setTimeout(() => server.forceShutdown(), 2000);
        server.tryShutdown(() => {
          clearTimeout(force);
          resolve();
        });
      }),
  };
}

async function createCertificate(
  ca: CertificateAuthority,
  authenticator: Authenticator,
  call: grpc.ServerUnaryCall<CreateCertificateRequest, CreateCertificateResponse>,
): Promise<CreateCertificateResponse> {
  let identity;
  try {
    identity = await authenticator.authenticate(call.metadata);
  } catch (err) {
    throw err instanceof CaError && err.code === 'UNAUTHENTICATED' ? err : new CaError('UNAUTHENTICATED', 'authentication failed', { cause: err });
  }
  const { csr, validity_seconds } = call.request;
  const seconds = Number(validity_seconds || '0');
  if (!Number.isSafeInteger(seconds) || seconds < 0) throw new CaError('INVALID_ARGUMENT', `validity_seconds must be 0 or positive, got ${validity_seconds}`);
  const issued = await ca.issue(csr, identity, seconds === 0 ? undefined : Math.min(seconds, ca.maxWorkloadTtlMs / 1000) * 1000);
  return { cert_chain: [...issued.certChain, issued.rootCert] };
}

function toStatus(err: unknown): Partial<grpc.StatusObject> {
  if (err instanceof CaError) {
    const code =
      err.code === 'UNAUTHENTICATED'
        ? grpc.status.UNAUTHENTICATED
        : err.code === 'INVALID_CSR' || err.code === 'INVALID_ARGUMENT' || err.code === 'INVALID_IDENTITY'
          ? grpc.status.INVALID_ARGUMENT
          : grpc.status.INTERNAL;
    return { code, details: err.message };
  }
  return { code: grpc.status.INTERNAL, details: 'internal error' };
}
