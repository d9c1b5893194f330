// Reading Envoy's protobuf messages as JSON (EnvoyFilter patch values): both field spellings, proto durations,
// enums whose unsupported values get their own message, and fields Trellis refuses by name.
import type { Checker, Json } from './checker.ts';
import type { FieldPath } from './kinds.ts';
import { oneOf } from './validate-traffic-common.ts';

/** A message's fields by their proto (snake_case) name, whichever spelling the manifest used. */
export interface ProtoMessage {
  get(field: string): unknown;
  /** The field's path as written (the snake_case name when absent). */
  at(field: string): FieldPath;
}

const camel = (s: string): string => s.replace(/_([a-z0-9])/g, (_, ch: string) => ch.toUpperCase());

/**
 * Protobuf's JSON form takes snake_case and lowerCamelCase names. Unknown fields are errors (with a suggestion),
 * as are fields Trellis does not run (`unsupported`, each with its reason) and a field written in both spellings.
 * `extra` names keys that are known but not read here (such as `@type`).
 */
export function protoMessage(c: Checker, o: Json, path: FieldPath, fields: readonly string[], notRun: Readonly<Record<string, string>> = {}, extra: readonly string[] = []): ProtoMessage {
  const spelling = new Map<string, string>();
  for (const f of [...fields, ...Object.keys(notRun)]) {
    spelling.set(f, f);
    spelling.set(camel(f), f);
  }
  c.knownFields(o, path, [...spelling.keys(), ...extra]);
  const written = new Map<string, string>();
  for (const k of Object.keys(o)) {
    const f = spelling.get(k);
    if (f === undefined) continue;
    const prev = written.get(f);
    if (prev !== undefined) {
      c.error([...path, k], `is ${prev} spelled another way; give it once`, 'duplicate', 'key');
      continue;
    }
    written.set(f, k);
    const why = notRun[f];
    if (why !== undefined && o[k] !== undefined && o[k] !== null) c.error([...path, k], `is not supported: ${why}`, 'unsupported', 'key');
  }
  return {
    get: (f) => {
      const k = written.get(f);
      return k === undefined ? undefined : o[k];
    },
    at: (f) => [...path, written.get(f) ?? f],
  };
}

/** Reports each present field Trellis does not run, with its reason (for CRD fields, which have one spelling). */
export function unsupported(c: Checker, o: Json, path: FieldPath, reasons: Readonly<Record<string, string>>): void {
  for (const [k, why] of Object.entries(reasons)) {
    if (o[k] !== undefined && o[k] !== null) c.error([...path, k], `is not supported: ${why}`, 'unsupported', 'key');
  }
}

/** One of `supported`; a value of `others` (valid for Istio or Envoy) is "not supported" with the reason given. */
export function enumOf<T extends string>(c: Checker, v: unknown, path: FieldPath, supported: readonly T[], others: readonly string[], why: string, required = false): T | undefined {
  const s = c.string(v, path, required);
  if (s === undefined) return undefined;
  if ((supported as readonly string[]).includes(s)) return s as T;
  if (others.includes(s)) c.error(path, `${s} is not supported; ${why}`, 'unsupported');
  else oneOf(c, s, path, [...supported, ...others]);
  return undefined;
}

const PROTO_DURATION = /^([0-9]+)(\.[0-9]{1,9})?s$/;

/** google.protobuf.Duration in JSON: seconds with an `s` suffix, such as `60s` or `0.5s`; milliseconds, above zero. */
export function protoDuration(c: Checker, v: unknown, path: FieldPath, required = false): number | undefined {
  const s = c.string(v, path, required);
  if (s === undefined) return undefined;
  if (!PROTO_DURATION.test(s)) {
    c.error(path, `"${s}" is not a protobuf duration: give seconds with an s suffix, such as 60s or 0.5s`, 'invalid-duration');
    return undefined;
  }
  const ms = Number(s.slice(0, -1)) * 1000;
  if (ms <= 0) {
    c.error(path, 'must be longer than 0s', 'invalid-duration');
    return undefined;
  }
  return ms;
}

/** The message name of a type URL: what follows its last `/`, as google.protobuf.Any reads it. */
export function typeName(url: string): string {
  return url.slice(url.lastIndexOf('/') + 1);
}
