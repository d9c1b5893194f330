// Makes a new demo signing key: writes keys/demo-signing-key.pem and keys/jwks.json, and prints the JWKS to put
// inline in manifests/security.yaml (RequestAuthentication) and the key to put in manifests/configmaps.yaml (Secret).
import { generateKeyPairSync } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { jwksOf, signingKey } from '../lib/jwt.ts';

const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const pem = privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
const jwks = JSON.stringify(jwksOf(signingKey(pem)));
writeFileSync(new URL('../../keys/demo-signing-key.pem', import.meta.url), pem, { mode: 0o600 });
writeFileSync(new URL('../../keys/jwks.json', import.meta.url), `${jwks}\n`);
process.stdout.write(`${jwks}\n\n${pem}`);
