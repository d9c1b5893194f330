// A binary prefix trie over address blocks with exceptions: which of a rule's CIDR peers contain an address.
import { bitAt, isCidrError, parseCidr, type IpBytes } from '../resources/net.ts';

interface TrieNode {
  zero?: TrieNode;
  one?: TrieNode;
  /** Peers whose block starts here, and peers whose exception starts here. */
  add?: number[];
  remove?: number[];
}

/**
 * Holds blocks `cidr except [...]`, one per peer. A lookup walks the address's bits once, switching each
 * peer on at its block and off at its exceptions (which always lie inside the block), so the cost is
 * bounded by the prefix length, whatever the number of blocks.
 */
export class CidrTrie {
  private readonly v4: TrieNode = {};
  private readonly v6: TrieNode = {};
  private size = 0;

  /** Adds one block with its exceptions; returns the peer number it is known by. */
  add(cidr: string, except: readonly string[]): number {
    const peer = this.size++;
    this.mark(cidr, peer, 'add');
    for (const e of except) this.mark(e, peer, 'remove');
    return peer;
  }

  private mark(text: string, peer: number, how: 'add' | 'remove'): void {
    const c = parseCidr(text);
    if (isCidrError(c)) return;
    let node = c.bytes.length === 4 ? this.v4 : this.v6;
    for (let i = 0; i < c.prefix; i++) {
      const b = bitAt(c.bytes, i);
      const next: TrieNode = (b === 0 ? node.zero : node.one) ?? {};
      if (b === 0) node.zero = next;
      else node.one = next;
      node = next;
    }
    (node[how] ??= []).push(peer);
  }

  /** True when some block contains the address and none of that block's exceptions does. */
  contains(ip: IpBytes): boolean {
    if (this.size === 0) return false;
    let node: TrieNode | undefined = ip.length === 4 ? this.v4 : this.v6;
    const bits = ip.length * 8;
    let active: Set<number> | undefined;
    let single = -1;
    for (let i = 0; node; i++) {
      if (node.add) {
        if (single < 0 && !active && node.add.length === 1) single = node.add[0] ?? -1;
        else {
          active ??= new Set(single >= 0 ? [single] : []);
          single = -1;
          for (const p of node.add) active.add(p);
        }
      }
      if (node.remove) {
        for (const p of node.remove) {
          if (p === single) single = -1;
          active?.delete(p);
        }
      }
      if (i >= bits) break;
      node = bitAt(ip, i) === 0 ? node.zero : node.one;
    }
    return single >= 0 || (active !== undefined && active.size > 0);
  }

  get empty(): boolean {
    return this.size === 0;
  }
}
