// Local-mode JWKS: reads `jwksUri: file:///…` into the rule's inline `jwks` before policies are compiled, and warns
// about http(s) JWKS, which are not fetched (tokens of such issuers cannot be verified, so they are rejected).
import { readFileSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { formatPath, type Diagnostic } from '../resources/diagnostics.ts';
import type { Resource } from '../resources/kinds.ts';
import type { JwtRule, RequestAuthentication } from '../resources/kinds-security.ts';
import { jwksProblem } from '../resources/validate-authentication.ts';

/** A JWKS file larger than this is refused. */
export const MAX_JWKS_FILE_BYTES = 1024 * 1024;

export interface JwksFileReader {
  /** The file's text; throws when it cannot be read. */
  read(path: string): string;
}

const fsReader: JwksFileReader = {
  read(path) {
    const st = statSync(path);
    if (!st.isFile()) throw new Error('is not a regular file');
    if (st.size > MAX_JWKS_FILE_BYTES) throw new Error(`is larger than ${MAX_JWKS_FILE_BYTES} bytes`);
    return readFileSync(path, 'utf8');
  },
};

/**
 * Returns the resources with every `file://` JWKS inlined (RequestAuthentications are copied, never mutated), and a
 * located diagnostic for each file that is missing or not a valid JWKS (error) and each remote JWKS (warning).
 */
export function resolveJwksFiles(resources: readonly Resource[], reader: JwksFileReader = fsReader): { resources: Resource[]; diagnostics: Diagnostic[] } {
  const diagnostics: Diagnostic[] = [];
  const out = resources.map((r) => {
    if (r.kind !== 'RequestAuthentication') return r;
    let changed = false;
    const rules = r.spec.jwtRules.map((rule) => {
      const resolved = resolveRule(r, rule, reader, diagnostics);
      if (resolved !== rule) changed = true;
      return resolved;
    });
    return changed ? { ...r, spec: { ...r.spec, jwtRules: rules } } : r;
  });
  return { resources: out, diagnostics };
}

function resolveRule(ra: RequestAuthentication, rule: JwtRule, reader: JwksFileReader, diagnostics: Diagnostic[]): JwtRule {
  const uri = rule.jwksUri;
  if (uri === undefined || (rule.jwks !== undefined && rule.jwks !== '')) return rule;
  const path = [...rule.path, 'jwksUri'];
  const report = (severity: Diagnostic['severity'], code: string, message: string): void => {
    diagnostics.push({ severity, code, message, location: ra.origin.locate(path), resource: `RequestAuthentication ${ra.metadata.namespace ?? 'default'}/${ra.metadata.name}`, field: formatPath(path) });
  };
  if (!uri.startsWith('file:')) {
    report('warning', 'jwks-not-fetched', `${uri} is not fetched (no network access to JWKS): tokens of issuer ${rule.issuer} cannot be verified and are rejected; inline the keys with jwks or use a file:/// URI`);
    return rule;
  }
  let file: string;
  try {
    file = fileURLToPath(uri);
  } catch (e) {
    report('error', 'invalid-value', `"${uri}" is not a local file URL: ${(e as Error).message}`);
    return rule;
  }
  let text: string;
  try {
    text = reader.read(file);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    const why = err.code === 'ENOENT' ? 'no such file' : err.code === 'EACCES' ? 'permission denied' : err.message;
    report('error', 'not-found', `JWKS file ${file}: ${why}`);
    return rule;
  }
  const problem = jwksProblem(text);
  if (problem) {
    report('error', 'invalid-value', `JWKS file ${file} is not a valid JWKS: ${problem}`);
    return rule;
  }
  return { ...rule, jwks: text };
}
