// Validation of what a container runs with (image, command, args, workingDir, env, envFrom, probes) by the API server's rules.
import type { Checker, Json } from './checker.ts';
import type { ContainerPort, FieldPath } from './kinds.ts';
import type { Container, EnvFromSource, EnvVar, EnvVarSource } from './kinds-container.ts';
import { configMapKeyProblem } from './validate-config.ts';
import { dnsSubdomainProblem, labelKeyProblem } from './validate-common.ts';
import { readProbe } from './validate-probe.ts';

const ENV_FIELD_PATHS = ['metadata.name', 'metadata.namespace', 'metadata.uid', 'spec.nodeName', 'spec.serviceAccountName', 'status.hostIP', 'status.hostIPs', 'status.podIP', 'status.podIPs'];
const SUBSCRIPTED = /^metadata\.(labels|annotations)\['(.*)'\]$/;
const RESOURCES = ['limits.cpu', 'limits.memory', 'limits.ephemeral-storage', 'requests.cpu', 'requests.memory', 'requests.ephemeral-storage'];
const CPU_DIVISORS = ['1m', '1'];
const BYTE_DIVISORS = ['1', '1k', '1M', '1G', '1T', '1P', '1E', '1Ki', '1Mi', '1Gi', '1Ti', '1Pi', '1Ei'];
const VALUE_SOURCES = ['fieldRef', 'resourceFieldRef', 'configMapKeyRef', 'secretKeyRef'] as const;

/** Environment variable names: printable ASCII other than `=` (the API's rule since RelaxedEnvironmentVariableValidation). */
export function envVarNameProblem(name: string): string | undefined {
  if (name.length === 0) return 'must not be empty';
  for (let i = 0; i < name.length; i++) {
    const ch = name.charCodeAt(i);
    if (ch < 32 || ch > 126 || ch === 61) return `"${name}" is not a valid environment variable name: use printable ASCII characters other than "="`;
  }
  return undefined;
}

function strings(c: Checker, v: unknown, path: FieldPath): string[] | undefined {
  const list = c.array(v, path);
  return list?.map((x, i) => c.string(x, [...path, i], true) ?? '');
}

function objectName(c: Checker, v: unknown, path: FieldPath): string {
  const name = c.string(v, path) ?? '';
  if (name === '') c.error(path, 'is required', 'required');
  else {
    const p = dnsSubdomainProblem(name);
    if (p) c.error(path, p, 'invalid-name');
  }
  return name;
}

function fieldRef(c: Checker, o: Json, path: FieldPath): EnvVarSource | undefined {
  const api = c.string(o.apiVersion, [...path, 'apiVersion']);
  if (api !== undefined && api !== '' && api !== 'v1') c.error([...path, 'apiVersion'], `unsupported apiVersion "${api}": downward API field paths are in v1`, 'unsupported-value');
  const fp = c.string(o.fieldPath, [...path, 'fieldPath'], true);
  if (fp === undefined) return undefined;
  const sub = SUBSCRIPTED.exec(fp);
  if (sub) {
    const p = labelKeyProblem(sub[2] ?? '');
    if (p) c.error([...path, 'fieldPath'], p);
    return p ? undefined : { type: 'fieldRef', fieldPath: fp };
  }
  if (!ENV_FIELD_PATHS.includes(fp)) {
    const extra = fp === 'metadata.labels' || fp === 'metadata.annotations' ? ` (in env, name one key: ${fp}['key'])` : '';
    c.error([...path, 'fieldPath'], `unsupported value "${fp}": supported values: ${ENV_FIELD_PATHS.map((x) => `"${x}"`).join(', ')}${extra}`, 'unsupported-value');
    return undefined;
  }
  return { type: 'fieldRef', fieldPath: fp };
}

function resourceFieldRef(c: Checker, o: Json, path: FieldPath): EnvVarSource | undefined {
  const resource = c.string(o.resource, [...path, 'resource'], true);
  if (resource === undefined) return undefined;
  if (!RESOURCES.includes(resource) && !/^(limits|requests)\.hugepages-/.test(resource)) {
    c.error([...path, 'resource'], `unsupported value "${resource}": supported values: ${RESOURCES.map((x) => `"${x}"`).join(', ')}`, 'unsupported-value');
    return undefined;
  }
  const out: EnvVarSource = { type: 'resourceFieldRef', resource };
  const cn = c.string(o.containerName, [...path, 'containerName']);
  if (cn) out.containerName = cn;
  if (o.divisor !== undefined && o.divisor !== null) {
    const d = typeof o.divisor === 'number' ? String(o.divisor) : c.string(o.divisor, [...path, 'divisor']);
    if (d === undefined) return undefined;
    const allowed = resource.endsWith('.cpu') ? CPU_DIVISORS : BYTE_DIVISORS;
    if (!allowed.includes(d)) {
      c.error([...path, 'divisor'], `only divisor values ${allowed.join(', ')} are supported with ${resource}`);
      return undefined;
    }
    out.divisor = d;
  }
  return out;
}

