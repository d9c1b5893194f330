// The policy snapshot resource (trellis.policy.v1.PolicySnapshot): the validated policy inputs a Trellis proxy needs
// to decide flows itself, each object as a Struct with its file and a table of field locations, so that decisions
// made in the proxy still name file:line:col. Encoded by the control plane, decoded by the proxy.
import { createHash } from 'node:crypto';
import type { Location } from '../resources/diagnostics.ts';
import type { FieldPath, Origin, Resource } from '../resources/kinds.ts';
import type { Locator } from '../resources/source.ts';
import type { PolicySnapshot } from '../proxy/proxy-config.ts';
import { fromStruct, toStruct } from './xds-struct.ts';

type Obj = Record<string, unknown>;

/** The one resource name of the snapshot type. */
export const POLICY_SNAPSHOT_NAME = 'mesh';

/** The kinds the policy engine, the authorization model and buildCluster read. */
export const POLICY_KINDS: ReadonlySet<string> = new Set([
  'Namespace', 'Node', 'Pod', 'Deployment', 'ReplicaSet', 'StatefulSet', 'DaemonSet', 'Service',
  'NetworkPolicy', 'CiliumNetworkPolicy', 'CiliumClusterwideNetworkPolicy',
  'AuthorizationPolicy', 'PeerAuthentication', 'RequestAuthentication',
]);

/** Bounds on what one object's location table holds (encode) and what a snapshot may carry (decode). */
const MAX_WALKED_PATHS = 4096;
const MAX_WALK_DEPTH = 8;
const MAX_OBJECTS = 1_000_000;

export class PolicySnapshotError extends Error {
  readonly code = 'bad-policy-snapshot';
  constructor(readonly errors: string[]) {
    super(errors.join('; '));
    this.name = 'PolicySnapshotError';
  }
}

