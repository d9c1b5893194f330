// The environment of one container as the kubelet builds it: envFrom, then env in order with `$(VAR)` expansion,
// the downward API, and the Kubernetes service variables; command and args expanded against the result.
import { createHash } from 'node:crypto';
import type { ModelPod } from '../model/cluster.ts';
import { Checker } from '../resources/checker.ts';
import type { Diagnostic } from '../resources/diagnostics.ts';
import type { FieldPath, Resource, Service } from '../resources/kinds.ts';
import type { ConfigMap, EnvVarSource, Secret } from '../resources/kinds-container.ts';
import { expandArgs, expandVars } from './env-expansion.ts';
import type { PodSource } from './pod-source.ts';
import { serviceEnvVars, type ServiceAddressFn } from './service-env.ts';

/** What the node offers: `resourceFieldRef` reads these, since local processes run without limits (the kubelet's rule then). */
export interface NodeResources {
  cpus: number;
  memoryBytes: number;
  ephemeralStorageBytes: number;
}

/** ConfigMaps and Secrets by `namespace/name`. */
export interface ConfigIndex {
  configMaps: Map<string, ConfigMap>;
  secrets: Map<string, Secret>;
}

export function indexConfig(resources: readonly Resource[]): ConfigIndex {
  const out: ConfigIndex = { configMaps: new Map(), secrets: new Map() };
  for (const r of resources) {
    if (r.kind === 'ConfigMap') out.configMaps.set(`${r.metadata.namespace ?? 'default'}/${r.metadata.name}`, r);
    else if (r.kind === 'Secret') out.secrets.set(`${r.metadata.namespace ?? 'default'}/${r.metadata.name}`, r);
  }
  return out;
}

export interface PodEnvInput {
  pod: ModelPod;
  source: PodSource;
  containerIndex: number;
  /** The pod's addresses as the runtime assigned them (status.podIP is the first). */
  podIps: readonly string[];
  /** Default `['127.0.0.1']`. */
  hostIps?: readonly string[];
  /** Default the pod's nodeName, else `localhost`. */
  nodeName?: string;
  /** metadata.uid; default a stable UUID-shaped hash of the pod's key. */
  uid?: string;
  config: ConfigIndex;
  /** Every Service of the model; those of the pod's namespace give variables unless enableServiceLinks is false. */
  services: readonly Service[];
  serviceAddress: ServiceAddressFn;
  node: NodeResources;
}

export interface PodEnv {
  /** Name → value, in the order a process sees them: envFrom and env as declared, then service variables. */
  env: Map<string, string>;
  /** `command` expanded; absent when the container has none (its image's entrypoint would run). */
  command?: string[];
  args: string[];
  /** Errors (a missing ConfigMap, Secret or key that is not optional) keep the container from starting. */
  diagnostics: Diagnostic[];
}

const MULTIPLIERS: Record<string, number> = { '1': 1, '1k': 1e3, '1M': 1e6, '1G': 1e9, '1T': 1e12, '1P': 1e15, '1E': 1e18, '1Ki': 2 ** 10, '1Mi': 2 ** 20, '1Gi': 2 ** 30, '1Ti': 2 ** 40, '1Pi': 2 ** 50, '1Ei': 2 ** 60 };

function stableUid(key: string): string {
  const h = createHash('sha256').update(key).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}

function fieldValue(fieldPath: string, input: PodEnvInput, annotations: Record<string, string>): string {
  const { pod } = input;
  const sub = /^metadata\.(labels|annotations)\['(.*)'\]$/.exec(fieldPath);
  if (sub) return (sub[1] === 'labels' ? pod.labels : annotations)[sub[2] ?? ''] ?? '';
  const hostIps = input.hostIps ?? ['127.0.0.1'];
  switch (fieldPath) {
    case 'metadata.name':
      return pod.name;
    case 'metadata.namespace':
      return pod.namespace;
    case 'metadata.uid':
      return input.uid ?? stableUid(pod.key);
    case 'spec.nodeName':
      return input.nodeName ?? pod.nodeName ?? 'localhost';
    case 'spec.serviceAccountName':
      return pod.serviceAccount;
    case 'status.hostIP':
      return hostIps[0] ?? '';
    case 'status.hostIPs':
      return hostIps.join(',');
    case 'status.podIP':
      return input.podIps[0] ?? '';
    case 'status.podIPs':
      return input.podIps.join(',');
    default:
      return '';
  }
}

