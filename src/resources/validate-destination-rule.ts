// Validation of Istio's networking.istio.io DestinationRule: subsets, load balancing, connection pools, outlier detection, TLS.
import type { Checker, Json } from './checker.ts';
import type { FieldPath, Origin } from './kinds.ts';
import type { ConsistentHashLb, DestinationRule, IstioTrafficPolicy, SimpleLb } from './kinds-traffic.ts';
import { dnsLabelProblem, labelMap, objectMeta } from './validate-common.ts';
import { duration, hostProblem, notImplemented, oneOf, portSelector, stringList } from './validate-traffic-common.ts';

const SIMPLE: readonly SimpleLb[] = ['UNSPECIFIED', 'LEAST_CONN', 'RANDOM', 'PASSTHROUGH', 'ROUND_ROBIN', 'LEAST_REQUEST'];
const TLS_MODES = ['DISABLE', 'SIMPLE', 'MUTUAL', 'ISTIO_MUTUAL'] as const;
const INT32 = 2147483647;

export function readDestinationRule(c: Checker, obj: Json, origin: Origin): DestinationRule | undefined {
  const metadata = objectMeta(c, obj, true, 'DestinationRule');
  if (!metadata) return undefined;
  c.knownFields(obj, [], ['apiVersion', 'kind', 'metadata', 'spec', 'status']);
  const spec = c.object(obj.spec, ['spec'], true) ?? {};
  c.knownFields(spec, ['spec'], ['host', 'trafficPolicy', 'subsets', 'exportTo', 'workloadSelector']);
  notImplemented(c, spec, ['spec'], {
    exportTo: 'the rule is visible in every namespace',
    workloadSelector: 'the rule applies to every client workload',
  });
  const host = c.string(spec.host, ['spec', 'host'], true) ?? '';
  if (host !== '') {
    const p = hostProblem(host);
    if (p) c.error(['spec', 'host'], p, 'invalid-host');
  } else if (spec.host === '') c.error(['spec', 'host'], 'is required', 'required');
  const out: DestinationRule['spec'] = { host, subsets: [] };
  const tp = trafficPolicy(c, spec.trafficPolicy, ['spec', 'trafficPolicy'], true);
  if (tp) out.trafficPolicy = tp;
  const names = new Set<string>();
  (c.array(spec.subsets, ['spec', 'subsets']) ?? []).forEach((s, i) => {
    const sp = ['spec', 'subsets', i];
    const so = c.object(s, sp, true);
    if (!so) return;
    c.knownFields(so, sp, ['name', 'labels', 'trafficPolicy']);
    const name = c.string(so.name, [...sp, 'name'], true);
    if (name !== undefined) {
      const p = dnsLabelProblem(name);
      if (p) c.error([...sp, 'name'], `subset name ${p}`);
      if (names.has(name)) c.error([...sp, 'name'], `duplicate subset name "${name}"`, 'duplicate');
      names.add(name);
    }
    const subset: DestinationRule['spec']['subsets'][number] = { name: name ?? '', labels: labelMap(c, so.labels, [...sp, 'labels']), path: sp };
    const stp = trafficPolicy(c, so.trafficPolicy, [...sp, 'trafficPolicy'], true);
    if (stp) subset.trafficPolicy = stp;
    if (name !== undefined) out.subsets.push(subset);
  });
  if (spec.exportTo !== undefined && spec.exportTo !== null) out.exportTo = stringList(c, spec.exportTo, ['spec', 'exportTo']);
  return { kind: 'DestinationRule', apiVersion: String(obj.apiVersion), metadata, origin, spec: out };
}

