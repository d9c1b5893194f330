// Loopback addresses for the local runtime: each pod a block of four in the pod range (its pod IP, the address its
// app listens on and the address its sidecar's outbound listeners bind), each Service a virtual IP in another range.
//
// Linux routes all of 127.0.0.0/8 to `lo`, so any of these addresses can be bound without privileges or setup.
// Addresses are stable: a pod keeps its block (and a Service its IP) across restarts while the plan file lives, and
// even without the file the first choice is a hash of the name, so most names land on the same address again.
import { APP_IP_ANNOTATION, OUTBOUND_IP_ANNOTATION } from '../xds/sidecar-resources.ts';
import { cidrContains, formatIp, isCidrError, parseCidr, parseIp, type Cidr } from '../resources/net.ts';
import { RuntimeError } from './runtime-error.ts';
import { readJson, writeJsonAtomic } from './state-file.ts';

export const DEFAULT_POD_RANGE = '127.10.0.0/16';
export const DEFAULT_SERVICE_RANGE = '127.96.0.0/16';
const BLOCK = 4;

export interface PodAddresses {
  /** The pod IP: the model's address for the pod, where its sidecar's inbound listeners bind. */
  podIp: string;
  /** Where the pod's app listens (the sidecar forwards inbound traffic here): APP_IP. */
  appIp: string;
  /** Where the sidecar's outbound listeners bind, and so where the app reaches Services: OUTBOUND_IP. */
  outboundIp: string;
}

export interface AddressPlanOptions {
  podRange?: string;
  serviceRange?: string;
  /** The plan file (JSON) in the state directory; without it the plan lives in memory only. */
  file?: string;
}

interface PlanFile {
  version: 1;
  podRange: string;
  serviceRange: string;
  pods: Record<string, string>;
  services: Record<string, string>;
}

function loopbackRange(text: string, what: string, minHostBits: number): Cidr {
  const c = parseCidr(text, true);
  if (isCidrError(c)) throw new RuntimeError('ADDRESS_PLAN', `${what} ${text}: ${c.error}`);
  const lo = parseCidr('127.0.0.0/8') as Cidr;
  if (c.bytes.length !== 4 || c.prefix < 8 || !cidrContains(lo, c.bytes)) throw new RuntimeError('ADDRESS_PLAN', `${what} ${text} must lie inside 127.0.0.0/8`);
  if (32 - c.prefix < minHostBits) throw new RuntimeError('ADDRESS_PLAN', `${what} ${text} is too small (at most /${32 - minHostBits})`);
  if (cidrContains(c, parseIp('127.0.0.1') as Uint8Array)) throw new RuntimeError('ADDRESS_PLAN', `${what} ${text} contains 127.0.0.1, which every local process shares`);
  return c;
}

function toNumber(b: Uint8Array): number {
  return (((b[0] ?? 0) << 24) | ((b[1] ?? 0) << 16) | ((b[2] ?? 0) << 8) | (b[3] ?? 0)) >>> 0;
}

function toText(n: number): string {
  return formatIp(new Uint8Array([n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255]));
}

