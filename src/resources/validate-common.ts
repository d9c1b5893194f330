// Validation rules shared by every kind: object metadata, label syntax, label selectors, ports and protocols.
import type { Checker, Json } from './checker.ts';
import type { FieldPath, LabelSelector, ObjectMeta, Protocol, SelectorOperator, SelectorRequirement } from './kinds.ts';

const NAME_PART = /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** Cilium label sources that may prefix a selector key, such as `k8s:app` or `reserved:host`. */
export const LABEL_SOURCES = ['k8s', 'any', 'reserved', 'cidr', 'fqdn', 'container', 'unspec', 'cilium-generated', 'kvstore', 'etcd'] as const;

/** Checks a label key (`[prefix/]name`); returns the problem or undefined. */
export function labelKeyProblem(key: string): string | undefined {
  const slash = key.lastIndexOf('/');
  const name = slash >= 0 ? key.slice(slash + 1) : key;
  const prefix = slash >= 0 ? key.slice(0, slash) : undefined;
  if (prefix !== undefined && (prefix.length === 0 || prefix.length > 253 || !DNS1123_SUBDOMAIN.test(prefix))) {
    return `label key prefix "${prefix}" must be a DNS subdomain (lowercase alphanumerics, "-" and ".", at most 253 characters)`;
  }
  if (name.length === 0 || name.length > 63 || !NAME_PART.test(name)) {
    return `label key "${key}" must be at most 63 characters of alphanumerics, "-", "_" or ".", starting and ending with an alphanumeric`;
  }
  return undefined;
}

export function labelValueProblem(value: string): string | undefined {
  if (value === '') return undefined;
  if (value.length > 63 || !NAME_PART.test(value)) {
    return `label value "${value}" must be at most 63 characters of alphanumerics, "-", "_" or ".", starting and ending with an alphanumeric`;
  }
  return undefined;
}

/** Splits a Cilium selector key into its source (`k8s`, `any`, `reserved`, …) and the key proper. */
export function splitLabelSource(key: string): { source: string | undefined; key: string } {
  const colon = key.indexOf(':');
  if (colon > 0) {
    const source = key.slice(0, colon);
    if ((LABEL_SOURCES as readonly string[]).includes(source)) return { source, key: key.slice(colon + 1) };
  }
  return { source: undefined, key };
}

export function dnsLabelProblem(v: string): string | undefined {
  if (v.length > 63 || !DNS1123_LABEL.test(v)) {
    return `"${v}" must be a DNS label: at most 63 lowercase alphanumerics or "-", starting and ending with an alphanumeric`;
  }
  return undefined;
}

export function dnsSubdomainProblem(v: string): string | undefined {
  if (v.length > 253 || !DNS1123_SUBDOMAIN.test(v)) {
    return `"${v}" must be a DNS subdomain: lowercase alphanumerics, "-" and ".", at most 253 characters`;
  }
  return undefined;
}

/** IANA_SVC_NAME: what a named port must be (at most 15 characters, lowercase, at least one letter). */
export function portNameProblem(v: string): string | undefined {
  if (v.length === 0 || v.length > 15) return `port name "${v}" must be 1-15 characters`;
  if (!/^[a-z0-9-]+$/.test(v)) return `port name "${v}" may contain only lowercase letters, digits and "-"`;
  if (!/[a-z]/.test(v)) return `port name "${v}" must contain at least one letter`;
  if (v.startsWith('-') || v.endsWith('-') || v.includes('--')) return `port name "${v}" may not begin or end with "-" or contain "--"`;
  return undefined;
}

export function labelMap(c: Checker, v: unknown, path: FieldPath, opts: { ciliumKeys?: boolean } = {}): Record<string, string> {
  const labels = c.stringMap(v, path);
  for (const [k, val] of Object.entries(labels)) {
    const key = opts.ciliumKeys ? splitLabelSource(k).key : k;
    const kp = labelKeyProblem(key);
    if (kp) c.error([...path, k], kp, 'invalid-label', 'key');
    const vp = labelValueProblem(val);
    if (vp) c.error([...path, k], vp, 'invalid-label');
  }
  return labels;
}

const OPERATORS: readonly SelectorOperator[] = ['In', 'NotIn', 'Exists', 'DoesNotExist'];