function trafficPolicy(c: Checker, v: unknown, path: FieldPath, withPorts: boolean): IstioTrafficPolicy | undefined {
  const o = c.object(v, path);
  if (!o) return undefined;
  const fields = ['loadBalancer', 'connectionPool', 'outlierDetection', 'tls', 'tunnel', 'proxyProtocol'];
  c.knownFields(o, path, withPorts ? [...fields, 'portLevelSettings'] : ['port', ...fields]);
  notImplemented(c, o, path, { tunnel: 'traffic is not tunnelled', proxyProtocol: 'no PROXY protocol header is sent' });
  const out: IstioTrafficPolicy = { portLevelSettings: [] };
  const lb = c.object(o.loadBalancer, [...path, 'loadBalancer']);
  if (lb) {
    const lp = [...path, 'loadBalancer'];
    c.knownFields(lb, lp, ['simple', 'consistentHash', 'localityLbSetting', 'warmupDurationSecs', 'warmup']);
    notImplemented(c, lb, lp, {
      localityLbSetting: 'endpoints are balanced by their locality weights only, with no failover or distribution rules',
      warmupDurationSecs: 'new endpoints get their full share at once',
      warmup: 'new endpoints get their full share at once',
    });
    c.exclusive(lb, lp, ['simple', 'consistentHash'], 'may not be combined with simple (set only one of simple, consistentHash)');
    out.loadBalancer = {};
    const simple = oneOf(c, lb.simple, [...lp, 'simple'], SIMPLE);
    if (simple) out.loadBalancer.simple = simple;
    const ch = consistentHash(c, lb.consistentHash, [...lp, 'consistentHash']);
    if (ch) out.loadBalancer.consistentHash = ch;
  }
  const cp = c.object(o.connectionPool, [...path, 'connectionPool']);
  if (cp) {
    const pp = [...path, 'connectionPool'];
    c.knownFields(cp, pp, ['tcp', 'http']);
    out.connectionPool = {};
    const tcp = c.object(cp.tcp, [...pp, 'tcp']);
    if (tcp) {
      c.knownFields(tcp, [...pp, 'tcp'], ['maxConnections', 'connectTimeout', 'tcpKeepalive', 'maxConnectionDuration', 'idleTimeout']);
      notImplemented(c, tcp, [...pp, 'tcp'], {
        tcpKeepalive: 'upstream sockets use the system keepalive settings',
        maxConnectionDuration: 'upstream connections have no maximum lifetime',
        idleTimeout: 'idle upstream connections close after 60s',
      });
      out.connectionPool.tcp = {};
      const mc = c.integer(tcp.maxConnections, [...pp, 'tcp', 'maxConnections'], 1, INT32);
      if (mc !== undefined) out.connectionPool.tcp.maxConnections = mc;
      const ct = duration(c, tcp.connectTimeout, [...pp, 'tcp', 'connectTimeout']);
      if (ct !== undefined) out.connectionPool.tcp.connectTimeoutMs = ct;
    }
    const http = c.object(cp.http, [...pp, 'http']);
    if (http) {
      const hp = [...pp, 'http'];
      c.knownFields(http, hp, ['http1MaxPendingRequests', 'http2MaxRequests', 'maxRequestsPerConnection', 'maxRetries', 'idleTimeout', 'h2UpgradePolicy', 'useClientProtocol', 'maxConcurrentStreams']);
      notImplemented(c, http, hp, {
        idleTimeout: 'idle upstream connections close after 60s',
        useClientProtocol: "the upstream protocol follows the Service port's protocol (or h2UpgradePolicy)",
        maxConcurrentStreams: "an HTTP/2 upstream session carries as many streams as the server's SETTINGS allow",
      });
      const h: NonNullable<NonNullable<IstioTrafficPolicy['connectionPool']>['http']> = {};
      for (const f of ['http1MaxPendingRequests', 'http2MaxRequests', 'maxRequestsPerConnection', 'maxRetries'] as const) {
        const n = c.integer(http[f], [...hp, f], f === 'maxRetries' || f === 'maxRequestsPerConnection' ? 0 : 1, INT32);
        if (n !== undefined) h[f] = n;
      }
      const up = oneOf(c, http.h2UpgradePolicy, [...hp, 'h2UpgradePolicy'], ['DEFAULT', 'DO_NOT_UPGRADE', 'UPGRADE']);
      if (up) h.h2UpgradePolicy = up;
      out.connectionPool.http = h;
    }
  }
  const od = c.object(o.outlierDetection, [...path, 'outlierDetection']);
  if (od) {
    const op = [...path, 'outlierDetection'];
    c.knownFields(od, op, ['consecutiveErrors', 'consecutive5xxErrors', 'consecutiveGatewayErrors', 'consecutiveLocalOriginFailures', 'splitExternalLocalOriginErrors', 'interval', 'baseEjectionTime', 'maxEjectionPercent', 'minHealthPercent']);
    notImplemented(c, od, op, {
      consecutiveErrors: 'deprecated by Istio; set consecutive5xxErrors or consecutiveGatewayErrors',
      consecutiveLocalOriginFailures: 'local-origin failures count as gateway errors',
      splitExternalLocalOriginErrors: 'local-origin failures count as gateway errors',
      minHealthPercent: 'ejection stays on however few hosts are healthy (bounded by maxEjectionPercent)',
    });
    const d: NonNullable<IstioTrafficPolicy['outlierDetection']> = {};
    for (const f of ['consecutive5xxErrors', 'consecutiveGatewayErrors'] as const) {
      const n = c.integer(od[f], [...op, f], 0, INT32);
      if (n !== undefined) d[f] = n;
    }
    const iv = duration(c, od.interval, [...op, 'interval']);
    if (iv !== undefined) d.intervalMs = iv;
    const be = duration(c, od.baseEjectionTime, [...op, 'baseEjectionTime']);
    if (be !== undefined) d.baseEjectionTimeMs = be;
    const mp = c.integer(od.maxEjectionPercent, [...op, 'maxEjectionPercent'], 0, 100);
    if (mp !== undefined) d.maxEjectionPercent = mp;
    out.outlierDetection = d;
  }
  const tls = c.object(o.tls, [...path, 'tls']);
  if (tls) {
    const tp = [...path, 'tls'];
    c.knownFields(tls, tp, ['mode', 'clientCertificate', 'privateKey', 'caCertificates', 'credentialName', 'subjectAltNames', 'sni', 'insecureSkipVerify', 'caCrl']);
    const noClientCert = 'no client certificate is presented (MUTUAL works as SIMPLE)';
    notImplemented(c, tls, tp, {
      clientCertificate: noClientCert,
      privateKey: noClientCert,
      credentialName: noClientCert,
      caCertificates: "the server's certificate is verified against the system roots",
      caCrl: 'no revocation list is checked',
      insecureSkipVerify: "the server's certificate is still verified (fail closed)",
    });
    const mode = oneOf(c, tls.mode, [...tp, 'mode'], TLS_MODES) ?? 'DISABLE';
    const t: NonNullable<IstioTrafficPolicy['tls']> = { mode };
    const sni = c.string(tls.sni, [...tp, 'sni']);
    if (sni) t.sni = sni;
    if (tls.subjectAltNames !== undefined && tls.subjectAltNames !== null) t.subjectAltNames = stringList(c, tls.subjectAltNames, [...tp, 'subjectAltNames']);
    const cred = c.string(tls.credentialName, [...tp, 'credentialName']);
    if (cred) t.credentialName = cred;
    if (mode === 'MUTUAL' && !cred && (tls.clientCertificate === undefined || tls.privateKey === undefined)) {
      c.error([...tp, 'mode'], 'MUTUAL needs credentialName, or clientCertificate and privateKey', 'required');
    }
    out.tls = t;
  }
  if (withPorts) {
    const seen = new Set<number>();
    (c.array(o.portLevelSettings, [...path, 'portLevelSettings']) ?? []).forEach((p, i) => {
      const pp = [...path, 'portLevelSettings', i];
      const pol = trafficPolicy(c, p, pp, false);
      const po = c.object(p, pp);
      const port = portSelector(c, po?.port, [...pp, 'port'], true);
      if (port !== undefined && seen.has(port)) c.error([...pp, 'port', 'number'], `port ${port} has settings already`, 'duplicate');
      if (port !== undefined) seen.add(port);
      if (pol && port !== undefined) {
        const { portLevelSettings: _, ...rest } = pol;
        out.portLevelSettings.push({ ...rest, port });
      }
    });
  }
  return out;
}

