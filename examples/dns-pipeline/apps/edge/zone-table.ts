// The zones an edge serves, and authoritative lookup in them: answers, CNAME chains inside the zone,
// NODATA (also for empty non-terminals) and NXDOMAIN, with the zone's SOA for negative answers.
import type { DnsRecord } from '../lib/records.ts';
import { inZone } from '../lib/records.ts';
import type { ZoneData } from '../lib/zone-data.ts';
import { RCODE, TYPE_NAMES } from './dns-wire.ts';

export interface ServedZone {
  data: ZoneData;
  /** Names that own no record but have descendants that do (they answer NODATA, not NXDOMAIN). */
  nonTerminals: Set<string>;
}

export interface LookupResult {
  rcode: number;
  /** False when no zone here holds the name (REFUSED). */
  authoritative: boolean;
  answers: DnsRecord[];
  authority: DnsRecord[];
}

const MAX_CNAME_HOPS = 8;

export function serve(data: ZoneData): ServedZone {
  const nonTerminals = new Set<string>();
  for (const name of data.byName.keys()) {
    let n = name;
    while (n !== data.name) {
      const dot = n.indexOf('.');
      if (dot < 0) break;
      n = n.slice(dot + 1);
      if (n === data.name || nonTerminals.has(n)) break;
      if (!data.byName.has(n)) nonTerminals.add(n);
    }
  }
  return { data, nonTerminals };
}

/** The zone's SOA with the zone's serial filled in, or a default one when the zone has none. */
export function soaOf(z: ZoneData): DnsRecord {
  const stored = z.byName.get(z.name)?.find((r) => r.type === 'SOA');
  const parts = (stored?.data ?? `ns1.${z.name} hostmaster.${z.name} 0 3600 600 86400 60`).split(' ');
  parts[2] = String(z.serial % 2 ** 32);
  return { name: z.name, type: 'SOA', ttl: stored?.ttl ?? 300, data: parts.join(' ') };
}

/** For negative answers: the SOA with the TTL RFC 2308 asks for, min(SOA TTL, SOA minimum). */
function negativeSoa(z: ZoneData): DnsRecord {
  const soa = soaOf(z);
  const minimum = Number(soa.data.split(' ')[6] ?? soa.ttl);
  return { ...soa, ttl: Math.min(soa.ttl, minimum) };
}

export class ZoneTable {
  private readonly zones = new Map<string, ServedZone>();

  get size(): number {
    return this.zones.size;
  }

  get(zone: string): ServedZone | undefined {
    return this.zones.get(zone);
  }

  set(z: ServedZone): void {
    this.zones.set(z.data.name, z);
  }

  delete(zone: string): void {
    this.zones.delete(zone);
  }

  names(): string[] {
    return [...this.zones.keys()].sort();
  }

  /** The zone that holds `name`: the longest suffix that is a zone here. */
  find(name: string): ServedZone | undefined {
    let n = name;
    for (;;) {
      const z = this.zones.get(n);
      if (z) return z;
      const dot = n.indexOf('.');
      if (dot < 0) return undefined;
      n = n.slice(dot + 1);
    }
  }

  lookup(qname: string, qtype: number): LookupResult {
    const served = this.find(qname);
    if (!served) return { rcode: RCODE.REFUSED, authoritative: false, answers: [], authority: [] };
    const z = served.data;
    const wanted = TYPE_NAMES.get(qtype);
    const any = wanted === 'ANY';
    const answers: DnsRecord[] = [];
    let name = qname;
    for (let hop = 0; hop <= MAX_CNAME_HOPS; hop++) {
      const set = z.byName.get(name);
      if (!set) {
        const exists = served.nonTerminals.has(name);
        return { rcode: exists ? RCODE.NOERROR : RCODE.NXDOMAIN, authoritative: true, answers, authority: [negativeSoa(z)] };
      }
      const matches = any ? set : set.filter((r) => r.type === wanted);
      if (matches.length > 0) {
        answers.push(...matches.map((r) => (r.type === 'SOA' ? soaOf(z) : r)));
        return { rcode: RCODE.NOERROR, authoritative: true, answers, authority: [] };
      }
      const cname = set.find((r) => r.type === 'CNAME');
      if (!cname) return { rcode: RCODE.NOERROR, authoritative: true, answers, authority: [negativeSoa(z)] };
      answers.push(cname);
      name = cname.data;
      // A target outside this zone is for the resolver to chase.
      if (!inZone(name, z.name)) break;
    }
    return { rcode: RCODE.NOERROR, authoritative: true, answers, authority: [] };
  }
}
