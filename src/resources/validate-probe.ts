// Validation of container probes (readiness, liveness, startup) by the API server's rules, with its defaults applied.
import type { Checker, Json } from './checker.ts';
import type { ContainerPort, FieldPath } from './kinds.ts';
import type { Probe, ProbeHandler } from './kinds-container.ts';
import { portNameProblem } from './validate-common.ts';

const INT32_MAX = 2147483647;
const HANDLERS = ['exec', 'httpGet', 'tcpSocket', 'grpc'] as const;
const HTTP_HEADER_NAME = /^[-A-Za-z0-9]+$/;

export type ProbeKind = 'readinessProbe' | 'livenessProbe' | 'startupProbe';

/** A port as a number (1-65535) or an IANA service name; a name must be one of the container's own ports. */
function portNumOrName(c: Checker, v: unknown, path: FieldPath, ports: readonly ContainerPort[]): number | string | undefined {
  if (v === undefined || v === null) {
    c.error(path, 'is required', 'required');
    return undefined;
  }
  if (typeof v === 'number') return c.integer(v, path, 1, 65535);
  if (typeof v !== 'string') {
    c.error(path, 'must be a port number or a port name', 'invalid-type');
    return undefined;
  }
  const prob = portNameProblem(v);
  if (prob) {
    c.error(path, /^[0-9]+$/.test(v) ? `${prob} (write the number without quotes for a port number)` : prob, 'invalid-port-name');
    return undefined;
  }
  if (!ports.some((p) => p.name === v)) c.warn(path, `no port named "${v}" in this container: the probe will fail`, 'unknown-port');
  return v;
}

function handler(c: Checker, o: Json, path: FieldPath, ports: readonly ContainerPort[]): ProbeHandler | undefined {
  const set = HANDLERS.filter((h) => o[h] !== undefined && o[h] !== null);
  if (set.length === 0) {
    c.error(path, 'must specify a handler type (one of exec, httpGet, tcpSocket, grpc)', 'required');
    return undefined;
  }
  for (const extra of set.slice(1)) c.error([...path, extra], 'may not specify more than 1 handler type', 'exclusive-fields', 'key');
  const kind = set[0];
  const hp = [...path, kind ?? ''];
  const h = c.object(o[kind ?? ''], hp);
  if (!h) return undefined;
  switch (kind) {
    case 'exec': {
      const cmd = (c.array(h.command, [...hp, 'command']) ?? []).map((x, i) => c.string(x, [...hp, 'command', i], true) ?? '');
      if (cmd.length === 0) c.error([...hp, 'command'], 'is required', 'required');
      return { type: 'exec', command: cmd };
    }
    case 'httpGet': {
      const path0 = c.string(h.path, [...hp, 'path']);
      const port = portNumOrName(c, h.port, [...hp, 'port'], ports);
      const schemeText = c.string(h.scheme, [...hp, 'scheme']) ?? 'HTTP';
      let scheme: 'HTTP' | 'HTTPS' = 'HTTP';
      if (schemeText === 'HTTP' || schemeText === 'HTTPS') scheme = schemeText;
      else c.error([...hp, 'scheme'], `unsupported value "${schemeText}": supported values: "HTTP", "HTTPS"`, 'unsupported-value');
      const httpHeaders: { name: string; value: string }[] = [];
      (c.array(h.httpHeaders, [...hp, 'httpHeaders']) ?? []).forEach((x, i) => {
        const xp = [...hp, 'httpHeaders', i];
        const xo = c.object(x, xp, true);
        if (!xo) return;
        const name = c.string(xo.name, [...xp, 'name'], true);
        const value = c.string(xo.value, [...xp, 'value']) ?? '';
        if (name !== undefined && !HTTP_HEADER_NAME.test(name)) c.error([...xp, 'name'], `"${name}" is not a valid HTTP header name: use letters, digits and "-"`, 'invalid-header');
        else if (name !== undefined) httpHeaders.push({ name, value });
      });
      const out: ProbeHandler = { type: 'httpGet', path: path0 === undefined || path0 === '' ? '/' : path0, port: port ?? 0, scheme, httpHeaders };
      const host = c.string(h.host, [...hp, 'host']);
      if (host) out.host = host;
      return out;
    }
    case 'tcpSocket': {
      const port = portNumOrName(c, h.port, [...hp, 'port'], ports);
      const out: ProbeHandler = { type: 'tcpSocket', port: port ?? 0 };
      const host = c.string(h.host, [...hp, 'host']);
      if (host) out.host = host;
      return out;
    }
    default: {
      // gRPC probes take a port number only (the field is an int32, not an IntOrString).
      const port = c.integer(h.port, [...hp, 'port'], 1, 65535, true);
      const out: ProbeHandler = { type: 'grpc', port: port ?? 0 };
      const service = c.string(h.service, [...hp, 'service']);
      if (service !== undefined) out.service = service;
      return out;
    }
  }
}

/** Non-negative int32 fields; 0 (or absent) takes the API's default, as defaulting runs before validation. */
function field(c: Checker, o: Json, path: FieldPath, name: string, dflt: number): number {
  const v = c.integer(o[name], [...path, name], 0, INT32_MAX);
  return v === undefined || v === 0 ? dflt : v;
}

export function readProbe(c: Checker, v: unknown, path: FieldPath, kind: ProbeKind, ports: readonly ContainerPort[]): Probe | undefined {
  const o = c.object(v, path);
  if (!o) return undefined;
  const h = handler(c, o, path, ports);
  const probe: Probe = {
    handler: h ?? { type: 'exec', command: [] },
    initialDelaySeconds: c.integer(o.initialDelaySeconds, [...path, 'initialDelaySeconds'], 0, INT32_MAX) ?? 0,
    timeoutSeconds: field(c, o, path, 'timeoutSeconds', 1),
    periodSeconds: field(c, o, path, 'periodSeconds', 10),
    successThreshold: field(c, o, path, 'successThreshold', 1),
    failureThreshold: field(c, o, path, 'failureThreshold', 3),
  };
  if (kind !== 'readinessProbe' && probe.successThreshold !== 1) c.error([...path, 'successThreshold'], 'must be 1');
  const grace = o.terminationGracePeriodSeconds;
  if (grace !== undefined && grace !== null) {
    if (kind === 'readinessProbe') c.error([...path, 'terminationGracePeriodSeconds'], 'must not be set for readinessProbes', 'invalid-value', 'key');
    else if (typeof grace === 'number' && Number.isInteger(grace) && grace <= 0) c.error([...path, 'terminationGracePeriodSeconds'], 'must be greater than 0');
    else {
      const g = c.integer(grace, [...path, 'terminationGracePeriodSeconds'], 1, Number.MAX_SAFE_INTEGER);
      if (g !== undefined) probe.terminationGracePeriodSeconds = g;
    }
  }
  return h ? probe : undefined;
}