function consistentHash(c: Checker, v: unknown, path: FieldPath): ConsistentHashLb | undefined {
  const o = c.object(v, path);
  if (!o) return undefined;
  c.knownFields(o, path, ['httpHeaderName', 'httpCookie', 'useSourceIp', 'httpQueryParameterName', 'ringHash', 'maglev', 'minimumRingSize']);
  notImplemented(c, o, path, { maglev: 'a ring hash is used' });
  c.exclusive(o, path, ['httpHeaderName', 'httpCookie', 'useSourceIp', 'httpQueryParameterName'], 'set only one of httpHeaderName, httpCookie, useSourceIp, httpQueryParameterName');
  const out: ConsistentHashLb = {};
  const h = c.string(o.httpHeaderName, [...path, 'httpHeaderName']);
  if (h) out.httpHeaderName = h.toLowerCase();
  const q = c.string(o.httpQueryParameterName, [...path, 'httpQueryParameterName']);
  if (q) out.httpQueryParameterName = q;
  const src = c.boolean(o.useSourceIp, [...path, 'useSourceIp']);
  if (src) out.useSourceIp = true;
  const ck = c.object(o.httpCookie, [...path, 'httpCookie']);
  if (ck) {
    const kp = [...path, 'httpCookie'];
    c.knownFields(ck, kp, ['name', 'path', 'ttl', 'attributes']);
    const name = c.string(ck.name, [...kp, 'name'], true);
    const cookie: NonNullable<ConsistentHashLb['httpCookie']> = { name: name ?? '' };
    const cpath = c.string(ck.path, [...kp, 'path']);
    if (cpath) cookie.path = cpath;
    const ttl = duration(c, ck.ttl, [...kp, 'ttl'], { allowZero: true });
    if (ttl !== undefined) cookie.ttlMs = ttl;
    if (name) out.httpCookie = cookie;
  }
  if (!out.httpHeaderName && !out.httpQueryParameterName && !out.useSourceIp && !ck && o.useSourceIp !== false) {
    c.error(path, 'must set one of httpHeaderName, httpCookie, useSourceIp, httpQueryParameterName', 'required');
  }
  const ring = c.object(o.ringHash, [...path, 'ringHash']);
  if (ring) c.knownFields(ring, [...path, 'ringHash'], ['minimumRingSize']);
  const min = c.integer(ring ? ring.minimumRingSize : o.minimumRingSize, ring ? [...path, 'ringHash', 'minimumRingSize'] : [...path, 'minimumRingSize'], 1, 8388608);
  if (min !== undefined) out.minimumRingSize = min;
  return out;
}
