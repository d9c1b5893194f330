// Loads `-f` inputs into resources, the cluster model and the compiled policy engine; prints diagnostics.
import { resolveJwksFiles } from '../control-plane/jwks-files.ts';
import { buildCluster, type Cluster } from '../model/cluster.ts';
import { PolicyEngine } from '../policy/engine.ts';
import { formatDiagnostic, hasErrors, type Diagnostic } from '../resources/diagnostics.ts';
import type { Resource } from '../resources/kinds.ts';
import { loadManifests } from '../resources/load.ts';
import type { Io } from './io.ts';
import { readInputs } from './read-inputs.ts';
import { CliError } from './cli-error.ts';

export interface Loaded {
  resources: Resource[];
  diagnostics: Diagnostic[];
  cluster: Cluster;
  engine: PolicyEngine;
}

/** Reads and validates; on any error prints every diagnostic and throws (exit 2). Warnings go to stderr. */
export function loadResources(paths: readonly string[], io: Io): { resources: Resource[]; diagnostics: Diagnostic[] } {
  const sources = readInputs(paths, () => io.readStdin());
  const loaded = loadManifests(sources);
  // `jwksUri: file:///…` JWKS are read into the rules here, before any policy is built.
  const jwks = hasErrors(loaded.diagnostics) ? { resources: loaded.resources, diagnostics: [] } : resolveJwksFiles(loaded.resources);
  const resources = jwks.resources;
  const diagnostics = [...loaded.diagnostics, ...jwks.diagnostics];
  for (const d of diagnostics) io.err(formatDiagnostic(d));
  if (hasErrors(diagnostics)) {
    const n = diagnostics.filter((d) => d.severity === 'error').length;
    throw new CliError('invalid-input', `${n} error${n === 1 ? '' : 's'}; nothing was evaluated`);
  }
  return { resources, diagnostics };
}

export function loadCluster(paths: readonly string[], io: Io): Loaded {
  const { resources, diagnostics } = loadResources(paths, io);
  const cluster = buildCluster(resources);
  return { resources, diagnostics, cluster, engine: PolicyEngine.fromResources(cluster, resources) };
}
