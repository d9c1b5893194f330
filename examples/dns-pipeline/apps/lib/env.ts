// Configuration from the environment, as a Kubernetes pod sees it: downward API (POD_IP, POD_NAME), service
// environment variables (ZONE_API_SERVICE_HOST/_PORT) or cluster DNS names, and the app's own settings.
import { isIPv6 } from 'node:net';
import { join } from 'node:path';
import { AppError } from './app-error.ts';

export type Env = Readonly<Record<string, string | undefined>>;

/** The address to listen on: the pod's IP, or 127.0.0.1 when POD_IP is unset. */
export function bindHost(env: Env): string {
  const ip = env.POD_IP?.trim();
  return ip ? ip : '127.0.0.1';
}

export function podName(env: Env, fallback: string): string {
  return env.POD_NAME?.trim() || fallback;
}

/** DATA_DIR, or ./data/<POD_NAME> relative to the working directory. */
export function dataDir(env: Env, fallbackPod: string): string {
  const d = env.DATA_DIR?.trim();
  return d ? d : join('data', podName(env, fallbackPod));
}

export function intEnv(env: Env, name: string, fallback: number, min: number, max: number): number {
  const v = env[name]?.trim();
  if (v === undefined || v === '') return fallback;
  if (!/^-?[0-9]+$/.test(v)) throw new AppError('INVALID_CONFIG', `${name} must be an integer, not "${v}"`);
  const n = Number(v);
  if (n < min || n > max) throw new AppError('INVALID_CONFIG', `${name} must be between ${min} and ${max}, not ${n}`);
  return n;
}

export function stringEnv(env: Env, name: string, fallback: string): string {
  const v = env[name]?.trim();
  return v ? v : fallback;
}

export function listEnv(env: Env, name: string): string[] {
  return (env[name] ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
}

function hostPort(host: string, port: string | number): string {
  return isIPv6(host) ? `[${host}]:${port}` : `${host}:${port}`;
}

/** The prefix Kubernetes gives a Service's environment variables: `zone-api` → `ZONE_API`. */
export function serviceEnvPrefix(service: string): string {
  return service.toUpperCase().replace(/-/g, '_');
}

/**
 * Where to reach a Service, as `host:port`. In order: an explicit override variable (e.g. ZONE_API_ADDR);
 * the service environment variables (`<SVC>_SERVICE_HOST` with `<SVC>_SERVICE_PORT_<PORTNAME>` or
 * `<SVC>_SERVICE_PORT`); else the cluster DNS name and the default port (`zone-api:9090`).
 */
export function serviceAddress(env: Env, service: string, portName: string, defaultPort: number, override: string): string {
  const explicit = env[override]?.trim();
  if (explicit) return explicit;
  const p = serviceEnvPrefix(service);
  const host = env[`${p}_SERVICE_HOST`]?.trim();
  const port = env[`${p}_SERVICE_PORT_${serviceEnvPrefix(portName)}`]?.trim() || env[`${p}_SERVICE_PORT`]?.trim();
  if (host && port) return hostPort(host, port);
  return hostPort(service, defaultPort);
}
