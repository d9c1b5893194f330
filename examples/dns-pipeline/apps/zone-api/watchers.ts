// WatchZones streams: every watcher gets every change, coalesced per zone while it is slow, so memory per
// watcher is bounded by the number of zones, never by the number of changes.
import { Metadata, type ServerWritableStream } from '@grpc/grpc-js';
import { AppError } from '../lib/app-error.ts';
import type { ZoneChangeMsg } from '../lib/protos.ts';
import type { StoreEvent, ZoneStore } from './zone-store.ts';

interface Watcher {
  call: ServerWritableStream<unknown, ZoneChangeMsg>;
  /** Notices not yet written, by zone: a later change of a zone replaces an unsent one. */
  pending: Map<string, ZoneChangeMsg>;
  waiting: boolean;
}

export class WatcherSet {
  private readonly watchers = new Set<Watcher>();
  private readonly unsubscribe: () => void;

  constructor(
    private readonly store: ZoneStore,
    private readonly max: number,
    private readonly metrics: { watchers: number },
  ) {
    this.unsubscribe = store.onChange((e) => this.publish(e));
  }

  add(call: ServerWritableStream<unknown, ZoneChangeMsg>, sendInitial: boolean): void {
    if (this.watchers.size >= this.max) throw new AppError('RESOURCE_EXHAUSTED', `too many watchers (${this.max})`);
    const w: Watcher = { call, pending: new Map(), waiting: false };
    this.watchers.add(w);
    this.metrics.watchers = this.watchers.size;
    const drop = (): void => {
      this.watchers.delete(w);
      this.metrics.watchers = this.watchers.size;
    };
    call.on('cancelled', drop);
    call.on('close', drop);
    if (sendInitial) for (const z of this.store.list()) w.pending.set(z.name, { zone: z.name, serial: z.serial, kind: 'EXISTING' });
    // Headers go out at once, so a watcher knows it is subscribed even before the first change.
    call.sendMetadata(new Metadata());
    this.flush(w);
  }

  private publish(e: StoreEvent): void {
    for (const w of this.watchers) {
      w.pending.delete(e.zone); // keep notices in the order of their last change
      w.pending.set(e.zone, { zone: e.zone, serial: e.serial, kind: e.kind });
      this.flush(w);
    }
  }

  private flush(w: Watcher): void {
    if (w.waiting) return;
    for (const [zone, msg] of w.pending) {
      w.pending.delete(zone);
      if (!w.call.write(msg)) {
        w.waiting = true;
        w.call.once('drain', () => {
          w.waiting = false;
          this.flush(w);
        });
        return;
      }
    }
  }

  /** Ends every stream (on shutdown) and stops listening to the store. */
  close(): void {
    this.unsubscribe();
    for (const w of this.watchers) w.call.end();
    this.watchers.clear();
    this.metrics.watchers = 0;
  }
}
