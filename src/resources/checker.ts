// A small toolkit for reading untyped manifest data into typed objects while collecting located diagnostics.
import type { Diagnostic } from './diagnostics.ts';
import { formatPath } from './diagnostics.ts';
import type { FieldPath, Origin } from './kinds.ts';

export type Json = Record<string, unknown>;

/** Reads one object. Every problem becomes a diagnostic with file, line, column, resource and field. */
export class Checker {
  resource: string | undefined;
  private readonly origin: Origin;
  private readonly out: Diagnostic[];
  errorCount = 0;

  constructor(origin: Origin, out: Diagnostic[], resource?: string) {
    this.origin = origin;
    this.out = out;
    this.resource = resource;
  }

  error(path: FieldPath, message: string, code = 'invalid-value', at: 'key' | 'value' = 'value'): void {
    this.errorCount++;
    this.push('error', path, message, code, at);
  }

  warn(path: FieldPath, message: string, code = 'warning'): void {
    this.push('warning', path, message, code, 'key');
  }

  private push(severity: 'error' | 'warning', path: FieldPath, message: string, code: string, at: 'key' | 'value'): void {
    const d: Diagnostic = { severity, code, message, location: this.origin.locate(path, at) };
    if (this.resource !== undefined) d.resource = this.resource;
    if (path.length > 0) d.field = formatPath(path);
    this.out.push(d);
  }

  /** The value as an object, or undefined (with an error unless it is absent/null and optional). */
  object(v: unknown, path: FieldPath, required = false): Json | undefined {
    if (v === undefined || v === null) {
      if (required) this.error(path, 'is required', 'required');
      return undefined;
    }
    if (typeof v !== 'object' || Array.isArray(v)) {
      this.error(path, `must be an object, not ${describe(v)}`, 'invalid-type');
      return undefined;
    }
    return v as Json;
  }

  array(v: unknown, path: FieldPath, required = false): unknown[] | undefined {
    if (v === undefined || v === null) {
      if (required) this.error(path, 'is required', 'required');
      return undefined;
    }
    if (!Array.isArray(v)) {
      this.error(path, `must be a list, not ${describe(v)}`, 'invalid-type');
      return undefined;
    }
    return v as unknown[];
  }

  string(v: unknown, path: FieldPath, required = false): string | undefined {
    if (v === undefined || v === null) {
      if (required) this.error(path, 'is required', 'required');
      return undefined;
    }
    if (typeof v !== 'string') {
      this.error(path, `must be a string, not ${describe(v)}`, 'invalid-type');
      return undefined;
    }
    return v;
  }

  boolean(v: unknown, path: FieldPath): boolean | undefined {
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'boolean') {
      this.error(path, `must be true or false, not ${describe(v)}`, 'invalid-type');
      return undefined;
    }
    return v;
  }

  integer(v: unknown, path: FieldPath, min: number, max: number, required = false): number | undefined {
    if (v === undefined || v === null) {
      if (required) this.error(path, 'is required', 'required');
      return undefined;
    }
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
      this.error(path, `must be an integer ${min}-${max}`);
      return undefined;
    }
    return v;
  }

  /** A map of string to string, such as labels or matchLabels. */
  stringMap(v: unknown, path: FieldPath): Record<string, string> {
    const o = this.object(v, path);
    const out: Record<string, string> = {};
    if (!o) return out;
    for (const [k, val] of Object.entries(o)) {
      if (typeof val === 'string') out[k] = val;
      else if (typeof val === 'number' || typeof val === 'boolean') {
        this.error([...path, k], `must be a string (quote it: "${String(val)}")`, 'invalid-type');
      } else this.error([...path, k], `must be a string, not ${describe(val)}`, 'invalid-type');
    }
    return out;
  }

  /** Reports fields that the kind does not have, as kubectl's strict field validation does. */
  knownFields(o: Json, path: FieldPath, allowed: readonly string[]): void {
    for (const k of Object.keys(o)) {
      if (!allowed.includes(k)) {
        const hint = closest(k, allowed);
        this.error([...path, k], `unknown field${hint ? ` (did you mean "${hint}"?)` : ''}`, 'unknown-field', 'key');
      }
    }
  }

  /** Reports when more than one of the given fields is set. */
  exclusive(o: Json, path: FieldPath, fields: readonly string[], message?: string): void {
    const set = fields.filter((f) => o[f] !== undefined && o[f] !== null && !(Array.isArray(o[f]) && o[f].length === 0));
    if (set.length > 1) {
      this.error([...path, set[1] ?? ''], message ?? `may not be combined with ${set[0]} in one rule (set only one of ${fields.join(', ')})`, 'exclusive-fields', 'key');
    }
  }
}

export function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'an object';
  return `${typeof v} ${JSON.stringify(v)}`;
}

function closest(word: string, options: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestD = Math.max(2, Math.floor(word.length / 3)) + 1;
  for (const o of options) {
    const d = editDistance(word.toLowerCase(), o.toLowerCase());
    if (d < bestD) {
      bestD = d;
      best = o;
    }
  }
  return best;
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0] ?? 0;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = row[j] ?? 0;
      row[j] = Math.min((row[j] ?? 0) + 1, (row[j - 1] ?? 0) + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = cur;
    }
  }
  return row[b.length] ?? 0;
}
