// IP address and CIDR syntax: parsing to bytes and containment, shared by validation, the model and the policy engine.

/** An IP address as 4 (IPv4) or 16 (IPv6) bytes. IPv4-mapped IPv6 addresses are folded to IPv4. */
export type IpBytes = Uint8Array;

export interface Cidr {
  /** Network address bytes with host bits zeroed. */
  bytes: IpBytes;
  prefix: number;
  /** Canonical text, e.g. `10.0.0.0/24`. */
  text: string;
}

export function parseIp(text: string): IpBytes | undefined {
  return text.includes(':') ? parseIpv6(text) : parseIpv4(text);
}

function parseIpv4(text: string): IpBytes | undefined {
  const parts = text.split('.');
  if (parts.length !== 4) return undefined;
  const out = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const p = parts[i] ?? '';
    // Kubernetes rejects leading zeros (ambiguous octal) since 1.22; so do we.
    if (!/^(0|[1-9][0-9]{0,2})$/.test(p)) return undefined;
    const n = Number(p);
    if (n > 255) return undefined;
    out[i] = n;
  }
  return out;
}

function parseIpv6(text: string): IpBytes | undefined {
  if (!/^[0-9a-fA-F:.]+$/.test(text)) return undefined;
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  const groups = (s: string): number[] | undefined => {
    if (s === '') return [];
    const out: number[] = [];
    const parts = s.split(':');
    for (let i = 0; i < parts.length; i++) {
      const p = parts[i] ?? '';
      if (i === parts.length - 1 && p.includes('.')) {
        const v4 = parseIpv4(p);
        if (!v4) return undefined;
        out.push(((v4[0] ?? 0) << 8) | (v4[1] ?? 0), ((v4[2] ?? 0) << 8) | (v4[3] ?? 0));
        continue;
      }
      if (!/^[0-9a-fA-F]{1,4}$/.test(p)) return undefined;
      out.push(parseInt(p, 16));
    }
    return out;
  };
  const head = groups(halves[0] ?? '');
  const tail = halves.length === 2 ? groups(halves[1] ?? '') : [];
  if (!head || !tail) return undefined;
  const fill = 8 - head.length - tail.length;
  if (halves.length === 2 ? fill < 1 : fill !== 0) return undefined;
  const all = [...head, ...new Array<number>(halves.length === 2 ? fill : 0).fill(0), ...tail];
  const out = new Uint8Array(16);
  all.forEach((g, i) => {
    out[i * 2] = g >> 8;
    out[i * 2 + 1] = g & 0xff;
  });
  // ::ffff:a.b.c.d is an IPv4 address.
  if (out.slice(0, 10).every((b) => b === 0) && out[10] === 0xff && out[11] === 0xff) return out.slice(12);
  return out;
}

export function formatIp(b: IpBytes): string {
  if (b.length === 4) return Array.from(b).join('.');
  const g: number[] = [];
  for (let i = 0; i < 16; i += 2) g.push(((b[i] ?? 0) << 8) | (b[i + 1] ?? 0));
  // Longest run of zero groups becomes `::` (RFC 5952).
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = g.map((x) => x.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}

/** Parses `addr/prefix`. With `strict`, host bits must be zero (as Kubernetes' ipBlock demands). */
export function parseCidr(text: string, strict = false): Cidr | { error: string } {
  const slash = text.indexOf('/');
  if (slash < 0) return { error: 'must be a CIDR such as 10.0.0.0/16' };
  const ip = parseIp(text.slice(0, slash));
  const prefixText = text.slice(slash + 1);
  if (!ip) return { error: 'must be a CIDR such as 10.0.0.0/16: invalid IP address' };
  const max = text.slice(0, slash).includes(':') && ip.length === 16 ? 128 : ip.length * 8;
  if (!/^(0|[1-9][0-9]*)$/.test(prefixText) || Number(prefixText) > max) {
    return { error: `must be a CIDR such as 10.0.0.0/16: prefix length must be 0-${max}` };
  }
  const prefix = Number(prefixText);
  const bytes = maskBytes(ip, prefix);
  if (strict && !bytesEqual(bytes, ip)) {
    return { error: `must be a network address with no host bits set (did you mean ${formatIp(bytes)}/${prefix}?)` };
  }
  return { bytes, prefix, text: `${formatIp(bytes)}/${prefix}` };
}

export function isCidrError(c: Cidr | { error: string }): c is { error: string } {
  return 'error' in c;
}

/** A single address as a host CIDR (/32 or /128). */
export function hostCidr(ip: IpBytes): Cidr {
  return { bytes: ip, prefix: ip.length * 8, text: `${formatIp(ip)}/${ip.length * 8}` };
}

export function maskBytes(ip: IpBytes, prefix: number): IpBytes {
  const out = new Uint8Array(ip.length);
  for (let i = 0; i < ip.length; i++) {
    const bits = Math.max(0, Math.min(8, prefix - i * 8));
    out[i] = (ip[i] ?? 0) & ((0xff << (8 - bits)) & 0xff);
  }
  return out;
}

export function cidrContains(c: Cidr, ip: IpBytes): boolean {
  if (c.bytes.length !== ip.length) return false;
  return bytesEqual(maskBytes(ip, c.prefix), c.bytes);
}

/** True when `inner` lies within `outer` (equal counts as within). */
export function cidrWithin(inner: Cidr, outer: Cidr): boolean {
  return inner.bytes.length === outer.bytes.length && inner.prefix >= outer.prefix && cidrContains(outer, inner.bytes);
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Returns bit `i` (0 = most significant) of an address. */
export function bitAt(ip: IpBytes, i: number): number {
  return ((ip[i >> 3] ?? 0) >> (7 - (i & 7))) & 1;
}

/** The address `index` places after the network address of `c` (for allocating pod IPs from a pod CIDR). */
export function nthAddress(c: Cidr, index: number): IpBytes | undefined {
  const hostBits = c.bytes.length * 8 - c.prefix;
  if (hostBits < 53 && index >= 2 ** hostBits) return undefined;
  const out = new Uint8Array(c.bytes);
  let carry = index;
  for (let i = out.length - 1; i >= 0 && carry > 0; i--) {
    const sum = (out[i] ?? 0) + (carry % 256);
    out[i] = sum & 0xff;
    carry = Math.floor(carry / 256) + (sum > 0xff ? 1 : 0);
  }
  return out;
}
