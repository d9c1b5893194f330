// Validation of Istio's networking.istio.io Gateway: the servers (ports, hosts, TLS) a gateway workload exposes.
import type { Checker, Json } from './checker.ts';
import type { Origin } from './kinds.ts';
import type { IstioGateway } from './kinds-traffic.ts';
import { labelMap, objectMeta } from './validate-common.ts';
import { hostProblem, oneOf, stringList } from './validate-traffic-common.ts';
import { istioPort } from './validate-service-entry.ts';

export function readIstioGateway(c: Checker, obj: Json, origin: Origin): IstioGateway | undefined {
  const metadata = objectMeta(c, obj, true, 'Gateway');
  if (!metadata) return undefined;
  c.knownFields(obj, [], ['apiVersion', 'kind', 'metadata', 'spec', 'status']);
  const spec = c.object(obj.spec, ['spec'], true) ?? {};
  c.knownFields(spec, ['spec'], ['selector', 'servers']);
  const out: IstioGateway['spec'] = { selector: labelMap(c, spec.selector, ['spec', 'selector']), servers: [] };
  const servers = c.array(spec.servers, ['spec', 'servers'], true) ?? [];
  servers.forEach((s, i) => {
    const sp = ['spec', 'servers', i];
    const so = c.object(s, sp, true);
    if (!so) return;
    c.knownFields(so, sp, ['port', 'hosts', 'tls', 'name', 'bind', 'defaultEndpoint']);
    const port = istioPort(c, so.port, [...sp, 'port']);
    const hosts = stringList(c, so.hosts, [...sp, 'hosts'], true);
    if (Array.isArray(so.hosts) && so.hosts.length === 0) c.error([...sp, 'hosts'], 'must name at least one host', 'required');
    hosts.forEach((h, j) => {
      // `namespace/host`, where namespace may be `.` (the Gateway's) or `*`.
      const slash = h.indexOf('/');
      const host = slash >= 0 ? h.slice(slash + 1) : h;
      const p = hostProblem(host);
      if (p) c.error([...sp, 'hosts', j], p, 'invalid-host');
    });
    const server: IstioGateway['spec']['servers'][number] = { port: port ?? { number: 0, name: '', protocol: 'TCP' }, hosts, path: sp };
    const name = c.string(so.name, [...sp, 'name']);
    if (name) server.name = name;
    const tls = c.object(so.tls, [...sp, 'tls']);
    if (tls) {
      const tp = [...sp, 'tls'];
      c.knownFields(tls, tp, ['httpsRedirect', 'mode', 'serverCertificate', 'privateKey', 'caCertificates', 'credentialName', 'subjectAltNames', 'verifyCertificateSpki', 'verifyCertificateHash', 'minProtocolVersion', 'maxProtocolVersion', 'cipherSuites', 'caCrl']);
      const redirect = c.boolean(tls.httpsRedirect, [...tp, 'httpsRedirect']);
      const mode = oneOf(c, tls.mode, [...tp, 'mode'], ['PASSTHROUGH', 'SIMPLE', 'MUTUAL', 'ISTIO_MUTUAL'] as const);
      if (mode || redirect) {
        server.tls = { mode: mode ?? 'SIMPLE' };
        const cred = c.string(tls.credentialName, [...tp, 'credentialName']);
        if (cred) server.tls.credentialName = cred;
        if (redirect) server.tls.httpsRedirect = true;
        if ((mode === 'SIMPLE' || mode === 'MUTUAL') && !cred && tls.serverCertificate === undefined) {
          c.error([...tp, 'credentialName'], `is required when mode is ${mode} (or give serverCertificate and privateKey)`, 'required');
        }
      }
    }
    const proto = port?.protocol;
    if ((proto === 'HTTPS' || proto === 'TLS') && !server.tls) c.error([...sp, 'tls'], `is required on a ${proto} server`, 'required');
    if (port) out.servers.push(server);
  });
  return { kind: 'Gateway', group: 'networking.istio.io', apiVersion: String(obj.apiVersion), metadata, origin, spec: out };
}