function resourceValue(src: Extract<EnvVarSource, { type: 'resourceFieldRef' }>, node: NodeResources): string {
  const divisor = src.divisor ?? '1';
  if (src.resource.endsWith('.cpu')) return String(Math.ceil((node.cpus * 1000) / (divisor === '1m' ? 1 : 1000)));
  const bytes = src.resource.endsWith('.memory') ? node.memoryBytes : src.resource.endsWith('.ephemeral-storage') ? node.ephemeralStorageBytes : 0;
  return String(Math.ceil(bytes / (MULTIPLIERS[divisor] ?? 1)));
}

/** Builds the environment; never throws for manifest problems (they come back as diagnostics). */
export function podEnv(input: PodEnvInput): PodEnv {
  const { pod, source } = input;
  const container = source.spec.containers[input.containerIndex];
  const diagnostics: Diagnostic[] = [];
  const c = new Checker(source.origin, diagnostics, source.resource);
  const cpath: FieldPath = [...source.specPath, 'containers', input.containerIndex];
  const env = new Map<string, string>();
  if (!container) {
    c.error(source.specPath, `pod ${pod.key} has no container ${input.containerIndex}`, 'missing-container');
    return { env, args: [], diagnostics };
  }
  const ns = pod.namespace;
  const text = (b: Uint8Array): string => Buffer.from(b).toString('utf8');
  const lookup = (kind: 'configMapRef' | 'secretRef', name: string): Record<string, string> | undefined => {
    if (kind === 'configMapRef') return input.config.configMaps.get(`${ns}/${name}`)?.data;
    const s = input.config.secrets.get(`${ns}/${name}`);
    return s ? Object.fromEntries(Object.entries(s.data).map(([k, v]) => [k, text(v)])) : undefined;
  };
  const what = (kind: 'configMapRef' | 'secretRef'): string => (kind === 'configMapRef' ? 'ConfigMap' : 'Secret');

  (container.envFrom ?? []).forEach((ef, i) => {
    const data = lookup(ef.source, ef.name);
    if (data === undefined) {
      if (!ef.optional) c.error([...cpath, 'envFrom', i, ef.source, 'name'], `${what(ef.source)} ${ns}/${ef.name} not found (set optional: true to start without it)`, 'missing-config');
      return;
    }
    for (const [k, v] of Object.entries(data)) env.set((ef.prefix ?? '') + k, v);
  });

  const services = new Map(source.spec.enableServiceLinks === false ? [] : serviceEnvVars(input.services, ns, input.serviceAddress));
  const expandLookup = (name: string): string | undefined => env.get(name) ?? services.get(name);

  (container.env ?? []).forEach((ev, i) => {
    const ep = [...cpath, 'env', i];
    let value: string | undefined = ev.value ?? '';
    if (ev.value !== undefined && ev.value !== '') value = expandVars(ev.value, expandLookup);
    else if (ev.valueFrom !== undefined) {
      const src = ev.valueFrom;
      const vp = [...ep, 'valueFrom', src.type];
      if (src.type === 'fieldRef') value = fieldValue(src.fieldPath, input, source.annotations);
      else if (src.type === 'resourceFieldRef') value = resourceValue(src, input.node);
      else {
        const kind = src.type === 'configMapKeyRef' ? 'configMapRef' : 'secretRef';
        const data = lookup(kind, src.name);
        value = data?.[src.key];
        if (data === undefined && !src.optional) c.error([...vp, 'name'], `${what(kind)} ${ns}/${src.name} not found (set optional: true to start without it)`, 'missing-config');
        else if (data !== undefined && value === undefined && !src.optional) c.error([...vp, 'key'], `couldn't find key ${src.key} in ${what(kind)} ${ns}/${src.name}`, 'missing-key');
        if (value === undefined) return;
      }
    }
    env.set(ev.name, value);
  });

  for (const [k, v] of services) if (!env.has(k)) env.set(k, v);
  for (const [k, v] of env) {
    if (v.includes('\0')) {
      const i = (container.env ?? []).findIndex((e) => e.name === k);
      c.error(i >= 0 ? [...cpath, 'env', i] : [...cpath, 'envFrom'], `the value of ${k} contains a NUL byte, which a process environment cannot hold`, 'invalid-env');
      env.delete(k);
    }
  }
  diagnostics.sort((a, b) => (a.location?.line ?? 0) - (b.location?.line ?? 0) || (a.location?.column ?? 0) - (b.location?.column ?? 0));
  const out: PodEnv = { env, args: expandArgs(container.args ?? [], env), diagnostics };
  if (container.command) out.command = expandArgs(container.command, env);
  return out;
}
