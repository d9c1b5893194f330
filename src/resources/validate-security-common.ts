// Validation shared by the security.istio.io kinds: workload selectors, target references, wildcards, IPs and ports.
import type { Checker, Json } from './checker.ts';
import type { FieldPath } from './kinds.ts';
import type { PolicyTargetRef, WorkloadSelector } from './kinds-security.ts';
import { isCidrError, parseCidr, parseIp } from './net.ts';
import { labelMap } from './validate-common.ts';

/** `spec.selector`: Istio's WorkloadSelector has only matchLabels, and no wildcards. */
export function workloadSelector(c: Checker, v: unknown, path: FieldPath): WorkloadSelector | undefined {
  const o = c.object(v, path);
  if (!o) return undefined;
  c.knownFields(o, path, ['matchLabels']);
  // Label syntax already rules out the wildcards Istio's validation rejects here.
  const matchLabels = labelMap(c, o.matchLabels, [...path, 'matchLabels']);
  if (Object.keys(matchLabels).length === 0) c.warn(path, 'workload selector without labels selects every workload in the namespace');
  return { matchLabels };
}

const TARGET_KINDS: readonly { group: string; kind: string }[] = [
  { group: '', kind: 'Service' },
  { group: 'networking.istio.io', kind: 'ServiceEntry' },
  { group: 'gateway.networking.k8s.io', kind: 'Gateway' },
  { group: 'gateway.networking.k8s.io', kind: 'GatewayClass' },
];

/** `targetRef` and `targetRefs` (mutually exclusive with `selector`). */
export function targetRefs(c: Checker, spec: Json): PolicyTargetRef[] {
  const out: PolicyTargetRef[] = [];
  const one = (v: unknown, path: FieldPath): void => {
    const o = c.object(v, path, true);
    if (!o) return;
    c.knownFields(o, path, ['group', 'kind', 'name', 'namespace']);
    const group = c.string(o.group, [...path, 'group']) ?? '';
    const kind = c.string(o.kind, [...path, 'kind'], true);
    const name = c.string(o.name, [...path, 'name'], true);
    if (name === '') c.error([...path, 'name'], 'is required', 'required');
    if (typeof o.namespace === 'string' && o.namespace !== '') {
      c.error([...path, 'namespace'], 'must not be set; cross-namespace references are not supported', 'invalid-value', 'key');
    }
    const canonical = group === 'core' ? '' : group;
    if (kind !== undefined && !TARGET_KINDS.some((t) => t.kind === kind && t.group === canonical)) {
      c.error([...path, 'kind'], `must be one of ${TARGET_KINDS.map((t) => (t.group === '' ? t.kind : `${t.group}/${t.kind}`)).join(', ')}, not ${group === '' ? '' : `${group}/`}${kind}`);
    } else if (kind !== undefined && name !== undefined && name !== '') out.push({ group: canonical, kind, name });
  };
  if (spec.targetRef !== undefined && spec.targetRef !== null) one(spec.targetRef, ['spec', 'targetRef']);
  (c.array(spec.targetRefs, ['spec', 'targetRefs']) ?? []).forEach((r, i) => one(r, ['spec', 'targetRefs', i]));
  const set = ['selector', 'targetRef', 'targetRefs'].filter((f) => spec[f] !== undefined && spec[f] !== null && !(Array.isArray(spec[f]) && spec[f].length === 0));
  if (set.length > 1) c.error(['spec', set[1] ?? ''], `may not be combined with ${set[0]}: set only one of selector, targetRef or targetRefs`, 'exclusive-fields', 'key');
  return out;
}

/** Istio's string match: `*` alone, `*suffix`, `prefix*` or an exact value; any other `*` is a mistake. */
export function wildcardProblem(v: string): string | undefined {
  if (v === '*') return undefined;
  const stars = v.split('*').length - 1;
  if (stars === 0) return undefined;
  if (stars > 1 || (!v.startsWith('*') && !v.endsWith('*'))) {
    return `"${v}" has a "*" in the middle or more than one "*": only a single leading or trailing "*" (or "*" alone) is supported`;
  }
  return undefined;
}

/** A list of strings (absent → undefined). Empty strings are errors, as Istio's validation has them. */
export function stringList(c: Checker, v: unknown, path: FieldPath, check?: (s: string, p: FieldPath) => void): string[] | undefined {
  const a = c.array(v, path);
  if (!a) return undefined;
  const out: string[] = [];
  a.forEach((x, i) => {
    const p = [...path, i];
    if (typeof x === 'number' || typeof x === 'boolean') {
      c.error(p, `must be a string (quote it: "${String(x)}")`, 'invalid-type');
      return;
    }
    const s = c.string(x, p, true);
    if (s === undefined) return;
    if (s === '') {
      c.error(p, 'must not be empty');
      return;
    }
    check?.(s, p);
    out.push(s);
  });
  return out;
}

/** A string that holds an IP address or a CIDR block, e.g. `10.1.2.3` or `10.1.0.0/16`. */
export function ipOrCidrProblem(s: string): string | undefined {
  if (s.includes('/')) {
    const cidr = parseCidr(s);
    return isCidrError(cidr) ? cidr.error : undefined;
  }
  return parseIp(s) ? undefined : `"${s}" must be an IP address or a CIDR block such as 10.0.0.0/16`;
}

/** A port written as a string of digits (Istio's ports are strings): 0-65535. */
export function portStringProblem(s: string): string | undefined {
  if (!/^[0-9]+$/.test(s) || Number(s) > 65535) return `"${s}" must be a port number 0-65535 written as a string`;
  return undefined;
}
