// Diagnostics for the resources layer: located errors and warnings, collected rather than thrown.

/** A position in an input file, 1-based like editors show it. */
export interface Location {
  file: string;
  line: number;
  column: number;
}

export type Severity = 'error' | 'warning';

/** One finding about the input: where it is, which resource and field, and what is wrong. */
export interface Diagnostic {
  severity: Severity;
  /** Stable machine-readable code, e.g. `invalid-value`, `unknown-field`, `unknown-kind`. */
  code: string;
  message: string;
  location?: Location;
  /** `Kind namespace/name` or `Kind name` for cluster-scoped objects. */
  resource?: string;
  /** Field path such as `spec.ingress[0].ports[0].port`. */
  field?: string;
}

/** The resources layer's one error type: it carries every diagnostic, not just the first. */
export class ResourceError extends Error {
  readonly code: string;
  readonly diagnostics: Diagnostic[];
  constructor(diagnostics: Diagnostic[], code = 'invalid-input') {
    const errors = diagnostics.filter((d) => d.severity === 'error');
    super(`${errors.length} error(s) in input:\n${errors.map(formatDiagnostic).join('\n')}`);
    this.name = 'ResourceError';
    this.code = code;
    this.diagnostics = diagnostics;
  }
}

/** Formats as `file:line:col: Kind ns/name: field: message` (parts that are unknown are left out). */
export function formatDiagnostic(d: Diagnostic): string {
  const parts: string[] = [];
  if (d.location) parts.push(`${d.location.file}:${d.location.line}:${d.location.column}`);
  if (d.severity === 'warning') parts.push('warning');
  if (d.resource) parts.push(d.resource);
  if (d.field) parts.push(d.field);
  parts.push(d.message);
  return parts.join(': ');
}

export function hasErrors(diagnostics: readonly Diagnostic[]): boolean {
  return diagnostics.some((d) => d.severity === 'error');
}

/** Renders a field path as `spec.ingress[0].ports[0].port`. */
export function formatPath(path: readonly (string | number)[]): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else out += out === '' ? seg : `.${seg}`;
  }
  return out;
}
