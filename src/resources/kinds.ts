// Typed objects for the Kubernetes and Cilium kinds Trellis reads, as validation hands them to the layers above.
import type { ConfigResource, Container, RestartPolicy } from './kinds-container.ts';
import type { SecurityResource } from './kinds-security.ts';
import type { TrafficResource } from './kinds-traffic.ts';
import type { Locator } from './source.ts';

export type FieldPath = readonly (string | number)[];

/** Where an object came from: its file, and a locator for any of its fields. */
export interface Origin {
  file: string;
  locate: Locator;
}

export interface ObjectMeta {
  name: string;
  /** Absent for cluster-scoped kinds; namespaced kinds default to `default`. */
  namespace?: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
}

interface Base<K extends string> {
  kind: K;
  apiVersion: string;
  metadata: ObjectMeta;
  origin: Origin;
}

export type SelectorOperator = 'In' | 'NotIn' | 'Exists' | 'DoesNotExist';

export interface SelectorRequirement {
  key: string;
  operator: SelectorOperator;
  values: string[];
}

/** A Kubernetes LabelSelector. An empty selector matches everything. */
export interface LabelSelector {
  matchLabels: Record<string, string>;
  matchExpressions: SelectorRequirement[];
}

export type Protocol = 'TCP' | 'UDP' | 'SCTP';

export interface ContainerPort {
  name?: string;
  containerPort: number;
  protocol: Protocol;
}

export interface PodSpec {
  nodeName?: string;
  serviceAccountName: string;
  hostNetwork: boolean;
  containers: Container[];
  /** The fields below are present only when the manifest sets them (defaults: Always, 30, true). */
  restartPolicy?: RestartPolicy;
  terminationGracePeriodSeconds?: number;
  enableServiceLinks?: boolean;
  hostname?: string;
  subdomain?: string;
}

export type Namespace = Base<'Namespace'>;

export interface Node extends Base<'Node'> {
  addresses: string[];
  podCIDRs: string[];
}

export interface Pod extends Base<'Pod'> {
  spec: PodSpec;
  status: { podIPs: string[]; hostIP?: string; phase?: string; ready?: boolean };
}

export type WorkloadKind = 'Deployment' | 'ReplicaSet' | 'StatefulSet' | 'DaemonSet';

export interface Workload extends Base<WorkloadKind> {
  replicas: number;
  /** StatefulSet: the headless Service that gives its pods DNS names (`<pod>.<serviceName>.<ns>.svc...`). */
  serviceName?: string;
  selector: LabelSelector;
  template: { labels: Record<string, string>; annotations: Record<string, string>; spec: PodSpec };
}

export type ServiceType = 'ClusterIP' | 'NodePort' | 'LoadBalancer' | 'ExternalName';

export interface ServicePort {
  name?: string;
  protocol: Protocol;
  port: number;
  targetPort: number | string;
  nodePort?: number;
  /** The application protocol (e.g. `http`, `grpc`, `kubernetes.io/h2c`), when given. */
  appProtocol?: string;
}

export interface Service extends Base<'Service'> {
  spec: {
    type: ServiceType;
    selector?: Record<string, string>;
    clusterIP?: string;
    ports: ServicePort[];
    externalName?: string;
    /** Headless Services: DNS lists pods that are not ready too. */
    publishNotReadyAddresses?: boolean;
  };
}

export interface IpBlock {
  cidr: string;
  except: string[];
}

export interface NetworkPolicyPeer {
  podSelector?: LabelSelector;
  namespaceSelector?: LabelSelector;
  ipBlock?: IpBlock;
}

export interface NetworkPolicyPort {
  protocol: Protocol;
  /** Absent means every port. */
  port?: number | string;
  endPort?: number;
}

export interface NetworkPolicyRule {
  /** `from` for ingress, `to` for egress. Absent or empty means every peer. */
  peers?: NetworkPolicyPeer[];
  ports?: NetworkPolicyPort[];
}

export interface NetworkPolicy extends Base<'NetworkPolicy'> {
  spec: {
    podSelector: LabelSelector;
    /** As written; absent means it is inferred (see policy/from-network-policy.ts). */
    policyTypes?: ('Ingress' | 'Egress')[];
    ingress?: NetworkPolicyRule[];
    egress?: NetworkPolicyRule[];
  };
}

export interface CiliumPortProtocolSpec {
  /** A number, a range start, or a named port. `0` or absent means every port. */
  port: number | string;
  endPort?: number;
  protocol: 'TCP' | 'UDP' | 'SCTP' | 'ANY';
}

export interface HttpHeaderMatch {
  name: string;
  value?: string;
  mismatch?: 'LOG' | 'ADD' | 'DELETE' | 'REPLACE';
}

export interface CiliumHttpRule {
  method?: string;
  path?: string;
  host?: string;
  /** `Name` (presence) or `Name: value` (exact value), as Cilium writes them. */
  headers: string[];
  headerMatches: HttpHeaderMatch[];
}

export interface CiliumPortRule {
  ports: CiliumPortProtocolSpec[];
  /** L7 HTTP rules; absent means no L7 restriction. */
  http?: CiliumHttpRule[];
}

export type CiliumEntity =
  | 'all'
  | 'world'
  | 'world-ipv4'
  | 'world-ipv6'
  | 'cluster'
  | 'host'
  | 'remote-node'
  | 'kube-apiserver'
  | 'ingress'
  | 'health'
  | 'init'
  | 'unmanaged'
  | 'none';

export interface CiliumCidrRule {
  cidr: string;
  except: string[];
}

/** One ingress, ingressDeny, egress or egressDeny rule. The L3 fields are mutually exclusive, as in Cilium. */
export interface CiliumPeerRule {
  endpoints?: LabelSelector[];
  requires?: LabelSelector[];
  entities?: CiliumEntity[];
  cidr?: string[];
  cidrSet?: CiliumCidrRule[];
  /** Egress only: destination nodes by label (host firewall). */
  nodes?: LabelSelector[];
  toPorts?: CiliumPortRule[];
  /** Set when the rule selects peers by fields not evaluated offline (toFQDNs, toServices, groups): it then matches no peer. */
  opaqueL3?: boolean;
  /** Field path of this rule inside its object, for locations. */
  path: FieldPath;
}

export interface CiliumRule {
  endpointSelector?: LabelSelector;
  nodeSelector?: LabelSelector;
  ingress?: CiliumPeerRule[];
  ingressDeny?: CiliumPeerRule[];
  egress?: CiliumPeerRule[];
  egressDeny?: CiliumPeerRule[];
  enableDefaultDeny: { ingress?: boolean; egress?: boolean };
  description?: string;
  path: FieldPath;
}

export interface CiliumNetworkPolicy extends Base<'CiliumNetworkPolicy' | 'CiliumClusterwideNetworkPolicy'> {
  /** `spec` and every entry of `specs`, in that order. */
  rules: CiliumRule[];
}

export type Resource =
  | Namespace
  | Node
  | Pod
  | Workload
  | Service
  | NetworkPolicy
  | CiliumNetworkPolicy
  | SecurityResource
  | TrafficResource
  | ConfigResource;

export type ResourceKind = Resource['kind'];

/** `Kind namespace/name`, or `Kind name` when cluster-scoped: how diagnostics and decisions name an object. */
export function resourceName(kind: string, meta: { name: string; namespace?: string }): string {
  return meta.namespace === undefined ? `${kind} ${meta.name}` : `${kind} ${meta.namespace}/${meta.name}`;
}
