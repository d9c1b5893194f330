// The Kubernetes service environment variables (`<SVC>_SERVICE_HOST`, docker-link `<SVC>_PORT_<n>_TCP`, …).
import type { Service } from '../resources/kinds.ts';

/** The address a pod is given for a Service (undefined: the Service gets no variables). */
export type ServiceAddressFn = (svc: Service) => string | undefined;

function envName(name: string): string {
  return name.toUpperCase().replace(/-/g, '_');
}

function hostPort(ip: string, port: number): string {
  return ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`;
}

/** Services that get variables: those with a cluster IP (not headless, not ExternalName) and at least one port. */
export function hasServiceIp(svc: Service): boolean {
  return svc.spec.type !== 'ExternalName' && svc.spec.clusterIP !== 'None' && svc.spec.ports.length > 0;
}

/**
 * The variables for the Services of one namespace, in the kubelet's order per Service (Services by name).
 * Only the first port may be unnamed: it alone gives `<SVC>_SERVICE_PORT` and `<SVC>_PORT`.
 */
export function serviceEnvVars(services: readonly Service[], namespace: string, address: ServiceAddressFn): [string, string][] {
  const mine = services.filter((s) => (s.metadata.namespace ?? 'default') === namespace && hasServiceIp(s));
  mine.sort((a, b) => (a.metadata.name < b.metadata.name ? -1 : a.metadata.name > b.metadata.name ? 1 : 0));
  const out: [string, string][] = [];
  for (const svc of mine) {
    const ip = address(svc);
    const first = svc.spec.ports[0];
    if (ip === undefined || first === undefined) continue;
    const prefix = envName(svc.metadata.name);
    out.push([`${prefix}_SERVICE_HOST`, ip], [`${prefix}_SERVICE_PORT`, String(first.port)]);
    for (const sp of svc.spec.ports) if (sp.name) out.push([`${prefix}_SERVICE_PORT_${envName(sp.name)}`, String(sp.port)]);
    svc.spec.ports.forEach((sp, i) => {
      const proto = sp.protocol.toLowerCase();
      const url = `${proto}://${hostPort(ip, sp.port)}`;
      if (i === 0) out.push([`${prefix}_PORT`, url]);
      const pp = `${prefix}_PORT_${sp.port}_${sp.protocol.toUpperCase()}`;
      out.push([pp, url], [`${pp}_PROTO`, proto], [`${pp}_PORT`, String(sp.port)], [`${pp}_ADDR`, ip]);
    });
  }
  return out;
}