/** `spec.ingress[0]`: string segments joined by `.` (with `\`, `.` and `[` escaped), indices as `[n]`. */
export function pathKey(path: FieldPath): string {
  let out = '';
  let first = true;
  for (const s of path) {
    if (typeof s === 'number') out += `[${s}]`;
    else out += (first ? '' : '.') + s.replace(/[\\.[]/g, (c) => `\\${c}`);
    first = false;
  }
  return out;
}

function isFieldPath(v: unknown): v is FieldPath {
  return Array.isArray(v) && v.every((s) => typeof s === 'string' || typeof s === 'number');
}

/** The field paths worth locating in one object: its typed fields, every rule path it names, and the raw names policies use. */
export function candidatePaths(r: Resource): FieldPath[] {
  const out: FieldPath[] = [[], ['kind'], ['metadata'], ['metadata', 'name'], ['metadata', 'namespace'], ['metadata', 'labels'], ['spec'], ['spec', 'rules'], ['spec', 'jwtRules'], ['spec', 'mtls'], ['spec', 'mtls', 'mode']];
  const withPrefixes = (p: FieldPath): void => {
    for (let i = 1; i <= p.length; i++) out.push(p.slice(0, i));
  };
  let walked = 0;
  const walk = (v: unknown, path: (string | number)[]): void => {
    if (walked >= MAX_WALKED_PATHS || path.length > MAX_WALK_DEPTH || v === null || typeof v !== 'object') return;
    if (Array.isArray(v)) {
      v.forEach((x, i) => {
        walked++;
        out.push([...path, i]);
        walk(x, [...path, i]);
      });
      return;
    }
    for (const [k, x] of Object.entries(v as Obj)) {
      if (k === 'origin') continue;
      if (k === 'path' && isFieldPath(x)) withPrefixes(x);
      walked++;
      out.push([...path, k]);
      walk(x, [...path, k]);
    }
  };
  walk(r, []);
  if (r.kind === 'NetworkPolicy') {
    for (const dir of ['ingress', 'egress'] as const) {
      (r.spec[dir] ?? []).forEach((rule, i) => {
        (rule.peers ?? []).forEach((_, j) => out.push(['spec', dir, i, dir === 'ingress' ? 'from' : 'to', j]));
        (rule.ports ?? []).forEach((_, j) => out.push(['spec', dir, i, 'ports', j]));
      });
    }
  }
  if (r.kind === 'PeerAuthentication') for (const port of Object.keys(r.spec.portLevelMtls ?? {})) out.push(['spec', 'portLevelMtls', port], ['spec', 'portLevelMtls', port, 'mode']);
  return out;
}

interface FieldLocation {
  value: { line: number; column: number };
  key?: { line: number; column: number };
}

const pos = (l: Location): { line: number; column: number } => ({ line: l.line, column: l.column });
const samePos = (a: { line: number; column: number }, b: { line: number; column: number }): boolean => a.line === b.line && a.column === b.column;

/**
 * The location table of one object: a path is recorded only where the nearest recorded ancestor would not already
 * give the same answer, so the table stays small and every candidate path locates exactly as the original did.
 */
export function locationTable(r: { origin: Origin } & Resource): Record<string, FieldLocation> {
  const table = new Map<string, FieldLocation>();
  const paths = candidatePaths(r).sort((a, b) => a.length - b.length);
  for (const path of paths) {
    const key = pathKey(path);
    if (table.has(key)) continue;
    const value = pos(r.origin.locate(path, 'value'));
    const keyPos = pos(r.origin.locate(path, 'key'));
    let fallback: { line: number; column: number } | undefined;
    for (let n = path.length - 1; n >= 0 && !fallback; n--) fallback = table.get(pathKey(path.slice(0, n)))?.value;
    if (fallback && samePos(fallback, value) && samePos(value, keyPos)) continue;
    table.set(key, samePos(value, keyPos) ? { value } : { value, key: keyPos });
  }
  return Object.fromEntries(table);
}

/** The snapshot message (trellis.policy.v1.PolicySnapshot, .proto field names) of the policy-relevant resources. */
export function encodePolicySnapshot(resources: readonly Resource[], trustDomain: string, rootNamespace?: string): Obj {
  const objects = resources
    .filter((r) => POLICY_KINDS.has(r.kind))
    .map((r) => {
      const { origin, ...rest } = r;
      return { object: toStruct(rest), file: origin.file, locations: locationTable(r) };
    });
  const version = createHash('sha256').update(`${trustDomain}\0${rootNamespace ?? ''}\0`).update(JSON.stringify(objects)).digest('hex').slice(0, 16);
  return { name: POLICY_SNAPSHOT_NAME, version, trust_domain: trustDomain, ...(rootNamespace !== undefined ? { root_namespace: rootNamespace } : {}), objects };
}

/** A locator over a recorded table: exact for recorded paths, else the nearest recorded ancestor's value. */
export function tableLocator(file: string, table: ReadonlyMap<string, FieldLocation>): Locator {
  return (path, at = 'value') => {
    const exact = table.get(pathKey(path));
    if (exact) {
      const p = at === 'key' && exact.key ? exact.key : exact.value;
      return { file, line: p.line, column: p.column };
    }
    for (let n = path.length - 1; n >= 0; n--) {
      const e = table.get(pathKey(path.slice(0, n)));
      if (e) return { file, line: e.value.line, column: e.value.column };
    }
    return { file, line: 1, column: 1 };
  };
}

function readPos(v: unknown): { line: number; column: number } | undefined {
  if (v === null || typeof v !== 'object') return undefined;
  const o = v as Obj;
  const line = Number(o.line ?? 0);
  const column = Number(o.column ?? 0);
  return Number.isInteger(line) && Number.isInteger(column) && line >= 0 && column >= 0 ? { line, column } : undefined;
}

/** Reads a decoded PolicySnapshot message (as decodeAny gives it). Every malformed object is reported, then refused. */
export function decodePolicySnapshot(msg: Obj): PolicySnapshot {
  const errors: string[] = [];
  const objects = Array.isArray(msg.objects) ? (msg.objects as Obj[]) : [];
  if (objects.length > MAX_OBJECTS) throw new PolicySnapshotError([`objects: ${objects.length} exceeds the bound of ${MAX_OBJECTS}`]);
  const trustDomain = typeof msg.trust_domain === 'string' ? msg.trust_domain : '';
  if (trustDomain === '') errors.push('trust_domain: missing');
  const resources: Resource[] = [];
  objects.forEach((o, i) => {
    let data: Obj;
    try {
      data = fromStruct(o.object);
    } catch (e) {
      errors.push(`objects[${i}].object: ${(e as Error).message}`);
      return;
    }
    const meta = data.metadata as Obj | undefined;
    const kind = data.kind;
    if (typeof kind !== 'string' || !POLICY_KINDS.has(kind)) errors.push(`objects[${i}].object.kind: ${String(kind)} is not a policy input kind`);
    else if (!meta || typeof meta.name !== 'string') errors.push(`objects[${i}].object.metadata.name: missing`);
    else {
      const table = new Map<string, FieldLocation>();
      for (const [k, v] of Object.entries((o.locations as Obj | undefined) ?? {})) {
        const value = readPos((v as Obj | null)?.value);
        const key = readPos((v as Obj | null)?.key);
        if (!value) errors.push(`objects[${i}].locations[${JSON.stringify(k)}]: no valid position`);
        else table.set(k, key ? { value, key } : { value });
      }
      const file = typeof o.file === 'string' ? o.file : '';
      meta.labels ??= {};
      meta.annotations ??= {};
      resources.push({ ...data, origin: { file, locate: tableLocator(file, table) } } as unknown as Resource);
    }
  });
  if (errors.length > 0) throw new PolicySnapshotError(errors);
  const out: PolicySnapshot = { version: typeof msg.version === 'string' ? msg.version : '', trustDomain, resources };
  if (typeof msg.root_namespace === 'string' && msg.root_namespace !== '') out.rootNamespace = msg.root_namespace;
  return out;
}
