// Typed objects for Istio's security.istio.io kinds (AuthorizationPolicy, PeerAuthentication, RequestAuthentication).
import type { FieldPath, ObjectMeta, Origin } from './kinds.ts';

interface SecurityBase<K extends string> {
  kind: K;
  apiVersion: string;
  metadata: ObjectMeta;
  origin: Origin;
}

/** Istio's WorkloadSelector: only `matchLabels`. Absent means every workload in scope. */
export interface WorkloadSelector {
  matchLabels: Record<string, string>;
}

/** A PolicyTargetReference (`targetRef`/`targetRefs`): attaches a policy to a Service, Gateway or GatewayClass. */
export interface PolicyTargetRef {
  group: string;
  kind: string;
  name: string;
}

export type AuthorizationAction = 'ALLOW' | 'DENY' | 'AUDIT' | 'CUSTOM';

/** `rules[].from[].source`. Absent lists do not constrain; every present list must match. */
export interface AuthorizationSource {
  principals?: string[];
  notPrincipals?: string[];
  requestPrincipals?: string[];
  notRequestPrincipals?: string[];
  namespaces?: string[];
  notNamespaces?: string[];
  ipBlocks?: string[];
  notIpBlocks?: string[];
  remoteIpBlocks?: string[];
  notRemoteIpBlocks?: string[];
}

/** `rules[].to[].operation`. */
export interface AuthorizationOperation {
  hosts?: string[];
  notHosts?: string[];
  /** Port numbers, written as strings in the API. */
  ports?: number[];
  notPorts?: number[];
  methods?: string[];
  notMethods?: string[];
  paths?: string[];
  notPaths?: string[];
}

/** `rules[].when[]`: one attribute condition. */
export interface AuthorizationCondition {
  key: string;
  values?: string[];
  notValues?: string[];
}

export interface AuthorizationRule {
  /** Absent means any source. */
  from?: AuthorizationSource[];
  /** Absent means any operation. */
  to?: AuthorizationOperation[];
  when?: AuthorizationCondition[];
  /** Field path of the rule inside its object (`spec.rules[i]`), for locations. */
  path: FieldPath;
}

export interface AuthorizationPolicy extends SecurityBase<'AuthorizationPolicy'> {
  spec: {
    selector?: WorkloadSelector;
    targetRefs: PolicyTargetRef[];
    action: AuthorizationAction;
    /** CUSTOM only: the extension provider's name. */
    provider?: string;
    /** Absent (or `spec: {}`) means no rule: an ALLOW policy then denies everything. */
    rules?: AuthorizationRule[];
  };
  /** `istio.io/dry-run: "true"`: evaluated and reported, never enforced. */
  dryRun: boolean;
}

export type MtlsMode = 'UNSET' | 'DISABLE' | 'PERMISSIVE' | 'STRICT';

export interface PeerAuthentication extends SecurityBase<'PeerAuthentication'> {
  spec: {
    selector?: WorkloadSelector;
    /** Absent means UNSET (inherit). */
    mtls?: MtlsMode;
    /** Port (the workload's container port) to mode. */
    portLevelMtls?: Record<number, MtlsMode>;
  };
}

export interface JwtHeader {
  name: string;
  prefix?: string;
}

export interface JwtRule {
  issuer: string;
  audiences: string[];
  jwksUri?: string;
  /** Inline JWKS, as written (a JSON string). */
  jwks?: string;
  fromHeaders: JwtHeader[];
  fromParams: string[];
  outputPayloadToHeader?: string;
  forwardOriginalToken: boolean;
  path: FieldPath;
}

export interface RequestAuthentication extends SecurityBase<'RequestAuthentication'> {
  spec: {
    selector?: WorkloadSelector;
    targetRefs: PolicyTargetRef[];
    jwtRules: JwtRule[];
  };
}

export type SecurityResource = AuthorizationPolicy | PeerAuthentication | RequestAuthentication;
