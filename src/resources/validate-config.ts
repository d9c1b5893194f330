// Validation of ConfigMaps and Secrets by the API server's rules: names, keys, base64, sizes and Secret types.
import type { Checker, Json } from './checker.ts';
import type { FieldPath, Origin } from './kinds.ts';
import type { ConfigMap, Secret } from './kinds-container.ts';
import { dnsSubdomainProblem, objectMeta } from './validate-common.ts';

/** The API's limit on the data of one ConfigMap or Secret. */
export const MAX_CONFIG_SIZE = 1024 * 1024;
const KEY = /^[-._a-zA-Z0-9]+$/;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** A ConfigMap or Secret key: at most 253 of `[-._a-zA-Z0-9]`, not `.` or `..`, not starting with `..`. */
export function configMapKeyProblem(key: string): string | undefined {
  if (key.length > 253) return `key "${key.slice(0, 20)}…" must be no more than 253 characters`;
  if (!KEY.test(key)) return `key "${key}" must consist of alphanumeric characters, "-", "_" or "."`;
  if (key === '.' || key === '..') return `key must not be "${key}"`;
  if (key.startsWith('..')) return `key "${key}" must not start with ".."`;
  return undefined;
}

function nameCheck(c: Checker, name: string): void {
  if (name === '') return; // objectMeta reported it
  const p = dnsSubdomainProblem(name);
  if (p) c.error(['metadata', 'name'], p, 'invalid-name');
}

function keys(c: Checker, o: Json | undefined, path: FieldPath): void {
  for (const k of Object.keys(o ?? {})) {
    const p = configMapKeyProblem(k);
    if (p) c.error([...path, k], p, 'invalid-key', 'key');
  }
}

/** Decodes standard base64 with padding, as the API's JSON decoding of `[]byte` fields does (line breaks are ignored). */
function base64(c: Checker, v: unknown, path: FieldPath): Uint8Array | undefined {
  const s = c.string(v, path);
  if (s === undefined) return undefined;
  const clean = s.replace(/[\r\n]/g, '');
  if (clean.length % 4 !== 0 || !BASE64.test(clean)) {
    c.error(path, 'must be base64-encoded (use stringData for plain text)', 'invalid-base64');
    return undefined;
  }
  return new Uint8Array(Buffer.from(clean, 'base64'));
}

function immutable(c: Checker, obj: Json): boolean | undefined {
  return c.boolean(obj.immutable, ['immutable']);
}

export function readConfigMap(c: Checker, obj: Json, origin: Origin): ConfigMap | undefined {
  const metadata = objectMeta(c, obj, true, 'ConfigMap');
  if (!metadata) return undefined;
  nameCheck(c, metadata.name);
  const dataObj = c.object(obj.data, ['data']);
  const data = c.stringMap(dataObj, ['data']);
  keys(c, dataObj, ['data']);
  const binObj = c.object(obj.binaryData, ['binaryData']);
  const binaryData: Record<string, Uint8Array> = {};
  keys(c, binObj, ['binaryData']);
  let size = 0;
  for (const v of Object.values(data)) size += Buffer.byteLength(v);
  for (const [k, v] of Object.entries(binObj ?? {})) {
    const b = base64(c, v, ['binaryData', k]);
    if (!b) continue;
    binaryData[k] = b;
    size += b.length;
    if (k in data) c.error(['binaryData', k], 'duplicate of key present in data', 'duplicate', 'key');
  }
  if (size > MAX_CONFIG_SIZE) c.error([], `ConfigMap data must be no more than ${MAX_CONFIG_SIZE} bytes (has ${size})`, 'too-long');
  const out: ConfigMap = { kind: 'ConfigMap', apiVersion: String(obj.apiVersion), metadata, origin, data, binaryData };
  const imm = immutable(c, obj);
  if (imm !== undefined) out.immutable = imm;
  return out;
}

/** Keys each built-in Secret type must carry. */
function typeChecks(c: Checker, type: string, data: Record<string, Uint8Array>, written: Map<string, FieldPath>, annotations: Record<string, string>): void {
  // A key that is written but invalid has been reported already.
  const need = (key: string): boolean => {
    if (key in data) return true;
    if (!written.has(key)) c.error(['data'], `is missing key "${key}", required for type ${type}`, 'required');
    return false;
  };
  const json = (key: string): void => {
    if (!need(key)) return;
    try {
      const parsed: unknown = JSON.parse(Buffer.from(data[key] ?? new Uint8Array()).toString('utf8'));
      if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error('not an object');
    } catch {
      c.error(written.get(key) ?? ['data', key], `must be a JSON object for type ${type}`);
    }
  };
  switch (type) {
    case 'kubernetes.io/service-account-token':
      if (!annotations['kubernetes.io/service-account.name']) c.error(['metadata', 'annotations'], 'kubernetes.io/service-account.name is required for type kubernetes.io/service-account-token', 'required');
      break;
    case 'kubernetes.io/dockercfg':
      json('.dockercfg');
      break;
    case 'kubernetes.io/dockerconfigjson':
      json('.dockerconfigjson');
      break;
    case 'kubernetes.io/basic-auth':
      if (!('username' in data) && !('password' in data)) c.error(['data'], 'must have at least one of the keys "username" and "password" for type kubernetes.io/basic-auth', 'required');
      break;
    case 'kubernetes.io/ssh-auth':
      if ((data['ssh-privatekey']?.length ?? 0) === 0) c.error(['data'], 'is missing key "ssh-privatekey", required for type kubernetes.io/ssh-auth', 'required');
      break;
    case 'kubernetes.io/tls':
      need('tls.crt');
      need('tls.key');
      break;
    default:
      break;
  }
}

export function readSecret(c: Checker, obj: Json, origin: Origin): Secret | undefined {
  const metadata = objectMeta(c, obj, true, 'Secret');
  if (!metadata) return undefined;
  nameCheck(c, metadata.name);
  const type = c.string(obj.type, ['type']) || 'Opaque';
  const dataObj = c.object(obj.data, ['data']);
  keys(c, dataObj, ['data']);
  const data: Record<string, Uint8Array> = {};
  const written = new Map<string, FieldPath>();
  for (const [k, v] of Object.entries(dataObj ?? {})) {
    written.set(k, ['data', k]);
    const b = base64(c, v, ['data', k]);
    if (b) data[k] = b;
  }
  const sdObj = c.object(obj.stringData, ['stringData']);
  keys(c, sdObj, ['stringData']);
  for (const [k, v] of Object.entries(c.stringMap(sdObj, ['stringData']))) {
    data[k] = new Uint8Array(Buffer.from(v, 'utf8'));
    written.set(k, ['stringData', k]);
  }
  let size = 0;
  for (const v of Object.values(data)) size += v.length;
  if (size > MAX_CONFIG_SIZE) c.error([], `Secret data must be no more than ${MAX_CONFIG_SIZE} bytes (has ${size})`, 'too-long');
  typeChecks(c, type, data, written, metadata.annotations);
  const out: Secret = { kind: 'Secret', apiVersion: String(obj.apiVersion), metadata, origin, type, data };
  const imm = immutable(c, obj);
  if (imm !== undefined) out.immutable = imm;
  return out;
}