/** A LabelSelector. `{}` selects everything. With ciliumKeys, keys may carry a source prefix such as `k8s:`. */
export function labelSelector(c: Checker, v: unknown, path: FieldPath, opts: { ciliumKeys?: boolean } = {}): LabelSelector {
  const o = c.object(v, path);
  const sel: LabelSelector = { matchLabels: {}, matchExpressions: [] };
  if (!o) return sel;
  c.knownFields(o, path, ['matchLabels', 'matchExpressions']);
  sel.matchLabels = labelMap(c, o.matchLabels, [...path, 'matchLabels'], opts);
  const exprs = c.array(o.matchExpressions, [...path, 'matchExpressions']) ?? [];
  exprs.forEach((e, i) => {
    const ep = [...path, 'matchExpressions', i];
    const eo = c.object(e, ep, true);
    if (!eo) return;
    c.knownFields(eo, ep, ['key', 'operator', 'values']);
    const key = c.string(eo.key, [...ep, 'key'], true);
    if (key !== undefined) {
      const kp = labelKeyProblem(opts.ciliumKeys ? splitLabelSource(key).key : key);
      if (kp) c.error([...ep, 'key'], kp, 'invalid-label');
    }
    const op = c.string(eo.operator, [...ep, 'operator'], true);
    if (op !== undefined && !(OPERATORS as readonly string[]).includes(op)) {
      const fix = OPERATORS.find((x) => x.toLowerCase() === op.toLowerCase());
      c.error([...ep, 'operator'], `"${op}" is not a valid selector operator; must be one of ${OPERATORS.join(', ')}${fix ? ` (operators are case-sensitive: ${fix})` : ''}`);
    }
    const values = (c.array(eo.values, [...ep, 'values']) ?? []).map((x, j) => {
      const s = c.string(x, [...ep, 'values', j], true) ?? '';
      const vp = labelValueProblem(s);
      if (vp) c.error([...ep, 'values', j], vp, 'invalid-label');
      return s;
    });
    if ((op === 'In' || op === 'NotIn') && values.length === 0) {
      c.error(eo.values === undefined || eo.values === null ? ep : [...ep, 'values'], `values must be specified when operator is ${op}`, 'required');
    }
    if ((op === 'Exists' || op === 'DoesNotExist') && values.length > 0) {
      c.error([...ep, 'values'], `may not be specified when operator is ${op}`, 'invalid-value', 'key');
    }
    if (key !== undefined && op !== undefined && (OPERATORS as readonly string[]).includes(op)) {
      const req: SelectorRequirement = { key, operator: op as SelectorOperator, values };
      sel.matchExpressions.push(req);
    }
  });
  return sel;
}

export function protocol(c: Checker, v: unknown, path: FieldPath): Protocol {
  if (v === undefined || v === null) return 'TCP';
  const s = c.string(v, path);
  if (s === undefined) return 'TCP';
  if (s !== 'TCP' && s !== 'UDP' && s !== 'SCTP') {
    c.error(path, `must be TCP, UDP or SCTP${['tcp', 'udp', 'sctp'].includes(s.toLowerCase()) ? ` (protocol names are upper case: ${s.toUpperCase()})` : ''}`);
    return 'TCP';
  }
  return s;
}

/** `metadata`: name (required), namespace for namespaced kinds (default `default`), labels, annotations. */
export function objectMeta(c: Checker, obj: Json, namespaced: boolean, kind: string): ObjectMeta | undefined {
  // Without usable metadata the rest of the object is still validated, so every error is reported at once.
  const m = c.object(obj.metadata, ['metadata'], true);
  if (!m) return { name: '', ...(namespaced ? { namespace: 'default' } : {}), labels: {}, annotations: {} };
  const name = c.string(m.name, ['metadata', 'name']) ?? '';
  if (name === '' && (m.name === undefined || m.name === null || m.name === '')) {
    if (typeof m.generateName === 'string') c.error(['metadata', 'generateName'], 'generateName is not supported: give the object a name', 'required', 'key');
    else c.error(['metadata', 'name'], 'is required', 'required', m.name === undefined ? 'value' : 'key');
  }
  const meta: ObjectMeta = { name, labels: {}, annotations: {} };
  if (namespaced) {
    const ns = c.string(m.namespace, ['metadata', 'namespace']) ?? 'default';
    const p = dnsLabelProblem(ns);
    if (p) c.error(['metadata', 'namespace'], p);
    meta.namespace = ns;
  } else if (m.namespace !== undefined && m.namespace !== null && m.namespace !== '') {
    c.warn(['metadata', 'namespace'], `${kind} is cluster-scoped; metadata.namespace is ignored`);
  }
  meta.labels = labelMap(c, m.labels, ['metadata', 'labels']);
  meta.annotations = c.stringMap(m.annotations, ['metadata', 'annotations']);
  return meta;
}
