// Validation of security.istio.io PeerAuthentication and RequestAuthentication, following istio.io's reference.
import { describe, type Checker, type Json } from './checker.ts';
import type { FieldPath, Origin } from './kinds.ts';
import type { JwtHeader, JwtRule, MtlsMode, PeerAuthentication, RequestAuthentication } from './kinds-security.ts';
import { objectMeta } from './validate-common.ts';
import { stringList, targetRefs, workloadSelector } from './validate-security-common.ts';

const MODES: readonly MtlsMode[] = ['UNSET', 'DISABLE', 'PERMISSIVE', 'STRICT'];

function mode(c: Checker, v: unknown, path: FieldPath): MtlsMode | undefined {
  const s = c.string(v, path);
  if (s === undefined) return undefined;
  if ((MODES as readonly string[]).includes(s)) return s as MtlsMode;
  const fix = MODES.find((m) => m.toLowerCase() === s.toLowerCase());
  c.error(path, `must be one of ${MODES.join(', ')}, not "${s}"${fix ? ` (values are case-sensitive: ${fix})` : ''}`);
  return undefined;
}

export function readPeerAuthentication(c: Checker, obj: Json, origin: Origin): PeerAuthentication | undefined {
  const metadata = objectMeta(c, obj, true, 'PeerAuthentication');
  if (!metadata) return undefined;
  c.knownFields(obj, [], ['apiVersion', 'kind', 'metadata', 'spec', 'status']);
  const spec = c.object(obj.spec, ['spec']) ?? {};
  c.knownFields(spec, ['spec'], ['selector', 'mtls', 'portLevelMtls']);
  const out: PeerAuthentication['spec'] = {};
  if (spec.selector !== undefined && spec.selector !== null) {
    const sel = workloadSelector(c, spec.selector, ['spec', 'selector']);
    if (sel) out.selector = sel;
  }
  const mtls = c.object(spec.mtls, ['spec', 'mtls']);
  if (mtls) {
    c.knownFields(mtls, ['spec', 'mtls'], ['mode']);
    const m = mode(c, mtls.mode, ['spec', 'mtls', 'mode']);
    if (m) out.mtls = m;
  }
  const ports = c.object(spec.portLevelMtls, ['spec', 'portLevelMtls']);
  if (ports) {
    const pp = ['spec', 'portLevelMtls'];
    if (Object.keys(ports).length === 0) c.error(pp, 'must have at least one port when set');
    if (!out.selector || Object.keys(out.selector.matchLabels).length === 0) {
      c.error(pp, 'needs a workload selector: mesh-wide and namespace-wide policies cannot have port-level mTLS', 'invalid-value', 'key');
    }
    out.portLevelMtls = {};
    for (const [k, v] of Object.entries(ports)) {
      const n = Number(k);
      if (!/^[0-9]+$/.test(k) || n < 1 || n > 65535) c.error([...pp, k], `port "${k}" must be a number 1-65535`, 'invalid-value', 'key');
      const o = c.object(v, [...pp, k], true);
      if (!o) continue;
      c.knownFields(o, [...pp, k], ['mode']);
      const m = mode(c, o.mode, [...pp, k, 'mode']);
      if (m && /^[0-9]+$/.test(k) && n >= 1 && n <= 65535) out.portLevelMtls[n] = m;
    }
  }
  return { kind: 'PeerAuthentication', apiVersion: String(obj.apiVersion), metadata, origin, spec: out };
}

export function readRequestAuthentication(c: Checker, obj: Json, origin: Origin): RequestAuthentication | undefined {
  const metadata = objectMeta(c, obj, true, 'RequestAuthentication');
  if (!metadata) return undefined;
  c.knownFields(obj, [], ['apiVersion', 'kind', 'metadata', 'spec', 'status']);
  const spec = c.object(obj.spec, ['spec']) ?? {};
  c.knownFields(spec, ['spec'], ['selector', 'targetRef', 'targetRefs', 'jwtRules']);
  const out: RequestAuthentication['spec'] = { targetRefs: targetRefs(c, spec), jwtRules: [] };
  if (spec.selector !== undefined && spec.selector !== null) {
    const sel = workloadSelector(c, spec.selector, ['spec', 'selector']);
    if (sel) out.selector = sel;
  }
  (c.array(spec.jwtRules, ['spec', 'jwtRules']) ?? []).forEach((r, i) => {
    const rule = jwtRule(c, r, ['spec', 'jwtRules', i]);
    if (rule) out.jwtRules.push(rule);
  });
  return { kind: 'RequestAuthentication', apiVersion: String(obj.apiVersion), metadata, origin, spec: out };
}

const JWT_FIELDS = ['issuer', 'audiences', 'jwksUri', 'jwks', 'fromHeaders', 'fromParams', 'fromCookies', 'outputPayloadToHeader', 'forwardOriginalToken', 'outputClaimToHeaders', 'timeout'];
const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

