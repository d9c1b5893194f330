// google.protobuf.Struct and xds.type.v3.TypedStruct as plain objects: how Trellis-specific data (filter configs,
// listener and cluster metadata, policy objects) travels inside Envoy's own resource types.
// protobufjs names Struct's Value fields in camelCase (stringValue); other decoders use snake_case: both are read.

type Obj = Record<string, unknown>;

export const TYPED_STRUCT = 'type.googleapis.com/xds.type.v3.TypedStruct';
/** The filter_metadata key under which Trellis carries listener and cluster facts. */
export const TRELLIS_METADATA = 'trellis';
/** Deepest nesting read back from a Struct: deeper input is refused, never recursed into without bound. */
export const MAX_STRUCT_DEPTH = 64;

export class StructError extends Error {
  readonly code = 'bad-struct';
}

export function toValue(v: unknown): Obj {
  if (v === null || v === undefined) return { nullValue: 'NULL_VALUE' };
  switch (typeof v) {
    case 'string':
      return { stringValue: v };
    case 'number':
      return { numberValue: v };
    case 'boolean':
      return { boolValue: v };
    case 'object':
      if (Array.isArray(v)) return { listValue: { values: v.map(toValue) } };
      return { structValue: toStruct(v as Obj) };
    default:
      throw new StructError(`cannot carry a ${typeof v} in a Struct`);
  }
}

/** A Struct of an object's own fields; undefined fields are left out, as JSON leaves them out. */
export function toStruct(o: Obj): Obj {
  const fields: Obj = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) fields[k] = toValue(v);
  return { fields };
}

function pick(v: Obj, camel: string, snake: string): unknown {
  return v[camel] ?? v[snake];
}

export function fromValue(v: unknown, depth = 0): unknown {
  if (depth > MAX_STRUCT_DEPTH) throw new StructError(`nested deeper than ${MAX_STRUCT_DEPTH}`);
  if (v === null || typeof v !== 'object') return null;
  const o = v as Obj;
  const s = pick(o, 'stringValue', 'string_value');
  if (typeof s === 'string') return s;
  const n = pick(o, 'numberValue', 'number_value');
  if (typeof n === 'number') return n;
  // A JSON decoder writes NaN and infinities as strings.
  if (typeof n === 'string') return Number(n);
  const b = pick(o, 'boolValue', 'bool_value');
  if (typeof b === 'boolean') return b;
  const st = pick(o, 'structValue', 'struct_value');
  if (st !== undefined && st !== null) return fromStruct(st, depth + 1);
  const l = pick(o, 'listValue', 'list_value') as { values?: unknown[] } | undefined;
  if (l !== undefined && l !== null) return (l.values ?? []).map((x) => fromValue(x, depth + 1));
  // nullValue, or a Value with no kind set (a default-valued field left out by the decoder).
  const kinds = Object.keys(o);
  if (kinds.length === 0 || kinds.some((k) => k === 'nullValue' || k === 'null_value')) return null;
  throw new StructError(`not a google.protobuf.Value: ${kinds.join(', ')}`);
}

export function fromStruct(s: unknown, depth = 0): Obj {
  if (depth > MAX_STRUCT_DEPTH) throw new StructError(`nested deeper than ${MAX_STRUCT_DEPTH}`);
  const out: Obj = {};
  if (s === null || typeof s !== 'object') return out;
  const fields = (s as { fields?: Obj }).fields ?? {};
  for (const [k, v] of Object.entries(fields)) out[k] = fromValue(v, depth);
  return out;
}

/** A typed_config that carries a Trellis config as a TypedStruct of type `typeUrl`. */
export function typedStruct(typeUrl: string, value: Obj): Obj {
  return { '@type': TYPED_STRUCT, type_url: typeUrl, value: toStruct(value) };
}

/** Envoy `metadata` with Trellis' facts under filter_metadata `trellis`. */
export function trellisMetadata(value: Obj): Obj {
  return { filter_metadata: { [TRELLIS_METADATA]: toStruct(value) } };
}

/** Trellis' facts from an Envoy `metadata`, or an empty object. */
export function readTrellisMetadata(metadata: unknown): Obj {
  const fm = (metadata as { filter_metadata?: Obj } | undefined)?.filter_metadata;
  return fm && fm[TRELLIS_METADATA] ? fromStruct(fm[TRELLIS_METADATA]) : {};
}