function keyRef(c: Checker, o: Json, path: FieldPath, type: 'configMapKeyRef' | 'secretKeyRef'): EnvVarSource {
  const name = objectName(c, o.name, [...path, 'name']);
  const key = c.string(o.key, [...path, 'key']) ?? '';
  if (key === '') c.error([...path, 'key'], 'is required', 'required');
  else {
    const p = configMapKeyProblem(key);
    if (p) c.error([...path, 'key'], p, 'invalid-key');
  }
  return { type, name, key, optional: c.boolean(o.optional, [...path, 'optional']) ?? false };
}

function envVar(c: Checker, v: unknown, path: FieldPath): EnvVar | undefined {
  const o = c.object(v, path, true);
  if (!o) return undefined;
  const name = c.string(o.name, [...path, 'name']) ?? '';
  if (name === '') c.error([...path, 'name'], 'is required', 'required');
  else {
    const p = envVarNameProblem(name);
    if (p) c.error([...path, 'name'], p, 'invalid-name');
  }
  const out: EnvVar = { name };
  const value = c.string(o.value, [...path, 'value']);
  if (value !== undefined) out.value = value;
  const from = c.object(o.valueFrom, [...path, 'valueFrom']);
  if (!from) return out;
  const fp = [...path, 'valueFrom'];
  if (value !== undefined && value !== '') c.error(fp, 'may not be specified when `value` is not empty', 'exclusive-fields', 'key');
  const set = VALUE_SOURCES.filter((k) => from[k] !== undefined && from[k] !== null);
  if (set.length === 0) {
    c.error(fp, 'must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`', 'required');
    return out;
  }
  for (const extra of set.slice(1)) c.error([...fp, extra], 'may not have more than one field specified at a time', 'exclusive-fields', 'key');
  const kind = set[0] ?? 'fieldRef';
  const so = c.object(from[kind], [...fp, kind]);
  if (!so) return out;
  const src = kind === 'fieldRef' ? fieldRef(c, so, [...fp, kind]) : kind === 'resourceFieldRef' ? resourceFieldRef(c, so, [...fp, kind]) : keyRef(c, so, [...fp, kind], kind);
  if (src) out.valueFrom = src;
  return out;
}

function envFrom(c: Checker, v: unknown, path: FieldPath): EnvFromSource | undefined {
  const o = c.object(v, path, true);
  if (!o) return undefined;
  const prefix = c.string(o.prefix, [...path, 'prefix']);
  if (prefix) {
    const p = envVarNameProblem(prefix);
    if (p) c.error([...path, 'prefix'], p.replace('environment variable name', 'prefix'), 'invalid-name');
  }
  const set = (['configMapRef', 'secretRef'] as const).filter((k) => o[k] !== undefined && o[k] !== null);
  if (set.length === 0) {
    c.error(path, 'must specify one of: `configMapRef` or `secretRef`', 'required');
    return undefined;
  }
  if (set.length > 1) c.error([...path, 'secretRef'], 'may not have more than one field specified at a time', 'exclusive-fields', 'key');
  const source = set[0] ?? 'configMapRef';
  const ro = c.object(o[source], [...path, source]);
  if (!ro) return undefined;
  const out: EnvFromSource = { source, name: objectName(c, ro.name, [...path, source, 'name']), optional: c.boolean(ro.optional, [...path, source, 'optional']) ?? false };
  if (prefix) out.prefix = prefix;
  return out;
}

/** The fields past name and ports, each set only when the manifest has it. */
export function readContainerRun(c: Checker, co: Json, cp: FieldPath, ports: readonly ContainerPort[]): Omit<Container, 'name' | 'ports'> {
  const out: Omit<Container, 'name' | 'ports'> = {};
  const image = c.string(co.image, [...cp, 'image']);
  if (image !== undefined && image !== '') out.image = image;
  const command = strings(c, co.command, [...cp, 'command']);
  if (command && command.length > 0) out.command = command;
  const args = strings(c, co.args, [...cp, 'args']);
  if (args && args.length > 0) out.args = args;
  const wd = c.string(co.workingDir, [...cp, 'workingDir']);
  if (wd !== undefined && wd !== '') out.workingDir = wd;
  const envList = c.array(co.env, [...cp, 'env']);
  if (envList && envList.length > 0) {
    const seen = new Map<string, number>();
    out.env = [];
    envList.forEach((e, i) => {
      const ev = envVar(c, e, [...cp, 'env', i]);
      if (!ev) return;
      const first = seen.get(ev.name);
      if (first !== undefined && ev.name !== '') c.warn([...cp, 'env', i, 'name'], `hides previous definition of "${ev.name}" (env[${first}])`, 'duplicate');
      else seen.set(ev.name, i);
      out.env?.push(ev);
    });
  }
  const fromList = c.array(co.envFrom, [...cp, 'envFrom']);
  if (fromList && fromList.length > 0) {
    out.envFrom = [];
    fromList.forEach((e, i) => {
      const ef = envFrom(c, e, [...cp, 'envFrom', i]);
      if (ef) out.envFrom?.push(ef);
    });
  }
  for (const kind of ['readinessProbe', 'livenessProbe', 'startupProbe'] as const) {
    const p = readProbe(c, co[kind], [...cp, kind], kind, ports);
    if (p) out[kind] = p;
  }
  return out;
}
