// The Trellis certificate authority's public API for the control plane, the runtime and the proxy.
export { CaError, type CaErrorCode } from './ca-error.ts';
export { DEFAULT_TRUST_DOMAIN, validateTrustDomain } from './trust-domain.ts';
export { parseSpiffeId, spiffeId, validateIdentity, type Identity, type ParsedSpiffeId } from './spiffe-id.ts';
export {
  CertificateAuthority,
  DEFAULT_WORKLOAD_TTL_MS,
  type CertificateAuthorityOptions,
  type IssuedCertificate,
} from './certificate-authority.ts';
export { type CaServer, type CaServerOptions } from './ca-server.ts';
export { CA_SERVER_IDENTITY, ServingCertificateProvider } from './serving-certificate.ts';
export { TokenRegistry, bearerToken, type Authenticator } from './token-authenticator.ts';
export { createCsr, validateCsr } from './csr.ts';
export { CLOCK_SKEW_MS } from './issue-certificate.ts';
export { WorkloadCertificateClient, uriSans, type WorkloadCertificate, type WorkloadCertificateClientOptions } from './certificate-client.ts';
export { CertificateRotator, type CertificateRotatorOptions, type CertificateSource } from './certificate-rotator.ts';
export {
  CERT_CHAIN_FILE,
  KEY_FILE,
  ROOT_CERT_FILE,
  readCertificateFiles,
  writeCertificateFiles,
  type CertificateFiles,
} from './certificate-files.ts';
