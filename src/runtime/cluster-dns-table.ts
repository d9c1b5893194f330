// Which answer a cluster DNS query gets, decided from the cluster model alone (pure; the server only does I/O).
//
// Names follow Kubernetes' DNS specification: `<svc>.<ns>.svc.<zone>` (a ClusterIP Service's address, a headless
// Service's ready pods, an ExternalName's CNAME), `<host>.<svc>.<ns>.svc.<zone>` for headless endpoints (StatefulSet
// pods by name, Pods by hostname/subdomain, others by dashed IP), `_<port>._<proto>.<svc>.<ns>.svc.<zone>` SRV for
// named ports, `<a-b-c-d>.<ns>.pod.<zone>`, and PTR for Service and endpoint addresses. Short names are searched
// as a pod's resolv.conf would (`<ns>.svc.<zone>`, `svc.<zone>`, `<zone>`, relative to the asking pod's namespace).
// Nothing outside the cluster is answered or forwarded: such queries are REFUSED.
import type { Cluster, ModelPod } from '../model/cluster.ts';
import type { Resource, Service } from '../resources/kinds.ts';
import { CLASS_IN, QTYPE, RCODE, type RecordData, type ResourceRecord } from './dns-wire.ts';
import { indexPodSources, podSource } from './pod-source.ts';

export interface DnsTableInput {
  cluster: Cluster;
  /** For StatefulSet serviceName and Pod hostname/subdomain. */
  resources: readonly Resource[];
  /** Default `cluster.local`. */
  domain?: string;
  /** Default 5 s, as CoreDNS's kubernetes plugin. */
  ttl?: number;
  /** A non-headless Service's address as a client sees it; default its clusterIP when that is an address. */
  serviceAddress?: (svc: Service, client: ModelPod | undefined) => string | undefined;
  /** Default the model's pod IPs. */
  podAddresses?: (pod: ModelPod) => readonly string[];
  /** The pod a query comes from; default the model's podsByIp. */
  clientPod?: (ip: string) => ModelPod | undefined;
  /** The search namespace of clients that are no pod; default `default`. */
  defaultNamespace?: string;
  serial?: number;
}

export interface DnsAnswer {
  rcode: number;
  authoritative: boolean;
  answers: ResourceRecord[];
  authority: ResourceRecord[];
  additional: ResourceRecord[];
}

interface Srv {
  port: number;
  target: string;
}

type ZoneNode =
  | { kind: 'service'; svc: Service }
  | { kind: 'external'; target: string }
  | { kind: 'addresses'; ips: string[] }
  | { kind: 'srv'; records: Srv[] }
  | { kind: 'empty' };

function dashed(ip: string): string {
  return ip.replace(/[.:]/g, '-');
}

function reverseName(ip: string): string | undefined {
  if (/^\d+\.\d+\.\d+\.\d+$/.test(ip)) return `${ip.split('.').reverse().join('.')}.in-addr.arpa`;
  return undefined;
}

function selects(selector: Record<string, string>, labels: Record<string, string>): boolean {
  const keys = Object.keys(selector);
  return keys.length > 0 && keys.every((k) => labels[k] === selector[k]);
}

const isV4 = (ip: string): boolean => !ip.includes(':');

export class ClusterDnsTable {
  readonly domain: string;
  private readonly ttl: number;
  private readonly nodes = new Map<string, ZoneNode>();
  private readonly ptr = new Map<string, string>();
  private readonly input: DnsTableInput;
  private readonly soa: ResourceRecord;

  constructor(input: DnsTableInput) {
    this.input = input;
    this.domain = (input.domain ?? 'cluster.local').toLowerCase();
    this.ttl = input.ttl ?? 5;
    this.soa = this.rr(this.domain, QTYPE.SOA, { type: 'SOA', mname: `ns.dns.${this.domain}`, rname: `hostmaster.${this.domain}`, serial: input.serial ?? 1, refresh: 7200, retry: 1800, expire: 86400, minimum: this.ttl });
    this.build();
  }

  private rr(name: string, type: number, data: RecordData): ResourceRecord {
    return { name, type, class: CLASS_IN, ttl: this.ttl, data };
  }

