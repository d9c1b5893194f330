// Where a model pod comes from: its PodSpec, annotations and the manifest path of its spec (for located errors).
import type { ModelPod } from '../model/cluster.ts';
import type { FieldPath, Origin, PodSpec, Resource, Workload } from '../resources/kinds.ts';
import { resourceName } from '../resources/kinds.ts';

export interface PodSource {
  spec: PodSpec;
  annotations: Record<string, string>;
  /** `['spec']` for a Pod, `['spec', 'template', 'spec']` for a workload. */
  specPath: FieldPath;
  origin: Origin;
  /** How diagnostics name the object, e.g. `Deployment dns/zone-api`. */
  resource: string;
  /** The workload, when the pod is a replica of one. */
  workload?: Workload;
}

/** Pods and workloads by `Kind namespace/name`, built once per model so lookups per pod are O(1). */
export type PodSourceIndex = Map<string, PodSource>;

export function indexPodSources(resources: readonly Resource[]): PodSourceIndex {
  const out: PodSourceIndex = new Map();
  for (const r of resources) {
    const name = resourceName(r.kind, { name: r.metadata.name, namespace: r.metadata.namespace ?? 'default' });
    if (r.kind === 'Pod') {
      out.set(name, { spec: r.spec, annotations: r.metadata.annotations, specPath: ['spec'], origin: r.origin, resource: name });
    } else if (r.kind === 'Deployment' || r.kind === 'ReplicaSet' || r.kind === 'StatefulSet' || r.kind === 'DaemonSet') {
      out.set(name, { spec: r.template.spec, annotations: r.template.annotations, specPath: ['spec', 'template', 'spec'], origin: r.origin, resource: name, workload: r });
    }
  }
  return out;
}

export function podSource(index: PodSourceIndex, pod: ModelPod): PodSource | undefined {
  return index.get(resourceName(pod.owner.kind, { name: pod.owner.name, namespace: pod.namespace }));
}