function hash(key: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

/** One range: slots of `width` addresses, slot 0 (the range's first address) never used. */
class Pool {
  readonly base: number;
  readonly slots: number;
  readonly byKey = new Map<string, number>();
  readonly bySlot = new Map<number, string>();

  constructor(
    readonly range: Cidr,
    readonly width: number,
  ) {
    this.base = toNumber(range.bytes);
    this.slots = 2 ** (32 - range.prefix) / width;
  }

  /** Restores a saved assignment; false when it does not fit this range or clashes. */
  restore(key: string, ip: string): boolean {
    const b = parseIp(ip);
    if (!b || b.length !== 4 || !cidrContains(this.range, b)) return false;
    const off = toNumber(b) - this.base;
    if (off % this.width !== 0 || off === 0 || this.bySlot.has(off / this.width) || this.byKey.has(key)) return false;
    this.take(key, off / this.width);
    return true;
  }

  get(key: string): number {
    const have = this.byKey.get(key);
    if (have !== undefined) return have;
    const usable = this.slots - 1;
    let slot = (hash(key) % usable) + 1;
    for (let tries = 0; tries < usable; tries++) {
      if (!this.bySlot.has(slot)) {
        this.take(key, slot);
        return slot;
      }
      slot = (slot % usable) + 1;
    }
    throw new RuntimeError('ADDRESS_PLAN', `no free address left in ${this.range.text} for ${key}`);
  }

  address(slot: number, offset = 0): string {
    return toText(this.base + slot * this.width + offset);
  }

  drop(key: string): void {
    const slot = this.byKey.get(key);
    if (slot === undefined) return;
    this.byKey.delete(key);
    this.bySlot.delete(slot);
  }

  private take(key: string, slot: number): void {
    this.byKey.set(key, slot);
    this.bySlot.set(slot, key);
  }
}

export class AddressPlan {
  /** Saved entries that were dropped on load (outside the ranges, duplicated or malformed). */
  readonly warnings: string[] = [];
  private readonly pods: Pool;
  private readonly services: Pool;
  private readonly file: string | undefined;
  private dirty = false;

  /** Reads the plan file when there is one; a damaged file is noted in `warnings` and the plan starts afresh. */
  constructor(opts: AddressPlanOptions = {}) {
    const podRange = loopbackRange(opts.podRange ?? DEFAULT_POD_RANGE, 'pod range', 3);
    const serviceRange = loopbackRange(opts.serviceRange ?? DEFAULT_SERVICE_RANGE, 'service range', 1);
    if (cidrContains(podRange, serviceRange.bytes) || cidrContains(serviceRange, podRange.bytes)) {
      throw new RuntimeError('ADDRESS_PLAN', `the pod range ${podRange.text} and the service range ${serviceRange.text} overlap`);
    }
    this.pods = new Pool(podRange, BLOCK);
    this.services = new Pool(serviceRange, 1);
    this.file = opts.file;
    if (this.file !== undefined) this.load(this.file);
  }

  /** The pod's addresses (`namespace/name`), assigning a block on first use. */
  pod(key: string): PodAddresses {
    const known = this.pods.byKey.has(key);
    const slot = this.pods.get(key);
    if (!known) this.dirty = true;
    return { podIp: this.pods.address(slot, 0), appIp: this.pods.address(slot, 1), outboundIp: this.pods.address(slot, 2) };
  }

  /** The Service's virtual IP (`namespace/name`), assigning one on first use. */
  service(key: string): string {
    const known = this.services.byKey.has(key);
    const slot = this.services.get(key);
    if (!known) this.dirty = true;
    return this.services.address(slot);
  }

  /** The pod whose pod, app or outbound address this is (how DNS and the proxy tell which pod a connection is from). */
  podAt(ip: string): string | undefined {
    const b = parseIp(ip);
    if (!b || b.length !== 4 || !cidrContains(this.pods.range, b)) return undefined;
    const off = toNumber(b) - this.pods.base;
    if (off % BLOCK === 3) return undefined;
    return this.pods.bySlot.get(Math.floor(off / BLOCK));
  }

  serviceAt(ip: string): string | undefined {
    const b = parseIp(ip);
    if (!b || b.length !== 4 || !cidrContains(this.services.range, b)) return undefined;
    return this.services.bySlot.get(toNumber(b) - this.services.base);
  }

  /** Forgets pods and Services not named (after a manifest change removed them for good). */
  retain(podKeys: Iterable<string>, serviceKeys: Iterable<string>): void {
    for (const [pool, keep] of [[this.pods, new Set(podKeys)], [this.services, new Set(serviceKeys)]] as const) {
      for (const key of [...pool.byKey.keys()]) {
        if (keep.has(key)) continue;
        pool.drop(key);
        this.dirty = true;
      }
    }
  }

  /** Writes the plan file when something changed. */
  save(): void {
    if (this.file === undefined || !this.dirty) return;
    const body: PlanFile = { version: 1, podRange: this.pods.range.text, serviceRange: this.services.range.text, pods: {}, services: {} };
    for (const [k, slot] of [...this.pods.byKey].sort()) body.pods[k] = this.pods.address(slot);
    for (const [k, slot] of [...this.services.byKey].sort()) body.services[k] = this.services.address(slot);
    writeJsonAtomic(this.file, body);
    this.dirty = false;
  }

  private load(file: string): void {
    let data: unknown;
    try {
      data = readJson(file);
    } catch (err) {
      this.warnings.push(`${(err as Error).message}: starting with a fresh address plan`);
      this.dirty = true;
      return;
    }
    if (data === undefined) return;
    const f = data as Partial<PlanFile>;
    if (f === null || typeof f !== 'object' || f.version !== 1) {
      this.warnings.push(`${file}: not an address plan (version 1): starting with a fresh one`);
      this.dirty = true;
      return;
    }
    for (const [what, pool, entries] of [['pod', this.pods, f.pods], ['service', this.services, f.services]] as const) {
      for (const [key, ip] of Object.entries(entries ?? {})) {
        if (typeof ip === 'string' && pool.restore(key, ip)) continue;
        this.warnings.push(`${file}: ${what} ${key}: saved address ${String(ip)} is not usable in ${pool.range.text}; it gets a new one`);
        this.dirty = true;
      }
    }
  }
}

/** The pod annotations the control plane reads for a pod's app and outbound addresses (see src/xds/sidecar-resources.ts). */
export function podAddressAnnotations(a: PodAddresses): Record<string, string> {
  return { [APP_IP_ANNOTATION]: a.appIp, [OUTBOUND_IP_ANNOTATION]: a.outboundIp };
}
