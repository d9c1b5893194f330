// The xDS client's state for one resource type: what it subscribes to, the last set it accepted (ACKed), and
// the set the server believes it holds; turns one SotW or delta response into the full candidate set.
import { createHash } from 'node:crypto';
import { decodeAny } from './protos.ts';
import { WILDCARD_TYPES } from './type-urls.ts';

export type AdsClientErrorCode =
  /** watch() was given something that is not a subscription (bad names, too many names). */
  | 'bad-watch'
  /** The node's metadata cannot be carried in a google.protobuf.Struct. */
  | 'bad-node'
  /** The server ended the stream, or the client was closed. */
  | 'stream-closed';

/** The xDS client's one error type. */
export class AdsClientError extends Error {
  readonly code: AdsClientErrorCode;
  constructor(code: AdsClientErrorCode, message: string) {
    super(message);
    this.name = 'AdsClientError';
    this.code = code;
  }
}

export interface XdsResourceEntry {
  /** Delta: the resource's own version. SotW: the version_info of the response its current content came in. */
  version: string;
  /** The resource decoded with decodeAny (proto field names). An unchanged resource keeps the same object. */
  resource: Record<string, unknown>;
}

export type ResourceSet = ReadonlyMap<string, XdsResourceEntry>;

export interface AnyMessage {
  type_url: string;
  value: Buffer;
}

export interface SotwResponse {
  version_info: string;
  resources: AnyMessage[];
  type_url: string;
  nonce: string;
}

export interface DeltaResponse {
  system_version_info: string;
  resources: { name: string; version: string; resource: AnyMessage | null }[];
  type_url: string;
  removed_resources: string[];
  nonce: string;
}

/** A response turned into the full set it would leave the client with, and every problem found on the way. */
export interface Candidate {
  set: Map<string, XdsResourceEntry>;
  errors: string[];
}

/** Content digests of SotW entries, so unchanged resources are neither decoded again nor replaced. */
const digests = new WeakMap<XdsResourceEntry, string>();

function digest(any: AnyMessage): string {
  return createHash('sha256').update(any.value).digest('base64');
}

/** The name a resource carries (a ClusterLoadAssignment names itself by cluster_name). */
function nameOf(obj: Record<string, unknown>): string | undefined {
  const n = obj.name ?? obj.cluster_name;
  return typeof n === 'string' && n.length > 0 ? n : undefined;
}

export class TypeState {
  /** Wildcard ('*') or the explicit names wanted. */
  subscription: '*' | Set<string> = new Set();
  /** The last set the handler accepted: what the proxy runs on. Survives reconnects and NACKs. */
  accepted = new Map<string, XdsResourceEntry>();
  /** The set the server believes this client holds (delta bases its next change on it); NACKed content included. */
  received = new Map<string, XdsResourceEntry>();
  /** version_info (SotW) or system_version_info (delta) of the last ACKed response, and its nonce. */
  version = '';
  nonce = '';
  ackedAt: Date | undefined;
  lastError: string | undefined;
  /** Whether the handler has ever accepted a set of this type (the first one is always handed over). */
  applied = false;
  /** Per stream: the latest nonce received, and what this stream was told we subscribe to (undefined: nothing yet). */
  streamNonce = '';
  sentOnStream: { wildcard: boolean; names: Set<string> } | undefined;

  constructor(readonly typeUrl: string) {}

  get wildcard(): boolean {
    return this.subscription === '*';
  }

  subscribes(name: string): boolean {
    return this.subscription === '*' || this.subscription.has(name);
  }

  /** Whether there is anything to ask for (an explicit empty list is not sent: it would mean wildcard to LDS/CDS). */
  hasInterest(): boolean {
    return this.subscription === '*' || this.subscription.size > 0;
  }

  /** A new stream: the server knows nothing of us; what we hold is what we accepted. */
  resetForStream(): void {
    this.streamNonce = '';
    this.sentOnStream = undefined;
    this.received = new Map(this.accepted);
  }

  /**
   * A new subscription: entries no longer subscribed are dropped from both sets, without a handler call (the caller
   * knows what it unsubscribed). New maps, so a set already handed to the handler never changes under it.
   */
  resubscribe(sub: '*' | Set<string>): void {
    this.subscription = sub;
    if (sub === '*') return;
    const keep = (m: Map<string, XdsResourceEntry>): Map<string, XdsResourceEntry> => new Map([...m].filter(([n]) => sub.has(n)));
    this.accepted = keep(this.accepted);
    this.received = keep(this.received);
  }

