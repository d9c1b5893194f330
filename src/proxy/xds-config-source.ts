// Where the proxy's configuration comes from: one ADS stream to the control plane. It subscribes to listeners,
// clusters and the policy snapshot by wildcard, follows the route and endpoint names they refer to, translates
// the whole state after each update, and hands a complete config to the proxy. An update that does not translate,
// or that the proxy cannot apply, is NACKed and changes nothing: the last good config stays in force.
import { EventEmitter } from 'node:events';
import type * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { AdsClient, type ResourceSet } from '../xds/ads-client.ts';
import { decodePolicySnapshot } from '../xds/policy-snapshot.ts';
import { TYPE } from '../xds/type-urls.ts';
import type { ProxyConfig } from './proxy-config.ts';
import type { XdsNodeMessage } from './proxy-node.ts';
import { translateResources } from './xds-translate.ts';

export interface XdsConfigSourceOptions {
  target: string;
  node: XdsNodeMessage;
  credentials?: grpc.ChannelCredentials;
  protocol?: 'delta' | 'sotw';
  backoff?: { baseMs?: number; maxMs?: number };
  logger: Logger;
  /** Applies a translated config; errors refuse it (NACK) and the previous config must stay in force. */
  apply(config: ProxyConfig): Promise<string[]> | string[];
}

interface ConfigSourceEvents {
  applied: [ProxyConfig];
  refused: [{ typeUrl: string; errors: string[] }];
}

const EMPTY: ResourceSet = new Map();

export class XdsConfigSource extends EventEmitter<ConfigSourceEvents> {
  readonly client: AdsClient;
  private readonly state = new Map<string, ResourceSet>();
  private current: ProxyConfig | undefined;
  private completeApplied = false;
  /** Updates are applied one at a time, in arrival order (apply may bind sockets). */
  private chain: Promise<unknown> = Promise.resolve();
  private readonly opts: XdsConfigSourceOptions;

  constructor(opts: XdsConfigSourceOptions) {
    super();
    this.opts = opts;
    this.client = new AdsClient({
      target: opts.target,
      node: opts.node,
      ...(opts.credentials ? { credentials: opts.credentials } : {}),
      protocol: opts.protocol ?? 'delta',
      ...(opts.backoff ? { backoff: opts.backoff } : {}),
      logger: opts.logger,
    });
    this.client.onUpdate((typeUrl, resources) => this.onUpdate(typeUrl, resources));
  }

  get config(): ProxyConfig | undefined {
    return this.current;
  }

  /** Whether listeners and the policy snapshot have each been received at least once (the proxy is then complete). */
  get complete(): boolean {
    return this.completeApplied;
  }

  start(): void {
    this.client.watch(TYPE.cluster, '*');
    this.client.watch(TYPE.policy, '*');
    this.client.watch(TYPE.listener, '*');
    this.client.start();
  }

  close(): void {
    this.client.close();
  }

  /** Resolves when every update received so far has been applied or refused. */
  settled(): Promise<void> {
    return this.chain.then(() => undefined);
  }

  /**
   * Translation is synchronous, so the ACK/NACK reflects whether the config is valid. Applying (binding listeners,
   * loading extension modules) is asynchronous: a failure there is logged and reported, and the previous config
   * stays, but the ACK has gone out; the next update retries.
   */
  private onUpdate(typeUrl: string, resources: ResourceSet): string[] {
    const candidate = new Map(this.state);
    candidate.set(typeUrl, resources);
    const result = this.translate(candidate);
    if (!result.ok) {
      this.opts.logger.warn({ type: typeUrl, errors: result.errors.slice(0, 20), count: result.errors.length }, 'xDS update refused (NACK); the last good configuration stays in force');
      this.emit('refused', { typeUrl, errors: result.errors });
      return result.errors;
    }
    this.state.set(typeUrl, resources);
    this.follow(result.config);
    const { config, cold } = warmed(result.config, this.current);
    // Complete: listeners and policy received, and no listener still waits for its routes.
    const complete = candidate.has(TYPE.listener) && candidate.has(TYPE.policy) && cold === 0;
    this.chain = this.chain.then(async () => {
      const errors = await this.opts.apply(config);
      if (errors.length > 0) {
        this.opts.logger.error({ errors }, 'configuration could not be applied; the previous one stays in force');
        this.emit('refused', { typeUrl, errors });
        return;
      }
      this.current = config;
      if (complete) this.completeApplied = true;
      this.emit('applied', config);
    });
    return [];
  }

  private translate(state: ReadonlyMap<string, ResourceSet>): ReturnType<typeof translateResources> {
    const values = (t: string): object[] => [...(state.get(t) ?? EMPTY).values()].map((e) => e.resource);
    const policyEntry = [...(state.get(TYPE.policy) ?? EMPTY).values()][0];
    let policy;
    if (policyEntry) {
      try {
        policy = decodePolicySnapshot(policyEntry.resource);
      } catch (e) {
        return { ok: false, errors: [`PolicySnapshot: ${(e as Error).message}`] };
      }
    }
    return translateResources({ listeners: values(TYPE.listener), routes: values(TYPE.route), clusters: values(TYPE.cluster), endpoints: values(TYPE.endpoint), ...(policy ? { policy } : {}) });
  }

  /** Subscribes to the route configurations and endpoint sets the current listeners and clusters name. */
  private follow(config: ProxyConfig): void {
    const routes = new Set<string>();
    for (const l of config.listeners) if (l.routeConfig !== undefined && !isInline(config, l.routeConfig, this.state)) routes.add(l.routeConfig);
    const eds = new Set<string>();
    for (const c of config.clusters.values()) if (c.discovery === 'EDS' && !c.local) eds.add(c.name);
    this.client.watch(TYPE.route, [...routes].sort());
    this.client.watch(TYPE.endpoint, [...eds].sort());
  }
}

/**
 * Envoy's listener warming: a listener whose route configuration has not arrived yet keeps its previous version
 * (with that version's routes) until it has, and a new one waits, so a config never routes to nothing.
 */
function warmed(next: ProxyConfig, prev: ProxyConfig | undefined): { config: ProxyConfig; cold: number } {
  const cold = next.listeners.filter((l) => l.routeConfig !== undefined && !next.routes.has(l.routeConfig));
  if (cold.length === 0) return { config: next, cold: 0 };
  const routes = new Map(next.routes);
  const listeners = next.listeners.filter((l) => !cold.includes(l));
  for (const l of cold) {
    const old = prev?.listeners.find((o) => o.name === l.name);
    const oldRoutes = old?.routeConfig !== undefined ? prev?.routes.get(old.routeConfig) : undefined;
    if (!old || !oldRoutes || old.routeConfig === undefined) continue;
    listeners.push(old);
    if (!routes.has(old.routeConfig)) routes.set(old.routeConfig, oldRoutes);
  }
  return { config: { ...next, listeners, routes }, cold: cold.length };
}

/** A route configuration that came inline in a listener (not from RDS) needs no subscription. */
function isInline(config: ProxyConfig, name: string, state: ReadonlyMap<string, ResourceSet>): boolean {
  return config.routes.has(name) && !(state.get(TYPE.route) ?? EMPTY).has(name);
}
