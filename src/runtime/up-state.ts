// The state file of a running `trellis up` (up.json in the state directory): what runs where, for `trellis status`
// and `trellis down`. Rewritten atomically as pods change; the pid registry (pids.json) sits next to it.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { readJson, writeJsonAtomic } from './state-file.ts';

export interface UpContainerStatus {
  name: string;
  /** waiting, running, backoff, terminated, stopping, stopped, or `not-run` (an image with no command). */
  phase: string;
  ready: boolean;
  restarts: number;
  pid?: number;
  message?: string;
}

export interface UpPodStatus {
  key: string;
  owner: string;
  podIp: string;
  appIp: string;
  outboundIp: string;
  ready: boolean;
  proxy: { admin: string; phase: string; ready: boolean; restarts: number; pid?: number };
  containers: UpContainerStatus[];
}

export interface UpServiceStatus {
  key: string;
  type: string;
  ports: string[];
  /** `ip:port` of each selected pod, with its readiness. */
  endpoints: { pod: string; address: string; ready: boolean }[];
}

export interface UpState {
  version: 1;
  pid: number;
  startedAt: string;
  isolation: 'loopback';
  manifests: string[];
  /** `relay`: the flow relay (Observer API) when it runs. */
  controlPlane: { xds: string; ca: string; admin: string; relay?: string };
  dns: string;
  pods: UpPodStatus[];
  services: UpServiceStatus[];
  /** NodePort/LoadBalancer Services and Ingresses, and whether anything serves them yet. */
  exposed: string[];
  updatedAt: string;
}

export const UP_STATE_FILE = 'up.json';
export const PID_FILE = 'pids.json';

export function upStatePath(stateDir: string): string {
  return join(stateDir, UP_STATE_FILE);
}

export function writeUpState(stateDir: string, state: UpState): void {
  writeJsonAtomic(upStatePath(stateDir), state);
}

/** The recorded state, or undefined when there is none (or it is not ours). */
export function readUpState(stateDir: string): UpState | undefined {
  const data = readJson(upStatePath(stateDir)) as Partial<UpState> | undefined;
  if (!data || data.version !== 1 || typeof data.pid !== 'number') return undefined;
  return data as UpState;
}

/** Whether a process with this pid runs and is a `trellis up` (its command line says so). */
export function upIsRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    return cmd.includes('up');
  } catch {
    return false;
  }
}
