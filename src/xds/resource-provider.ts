// The contract between the xDS server and what it serves: resources by type and name, as one node sees them.
import type { TypeUrl } from './type-urls.ts';
import type { XdsNode } from './xds-node.ts';

export interface EncodedAny {
  type_url: string;
  value: Buffer;
}

export interface VersionedResource {
  name: string;
  /** A content hash: equal content, equal version, so nothing is resent when nothing changed. */
  version: string;
  resource: EncodedAny;
}

export interface ResourceProvider {
  /** The resource named `name` as `node` sees it, or undefined when it does not exist (yet). */
  get(node: XdsNode, type: TypeUrl, name: string): VersionedResource | undefined;
  /** Every resource of a wildcard type (LDS, CDS) that `node` should see. */
  list(node: XdsNode, type: TypeUrl): VersionedResource[];
}
