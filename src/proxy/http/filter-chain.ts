// Builds each HTTP listener's state for one config: its compiled route table and its filter chain, in config
// order. `trellis.extension` modules are imported here, when the config is applied: a module that fails to load
// or does not export an HttpFilterFactory rejects the whole config (the last good one stays), never a request.
import { isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { PolicyEnforcer } from '../contracts.ts';
import { ProxyError } from '../proxy-error.ts';
import type { HttpFilterConfig, ListenerConfig, ProxyConfig } from '../proxy-config.ts';
import { faultFilter, localRateLimitFilter, policyFilter } from './builtin-filters.ts';
import type { ListenerState } from './engine-context.ts';
import type { HttpFilter, HttpFilterFactory } from './http-filter.ts';
import { routeTableFor } from './route-table.ts';

/** Imports a filter module once per specifier (file path or URL) and checks its default export. */
export async function loadExtension(specifier: string): Promise<HttpFilterFactory> {
  const url = /^[a-z][a-z0-9+.-]*:/i.test(specifier) && !/^[a-z]:[\\/]/i.test(specifier) ? specifier : pathToFileURL(isAbsolute(specifier) ? specifier : resolve(specifier)).href;
  let mod: { default?: unknown };
  try {
    mod = (await import(url)) as { default?: unknown };
  } catch (e) {
    throw new ProxyError('extension-failed', `trellis.extension ${specifier}: cannot load: ${(e as Error).message}`);
  }
  if (typeof mod.default !== 'function') throw new ProxyError('extension-failed', `trellis.extension ${specifier}: the default export is not an HttpFilterFactory function`);
  return mod.default as HttpFilterFactory;
}

function isHttp(l: ListenerConfig): boolean {
  return l.protocol === 'http' || l.protocol === 'auto';
}

async function buildFilter(fc: HttpFilterConfig, listener: ListenerConfig, enforcer: PolicyEnforcer): Promise<HttpFilter> {
  switch (fc.name) {
    case 'trellis.policy':
      return policyFilter(enforcer);
    case 'envoy.filters.http.fault':
      return faultFilter();
    case 'envoy.filters.http.local_ratelimit':
      if (!(fc.maxTokens > 0 && fc.tokensPerFill > 0 && fc.fillIntervalMs > 0)) {
        throw new ProxyError('bad-config', `listener ${listener.name}: local_ratelimit needs positive maxTokens, tokensPerFill and fillIntervalMs`);
      }
      return localRateLimitFilter(fc);
    case 'trellis.extension': {
      const factory = await loadExtension(fc.module);
      let f: HttpFilter;
      try {
        f = factory(fc.config, listener);
      } catch (e) {
        throw new ProxyError('extension-failed', `trellis.extension ${fc.module}: the factory failed for listener ${listener.name}: ${(e as Error).message}`);
      }
      if (!f || typeof f.onRequest !== 'function') throw new ProxyError('extension-failed', `trellis.extension ${fc.module}: the factory returned no filter with onRequest`);
      return f;
    }
    default:
      throw new ProxyError('bad-config', `listener ${listener.name}: unknown HTTP filter ${(fc as { name: string }).name}`);
  }
}

/** Every HTTP listener's state for `config`; throws ProxyError (bad-config, extension-failed) and then builds nothing. */
export async function buildListenerStates(config: ProxyConfig, enforcer: PolicyEnforcer): Promise<Map<string, ListenerState>> {
  const out = new Map<string, ListenerState>();
  const built: HttpFilter[] = [];
  try {
    for (const l of config.listeners) {
      if (!isHttp(l)) continue;
      const rc = l.routeConfig === undefined ? undefined : config.routes.get(l.routeConfig);
      if (l.routeConfig !== undefined && !rc) throw new ProxyError('bad-config', `listener ${l.name}: unknown RouteConfiguration ${l.routeConfig}`);
      const table = rc ? routeTableFor(rc) : undefined;
      const filters: HttpFilter[] = [];
      for (const fc of l.httpFilters) {
        const f = await buildFilter(fc, l, enforcer);
        built.push(f);
        filters.push(f);
      }
      out.set(l.name, { listener: l, table, filters, responseFilters: filters.filter((f) => typeof f.onResponse === 'function') });
    }
  } catch (e) {
    closeFilters(built);
    throw e;
  }
  return out;
}

/** Releases the filters of a replaced config. */
export function closeFilters(filters: Iterable<HttpFilter>): void {
  for (const f of filters) {
    try {
      f.close?.();
    } catch {
      // a user filter's close must not stop the others
    }
  }
}