  private set(name: string, node: ZoneNode): void {
    this.nodes.set(name, node);
    // Every ancestor inside the zone exists (an empty non-terminal answers NODATA, not NXDOMAIN).
    for (let i = name.indexOf('.'); i >= 0 && name.length - i - 1 > this.domain.length; i = name.indexOf('.', i + 1)) {
      const parent = name.slice(i + 1);
      if (!this.nodes.has(parent)) this.nodes.set(parent, { kind: 'empty' });
    }
  }

  private build(): void {
    const { cluster } = this.input;
    const podIps = (p: ModelPod): readonly string[] => this.input.podAddresses?.(p) ?? p.ips;
    const sources = indexPodSources(this.input.resources);
    const byNs = new Map<string, ModelPod[]>();
    for (const p of cluster.pods.values()) {
      if (p.hostNetwork) continue;
      const list = byNs.get(p.namespace) ?? [];
      list.push(p);
      byNs.set(p.namespace, list);
      for (const ip of podIps(p)) this.set(`${dashed(ip)}.${p.namespace}.pod.${this.domain}`, { kind: 'addresses', ips: [ip] });
    }
    for (const ns of cluster.namespaces.keys()) this.set(`${ns}.svc.${this.domain}`, { kind: 'empty' });
    for (const svc of cluster.services) {
      const ns = svc.metadata.namespace ?? 'default';
      const fqdn = `${svc.metadata.name}.${ns}.svc.${this.domain}`;
      if (svc.spec.type === 'ExternalName') {
        this.set(fqdn, { kind: 'external', target: (svc.spec.externalName ?? '').replace(/\.$/, '').toLowerCase() });
        continue;
      }
      if (svc.spec.clusterIP !== 'None') {
        this.set(fqdn, { kind: 'service', svc });
        const vip = this.input.serviceAddress?.(svc, undefined) ?? svc.spec.clusterIP;
        const rev = vip ? reverseName(vip) : undefined;
        if (rev) this.ptr.set(rev, fqdn);
        for (const sp of svc.spec.ports) if (sp.name) this.set(`_${sp.name}._${sp.protocol.toLowerCase()}.${fqdn}`, { kind: 'srv', records: [{ port: sp.port, target: fqdn }] });
        continue;
      }
      // Headless: the ready pods it selects (all of them with publishNotReadyAddresses), each under a host name.
      const selected = (byNs.get(ns) ?? []).filter((p) => selects(svc.spec.selector ?? {}, p.labels) && (p.ready || svc.spec.publishNotReadyAddresses === true));
      selected.sort((a, b) => (a.key < b.key ? -1 : 1));
      const all: string[] = [];
      const hosts: { pod: ModelPod; host: string }[] = [];
      for (const pod of selected) {
        const ips = [...podIps(pod)];
        if (ips.length === 0) continue;
        all.push(...ips);
        const src = podSource(sources, pod);
        const named = src?.workload?.kind === 'StatefulSet' ? (src.workload.serviceName === svc.metadata.name ? pod.name : undefined) : src?.spec.subdomain === svc.metadata.name ? src.spec.hostname : undefined;
        const host = `${named ?? dashed(ips[0] ?? '')}.${fqdn}`;
        this.set(host, { kind: 'addresses', ips });
        for (const ip of ips) {
          const rev = reverseName(ip);
          if (rev && named) this.ptr.set(rev, host);
        }
        hosts.push({ pod, host });
      }
      this.set(fqdn, { kind: 'addresses', ips: all });
      for (const sp of svc.spec.ports) {
        if (!sp.name) continue;
        const records: Srv[] = [];
        for (const { pod, host } of hosts) {
          const port = typeof sp.targetPort === 'number' ? sp.targetPort : pod.ports.find((p) => p.name === sp.targetPort && p.protocol === sp.protocol)?.containerPort;
          if (port !== undefined) records.push({ port, target: host });
        }
        this.set(`_${sp.name}._${sp.protocol.toLowerCase()}.${fqdn}`, { kind: 'srv', records });
      }
    }
  }

  private inZone(name: string): boolean {
    return name === this.domain || name.endsWith(`.${this.domain}`);
  }

