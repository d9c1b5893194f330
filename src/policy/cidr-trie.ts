// A binary prefix trie over address blocks with exceptions: which of a rule's CIDR peers contain an address.
import { bitAt, isCidrError, parseCidr, type IpBytes } from '../resources/net.ts';

/** Every node has the same four fields (one object shape for the whole trie). */
class TrieNode {
  zero: TrieNode | null = null;
  one: TrieNode | null = null;
  /** Peers whose block starts here, and peers whose exception starts here. */
  add: number[] | null = null;
  remove: number[] | null = null;
}

/**
 * Holds blocks `cidr except [...]`, one per peer. A lookup walks the address's bits once, switching each
 * peer on at its block and off at its exceptions (which always lie inside the block), so the cost is
 * bounded by the prefix length, whatever the number of blocks. A lookup allocates nothing: which peers are
 * on is kept in a stamp array, one generation per lookup.
 */
export class CidrTrie {
  private readonly v4 = new TrieNode();
  private readonly v6 = new TrieNode();
  private size = 0;
  private stamps = new Int32Array(4);
  private generation = 0;

  /** Adds one block with its exceptions; returns the peer number it is known by. */
  add(cidr: string, except: readonly string[]): number {
    const peer = this.size++;
    if (this.stamps.length < this.size) {
      const next = new Int32Array(this.stamps.length * 2);
      next.set(this.stamps);
      this.stamps = next;
    }
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
      const next: TrieNode = (b === 0 ? node.zero : node.one) ?? new TrieNode();
      if (b === 0) node.zero = next;
      else node.one = next;
      node = next;
    }
    (node[how] ??= []).push(peer);
  }

  /** True when some block contains the address and none of that block's exceptions does. */
  contains(ip: IpBytes): boolean {
    if (this.size === 0) return false;
    if (this.generation >= 0x3fffffff) {
      this.stamps.fill(0);
      this.generation = 0;
    }
    const gen = ++this.generation;
    const stamps = this.stamps;
    let node: TrieNode | null = ip.length === 4 ? this.v4 : this.v6;
    const bits = ip.length * 8;
    let active = 0;
    for (let i = 0; node !== null; i++) {
      const add = node.add;
      if (add !== null) {
        for (let k = 0; k < add.length; k++) {
          const p = add[k] as number;
          if (stamps[p] !== gen) {
            stamps[p] = gen;
            active++;
          }
        }
      }
      const remove = node.remove;
      if (remove !== null) {
        for (let k = 0; k < remove.length; k++) {
          const p = remove[k] as number;
          if (stamps[p] === gen) {
            stamps[p] = -gen;
            active--;
          }
        }
      }
      if (i >= bits) break;
      node = bitAt(ip, i) === 0 ? node.zero : node.one;
    }
    return active > 0;
  }

  get empty(): boolean {
    return this.size === 0;
  }
}
