// The relay's reorder buffer: a binary min-heap of items keyed by flow time (ns), with their arrival time.

export interface TimedItem<T> {
  /** Flow time, ns since the epoch. */
  t: bigint;
  /** Arrival, ms (Date.now()). */
  at: number;
  msg: T;
}

/** A binary min-heap on flow time. */
export class TimeHeap<T> {
  private readonly a: TimedItem<T>[] = [];
  get size(): number {
    return this.a.length;
  }
  peek(): TimedItem<T> | undefined {
    return this.a[0];
  }
  push(h: TimedItem<T>): void {
    const a = this.a;
    a.push(h);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if ((a[p] as TimedItem<T>).t <= h.t) break;
      a[i] = a[p] as TimedItem<T>;
      i = p;
    }
    a[i] = h;
  }
  pop(): TimedItem<T> | undefined {
    const a = this.a;
    const top = a[0];
    const last = a.pop();
    if (a.length > 0 && last) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= a.length) break;
        const r = l + 1;
        const c = r < a.length && (a[r] as TimedItem<T>).t < (a[l] as TimedItem<T>).t ? r : l;
        if ((a[c] as TimedItem<T>).t >= last.t) break;
        a[i] = a[c] as TimedItem<T>;
        i = c;
      }
      a[i] = last;
    }
    return top;
  }
}
