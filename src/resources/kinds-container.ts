// Typed objects for what a container runs with: command, environment (env, envFrom), probes, and ConfigMaps/Secrets.
import type { ContainerPort, ObjectMeta, Origin } from './kinds.ts';

export type RestartPolicy = 'Always' | 'OnFailure' | 'Never';

/** `metadata.labels['key']` and `metadata.annotations['key']` are allowed too (see validate-container.ts). */
export type EnvFieldPath =
  | 'metadata.name'
  | 'metadata.namespace'
  | 'metadata.uid'
  | 'spec.nodeName'
  | 'spec.serviceAccountName'
  | 'status.hostIP'
  | 'status.hostIPs'
  | 'status.podIP'
  | 'status.podIPs';

/** A reference to one key of a ConfigMap or Secret in the pod's namespace. */
export interface KeyRef {
  name: string;
  key: string;
  optional: boolean;
}

/** `valueFrom`: exactly one source, as the API requires. */
export type EnvVarSource =
  | { type: 'fieldRef'; fieldPath: string }
  | { type: 'resourceFieldRef'; resource: string; containerName?: string; divisor?: string }
  | ({ type: 'configMapKeyRef' } & KeyRef)
  | ({ type: 'secretKeyRef' } & KeyRef);

export interface EnvVar {
  name: string;
  /** As written (`$(VAR)` references are expanded when the container starts). */
  value?: string;
  valueFrom?: EnvVarSource;
}

/** `envFrom`: every key of a ConfigMap or Secret, with an optional prefix. */
export interface EnvFromSource {
  prefix?: string;
  source: 'configMapRef' | 'secretRef';
  name: string;
  optional: boolean;
}

export type ProbeHandler =
  | { type: 'httpGet'; path: string; port: number | string; host?: string; scheme: 'HTTP' | 'HTTPS'; httpHeaders: { name: string; value: string }[] }
  | { type: 'tcpSocket'; port: number | string; host?: string }
  | { type: 'grpc'; port: number; service?: string }
  | { type: 'exec'; command: string[] };

/** A probe with the API's defaults applied (timeout 1 s, period 10 s, thresholds 1 and 3). */
export interface Probe {
  handler: ProbeHandler;
  initialDelaySeconds: number;
  timeoutSeconds: number;
  periodSeconds: number;
  successThreshold: number;
  failureThreshold: number;
  terminationGracePeriodSeconds?: number;
}

/**
 * One container. Fields past `ports` are present only when the manifest sets them, so that templates
 * without them hash (and name their pods) as before.
 */
export interface Container {
  name: string;
  ports: ContainerPort[];
  image?: string;
  command?: string[];
  args?: string[];
  workingDir?: string;
  env?: EnvVar[];
  envFrom?: EnvFromSource[];
  readinessProbe?: Probe;
  livenessProbe?: Probe;
  startupProbe?: Probe;
}

interface ConfigBase<K extends string> {
  kind: K;
  apiVersion: string;
  metadata: ObjectMeta;
  origin: Origin;
}

export interface ConfigMap extends ConfigBase<'ConfigMap'> {
  data: Record<string, string>;
  binaryData: Record<string, Uint8Array>;
  immutable?: boolean;
}

export interface Secret extends ConfigBase<'Secret'> {
  /** `Opaque` unless set. */
  type: string;
  /** `data` decoded from base64, with `stringData` merged over it (as the API server does). */
  data: Record<string, Uint8Array>;
  immutable?: boolean;
}

export type ConfigResource = ConfigMap | Secret;
