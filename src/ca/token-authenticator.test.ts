// Tests for the bootstrap TokenRegistry and bearer-token parsing.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Metadata } from '@grpc/grpc-js';
import { CaError } from './ca-error.ts';
import { TokenRegistry } from './token-authenticator.ts';

const md = (...values: string[]) => {
  const m = new Metadata();
  for (const v of values) m.add('authorization', v);
  return m;
};
const unauthenticated = (e: unknown) => e instanceof CaError && e.code === 'UNAUTHENTICATED';

describe('TokenRegistry', () => {
  it('issues 32-byte base64url tokens that map to their identity', () => {
    const r = new TokenRegistry();
    const a = r.issue({ namespace: 'shop', serviceAccount: 'api' });
    const b = r.issue({ namespace: 'shop', serviceAccount: 'db' });
    assert.match(a, /^[A-Za-z0-9_-]{43}$/);
    assert.notEqual(a, b);
    assert.deepEqual(r.authenticate(md(`Bearer ${a}`)), { namespace: 'shop', serviceAccount: 'api' });
    assert.deepEqual(r.authenticate(md(`bearer ${b}`)), { namespace: 'shop', serviceAccount: 'db' });
  });

  it('refuses missing, duplicated, malformed, unknown and revoked tokens', () => {
    const r = new TokenRegistry();
    const a = r.issue({ namespace: 'shop', serviceAccount: 'api' });
    assert.throws(() => r.authenticate(md()), unauthenticated);
    assert.throws(() => r.authenticate(md(`Bearer ${a}`, `Bearer ${a}`)), unauthenticated);
    assert.throws(() => r.authenticate(md(a)), unauthenticated);
    assert.throws(() => r.authenticate(md(`Bearer ${a.slice(0, -1)}`)), unauthenticated);
    assert.throws(() => r.authenticate(md(`Bearer ${'x'.repeat(5000)}`)), unauthenticated);
    assert.equal(r.revoke(a), true);
    assert.equal(r.revoke(a), false);
    assert.throws(() => r.authenticate(md(`Bearer ${a}`)), unauthenticated);
    r.issue({ namespace: 'shop', serviceAccount: 'api' });
    r.issue({ namespace: 'shop', serviceAccount: 'api' });
    assert.equal(r.revokeIdentity({ namespace: 'shop', serviceAccount: 'api' }), 2);
  });

  it('refuses to issue for names that are not Kubernetes names', () => {
    assert.throws(() => new TokenRegistry().issue({ namespace: 'UPPER', serviceAccount: 'x' }), (e: unknown) => e instanceof CaError && e.code === 'INVALID_IDENTITY');
  });
});
