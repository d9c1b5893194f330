// Readers for decoded xDS fields (as decodeAny gives them: proto field names, int64 as strings, enums as names,
// defaults left out) that note every problem with the resource and field it is in, instead of stopping at the first.

export type Obj = Record<string, unknown>;

/** Stop collecting past this many errors: one broken resource must not make an unbounded NACK message. */
export const MAX_ERRORS = 200;

/** Collects errors as `<Type> <name>: <field>: <message>`. */
export class Issues {
  readonly errors: string[] = [];
  private dropped = 0;

  add(resource: string, field: string, message: string): void {
    if (this.errors.length < MAX_ERRORS) this.errors.push(field === '' ? `${resource}: ${message}` : `${resource}: ${field}: ${message}`);
    else this.dropped++;
  }

  /** The errors, with a last line counting those left out. */
  list(): string[] {
    return this.dropped > 0 ? [...this.errors, `… and ${this.dropped} more errors`] : [...this.errors];
  }
}

/** Where in one resource a reader is: the resource's label and the field path so far. */
export class At {
  constructor(readonly issues: Issues, readonly resource: string, readonly path = '') {}

  field(name: string | number): At {
    return new At(this.issues, this.resource, typeof name === 'number' ? `${this.path}[${name}]` : this.path === '' ? name : `${this.path}.${name}`);
  }

  error(message: string): undefined {
    this.issues.add(this.resource, this.path, message);
    return undefined;
  }
}

export function isObj(v: unknown): v is Obj {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

export function obj(v: unknown, at: At): Obj | undefined {
  if (v === undefined) return undefined;
  return isObj(v) ? v : at.error('expected a message');
}

export function list(v: unknown, at: At): unknown[] {
  if (v === undefined) return [];
  if (Array.isArray(v)) return v;
  at.error('expected a list');
  return [];
}

export function str(v: unknown, at: At): string | undefined {
  if (v === undefined) return undefined;
  return typeof v === 'string' ? v : at.error('expected a string');
}

export function num(v: unknown, at: At): number | undefined {
  if (v === undefined) return undefined;
  const n = typeof v === 'string' && v.trim() !== '' ? Number(v) : v;
  return typeof n === 'number' && Number.isFinite(n) ? n : at.error('expected a number');
}

/** A UInt32Value/UInt64Value/BoolValue-style wrapper `{ value }` (a present wrapper without value is the default). */
export function wrapped(v: unknown, at: At): number | undefined {
  if (v === undefined) return undefined;
  if (typeof v === 'number' || typeof v === 'string') return num(v, at);
  const o = obj(v, at);
  if (!o) return undefined;
  return o.value === undefined ? 0 : num(o.value, at.field('value'));
}

export function wrappedBool(v: unknown, at: At): boolean | undefined {
  if (v === undefined) return undefined;
  if (typeof v === 'boolean') return v;
  const o = obj(v, at);
  if (!o) return undefined;
  return o.value === undefined ? false : o.value === true;
}

/** A google.protobuf.Duration (`{seconds, nanos}`, or its JSON text `1.5s`) in milliseconds. */
export function durationMs(v: unknown, at: At): number | undefined {
  if (v === undefined) return undefined;
  if (typeof v === 'string') {
    const m = /^(-?\d+(?:\.\d+)?)s$/.exec(v);
    return m ? Number(m[1]) * 1000 : at.error(`bad duration ${v}`);
  }
  const o = obj(v, at);
  if (!o) return undefined;
  const s = o.seconds === undefined ? 0 : num(o.seconds, at.field('seconds'));
  const n = o.nanos === undefined ? 0 : num(o.nanos, at.field('nanos'));
  if (s === undefined || n === undefined) return undefined;
  const ms = s * 1000 + n / 1e6;
  return ms < 0 ? at.error('negative duration') : ms;
}

/** A FractionalPercent as a percentage (0–100). */
export function fractionalPercent(v: unknown, at: At): number | undefined {
  const o = obj(v, at);
  if (!o) return undefined;
  const n = o.numerator === undefined ? 0 : num(o.numerator, at.field('numerator'));
  if (n === undefined) return undefined;
  // HUNDRED is the enum's zero value, so a decoder leaves it out.
  switch (o.denominator ?? 'HUNDRED') {
    case 'HUNDRED':
      return n;
    case 'TEN_THOUSAND':
      return n / 100;
    case 'MILLION':
      return n / 10_000;
    default:
      return at.field('denominator').error(`unknown denominator ${String(o.denominator)}`);
  }
}

/** The `@type` of an Any (decodeAny keeps it as a key), without the `type.googleapis.com/` prefix. */
export function anyType(v: unknown): string | undefined {
  const t = isObj(v) ? v['@type'] : undefined;
  return typeof t === 'string' ? t.slice(t.lastIndexOf('/') + 1) : undefined;
}

/** A scalar as text (a decoded string, number or enum name), else `dflt`. */
export function text(v: unknown, dflt = ''): string {
  return typeof v === 'string' ? v : typeof v === 'number' || typeof v === 'boolean' ? String(v) : dflt;
}

/** A value as an error message shows it. */
export function show(v: unknown): string {
  return v === undefined ? 'nothing' : typeof v === 'object' && v !== null ? 'a message' : text(v);
}
