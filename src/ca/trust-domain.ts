// The trust domain: the name of the identity namespace a Trellis CA vouches for (SPIFFE's trust domain).
import { CaError } from './ca-error.ts';

export const DEFAULT_TRUST_DOMAIN = 'cluster.local';

// SPIFFE ID spec §2.1: lowercase letters, digits, '.', '-' and '_'; at most 255 bytes.
const TRUST_DOMAIN_RE = /^[a-z0-9._-]+$/;

/** Returns the trust domain unchanged if it is valid, else throws CaError INVALID_TRUST_DOMAIN. */
export function validateTrustDomain(trustDomain: string): string {
  if (trustDomain.length === 0 || trustDomain.length > 255 || !TRUST_DOMAIN_RE.test(trustDomain)) {
    throw new CaError(
      'INVALID_TRUST_DOMAIN',
      `trust domain ${JSON.stringify(trustDomain)} must be 1-255 characters of lowercase letters, digits, '.', '-' or '_'`,
    );
  }
  return trustDomain;
}
