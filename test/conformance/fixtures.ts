// Shared fixtures for the conformance tests: a small cluster (nodes, namespaces, pods) written as YAML.

export interface PodOpts {
  ip: string;
  node?: string;
  sa?: string;
  labels?: Record<string, string>;
  ports?: { name?: string; containerPort: number; protocol?: string }[];
}

function labelLines(labels: Record<string, string>, indent: string): string {
  const entries = Object.entries(labels);
  if (entries.length === 0) return ' {}';
  return '\n' + entries.map(([k, v]) => `${indent}${JSON.stringify(k)}: ${JSON.stringify(v)}`).join('\n');
}

export function pod(ns: string, name: string, o: PodOpts): string {
  const ports = (o.ports ?? []).map((p) => `\n      - containerPort: ${p.containerPort}${p.name ? `\n        name: ${p.name}` : ''}\n        protocol: ${p.protocol ?? 'TCP'}`).join('');
  return `apiVersion: v1
kind: Pod
metadata:
  name: ${name}
  namespace: ${ns}
  labels:${labelLines(o.labels ?? {}, '    ')}
spec:
  serviceAccountName: ${o.sa ?? 'default'}
  nodeName: ${o.node ?? 'node-1'}
  containers:
    - name: main
      image: example${ports ? `\n      ports:${ports}` : ''}
status:
  podIP: ${o.ip}
`;
}

export function namespace(name: string, labels: Record<string, string> = {}): string {
  return `apiVersion: v1
kind: Namespace
metadata:
  name: ${name}
  labels:${labelLines(labels, '    ')}
`;
}

export function node(name: string, ip: string, labels: Record<string, string> = {}): string {
  return `apiVersion: v1
kind: Node
metadata:
  name: ${name}
  labels:${labelLines(labels, '    ')}
spec:
  podCIDR: ${podCidrFor(ip)}
status:
  addresses:
    - type: InternalIP
      address: ${ip}
`;
}

function podCidrFor(ip: string): string {
  const last = ip.split('.').pop() ?? '1';
  return `10.244.${last}.0/24`;
}

/** Three nodes: two workers and a control-plane node (which hosts kube-apiserver). */
export const NODE_1 = '192.168.1.1';
export const NODE_2 = '192.168.1.2';
export const CONTROL_PLANE = '192.168.1.10';

export const NODES = [
  node('node-1', NODE_1, { 'kubernetes.io/os': 'linux' }),
  node('node-2', NODE_2, { 'kubernetes.io/os': 'linux', 'node-access': 'ssh' }),
  node('cp-1', CONTROL_PLANE, { 'kubernetes.io/os': 'linux', 'node-role.kubernetes.io/control-plane': '' }),
].join('---\n');