  /** Answers one question (name without trailing dot) for the client at `clientIp`. */
  resolve(qname: string, qtype: number, clientIp: string): DnsAnswer {
    const name = qname.replace(/\.$/, '').toLowerCase();
    const client = this.input.clientPod ? this.input.clientPod(clientIp) : this.input.cluster.podsByIp.get(clientIp);
    const ns = client?.namespace ?? this.input.defaultNamespace ?? 'default';
    if (name.endsWith('.in-addr.arpa')) {
      const target = this.ptr.get(name);
      if (target === undefined) return this.refused();
      return this.ok(qtype === QTYPE.PTR || qtype === QTYPE.ANY ? [this.rr(qname, QTYPE.PTR, { type: 'PTR', target })] : [], true);
    }
    // Search list first, as the pod's resolver would expand a short name; an absolute cluster name last.
    const candidates = [`${name}.${ns}.svc.${this.domain}`, `${name}.svc.${this.domain}`, `${name}.${this.domain}`];
    for (const c of candidates) {
      const node = this.nodes.get(c);
      if (node && node.kind !== 'empty') return this.answer(qname, qtype, node, client);
    }
    if (!this.inZone(name)) return this.refused();
    if (name === this.domain) {
      if (qtype === QTYPE.SOA || qtype === QTYPE.ANY) return this.ok([{ ...this.soa, name: qname }], false);
      if (qtype === QTYPE.NS) return this.ok([this.rr(qname, QTYPE.NS, { type: 'NS', target: `ns.dns.${this.domain}` })], false);
      return this.ok([], true);
    }
    const node = this.nodes.get(name);
    if (!node) return { rcode: RCODE.NXDOMAIN, authoritative: true, answers: [], authority: [this.soa], additional: [] };
    return this.answer(qname, qtype, node, client);
  }

  private refused(): DnsAnswer {
    return { rcode: RCODE.REFUSED, authoritative: false, answers: [], authority: [], additional: [] };
  }

  private ok(answers: ResourceRecord[], soaIfEmpty: boolean, additional: ResourceRecord[] = []): DnsAnswer {
    return { rcode: RCODE.NOERROR, authoritative: true, answers, authority: answers.length === 0 && soaIfEmpty ? [this.soa] : [], additional };
  }

  private addresses(owner: string, qtype: number, ips: readonly string[]): ResourceRecord[] {
    const out: ResourceRecord[] = [];
    for (const ip of ips) {
      const v4 = isV4(ip);
      if (qtype === QTYPE.ANY || qtype === (v4 ? QTYPE.A : QTYPE.AAAA)) out.push(this.rr(owner, v4 ? QTYPE.A : QTYPE.AAAA, { type: v4 ? 'A' : 'AAAA', address: ip }));
    }
    return out;
  }

  private serviceIps(svc: Service, client: ModelPod | undefined): string[] {
    const ip = this.input.serviceAddress ? this.input.serviceAddress(svc, client) : svc.spec.clusterIP;
    return ip && ip !== 'None' ? [ip] : [];
  }

  private answer(owner: string, qtype: number, node: ZoneNode, client: ModelPod | undefined): DnsAnswer {
    switch (node.kind) {
      case 'service':
        return this.ok(this.addresses(owner, qtype, this.serviceIps(node.svc, client)), true);
      case 'addresses':
        return this.ok(this.addresses(owner, qtype, node.ips), true);
      case 'external': {
        const cname = this.rr(owner, QTYPE.CNAME, { type: 'CNAME', target: node.target });
        if (qtype === QTYPE.CNAME || !this.inZone(node.target)) return this.ok([cname], false);
        // A target inside the cluster is followed once, so the client needs no second query.
        const t = this.nodes.get(node.target);
        const more = t && t.kind !== 'external' ? this.answer(node.target, qtype, t, client).answers : [];
        return this.ok([cname, ...more], false);
      }
      case 'srv': {
        if (qtype !== QTYPE.SRV && qtype !== QTYPE.ANY) return this.ok([], true);
        const weight = node.records.length > 0 ? Math.max(1, Math.floor(100 / node.records.length)) : 0;
        const answers = node.records.map((r) => this.rr(owner, QTYPE.SRV, { type: 'SRV', priority: 0, weight, port: r.port, target: r.target }));
        const additional: ResourceRecord[] = [];
        for (const r of node.records) {
          const t = this.nodes.get(r.target);
          if (t && (t.kind === 'service' || t.kind === 'addresses')) additional.push(...this.answer(r.target, QTYPE.ANY, t, client).answers);
        }
        return this.ok(answers, true, additional);
      }
      default:
        return this.ok([], true);
    }
  }
}
