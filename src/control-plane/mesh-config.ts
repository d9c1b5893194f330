// One complete configuration of the mesh, compiled from manifests: it is either whole and valid, or refused.
import { buildCluster, type Cluster } from '../model/cluster.ts';
import { buildAuthzModel, type AuthzModel } from '../policy/authz-model.ts';
import { hasErrors, type Diagnostic } from '../resources/diagnostics.ts';
import type { Resource } from '../resources/kinds.ts';
import { loadManifests } from '../resources/load.ts';
import type { SourceText } from '../resources/source.ts';
import { resolveJwksFiles, type JwksFileReader } from './jwks-files.ts';
import { buildRoutingModel } from '../routing/build.ts';
import type { RoutingModel } from '../routing/model.ts';

export interface MeshConfig {
  resources: Resource[];
  cluster: Cluster;
  routing: RoutingModel;
  authz: AuthzModel;
  /** Warnings that did not stop the configuration from being applied. */
  warnings: Diagnostic[];
  /** The files the configuration came from. */
  files: string[];
}

export type CompileResult = { ok: true; config: MeshConfig } | { ok: false; diagnostics: Diagnostic[] };

export interface CompileOptions {
  /** SPIFFE trust domain (for principals); default cluster.local. */
  trustDomain?: string;
  /** DNS domain of Service names (`<svc>.<ns>.svc.<domain>`); default cluster.local. */
  clusterDomain?: string;
  rootNamespace?: string;
  /** Reads `jwksUri: file:///…` files; default the file system. */
  jwksReader?: JwksFileReader;
}

/** Loads, validates and compiles everything. Any error anywhere refuses the whole configuration: nothing half-applies. */
export function compileMeshConfig(sources: readonly SourceText[], opts: CompileOptions = {}): CompileResult {
  const manifests = loadManifests(sources);
  if (hasErrors(manifests.diagnostics)) return { ok: false, diagnostics: manifests.diagnostics };
  // `jwksUri: file:///…` is read here, at load time, so that policies stay pure.
  const jwks = resolveJwksFiles(manifests.resources, opts.jwksReader);
  const loaded = { resources: jwks.resources, diagnostics: [...manifests.diagnostics, ...jwks.diagnostics] };
  if (hasErrors(jwks.diagnostics)) return { ok: false, diagnostics: loaded.diagnostics };
  const cluster = buildCluster(loaded.resources);
  const routing = buildRoutingModel(loaded.resources, cluster, { domain: opts.clusterDomain ?? 'cluster.local' });
  const all = [...loaded.diagnostics, ...routing.diagnostics];
  if (hasErrors(routing.diagnostics)) return { ok: false, diagnostics: all };
  const authzOpts: { trustDomain?: string; rootNamespace?: string } = {};
  if (opts.trustDomain) authzOpts.trustDomain = opts.trustDomain;
  if (opts.rootNamespace) authzOpts.rootNamespace = opts.rootNamespace;
  return {
    ok: true,
    config: {
      resources: loaded.resources,
      cluster,
      routing: routing.model,
      authz: buildAuthzModel(loaded.resources, authzOpts),
      warnings: all.filter((d) => d.severity === 'warning'),
      files: sources.map((s) => s.name),
    },
  };
}