  /** The subscription as SotW resource_names. */
  resourceNames(): string[] {
    return this.subscription === '*' ? ['*'] : [...this.subscription];
  }

  /** Versions of what we hold, for delta's initial_resource_versions on a new stream. */
  initialVersions(): Record<string, string> {
    const out: Record<string, string> = {};
    for (const [n, e] of this.accepted) if (e.version) out[n] = e.version;
    return out;
  }

  /**
   * SotW: LDS/CDS (and any wildcard watch) responses hold the full state, so what is absent is removed. RDS/EDS
   * responses hold only named resources and are merged into what we have.
   */
  fromSotw(res: SotwResponse, maxResources: number): Candidate {
    const errors: string[] = [];
    if (res.resources.length > maxResources) return { set: this.received, errors: [`${res.resources.length} resources exceed the limit of ${maxResources}`] };
    const full = WILDCARD_TYPES.has(this.typeUrl) || this.wildcard;
    const set = full ? new Map<string, XdsResourceEntry>() : new Map(this.received);
    const known = new Map<string, [string, XdsResourceEntry]>();
    for (const [n, e] of this.received) {
      const d = digests.get(e);
      if (d) known.set(d, [n, e]);
    }
    const seen = new Set<string>();
    res.resources.forEach((any, i) => {
      if (any.type_url !== this.typeUrl) return void errors.push(`resource ${i}: type ${any.type_url}, expected ${this.typeUrl}`);
      const d = digest(any);
      let hit = known.get(d);
      if (!hit) {
        const obj = decode(any, i, errors);
        if (!obj) return;
        const name = nameOf(obj);
        if (!name) return void errors.push(`resource ${i}: no name`);
        const entry: XdsResourceEntry = { version: res.version_info, resource: obj };
        digests.set(entry, d);
        hit = [name, entry];
      }
      const [name, entry] = hit;
      if (seen.has(name)) return void errors.push(`${name}: sent twice`);
      seen.add(name);
      if (this.subscribes(name)) set.set(name, entry);
    });
    // Content that failed to decode keeps the entry we had, so the rest of the set stays comparable.
    if (errors.length > 0 && full) for (const [n, e] of this.received) if (!seen.has(n) && !set.has(n)) set.set(n, e);
    return { set, errors };
  }

  /** Delta: changes and removals applied to the set the server believes we hold. */
  fromDelta(res: DeltaResponse, maxResources: number): Candidate {
    const errors: string[] = [];
    if (res.resources.length > maxResources) return { set: this.received, errors: [`${res.resources.length} resources exceed the limit of ${maxResources}`] };
    const set = new Map(this.received);
    res.resources.forEach((r, i) => {
      const name = r.name;
      if (!name) return void errors.push(`resource ${i}: no name`);
      const held = set.get(name);
      if (!r.resource) {
        // A resource without a body only refreshes one we hold (a TTL heartbeat).
        if (!held) errors.push(`${name}: no resource body`);
        return;
      }
      if (r.resource.type_url !== this.typeUrl) return void errors.push(`${name}: type ${r.resource.type_url}, expected ${this.typeUrl}`);
      if (!this.subscribes(name)) return;
      if (held && r.version !== '' && held.version === r.version) return; // resent unchanged
      const obj = decode(r.resource, i, errors, name);
      if (obj) set.set(name, { version: r.version, resource: obj });
    });
    for (const n of res.removed_resources) set.delete(n);
    if (set.size > maxResources) errors.push(`${set.size} resources exceed the limit of ${maxResources}`);
    return { set, errors };
  }

  /** Whether a candidate differs from the accepted set (another name, or another entry for a name). */
  differs(set: ResourceSet): boolean {
    if (set.size !== this.accepted.size) return true;
    for (const [n, e] of set) if (this.accepted.get(n) !== e) return true;
    return false;
  }

  ack(set: Map<string, XdsResourceEntry>, version: string, nonce: string): void {
    this.accepted = set;
    this.received = new Map(set);
    this.version = version;
    this.nonce = nonce;
    this.ackedAt = new Date();
    this.lastError = undefined;
    this.applied = true;
  }

  /** The accepted state stays; the server's view moves on, so the next change builds on what it sent. */
  nack(set: Map<string, XdsResourceEntry>, message: string): void {
    this.received = set;
    this.lastError = message;
  }
}

function decode(any: AnyMessage, i: number, errors: string[], name?: string): Record<string, unknown> | undefined {
  try {
    return decodeAny(any);
  } catch (e) {
    errors.push(`${name ?? `resource ${i}`}: cannot decode ${any.type_url}: ${(e as Error).message}`);
    return undefined;
  }
}
