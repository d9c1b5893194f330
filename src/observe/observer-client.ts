// A client of the Observer API (a proxy's, or the relay's): GetFlows as an async stream of decoded responses with
// Flow records, and the unary calls. Used by the relay and by `trellis observe`.
import * as grpc from '@grpc/grpc-js';
import type { Flow } from './flow.ts';
import { ObserveError } from './observe-error.ts';
import { flowFromProto, observerClientConstructor, type Timestamp } from './observer-protos.ts';
import type { GetFlowsRequest } from './observer-server.ts';

/** One GetFlows answer: a flow, a count of lost flows, or a node's state change (from a relay). */
export type FlowsEvent =
  | { kind: 'flow'; flow: Flow; nodeName: string }
  | { kind: 'lost'; lost: number; source: string; nodeName: string; time?: Timestamp }
  | { kind: 'node'; state: string; nodeNames: string[]; message: string; nodeName: string };

const MAX_MESSAGE = 4 * 1024 * 1024;

export interface ObserverStream extends AsyncIterable<FlowsEvent> {
  cancel(): void;
  /** The underlying call, for pause()/resume() (backpressure). */
  readonly call: grpc.ClientReadableStream<Record<string, unknown>>;
}

/** A decoded GetFlowsResponse as an event. */
export function eventOf(m: Record<string, unknown>): FlowsEvent | undefined {
  const nodeName = (m.node_name as string | undefined) ?? '';
  if (m.flow) return { kind: 'flow', flow: flowFromProto(m.flow as Record<string, unknown>), nodeName };
  const lost = m.lost_events as { num_events_lost: number; source: string } | null | undefined;
  if (lost) return { kind: 'lost', lost: Number(lost.num_events_lost), source: lost.source, nodeName, ...(m.time ? { time: m.time as Timestamp } : {}) };
  const node = m.node_status as { state_change: string; node_names: string[]; message: string } | null | undefined;
  if (node) return { kind: 'node', state: node.state_change, nodeNames: node.node_names, message: node.message, nodeName };
  return undefined;
}

type RawClient = grpc.Client & { GetFlows(req: GetFlowsRequest): grpc.ClientReadableStream<Record<string, unknown>> } & Record<string, ((...a: unknown[]) => unknown) | undefined>;

export class ObserverClient {
  private readonly client: RawClient;
  constructor(readonly address: string) {
    const Ctor = observerClientConstructor();
    this.client = new Ctor(address, grpc.credentials.createInsecure(), { 'grpc.max_receive_message_length': MAX_MESSAGE }) as unknown as RawClient;
  }

  getFlows(req: GetFlowsRequest): ObserverStream {
    const call = this.client.GetFlows(req);
    return {
      call,
      cancel: () => call.cancel(),
      [Symbol.asyncIterator]: async function* () {
        try {
          for await (const m of call) {
            const e = eventOf(m as Record<string, unknown>);
            if (e) yield e;
          }
        } catch (e) {
          const err = e as grpc.ServiceError;
          if (err.code === grpc.status.CANCELLED) return;
          throw new ObserveError(err.code === grpc.status.INVALID_ARGUMENT ? 'bad-filter' : 'unavailable', err.details || err.message, { cause: e });
        } finally {
          call.cancel();
        }
      },
    };
  }

  private unary<T>(method: string, deadlineMs: number): Promise<T> {
    return new Promise((resolve, reject) => {
      this.client[method]?.({}, { deadline: Date.now() + deadlineMs }, (err: grpc.ServiceError | null, res: T) =>
        err ? reject(new ObserveError('unavailable', `${method} at ${this.address}: ${err.details || err.message}`, { cause: err })) : resolve(res),
      );
    });
  }

  serverStatus(deadlineMs = 5000): Promise<Record<string, unknown>> {
    return this.unary('ServerStatus', deadlineMs);
  }

  getNodes(deadlineMs = 5000): Promise<{ nodes: Record<string, unknown>[] }> {
    return this.unary('GetNodes', deadlineMs);
  }

  getNamespaces(deadlineMs = 5000): Promise<{ namespaces: { cluster: string; namespace: string }[] }> {
    return this.unary('GetNamespaces', deadlineMs);
  }

  close(): void {
    this.client.close();
  }
}
