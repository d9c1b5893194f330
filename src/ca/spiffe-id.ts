// SPIFFE IDs for workloads: spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>, built and parsed strictly.
import { CaError } from './ca-error.ts';
import { validateTrustDomain } from './trust-domain.ts';

/** Who a workload is: a Kubernetes service account in a namespace. */
export interface Identity {
  namespace: string;
  serviceAccount: string;
}

export interface ParsedSpiffeId extends Identity {
  trustDomain: string;
}

// Namespaces are DNS-1123 labels; service accounts are DNS-1123 subdomains.
const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** Throws CaError INVALID_IDENTITY unless the namespace and service account are valid Kubernetes names. */
export function validateIdentity(identity: Identity): Identity {
  const { namespace, serviceAccount } = identity;
  if (typeof namespace !== 'string' || namespace.length > 63 || !DNS1123_LABEL.test(namespace)) {
    throw new CaError('INVALID_IDENTITY', `namespace ${JSON.stringify(namespace)} must be a DNS-1123 label`);
  }
  if (typeof serviceAccount !== 'string' || serviceAccount.length > 253 || !DNS1123_SUBDOMAIN.test(serviceAccount)) {
    throw new CaError('INVALID_IDENTITY', `service account ${JSON.stringify(serviceAccount)} must be a DNS-1123 subdomain`);
  }
  return identity;
}

/** The SPIFFE ID of a workload identity in a trust domain. */
export function spiffeId(trustDomain: string, identity: Identity): string {
  validateTrustDomain(trustDomain);
  validateIdentity(identity);
  return `spiffe://${trustDomain}/ns/${identity.namespace}/sa/${identity.serviceAccount}`;
}

/** Parses a workload SPIFFE ID; anything else (other paths, query, port, userinfo) is refused. */
export function parseSpiffeId(uri: string): ParsedSpiffeId {
  const bad = (why: string): CaError => new CaError('INVALID_SPIFFE_ID', `${JSON.stringify(uri)} is not a workload SPIFFE ID: ${why}`);
  if (typeof uri !== 'string' || uri.length > 2048) throw bad('too long');
  const m = /^spiffe:\/\/([^/]+)\/ns\/([^/]+)\/sa\/([^/]+)$/.exec(uri);
  if (!m) throw bad('expected spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>');
  const [, trustDomain = '', namespace = '', serviceAccount = ''] = m;
  try {
    validateTrustDomain(trustDomain);
    validateIdentity({ namespace, serviceAccount });
  } catch (err) {
    throw bad((err as Error).message);
  }
  return { trustDomain, namespace, serviceAccount };
}
