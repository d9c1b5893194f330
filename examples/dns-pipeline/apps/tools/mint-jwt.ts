// Prints a JWT for calling zone-api through the mesh by hand (grpcurl, curl to zone-web), signed with the
// example's demo key: node --import tsx apps/tools/mint-jwt.ts [--role admin] [--sub alice] [--ttl 3600]
import { parseArgs } from 'node:util';
import { signingKeyFromEnv, TokenSource } from '../lib/jwt.ts';

const { values } = parseArgs({
  options: {
    role: { type: 'string', multiple: true },
    sub: { type: 'string', default: 'ops' },
    ttl: { type: 'string', default: '3600' },
    issuer: { type: 'string', default: process.env.JWT_ISSUER ?? 'https://zone-web.dns.example' },
    audience: { type: 'string', default: process.env.JWT_AUDIENCE ?? 'zone-api' },
    jwks: { type: 'boolean', default: false },
  },
});
const env = { ...process.env, JWT_SIGNING_KEY_FILE: process.env.JWT_SIGNING_KEY_FILE ?? new URL('../../keys/demo-signing-key.pem', import.meta.url).pathname };
const key = signingKeyFromEnv(env);
const roles = values.role ?? ['editor'];
// An admin may do what an editor may.
if (roles.includes('admin') && !roles.includes('editor')) roles.unshift('editor');
process.stdout.write(`${new TokenSource(key, { issuer: values.issuer, audience: values.audience, subject: values.sub, roles, ttlSeconds: Number(values.ttl) }).token()}\n`);