function jwtRule(c: Checker, v: unknown, path: FieldPath): JwtRule | undefined {
  const o = c.object(v, path, true);
  if (!o) return undefined;
  c.knownFields(o, path, JWT_FIELDS);
  const issuer = c.string(o.issuer, [...path, 'issuer'], true) ?? '';
  if (issuer === '' && o.issuer === '') c.error([...path, 'issuer'], 'is required', 'required');
  const out: JwtRule = { issuer, audiences: stringList(c, o.audiences, [...path, 'audiences']) ?? [], fromHeaders: [], fromParams: [], forwardOriginalToken: false, path };
  const uri = c.string(o.jwksUri, [...path, 'jwksUri']);
  if (uri !== undefined && uri !== '') {
    const problem = jwksUriProblem(uri);
    if (problem) c.error([...path, 'jwksUri'], problem);
    else out.jwksUri = uri;
  }
  const jwks = c.string(o.jwks, [...path, 'jwks']);
  if (jwks !== undefined && jwks !== '') {
    const prob = jwksProblem(jwks);
    if (prob) c.error([...path, 'jwks'], `is not a valid JWKS: ${prob}`);
    else out.jwks = jwks;
    if (out.jwksUri) c.warn([...path, 'jwks'], 'both jwks and jwksUri are set: the inline jwks is used');
  }
  (c.array(o.fromHeaders, [...path, 'fromHeaders']) ?? []).forEach((h, i) => {
    const hp = [...path, 'fromHeaders', i];
    const ho = c.object(h, hp, true);
    if (!ho) return;
    c.knownFields(ho, hp, ['name', 'prefix']);
    const name = c.string(ho.name, [...hp, 'name'], true);
    if (name === '') c.error([...hp, 'name'], 'is required', 'required');
    else if (name !== undefined && !HEADER_NAME.test(name)) c.error([...hp, 'name'], `"${name}" is not a valid HTTP header name`);
    const prefix = c.string(ho.prefix, [...hp, 'prefix']);
    if (name) {
      const header: JwtHeader = { name };
      if (prefix !== undefined && prefix !== '') header.prefix = prefix;
      out.fromHeaders.push(header);
    }
  });
  out.fromParams = stringList(c, o.fromParams, [...path, 'fromParams']) ?? [];
  stringList(c, o.fromCookies, [...path, 'fromCookies']);
  const output = c.string(o.outputPayloadToHeader, [...path, 'outputPayloadToHeader']);
  if (output !== undefined && output !== '') {
    if (!HEADER_NAME.test(output)) c.error([...path, 'outputPayloadToHeader'], `"${output}" is not a valid HTTP header name`);
    else out.outputPayloadToHeader = output;
  }
  out.forwardOriginalToken = c.boolean(o.forwardOriginalToken, [...path, 'forwardOriginalToken']) ?? false;
  (c.array(o.outputClaimToHeaders, [...path, 'outputClaimToHeaders']) ?? []).forEach((h, i) => {
    const hp = [...path, 'outputClaimToHeaders', i];
    const ho = c.object(h, hp, true);
    if (!ho) return;
    c.knownFields(ho, hp, ['header', 'claim']);
    const header = c.string(ho.header, [...hp, 'header'], true);
    const claim = c.string(ho.claim, [...hp, 'claim'], true);
    if (header === '' || claim === '') c.error(hp, 'header and claim must not be empty', 'required');
    else if (header !== undefined && !HEADER_NAME.test(header)) c.error([...hp, 'header'], `"${header}" is not a valid HTTP header name`);
  });
  const timeout = c.string(o.timeout, [...path, 'timeout']);
  if (timeout !== undefined && !/^([0-9]+(\.[0-9]+)?(h|m|s|ms|us|ns))+$/.test(timeout)) c.error([...path, 'timeout'], `"${timeout}" must be a duration such as 5s`);
  return out;
}

/**
 * `jwksUri` is an http(s) URL (Istio) or, a Trellis extension for local mode, `file:///absolute/path.json`, whose
 * keys are read when the configuration is loaded.
 */
function jwksUriProblem(uri: string): string | undefined {
  let u: URL;
  try {
    u = new URL(uri);
  } catch {
    return `"${uri}" must be an http or https URL, or file:///absolute/path`;
  }
  if (u.protocol === 'https:' || u.protocol === 'http:') return u.hostname !== '' ? undefined : `"${uri}" has no host`;
  if (u.protocol === 'file:') {
    if (!/^file:\/\/(localhost)?\//i.test(uri)) return `"${uri}" must be file:///absolute/path (three slashes: no host, an absolute path)`;
    if (u.search !== '' || u.hash !== '') return `"${uri}" must not have a query or fragment`;
    if (u.pathname === '/' || u.pathname.endsWith('/')) return `"${uri}" must name a file`;
    return undefined;
  }
  return `"${uri}" must be an http or https URL, or file:///absolute/path`;
}

/** Checks an inline JWKS (RFC 7517): a JSON object with a `keys` list of objects, each with a `kty`. */
export function jwksProblem(text: string): string | undefined {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return 'not JSON';
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return `must be a JSON object with "keys", not ${describe(v)}`;
  const keys = (v as Json).keys;
  if (!Array.isArray(keys)) return '"keys" must be a list of keys';
  if (keys.length === 0) return '"keys" is empty';
  for (let i = 0; i < keys.length; i++) {
    const k: unknown = keys[i];
    if (k === null || typeof k !== 'object' || Array.isArray(k)) return `keys[${i}] must be an object`;
    const kty = (k as Json).kty;
    if (typeof kty !== 'string' || kty === '') return `keys[${i}] has no "kty"`;
    if (!['RSA', 'EC', 'oct', 'OKP'].includes(kty)) return `keys[${i}].kty "${kty}" must be RSA, EC, oct or OKP`;
  }
  return undefined;
}
