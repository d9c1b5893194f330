// Policy engine benchmark (DESIGN.md, Benchmarks): compile time, heap and decision latency at 100k pods and
// 12k policies, against the naive evaluator in the same run. Not a test: it measures and reports.
//
//   npm run bench:policy          (node --expose-gc --import tsx --max-old-space-size=4096 bench/policy-bench.ts)
//
// Environment: BENCH_SCALE (default 1) scales the cluster, the policies and the flow counts, for quick runs;
// only a run at scale 1 is judged against the targets. BENCH_SEED changes the PRNG seed. BENCH_FLOWS overrides
// the flow count. BENCH_PROFILE=1 prints candidate counts, times the flows once (also with a 1,000-flow working
// set, to show what cache misses cost) and stops; with it, BENCH_CPUPROF=<file> writes a CPU profile of the
// timed decisions only, and BENCH_FLOOR=1 also times what merely touching the endpoints, pods and views costs.
// Writes bench/results/policy.json and bench/results/policy.md.
import { createPrng, machineInfo, mdRow, targetsTable } from './bench-common.ts';
import { mkdirSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isDeepStrictEqual } from 'node:util';
import { stringify } from 'yaml';
import { buildCluster, type Cluster, type ModelPod } from '../src/model/cluster.ts';
import type { Decision, FlowQuery } from '../src/policy/decision.ts';
import { endpointForIp, type Endpoint } from '../src/policy/endpoint.ts';
import { PolicyEngine } from '../src/policy/engine.ts';
import { reachabilityMatrix } from '../src/policy/matrix.ts';
import type { HttpRequest } from '../src/policy/http.ts';
import type { Protocol } from '../src/policy/ir.ts';
import { NaiveEvaluator } from '../src/policy/naive-evaluator.ts';
import { buildPolicyUnits } from '../src/policy/policy-set.ts';
import type {
  CiliumEntity,
  CiliumHttpRule,
  CiliumNetworkPolicy,
  CiliumPeerRule,
  CiliumPortRule,
  CiliumRule,
  ContainerPort,
  FieldPath,
  LabelSelector,
  Namespace,
  NetworkPolicy,
  NetworkPolicyPeer,
  NetworkPolicyPort,
  NetworkPolicyRule,
  Node,
  Origin,
  Pod,
  PodSpec,
  Resource,
  Workload,
} from '../src/resources/kinds.ts';
import { loadManifests } from '../src/resources/load.ts';
import { parseIp } from '../src/resources/net.ts';

// ---------------------------------------------------------------------------------------------------------
// Configuration

const SCALE = Number(process.env.BENCH_SCALE ?? '1');
const SEED = Number(process.env.BENCH_SEED ?? '20240611');
const N_NAMESPACES = Math.max(20, Math.round(2000 * SCALE));
const PODS_PER_NAMESPACE = 50; // 2,000 × 50 = 100,000 pods
const NP_PER_NAMESPACE = 5; // 2,000 × 5 = 10,000 NetworkPolicies
const N_CNP = Math.max(9, Math.round(1800 * SCALE));
const N_CCNP = Math.max(9, Math.round(200 * SCALE));
const N_NODES = Math.max(10, Math.round(400 * SCALE));
const N_FLOWS = process.env.BENCH_FLOWS ? Number(process.env.BENCH_FLOWS) : Math.max(10_000, Math.round(1_000_000 * SCALE));
/** BENCH_PROFILE=1: after compiling, print how many candidate rules decisions walk, time the flows once and stop (for node --cpu-prof). */
const PROFILE = process.env.BENCH_PROFILE === '1';
const N_L7_FLOWS = N_FLOWS;
const NAIVE_SAMPLE = 2000;
const MATRIX_NAMESPACES = 20; // 20 namespaces × 50 pods = 1,000 pods, 1M ordered pairs
const MATRIX_PORT = 8080;
const BATCH = 64;
const DEFAULT_POD_CIDR = '10.128.0.0/10';

const TARGETS = { compileMs: 5000, heapBytes: 1.5 * 1024 ** 3, l4P99Us: 2, l7P99Us: 10, speedup: 100 };

const ORIGIN: Origin = { file: 'synthetic', locate: () => ({ file: 'synthetic', line: 1, column: 1 }) };

// ---------------------------------------------------------------------------------------------------------
// Deterministic PRNG (mulberry32)

const { rand, randInt, pick, chance } = createPrng(SEED);
function shuffled<T>(xs: readonly T[]): T[] {
  const out = [...xs];
  for (let i = out.length - 1; i > 0; i--) {
    const j = randInt(i + 1);
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// The synthetic cluster

interface AppSpec {
  name: string;
  tier: string;
  ports: ContainerPort[];
}

const tcp = (name: string, containerPort: number): ContainerPort => ({ name, containerPort, protocol: 'TCP' });
const APPS: readonly AppSpec[] = [
  { name: 'frontend', tier: 'web', ports: [tcp('http', 8080)] },
  { name: 'gateway', tier: 'edge', ports: [tcp('http', 8080), tcp('https', 8443)] },
  { name: 'api', tier: 'backend', ports: [tcp('http', 8080), tcp('metrics', 9090)] },
  { name: 'orders', tier: 'backend', ports: [tcp('http', 8080), tcp('metrics', 9090)] },
  { name: 'auth', tier: 'backend', ports: [tcp('http', 8081), tcp('metrics', 9090)] },
  { name: 'search', tier: 'backend', ports: [tcp('http', 9200)] },
  { name: 'grpc-svc', tier: 'backend', ports: [tcp('grpc', 50051), tcp('metrics', 9090)] },
  { name: 'worker', tier: 'backend', ports: [tcp('metrics', 9090)] },
  { name: 'postgres', tier: 'data', ports: [tcp('postgres', 5432)] },
  { name: 'redis', tier: 'data', ports: [tcp('redis', 6379)] },
  { name: 'kafka', tier: 'data', ports: [tcp('kafka', 9092)] },
  { name: 'memcached', tier: 'data', ports: [tcp('memcache', 11211), { name: 'memcache-udp', containerPort: 11211, protocol: 'UDP' }] },
];
const SYSTEM_APPS: Record<string, readonly AppSpec[]> = {
  'kube-system': [
    { name: 'coredns', tier: 'system', ports: [{ name: 'dns', containerPort: 53, protocol: 'UDP' }, tcp('dns-tcp', 53), tcp('metrics', 9153)] },
    { name: 'metrics-server', tier: 'system', ports: [tcp('https', 10250)] },
  ],
  monitoring: [
    { name: 'prometheus', tier: 'system', ports: [tcp('web', 9090)] },
    { name: 'grafana', tier: 'system', ports: [tcp('http', 3000)] },
    { name: 'alertmanager', tier: 'system', ports: [tcp('web', 9093)] },
  ],
};
const REPLICAS = [12, 10, 8, 8, 6, 6]; // sums to PODS_PER_NAMESPACE
const ENVS = ['prod', 'staging', 'dev'];
const N_TEAMS = 60;
const ZONES = ['zone-a', 'zone-b', 'zone-c'];

interface NsInfo {
  name: string;
  team: string;
  env: string;
  apps: AppSpec[];
}

function meta(name: string, namespace: string | undefined, labels: Record<string, string> = {}): Namespace['metadata'] {
  return namespace === undefined ? { name, labels, annotations: {} } : { name, namespace, labels, annotations: {} };
}

function ipv4(n: number): string {
  return `${(n >>> 24) & 255}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

interface Generated {
  resources: Resource[];
  namespaces: NsInfo[];
  /** Where L7 rules apply: namespaces, the protected app, its L7 port, and the app the rules admit. */
  l7Targets: { namespaces: string[]; app: string; port: number; from: string }[];
  counts: { namespaces: number; nodes: number; deployments: number; barePods: number; networkPolicies: number; cnp: number; ccnp: number; l7Policies: number; hostPolicies: number; denyPolicies: number };
}

function generate(): Generated {
  const resources: Resource[] = [];
  const namespaces: NsInfo[] = [];
  const counts: Generated['counts'] = { namespaces: 0, nodes: 0, deployments: 0, barePods: 0, networkPolicies: 0, cnp: 0, ccnp: 0, l7Policies: 0, hostPolicies: 0, denyPolicies: 0 };

  for (let i = 0; i < N_NAMESPACES; i++) {
    const name = i === 0 ? 'kube-system' : i === 1 ? 'monitoring' : `ns-${String(i).padStart(4, '0')}`;
    const team = `team-${randInt(N_TEAMS)}`;
    const env = i < 2 ? 'prod' : pick(ENVS);
    const labels: Record<string, string> = { team, env };
    if (chance(0.1)) labels.compliance = 'pci';
    if (chance(0.3)) labels['istio-injection'] = 'enabled';
    resources.push({ kind: 'Namespace', apiVersion: 'v1', metadata: meta(name, undefined, labels), origin: ORIGIN });
    const apps = SYSTEM_APPS[name] ? [...(SYSTEM_APPS[name] ?? [])] : shuffled(APPS).slice(0, REPLICAS.length);
    namespaces.push({ name, team, env, apps });
    counts.namespaces++;
  }

  // Nodes: each with a /22 pod CIDR in 10.64.0.0/12; bare Pods get their addresses from their node's CIDR.
  const nodes: { name: string; base: number; next: number }[] = [];
  for (let i = 0; i < N_NODES; i++) {
    const name = `node-${String(i).padStart(3, '0')}`;
    const base = (10 << 24) + (64 << 16) + i * 1024;
    const labels: Record<string, string> = { 'kubernetes.io/hostname': name, 'kubernetes.io/os': 'linux', 'topology.kubernetes.io/zone': ZONES[i % 3] ?? 'zone-a' };
    if (i < 3) labels['node-role.kubernetes.io/control-plane'] = '';
    const node: Node = { kind: 'Node', apiVersion: 'v1', metadata: meta(name, undefined, labels), origin: ORIGIN, addresses: [ipv4((172 << 24) + (16 << 16) + i + 10)], podCIDRs: [`${ipv4(base)}/22`] };
    resources.push(node);
    nodes.push({ name, base, next: 2 });
    counts.nodes++;
  }

  // Workloads: in each namespace, apps alternate between Deployments (the larger ones with a canary) and bare Pods.
  for (const ns of namespaces) {
    const sizes = ns.apps.length === REPLICAS.length ? REPLICAS : spread(PODS_PER_NAMESPACE, ns.apps.length);
    ns.apps.forEach((app, ai) => {
      const replicas = sizes[ai] ?? 1;
      const version = `v${1 + randInt(3)}`;
      const sa = chance(0.7) ? app.name : 'default';
      const spec = (nodeName?: string): PodSpec => {
        const s: PodSpec = { serviceAccountName: sa, hostNetwork: false, containers: [{ name: app.name, ports: app.ports.map((p) => ({ ...p })) }] };
        if (nodeName) s.nodeName = nodeName;
        return s;
      };
      if (ai % 2 === 0) {
        const deploy = (name: string, n: number, v: string): void => {
          const labels = { app: app.name, tier: app.tier, version: v };
          const w: Workload = {
            kind: 'Deployment',
            apiVersion: 'apps/v1',
            metadata: meta(name, ns.name, { app: app.name }),
            origin: ORIGIN,
            replicas: n,
            selector: { matchLabels: { app: app.name, version: v }, matchExpressions: [] },
            template: { labels, annotations: {}, spec: spec() },
          };
          resources.push(w);
          counts.deployments++;
        };
        if (replicas >= 8) {
          deploy(app.name, replicas - 2, version);
          deploy(`${app.name}-canary`, 2, `v${Number(version.slice(1)) + 1}`);
        } else deploy(app.name, replicas, version);
      } else {
        for (let k = 0; k < replicas; k++) {
          const node = pick(nodes);
          const ip = ipv4(node.base + node.next++);
          const pod: Pod = {
            kind: 'Pod',
            apiVersion: 'v1',
            metadata: meta(`${app.name}-${k}`, ns.name, { app: app.name, tier: app.tier, version }),
            origin: ORIGIN,
            spec: spec(node.name),
            status: { podIPs: [ip] },
          };
          resources.push(pod);
          counts.barePods++;
        }
      }
    });
  }

  // Kubernetes NetworkPolicies.
  const sel = (matchLabels: Record<string, string> = {}, matchExpressions: LabelSelector['matchExpressions'] = []): LabelSelector => ({ matchLabels, matchExpressions });
  const port = (protocol: Protocol, p?: number | string, endPort?: number): NetworkPolicyPort => {
    const out: NetworkPolicyPort = { protocol };
    if (p !== undefined) out.port = p;
    if (endPort !== undefined) out.endPort = endPort;
    return out;
  };
  const np = (ns: string, name: string, spec: NetworkPolicy['spec']): void => {
    resources.push({ kind: 'NetworkPolicy', apiVersion: 'networking.k8s.io/v1', metadata: meta(name, ns), origin: ORIGIN, spec });
    counts.networkPolicies++;
  };
  const NS_NAME = 'kubernetes.io/metadata.name';
  for (const ns of namespaces) {
    const appPort = (a: AppSpec): number | string => {
      const p = a.ports[0] as ContainerPort;
      return chance(0.5) && p.name ? p.name : p.containerPort;
    };
    const r0 = rand();
    if (r0 < 0.7) np(ns.name, 'default-deny-ingress', { podSelector: sel(), policyTypes: ['Ingress'] });
    else if (r0 < 0.85) np(ns.name, 'default-deny-all', { podSelector: sel(), policyTypes: ['Ingress', 'Egress'] });
    else np(ns.name, 'allow-same-namespace', { podSelector: sel(), ingress: [{ peers: [{ podSelector: sel() }] }] });
    for (let k = 1; k < NP_PER_NAMESPACE; k++) {
      const a = pick(ns.apps);
      const b = pick(ns.apps);
      const t = randInt(7);
      const name = `np-${k}-${a.name}`;
      switch (t) {
        case 0:
          np(ns.name, name, { podSelector: sel({ app: a.name }), ingress: [{ peers: [{ podSelector: sel({ app: b.name }) }], ports: [port('TCP', appPort(a))] }] });
          break;
        case 1:
          np(ns.name, name, {
            podSelector: sel({ tier: a.tier }),
            policyTypes: ['Ingress'],
            ingress: [{ peers: [{ namespaceSelector: sel({ team: `team-${randInt(N_TEAMS)}` }), podSelector: sel({ tier: 'web' }) }, { podSelector: sel({ tier: 'edge' }) }], ports: [port('TCP', 8080), port('TCP', 'http')] }],
          });
          break;
        case 2:
          np(ns.name, name, {
            podSelector: sel(),
            ingress: [{ peers: [{ namespaceSelector: sel({ [NS_NAME]: 'monitoring' }), podSelector: sel({ app: 'prometheus' }) }], ports: [port('TCP', chance(0.5) ? 'metrics' : 9090)] }],
          });
          break;
        case 3: {
          const egress: NetworkPolicyRule[] = [
            { peers: [{ podSelector: sel({ tier: 'data' }) }], ports: [port('TCP', 5432, 6400)] },
            { peers: [{ namespaceSelector: sel({ [NS_NAME]: 'kube-system' }), podSelector: sel({ app: 'coredns' }) }], ports: [port('UDP', 53), port('TCP', 53)] },
            { peers: [{ ipBlock: { cidr: '0.0.0.0/0', except: ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16'] } }], ports: [port('TCP', 443)] },
          ];
          np(ns.name, name, { podSelector: sel({ app: a.name }), policyTypes: ['Egress'], egress });
          break;
        }
        case 4: {
          const peers: NetworkPolicyPeer[] = [{ ipBlock: { cidr: '203.0.113.0/24', except: [] } }, { ipBlock: { cidr: '198.51.100.0/22', except: ['198.51.100.128/25'] } }];
          if (chance(0.3)) peers.push({ ipBlock: { cidr: '10.64.0.0/12', except: [] } });
          np(ns.name, name, { podSelector: sel({ app: a.name }), ingress: [{ peers, ports: [port('TCP', appPort(a))] }] });
          break;
        }
        case 5:
          np(ns.name, name, {
            podSelector: sel({}, [{ key: 'tier', operator: 'In', values: ['backend', 'data'] }]),
            ingress: [
              {
                peers: [{ podSelector: sel({}, [{ key: 'version', operator: 'NotIn', values: ['v1'] }, { key: 'app', operator: 'Exists', values: [] }]), namespaceSelector: sel({}, [{ key: 'env', operator: 'In', values: [ns.env, 'staging'] }]) }],
                ports: [port('TCP', 8000, 9999), port('UDP', 11211)],
              },
            ],
          });
          break;
        default:
          np(ns.name, name, { podSelector: sel({ app: a.name, version: `v${1 + randInt(3)}` }), ingress: [{ ports: [port(chance(0.9) ? 'TCP' : 'SCTP', appPort(a))] }, { peers: [{ podSelector: sel({ tier: b.tier }) }] }] });
      }
    }
  }

  // Cilium policies: CNPs in random namespaces and clusterwide CCNPs; every third one carries L7 HTTP rules.
  const l7Targets: Generated['l7Targets'] = [];
  const HTTP_RULES: CiliumHttpRule[] = [
    { method: 'GET', path: '/api/v[12]/items(/[0-9]+)?', headers: [], headerMatches: [] },
    { method: 'POST', path: '/api/v1/orders', headers: [], headerMatches: [] },
    { method: 'GET|HEAD', path: '/healthz', headers: [], headerMatches: [] },
    { method: 'PUT', path: '/api/v1/items/[0-9]+', headers: ['X-Tenant: acme'], headerMatches: [] },
    { path: '/public/.*', headers: [], headerMatches: [] },
    { method: 'DELETE', path: '/api/v1/items/[0-9]+', headers: [], headerMatches: [{ name: 'X-Admin', value: 'true' }] },
  ];
  const httpRules = (): CiliumHttpRule[] => shuffled(HTTP_RULES).slice(0, 2 + randInt(3)).map((h) => ({ ...h, headers: [...h.headers], headerMatches: h.headerMatches.map((m) => ({ ...m })) }));
  const ports = (list: [number | string, CiliumPortRule['ports'][number]['protocol'], number?][], http?: CiliumHttpRule[]): CiliumPortRule => {
    const out: CiliumPortRule = { ports: list.map(([p, protocol, endPort]) => (endPort === undefined ? { port: p, protocol } : { port: p, protocol, endPort })) };
    if (http) out.http = http;
    return out;
  };
  const peerRule = (path: FieldPath, fields: Omit<CiliumPeerRule, 'path'>): CiliumPeerRule => ({ path, ...fields });
  const ciliumRule = (path: FieldPath, subject: { endpointSelector?: LabelSelector; nodeSelector?: LabelSelector }, sections: Partial<Record<'ingress' | 'ingressDeny' | 'egress' | 'egressDeny', Omit<CiliumPeerRule, 'path'>[]>>, enableDefaultDeny: CiliumRule['enableDefaultDeny'] = {}): CiliumRule => {
    const r: CiliumRule = { enableDefaultDeny, path, ...subject };
    for (const dir of ['ingress', 'ingressDeny', 'egress', 'egressDeny'] as const) {
      const list = sections[dir];
      if (list) r[dir] = list.map((f, i) => peerRule([...path, dir, i], f));
    }
    return r;
  };
  const cilium = (kind: CiliumNetworkPolicy['kind'], name: string, ns: string | undefined, rules: CiliumRule[]): void => {
    resources.push({ kind, apiVersion: 'cilium.io/v2', metadata: meta(name, ns), origin: ORIGIN, rules });
    if (kind === 'CiliumNetworkPolicy') counts.cnp++;
    else counts.ccnp++;
  };
  const POD_NS = 'k8s:io.kubernetes.pod.namespace';
  const NS_LABEL = (k: string): string => `k8s:io.cilium.k8s.namespace.labels.${k}`;
  const httpApp = (ns: NsInfo): { app: AppSpec; port: ContainerPort } | undefined => {
    for (const app of shuffled(ns.apps)) {
      const p = app.ports.find((x) => x.name === 'http');
      if (p) return { app, port: p };
    }
    return undefined;
  };

  for (let i = 0; i < N_CNP; i++) {
    const ns = namespaces[2 + randInt(namespaces.length - 2)] as NsInfo;
    const a = pick(ns.apps);
    const b = pick(ns.apps);
    const name = `cnp-${i}`;
    const spec: FieldPath = ['spec'];
    const target = i % 3 === 0 ? httpApp(ns) : undefined;
    if (target) {
      const from = ns.apps.find((x) => x.name === 'frontend' || x.name === 'gateway') ?? pick(ns.apps);
      const named = chance(0.25);
      cilium('CiliumNetworkPolicy', `${name}-l7`, ns.name, [
        ciliumRule(spec, { endpointSelector: sel({ app: target.app.name }) }, {
          ingress: [
            { endpoints: [sel({ app: from.name })], toPorts: [ports([[named ? 'http' : target.port.containerPort, 'TCP']], httpRules())] },
            { endpoints: [sel({ [NS_LABEL('team')]: ns.team })], toPorts: [ports([[target.port.containerPort, 'TCP']], httpRules())] },
          ],
        }),
      ]);
      l7Targets.push({ namespaces: [ns.name], app: target.app.name, port: target.port.containerPort, from: from.name });
      counts.l7Policies++;
      continue;
    }
    switch (i % 5) {
      case 0:
        cilium('CiliumNetworkPolicy', name, ns.name, [
          ciliumRule(spec, { endpointSelector: sel({ app: a.name }) }, {
            ingress: [{ endpoints: [sel({ [POD_NS]: pick(namespaces).name, app: pick(APPS).name })], toPorts: [ports([[(a.ports[0] as ContainerPort).containerPort, 'TCP']])] }, { endpoints: [sel({ app: b.name })] }],
          }),
        ]);
        break;
      case 1:
        cilium('CiliumNetworkPolicy', name, ns.name, [
          ciliumRule(spec, { endpointSelector: sel({ tier: a.tier }) }, {
            ingress: [{ entities: [pick<CiliumEntity>(['world', 'cluster', 'remote-node'])], toPorts: [ports([[8080, 'TCP'], [8443, 'TCP']])] }],
            egress: [{ entities: ['kube-apiserver'] }, { endpoints: [sel({ [POD_NS]: 'kube-system', 'k8s:app': 'coredns' })], toPorts: [ports([[53, 'ANY']])] }, { endpoints: [sel({ tier: 'data' })] }],
          }),
        ]);
        break;
      case 2:
        cilium('CiliumNetworkPolicy', name, ns.name, [
          ciliumRule(spec, { endpointSelector: sel({ app: a.name }) }, {
            egress: [
              { cidrSet: [{ cidr: '0.0.0.0/0', except: ['10.0.0.0/8', '169.254.0.0/16'] }], toPorts: [ports([[443, 'TCP']])] },
              { cidr: ['52.94.0.0/16', '54.239.28.85/32'] },
              { endpoints: [sel()] },
            ],
            ingress: [{ cidr: ['203.0.113.0/24'] }, { endpoints: [sel()] }],
          }),
        ]);
        break;
      case 3:
        counts.denyPolicies++;
        cilium('CiliumNetworkPolicy', name, ns.name, [
          ciliumRule(spec, { endpointSelector: sel() }, {
            ingressDeny: [{ entities: ['world'], toPorts: [ports([[22, 'TCP']])] }, { endpoints: [sel({ app: b.name, version: 'v1' })], toPorts: [ports([[(a.ports[0] as ContainerPort).containerPort, 'ANY']])] }],
            egressDeny: [{ cidr: ['169.254.169.254/32'] }],
            ingress: [{ endpoints: [sel()] }],
          }),
        ]);
        break;
      default:
        cilium('CiliumNetworkPolicy', name, ns.name, [
          ciliumRule(['specs', 0], { endpointSelector: sel({}, [{ key: 'version', operator: 'In', values: ['v2', 'v3'] }]) }, {
            ingress: [{ endpoints: [sel({}, [{ key: 'tier', operator: 'NotIn', values: ['data'] }])], toPorts: [ports([[8000, 'TCP', 8100], [9090, 'TCP']])] }],
          }),
          ciliumRule(['specs', 1], { endpointSelector: sel({ app: a.name }) }, {
            ingress: [{ endpoints: [sel({ [POD_NS]: 'monitoring', app: 'prometheus' })], toPorts: [ports([['metrics', 'TCP']])] }],
          }),
        ]);
    }
  }

  for (let i = 0; i < N_CCNP; i++) {
    const name = `ccnp-${i}`;
    const spec: FieldPath = ['spec'];
    const team = `team-${randInt(N_TEAMS)}`;
    if (i % 3 === 0) {
      const app = pick(['api', 'orders', 'frontend', 'gateway']);
      const from = pick(['frontend', 'gateway', 'api']);
      const port = 8080;
      cilium('CiliumClusterwideNetworkPolicy', `${name}-l7`, undefined, [
        ciliumRule(spec, { endpointSelector: sel({ [NS_LABEL('team')]: team, app }) }, {
          ingress: [{ endpoints: [sel({ [NS_LABEL('team')]: team, app: from })], toPorts: [ports([[port, 'TCP']], httpRules())] }],
        }),
      ]);
      l7Targets.push({ namespaces: namespaces.filter((n) => n.team === team).map((n) => n.name), app, port, from });
      counts.l7Policies++;
      continue;
    }
    switch (i % 9) {
      case 1:
        counts.hostPolicies++;
        cilium('CiliumClusterwideNetworkPolicy', `${name}-host`, undefined, [
          ciliumRule(spec, { nodeSelector: sel({ 'topology.kubernetes.io/zone': pick(ZONES) }) }, {
            ingress: [{ entities: ['cluster'], toPorts: [ports([[10250, 'TCP'], [4240, 'TCP']])] }, { entities: ['world'], toPorts: [ports([[22, 'TCP']])] }],
            egress: [{ entities: ['all'] }],
          }),
        ]);
        break;
      case 2:
        counts.denyPolicies++;
        cilium('CiliumClusterwideNetworkPolicy', name, undefined, [
          ciliumRule(spec, { endpointSelector: sel({ [NS_LABEL('env')]: pick(ENVS) }, [{ key: 'tier', operator: 'In', values: ['data'] }]) }, {
            ingressDeny: [{ entities: ['world'] }, { cidrSet: [{ cidr: '198.51.100.0/22', except: ['198.51.100.0/26'] }] }],
            egressDeny: [{ entities: ['world'], toPorts: [ports([[25, 'TCP'], [6660, 'TCP', 6669]])] }],
          }, { ingress: false, egress: false }),
        ]);
        break;
      case 4:
        cilium('CiliumClusterwideNetworkPolicy', name, undefined, [
          ciliumRule(spec, { endpointSelector: sel({ [NS_LABEL('compliance')]: 'pci' }) }, {
            ingress: [{ endpoints: [sel({ [NS_LABEL('compliance')]: 'pci' })] }, { endpoints: [sel({ [POD_NS]: 'monitoring', app: 'prometheus' })], toPorts: [ports([[9090, 'TCP']])] }],
            egress: [{ endpoints: [sel({ [NS_LABEL('compliance')]: 'pci' })] }, { endpoints: [sel({ [POD_NS]: 'kube-system', app: 'coredns' })], toPorts: [ports([[53, 'UDP'], [53, 'TCP']])] }],
          }),
        ]);
        break;
      default:
        cilium('CiliumClusterwideNetworkPolicy', name, undefined, [
          ciliumRule(spec, { endpointSelector: sel({ [NS_LABEL('team')]: team, tier: pick(['data', 'backend']) }) }, {
            ingress: [{ endpoints: [sel({ [NS_LABEL('team')]: team })], toPorts: [ports([[5432, 'TCP'], [6379, 'TCP'], [9092, 'TCP'], ['metrics', 'TCP']])] }, { entities: ['host', 'remote-node'] }],
            ingressDeny: [{ endpoints: [sel({ [NS_LABEL('env')]: 'dev' })] }],
          }),
        ]);
    }
  }
  return { resources, namespaces, l7Targets, counts };
}

function spread(total: number, parts: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < parts; i++) out.push(Math.floor(total / parts) + (i < total % parts ? 1 : 0));
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// Manifests for the loader sample: typed objects back to the YAML a user would write.

function selectorManifest(s: LabelSelector): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (Object.keys(s.matchLabels).length > 0) out.matchLabels = s.matchLabels;
  if (s.matchExpressions.length > 0) out.matchExpressions = s.matchExpressions.map((e) => (e.values.length > 0 ? e : { key: e.key, operator: e.operator }));
  return out;
}

function metaManifest(m: Namespace['metadata']): Record<string, unknown> {
  const out: Record<string, unknown> = { name: m.name };
  if (m.namespace !== undefined) out.namespace = m.namespace;
  if (Object.keys(m.labels).length > 0) out.labels = m.labels;
  return out;
}

function podSpecManifest(s: PodSpec): Record<string, unknown> {
  const out: Record<string, unknown> = { serviceAccountName: s.serviceAccountName, containers: s.containers };
  if (s.nodeName) out.nodeName = s.nodeName;
  return out;
}

function ciliumPeerManifest(p: CiliumPeerRule, egress: boolean): Record<string, unknown> {
  const f = egress ? { endpoints: 'toEndpoints', entities: 'toEntities', cidr: 'toCIDR', cidrSet: 'toCIDRSet', nodes: 'toNodes' } : { endpoints: 'fromEndpoints', entities: 'fromEntities', cidr: 'fromCIDR', cidrSet: 'fromCIDRSet', nodes: 'fromNodes' };
  const out: Record<string, unknown> = {};
  if (p.endpoints) out[f.endpoints] = p.endpoints.map(selectorManifest);
  if (p.entities) out[f.entities] = p.entities;
  if (p.cidr) out[f.cidr] = p.cidr;
  if (p.cidrSet) out[f.cidrSet] = p.cidrSet;
  if (p.nodes) out[f.nodes] = p.nodes.map(selectorManifest);
  if (p.toPorts) {
    out.toPorts = p.toPorts.map((tp) => {
      const o: Record<string, unknown> = { ports: tp.ports.map((x) => ({ port: String(x.port), protocol: x.protocol, ...(x.endPort !== undefined ? { endPort: x.endPort } : {}) })) };
      if (tp.http) o.rules = { http: tp.http.map((h) => ({ ...(h.method ? { method: h.method } : {}), ...(h.path ? { path: h.path } : {}), ...(h.headers.length ? { headers: h.headers } : {}), ...(h.headerMatches.length ? { headerMatches: h.headerMatches } : {}) })) };
      return o;
    });
  }
  return out;
}

function manifest(r: Resource): Record<string, unknown> {
  const head = { apiVersion: r.apiVersion, kind: r.kind, metadata: metaManifest(r.metadata) };
  switch (r.kind) {
    case 'Namespace':
      return head;
    case 'Node':
      return { ...head, spec: { podCIDRs: r.podCIDRs }, status: { addresses: r.addresses.map((address) => ({ type: 'InternalIP', address })) } };
    case 'Pod':
      return { ...head, spec: podSpecManifest(r.spec), status: { podIP: r.status.podIPs[0] } };
    case 'Service':
      return { ...head, spec: r.spec };
    case 'NetworkPolicy': {
      const rule = (x: NetworkPolicyRule, field: string): Record<string, unknown> => {
        const o: Record<string, unknown> = {};
        if (x.peers) o[field] = x.peers.map((p) => ({ ...(p.podSelector ? { podSelector: selectorManifest(p.podSelector) } : {}), ...(p.namespaceSelector ? { namespaceSelector: selectorManifest(p.namespaceSelector) } : {}), ...(p.ipBlock ? { ipBlock: p.ipBlock.except.length ? p.ipBlock : { cidr: p.ipBlock.cidr } } : {}) }));
        if (x.ports) o.ports = x.ports;
        return o;
      };
      const spec: Record<string, unknown> = { podSelector: selectorManifest(r.spec.podSelector) };
      if (r.spec.policyTypes) spec.policyTypes = r.spec.policyTypes;
      if (r.spec.ingress) spec.ingress = r.spec.ingress.map((x) => rule(x, 'from'));
      if (r.spec.egress) spec.egress = r.spec.egress.map((x) => rule(x, 'to'));
      return { ...head, spec };
    }
    case 'CiliumNetworkPolicy':
    case 'CiliumClusterwideNetworkPolicy': {
      const rule = (x: CiliumRule): Record<string, unknown> => {
        const o: Record<string, unknown> = {};
        if (x.endpointSelector) o.endpointSelector = selectorManifest(x.endpointSelector);
        if (x.nodeSelector) o.nodeSelector = selectorManifest(x.nodeSelector);
        if (Object.keys(x.enableDefaultDeny).length > 0) o.enableDefaultDeny = x.enableDefaultDeny;
        for (const dir of ['ingress', 'ingressDeny', 'egress', 'egressDeny'] as const) {
          const list = x[dir];
          if (list) o[dir] = list.map((p) => ciliumPeerManifest(p, dir.startsWith('egress')));
        }
        return o;
      };
      const first = r.rules[0];
      if (r.rules.length === 1 && first && first.path[0] === 'spec') return { ...head, spec: rule(first) };
      return { ...head, specs: r.rules.map(rule) };
    }
    case 'Deployment':
    case 'ReplicaSet':
    case 'StatefulSet':
    case 'DaemonSet':
      return { ...head, spec: { replicas: r.replicas, selector: selectorManifest(r.selector), template: { metadata: { labels: r.template.labels }, spec: podSpecManifest(r.template.spec) } } };
    default:
      // Kinds the synthetic cluster never generates (Istio and Gateway API kinds).
      return head;
  }
}

/** Loads a sample through the real loader and checks it yields exactly the objects built in memory. */
function loaderSample(gen: Generated): { objects: number; yamlBytes: number; loadMs: number; perObjectUs: number; errors: number; mismatches: number; estimatedFullLoadMs: number } {
  const sampleNs = new Set(gen.namespaces.slice(0, 20).map((n) => n.name));
  let nodes = 0;
  let ccnps = 0;
  const sample = gen.resources.filter((r) => {
    if (r.kind === 'Namespace') return sampleNs.has(r.metadata.name);
    if (r.kind === 'Node') return nodes++ < 10;
    if (r.kind === 'CiliumClusterwideNetworkPolicy') return ccnps++ < 10;
    return r.metadata.namespace !== undefined && sampleNs.has(r.metadata.namespace);
  });
  const text = sample.map((r) => stringify(manifest(r), { lineWidth: 0 })).join('---\n');
  const t0 = process.hrtime.bigint();
  const loaded = loadManifests([{ name: 'sample.yaml', text }]);
  const loadMs = Number(process.hrtime.bigint() - t0) / 1e6;
  const errors = loaded.diagnostics.filter((d) => d.severity === 'error');
  for (const e of errors.slice(0, 5)) console.error(`  loader error: ${e.message} at ${e.location?.line ?? '?'}`);
  let mismatches = Math.abs(loaded.resources.length - sample.length);
  const strip = (r: Resource): unknown => ({ ...r, origin: undefined });
  loaded.resources.forEach((r, i) => {
    const want = sample[i];
    if (!want || !isDeepStrictEqual(strip(r), strip(want))) {
      if (mismatches < 3) console.error(`  loader mismatch: ${JSON.stringify(strip(r))}\n    expected ${JSON.stringify(want ? strip(want) : null)}`);
      mismatches++;
    }
  });
  const perObjectUs = (loadMs * 1000) / sample.length;
  return { objects: sample.length, yamlBytes: text.length, loadMs, perObjectUs, errors: errors.length, mismatches, estimatedFullLoadMs: (perObjectUs * gen.resources.length) / 1000 };
}

// ---------------------------------------------------------------------------------------------------------
// Flows

const HTTP_REQUESTS: HttpRequest[] = [
  { method: 'GET', path: '/api/v1/items' },
  { method: 'GET', path: '/api/v2/items/42' },
  { method: 'POST', path: '/api/v1/orders' },
  { method: 'GET', path: '/healthz', headers: { 'User-Agent': 'kube-probe/1.30' } },
  { method: 'HEAD', path: '/healthz' },
  { method: 'PUT', path: '/api/v1/items/9', headers: { 'X-Tenant': 'acme' } },
  { method: 'PUT', path: '/api/v1/items/9', headers: { 'X-Tenant': 'other' } },
  { method: 'DELETE', path: '/api/v1/items/7', headers: { 'X-Admin': 'true' } },
  { method: 'DELETE', path: '/api/v1/items/7' },
  { method: 'GET', path: '/public/css/site.css' },
  { method: 'POST', path: '/admin/users' },
  { method: 'GET', path: '/metrics' },
];

const COMMON_PORTS = [22, 53, 80, 443, 3000, 5432, 6379, 8080, 8081, 8443, 9090, 9092, 9200, 10250, 11211, 50051];

interface FlowSet {
  l4: FlowQuery[];
  l7: FlowQuery[];
  matrix: ModelPod[];
}

function makeFlows(cluster: Cluster, gen: Generated): FlowSet {
  const pods = [...cluster.pods.values()].filter((p) => !p.hostNetwork && p.ips.length > 0);
  const eps = pods.map((p) => endpointForIp(cluster, parseIp(p.ips[0] ?? '') ?? new Uint8Array(4)));
  const byNs = new Map<string, number[]>();
  const byNsApp = new Map<string, number[]>();
  pods.forEach((p, i) => {
    (byNs.get(p.namespace) ?? byNs.set(p.namespace, []).get(p.namespace))?.push(i);
    const k = `${p.namespace}/${p.labels.app ?? ''}`;
    (byNsApp.get(k) ?? byNsApp.set(k, []).get(k))?.push(i);
  });
  const nodeEps = [...cluster.nodes.values()].map((n) => endpointForIp(cluster, parseIp(n.ips[0] ?? '') ?? new Uint8Array(4)));
  const worldEps: Endpoint[] = [];
  for (let i = 0; i < 1000; i++) {
    const r = rand();
    const ip = r < 0.2 ? `203.0.113.${randInt(256)}` : r < 0.3 ? `198.51.${100 + randInt(4)}.${randInt(256)}` : r < 0.4 ? `52.94.${randInt(256)}.${randInt(256)}` : r < 0.42 ? '169.254.169.254' : `${11 + randInt(180)}.${randInt(256)}.${randInt(256)}.${1 + randInt(254)}`;
    worldEps.push(endpointForIp(cluster, parseIp(ip) ?? new Uint8Array(4)));
  }
  const randomProto = (): Protocol => (chance(0.9) ? 'TCP' : chance(0.8) ? 'UDP' : 'SCTP');
  const toPod = (dst: ModelPod): { port: number; protocol: Protocol } => {
    if (chance(0.7) && dst.ports.length > 0) {
      const p = pick(dst.ports);
      return { port: p.containerPort, protocol: p.protocol };
    }
    return chance(0.2) ? { port: 8000 + randInt(2000), protocol: 'TCP' } : { port: pick(COMMON_PORTS), protocol: randomProto() };
  };
  const l4: FlowQuery[] = new Array<FlowQuery>(N_FLOWS);
  for (let i = 0; i < N_FLOWS; i++) {
    const r = rand();
    if (r < 0.75) {
      const si = randInt(pods.length);
      const src = pods[si] as ModelPod;
      const di = r < 0.4 ? pick(byNs.get(src.namespace) ?? [si]) : randInt(pods.length);
      l4[i] = { from: eps[si] as Endpoint, to: eps[di] as Endpoint, ...toPod(pods[di] as ModelPod) };
    } else if (r < 0.85) {
      const di = randInt(pods.length);
      l4[i] = { from: pick(worldEps), to: eps[di] as Endpoint, ...toPod(pods[di] as ModelPod) };
    } else if (r < 0.95) {
      const rr = rand();
      l4[i] = { from: pick(eps), to: pick(worldEps), port: rr < 0.7 ? 443 : rr < 0.9 ? 53 : 25, protocol: rr >= 0.7 && rr < 0.9 ? 'UDP' : 'TCP' };
    } else if (r < 0.975) {
      const di = randInt(pods.length);
      l4[i] = { from: pick(nodeEps), to: eps[di] as Endpoint, ...toPod(pods[di] as ModelPod) };
    } else {
      l4[i] = { from: pick(eps), to: pick(nodeEps), port: pick([22, 10250, 4240, 6443, 9100]), protocol: 'TCP' };
    }
  }
  // L7: to pods that L7 rules protect, with an HTTP request; mostly from the admitted app, else from anywhere.
  const targets = gen.l7Targets
    .map((t) => ({ t, dst: t.namespaces.flatMap((ns) => byNsApp.get(`${ns}/${t.app}`) ?? []), src: t.namespaces.flatMap((ns) => byNsApp.get(`${ns}/${t.from}`) ?? []) }))
    .filter((x) => x.dst.length > 0);
  const l7: FlowQuery[] = new Array<FlowQuery>(N_L7_FLOWS);
  for (let i = 0; i < N_L7_FLOWS; i++) {
    const { t, dst, src } = pick(targets);
    const di = pick(dst);
    const si = src.length > 0 && chance(0.7) ? pick(src) : chance(0.5) ? pick(byNs.get((pods[di] as ModelPod).namespace) ?? [di]) : randInt(pods.length);
    l7[i] = { from: eps[si] as Endpoint, to: eps[di] as Endpoint, port: chance(0.9) ? t.port : pick(COMMON_PORTS), protocol: 'TCP', http: pick(HTTP_REQUESTS) };
  }
  // The reachability matrix: every pod of 20 namespaces (1,000 pods).
  const matrixNs = shuffled(gen.namespaces.slice(2)).slice(0, MATRIX_NAMESPACES);
  const matrix = matrixNs.flatMap((n) => (byNs.get(n.name) ?? []).map((i) => pods[i] as ModelPod));
  return { l4, l7, matrix };
}

// ---------------------------------------------------------------------------------------------------------
// Measurement

interface Stats {
  n: number;
  meanNs: number;
  p50Ns: number;
  p90Ns: number;
  p99Ns: number;
  p999Ns: number;
  maxNs: number;
}

function stats(samples: Float64Array): Stats {
  const sorted = Float64Array.from(samples).sort();
  const q = (p: number): number => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? 0;
  let sum = 0;
  for (const x of sorted) sum += x;
  return { n: sorted.length, meanNs: sum / sorted.length, p50Ns: q(0.5), p90Ns: q(0.9), p99Ns: q(0.99), p999Ns: q(0.999), maxNs: sorted[sorted.length - 1] ?? 0 };
}

/** The cost of one `process.hrtime.bigint()` call pair: the distribution over many back-to-back pairs. */
function timerPairStats(): Stats {
  const n = 200_000;
  const s = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const a = process.hrtime.bigint();
    const b = process.hrtime.bigint();
    s[i] = Number(b - a);
  }
  return stats(s);
}

/** The cost of one `process.hrtime.bigint()` call pair, as the median of many back-to-back pairs. */
function timerOverheadNs(): number {
  return timerPairStats().p50Ns;
}

let sink = 0;

/** Times each decision on its own and subtracts the timer's own cost (clamped at 0). */
function timeEach(decide: (q: FlowQuery) => Decision, qs: readonly FlowQuery[], overhead: number): Float64Array {
  const out = new Float64Array(qs.length);
  for (let i = 0; i < qs.length; i++) {
    const q = qs[i] as FlowQuery;
    const t0 = process.hrtime.bigint();
    const d = decide(q);
    const t1 = process.hrtime.bigint();
    if (d.verdict === 'allowed') sink++;
    const ns = Number(t1 - t0) - overhead;
    out[i] = ns > 0 ? ns : 0;
  }
  return out;
}

/** Times batches of BATCH consecutive decisions; each batch gives one per-decision figure (its mean). */
function timeBatches(decide: (q: FlowQuery) => Decision, qs: readonly FlowQuery[]): { perDecision: Float64Array; totalNs: number } {
  const batches = Math.floor(qs.length / BATCH);
  const out = new Float64Array(batches);
  let total = 0;
  for (let b = 0; b < batches; b++) {
    const base = b * BATCH;
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < BATCH; i++) if (decide(qs[base + i] as FlowQuery).verdict === 'allowed') sink++;
    const dt = Number(process.hrtime.bigint() - t0);
    total += dt;
    out[b] = dt / BATCH;
  }
  return { perDecision: out, totalNs: total };
}

function outcomeMix(decide: (q: FlowQuery) => Decision, qs: readonly FlowQuery[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const q of qs.slice(0, 100_000)) {
    const d = decide(q);
    const key = d.verdict === 'allowed' ? `allowed (ingress ${d.ingress.reason}${d.ingress.http ? ', L7 match' : d.ingress.l7 ? ', L7 pending' : ''})` : `denied (${d.egress.verdict === 'denied' ? `egress ${d.egress.reason}` : `ingress ${d.ingress.reason}`})`;
    out[key] = (out[key] ?? 0) + 1;
  }
  return Object.fromEntries(Object.entries(out).sort((a, b) => b[1] - a[1]));
}

function heapUsed(): number {
  globalThis.gc?.();
  globalThis.gc?.();
  return process.memoryUsage().heapUsed;
}

const ms = (ns: number): number => Math.round(ns / 1e4) / 100;
const us = (ns: number): number => Math.round(ns / 10) / 100;
const mb = (b: number): number => Math.round(b / 1024 / 10.24) / 100;

function strip(d: Decision): unknown {
  const dir = (x: Decision['egress']): unknown => ({ verdict: x.verdict, reason: x.reason, rule: x.rule ? `${x.rule.policy.kind}/${x.rule.policy.namespace ?? ''}/${x.rule.policy.name}/${x.rule.path.join('.')}` : undefined, http: x.http?.index, l7: x.l7 ? JSON.stringify(x.l7.rules.map((r) => [r.rule.path.join('.'), r.http.map((h) => h.index)])) : undefined });
  return { verdict: d.verdict, egress: dir(d.egress), ingress: dir(d.ingress) };
}


/** Instrumentation (BENCH_PROFILE=1): candidate rules listed and walked per direction decision, by the engine's own lists. */
function profileCandidates(engine: PolicyEngine, flows: FlowSet): void {
  for (const [name, qs] of [['L3/L4', flows.l4], ['L7', flows.l7]] as const) {
    let dirs = 0;
    let denyListed = 0;
    let allowListed = 0;
    let denyWalked = 0;
    let allowWalked = 0;
    let maxDeny = 0;
    let maxAllow = 0;
    let dynDeny = 0;
    let dynAllow = 0;
    const hist = new Map<number, number>();
    for (const q of qs.slice(0, 200_000)) {
      for (const d of ['egress', 'ingress'] as const) {
        const subject = d === 'egress' ? q.from : q.to;
        const other = d === 'egress' ? q.to : q.from;
        if (subject.type === 'world') continue;
        const view = engine.view(subject, d);
        const peer = engine.peer(other, subject, d);
        const deny = view.denyCandidates(q.protocol, q.port);
        const allow = view.allowCandidates(q.protocol, q.port);
        dirs++;
        denyListed += deny.length;
        allowListed += allow.length;
        maxDeny = Math.max(maxDeny, deny.length);
        maxAllow = Math.max(maxAllow, allow.length);
        let walked = deny.length;
        denyWalked += deny.length;
        for (const c of deny) if (c.port === -1) dynDeny++;
        for (const c of allow) if (c.port === -1) dynAllow++;
        for (const c of allow) {
          allowWalked++;
          walked++;
          if (engine.matches(c, peer)) break;
        }
        const b = walked === 0 ? 0 : 2 ** Math.ceil(Math.log2(walked));
        hist.set(b, (hist.get(b) ?? 0) + 1);
      }
    }
    console.log(`${name}: ${dirs} direction decisions; per decision deny listed ${(denyListed / dirs).toFixed(2)} (max ${maxDeny}), allow listed ${(allowListed / dirs).toFixed(2)} (max ${maxAllow}); walked (upper bound) deny ${(denyWalked / dirs).toFixed(2)}, allow ${(allowWalked / dirs).toFixed(2)}; walked histogram (≤ power of 2): ${JSON.stringify([...hist].sort((a, b) => a[0] - b[0]))}; named-port candidates deny ${(dynDeny / dirs).toFixed(2)}, allow ${(dynAllow / dirs).toFixed(2)}`);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Main

function main(): void {
  if (typeof globalThis.gc !== 'function') console.warn('warning: run node with --expose-gc for exact heap figures (npm run bench:policy does)');
  const log = (s: string): void => console.log(s);
  log(`Trellis policy benchmark — node ${process.version}, ${os.cpus()[0]?.model ?? 'unknown CPU'} × ${os.cpus().length}, scale ${SCALE}, seed ${SEED}`);
  const heapStart = heapUsed();

  let t = process.hrtime.bigint();
  const gen = generate();
  const genMs = ms(Number(process.hrtime.bigint() - t));
  const heapResources = heapUsed();
  log(`generated ${gen.resources.length} objects in ${genMs} ms: ${JSON.stringify(gen.counts)}`);

  const loader = loaderSample(gen);
  log(`loader sample: ${loader.objects} objects (${Math.round(loader.yamlBytes / 1024)} KiB YAML) in ${ms(loader.loadMs * 1e6)} ms, ${Math.round(loader.perObjectUs)} µs/object; errors ${loader.errors}, mismatches vs in-memory ${loader.mismatches}`);

  t = process.hrtime.bigint();
  const cluster = buildCluster(gen.resources, { podCidr: DEFAULT_POD_CIDR });
  const clusterNs = Number(process.hrtime.bigint() - t);
  const heapCluster = heapUsed();
  t = process.hrtime.bigint();
  const units = buildPolicyUnits(gen.resources);
  const unitsNs = Number(process.hrtime.bigint() - t);
  t = process.hrtime.bigint();
  const engine = new PolicyEngine(cluster, units);
  const engineNs = Number(process.hrtime.bigint() - t);
  const heapEngine = heapUsed();
  const compileNs = clusterNs + unitsNs + engineNs;
  const est = engine.stats();
  const podCount = cluster.pods.size;
  log(`buildCluster ${ms(clusterNs)} ms (${podCount} pods, ${cluster.identities.size} identities); policy units ${ms(unitsNs)} ms; PolicyEngine ${ms(engineNs)} ms (${est.units} units, ${est.rules} rules, ${est.views} views); total ${ms(compileNs)} ms`);
  log(`heap used after GC: start ${mb(heapStart)} MB, resources ${mb(heapResources)} MB, + cluster ${mb(heapCluster)} MB, + engine ${mb(heapEngine)} MB`);

  t = process.hrtime.bigint();
  const flows = makeFlows(cluster, gen);
  log(`generated ${flows.l4.length} L3/L4 and ${flows.l7.length} L7 flows in ${ms(Number(process.hrtime.bigint() - t))} ms`);

  if (PROFILE) {
    profileCandidates(engine, flows);
    const decideP = (q: FlowQuery): Decision => engine.decide(q);
    for (let i = 0; i < 200_000; i++) if (decideP(flows.l4[i % flows.l4.length] as FlowQuery).verdict === 'allowed') sink++;
    const ov = timerOverheadNs();
    // BENCH_CPUPROF=<file>: a CPU profile of the timed decisions only (not the compile).
    const profFile = process.env.BENCH_CPUPROF;
    const session = profFile ? new Session() : undefined;
    if (session) {
      session.connect();
      session.post('Profiler.enable');
      session.post('Profiler.start');
    }
    const l4Samples = timeEach(decideP, flows.l4, ov);
    log(`L3/L4 per decision: ${JSON.stringify(stats(l4Samples))}`);
    // Where the tail comes from: samples by kind of flow and outcome, and each kind's share of the slowest 1%.
    const p99 = stats(l4Samples).p99Ns;
    const kinds = new Map<string, number[]>();
    flows.l4.forEach((q, i) => {
      const d = decideP(q);
      const k = `${q.from.type}->${q.to.type} ${d.egress.reason}/${d.ingress.reason}`;
      (kinds.get(k) ?? kinds.set(k, []).get(k))?.push(l4Samples[i] as number);
    });
    for (const [k, v] of [...kinds].sort((a, b) => b[1].length - a[1].length).slice(0, 14)) {
      const st = stats(Float64Array.from(v));
      log(`  ${k}: n ${v.length}, p50 ${us(st.p50Ns)} µs, p99 ${us(st.p99Ns)} µs, share of slowest 1% ${((100 * v.filter((x) => x >= p99).length) / (flows.l4.length / 100)).toFixed(1)}%`);
    }
    log(`L7 per decision: ${JSON.stringify(stats(timeEach(decideP, flows.l7, ov)))}`);
    // The same decisions with a small working set (1,000 flows repeated): what a decision costs with warm caches.
    // Floor: only touch both endpoints and their pods (what any decision must read).
    const touched = { verdict: 'allowed', egress: undefined, ingress: undefined } as unknown as Decision;
    const touch = (q: FlowQuery): Decision => {
      const a = q.from.type === 'pod' ? q.from.pod.identity : 0;
      const b = q.to.type === 'pod' ? q.to.pod.identity : 0;
      sink += a + b;
      return touched;
    };
    if (process.env.BENCH_FLOOR === '1') log(`floor (endpoints and pods only): ${JSON.stringify(stats(timeEach(touch, flows.l4, ov)))}`);
    const touchViews = (q: FlowQuery): Decision => {
      if (q.from.type !== 'world') sink += engine.view(q.from, 'egress').isolatedBy.length;
      if (q.to.type !== 'world') sink += engine.view(q.to, 'ingress').isolatedBy.length;
      return touched;
    };
    if (process.env.BENCH_FLOOR === '1') log(`floor + views: ${JSON.stringify(stats(timeEach(touchViews, flows.l4, ov)))}`);
    const touchEntries = (q: FlowQuery): Decision => {
      if (q.from.type !== 'world') sink += engine.view(q.from, 'egress').denyCandidates(q.protocol, q.port).length;
      if (q.to.type !== 'world') sink += engine.view(q.to, 'ingress').denyCandidates(q.protocol, q.port).length;
      return touched;
    };
    if (process.env.BENCH_FLOOR === '1') log(`floor + views + entries: ${JSON.stringify(stats(timeEach(touchEntries, flows.l4, ov)))}`);
    const small = Array.from({ length: flows.l4.length }, (_, i) => flows.l4[i % 1000] as FlowQuery);
    log(`L3/L4 per decision, 1,000-flow working set: ${JSON.stringify(stats(timeEach(decideP, small, ov)))}`);
    if (session && profFile) {
      session.post('Profiler.stop', (err, res) => {
        if (!err) writeFileSync(profFile, JSON.stringify(res.profile));
        session.disconnect();
      });
    }
    return;
  }
  const decide = (q: FlowQuery): Decision => engine.decide(q);
  // Warm-up: let the JIT settle on both kinds of flow.
  for (let i = 0; i < 200_000; i++) if (decide(flows.l4[i % flows.l4.length] as FlowQuery).verdict === 'allowed') sink++;
  for (let i = 0; i < 100_000; i++) if (decide(flows.l7[i % flows.l7.length] as FlowQuery).verdict === 'allowed') sink++;
  // The timer's own tail: the p99 of an empty pair bounds how much the harness (BigInt allocation, clock
  // reads) can add to a sample's p99.
  const timer = timerPairStats();
  const overhead = timer.p50Ns;
  log(`timer overhead (median hrtime.bigint pair): ${overhead} ns; empty pair p99 ${timer.p99Ns} ns, p99.9 ${timer.p999Ns} ns`);

  const l4Each = stats(timeEach(decide, flows.l4, overhead));
  const l4Batch = timeBatches(decide, flows.l4);
  const l4BatchStats = stats(l4Batch.perDecision);
  const l7Each = stats(timeEach(decide, flows.l7, overhead));
  const l7Batch = timeBatches(decide, flows.l7);
  const l7BatchStats = stats(l7Batch.perDecision);
  const fmt = (s: Stats): string => `p50 ${us(s.p50Ns)} µs, p90 ${us(s.p90Ns)} µs, p99 ${us(s.p99Ns)} µs, p99.9 ${us(s.p999Ns)} µs, max ${us(s.maxNs)} µs, mean ${us(s.meanNs)} µs`;
  log(`L3/L4 (${l4Each.n} flows) per decision: ${fmt(l4Each)}`);
  log(`L3/L4 batches of ${BATCH} (${l4BatchStats.n} batches): ${fmt(l4BatchStats)}; throughput ${Math.round((flows.l4.length / l4Batch.totalNs) * 1e9)} decisions/s`);
  log(`L7 (${l7Each.n} flows) per decision: ${fmt(l7Each)}`);
  log(`L7 batches of ${BATCH}: ${fmt(l7BatchStats)}; throughput ${Math.round((flows.l7.length / l7Batch.totalNs) * 1e9)} decisions/s`);
  const l4Mix = outcomeMix(decide, flows.l4);
  const l7Mix = outcomeMix(decide, flows.l7);
  log(`L3/L4 outcomes (first 100k): ${JSON.stringify(l4Mix)}`);
  log(`L7 outcomes (first 100k): ${JSON.stringify(l7Mix)}`);

  // Reachability matrix: every ordered pair of 1,000 pods on one port.
  const m = flows.matrix;
  t = process.hrtime.bigint();
  const matrix = reachabilityMatrix(engine, m, MATRIX_PORT, 'TCP');
  const matrixNs = Number(process.hrtime.bigint() - t);
  let allowedPairs = 0;
  for (const row of matrix.decisions) for (const d of row) if (d.verdict === 'allowed') allowedPairs++;
  log(`reachability matrix ${m.length}×${m.length} on TCP ${MATRIX_PORT}: ${ms(matrixNs)} ms (${allowedPairs} allowed pairs)`);

  // Naive evaluator on a sample of the same flows: speed and agreement.
  const naive = new NaiveEvaluator(cluster, engine.units);
  const sample: FlowQuery[] = [];
  for (let i = 0; i < NAIVE_SAMPLE; i++) sample.push(i % 4 === 3 ? (pick(flows.l7)) : pick(flows.l4));
  for (const q of sample.slice(0, 50)) naive.decide(q); // warm-up
  const naiveEach = new Float64Array(sample.length);
  const naiveDecisions: Decision[] = [];
  for (let i = 0; i < sample.length; i++) {
    const q = sample[i] as FlowQuery;
    const t0 = process.hrtime.bigint();
    const d = naive.decide(q);
    naiveEach[i] = Number(process.hrtime.bigint() - t0) - overhead;
    naiveDecisions.push(d);
  }
  const naiveStats = stats(naiveEach);
  const reps = 50;
  const sampleRepeated: FlowQuery[] = [];
  for (let r = 0; r < reps; r++) sampleRepeated.push(...sample);
  const compiledSample = timeBatches(decide, sampleRepeated);
  const compiledSampleMeanNs = compiledSample.totalNs / (Math.floor(sampleRepeated.length / BATCH) * BATCH);
  const speedup = naiveStats.meanNs / compiledSampleMeanNs;
  // Verdicts (overall and per direction) must agree; explanations (reason, deciding rule, HTTP rule, pending
  // L7 rules) are compared too and reported separately.
  let mismatches = 0;
  let explanationMismatches = 0;
  sample.forEach((q, i) => {
    const c = engine.decide(q);
    const n = naiveDecisions[i] as Decision;
    if (c.verdict !== n.verdict || c.egress.verdict !== n.egress.verdict || c.ingress.verdict !== n.ingress.verdict) mismatches++;
    const a = strip(c);
    const b = strip(n);
    if (!isDeepStrictEqual(a, b)) {
      if (explanationMismatches < 3) console.error(`  explanation differs: compiled ${JSON.stringify(a)}\n                          naive ${JSON.stringify(b)}`);
      explanationMismatches++;
    }
  });
  log(`naive evaluator on ${sample.length} sampled flows: mean ${us(naiveStats.meanNs)} µs, p50 ${us(naiveStats.p50Ns)} µs, p99 ${us(naiveStats.p99Ns)} µs; compiled on the same flows: mean ${us(compiledSampleMeanNs)} µs; speed-up ${speedup.toFixed(0)}×; verdict mismatches ${mismatches}, explanation mismatches ${explanationMismatches}`);

  const targets = [
    { name: 'Compile time (buildCluster + policy units + PolicyEngine)', target: `≤ ${TARGETS.compileMs / 1000} s`, value: `${(compileNs / 1e9).toFixed(2)} s`, pass: compileNs / 1e6 <= TARGETS.compileMs },
    { name: 'Heap used after compile (after GC)', target: '≤ 1.5 GB', value: `${(heapEngine / 1024 ** 3).toFixed(2)} GB`, pass: heapEngine <= TARGETS.heapBytes },
    { name: 'L3/L4 decision p99 (each decision timed)', target: `≤ ${TARGETS.l4P99Us} µs`, value: `${us(l4Each.p99Ns)} µs`, pass: l4Each.p99Ns / 1000 <= TARGETS.l4P99Us },
    { name: 'L7 decision p99 (each decision timed)', target: `≤ ${TARGETS.l7P99Us} µs`, value: `${us(l7Each.p99Ns)} µs`, pass: l7Each.p99Ns / 1000 <= TARGETS.l7P99Us },
    { name: 'Speed-up over naive evaluator (mean)', target: `≥ ${TARGETS.speedup}×`, value: `${speedup.toFixed(0)}×`, pass: speedup >= TARGETS.speedup },
    { name: `Compiled vs naive verdict mismatches (${NAIVE_SAMPLE} flows)`, target: '0', value: String(mismatches), pass: mismatches === 0 },
    { name: 'Compiled vs naive explanation mismatches (reason, rule, HTTP rule)', target: '0', value: String(explanationMismatches), pass: explanationMismatches === 0 },
    { name: 'Loader sample: errors + mismatches vs in-memory objects', target: '0', value: String(loader.errors + loader.mismatches), pass: loader.errors + loader.mismatches === 0 },
  ];
  const judged = SCALE === 1;
  log('');
  for (const x of targets) log(`${x.pass ? 'PASS' : 'FAIL'}  ${x.name}: ${x.value} (target ${x.target})`);
  if (!judged) log(`(scale ${SCALE}: not a full-size run; figures are not comparable to the targets)`);

  const method = `Latency: every decision is timed on its own with process.hrtime.bigint(); the median cost of an empty timer pair (${overhead} ns, measured in the same run) is subtracted from each sample (clamped at 0); an empty pair's own p99 is ${timer.p99Ns} ns (p99.9 ${timer.p999Ns} ns), so the timer adds little to the tail. Percentiles are taken over the ${N_FLOWS.toLocaleString('en')} samples. The same flows are then timed in batches of ${BATCH} consecutive decisions; each batch gives one per-decision figure (batch time / ${BATCH}), whose percentiles are reported too (they smooth out single-decision outliers, so their p99 is lower). Targets are judged on the per-decision figures. Flows are pre-built FlowQuery objects over pre-resolved endpoints (no IP lookup inside the timing). The JIT is warmed on 300k decisions first. Speed-up: naive mean over the ${NAIVE_SAMPLE} sampled flows (each timed) divided by the compiled mean over the same flows (timed in batches, ${reps} passes).`;
  const machine = machineInfo();
  const lat = (s: Stats): Record<string, number> => ({ n: s.n, meanUs: us(s.meanNs), p50Us: us(s.p50Ns), p90Us: us(s.p90Ns), p99Us: us(s.p99Ns), p999Us: us(s.p999Ns), maxUs: us(s.maxNs) });
  const result = {
    benchmark: 'policy',
    date: new Date().toISOString(),
    judged,
    machine,
    config: { scale: SCALE, seed: SEED, namespaces: N_NAMESPACES, podsPerNamespace: PODS_PER_NAMESPACE, nodes: N_NODES, networkPoliciesPerNamespace: NP_PER_NAMESPACE, cnp: N_CNP, ccnp: N_CCNP, flows: N_FLOWS, l7Flows: N_L7_FLOWS, naiveSample: NAIVE_SAMPLE, batch: BATCH, matrixPort: MATRIX_PORT },
    dataset: { objects: gen.resources.length, ...gen.counts, pods: podCount, identities: cluster.identities.size, policyUnits: est.units, rules: est.rules, views: est.views, generateMs: genMs },
    loaderSample: { ...loader, loadMs: ms(loader.loadMs * 1e6), perObjectUs: Math.round(loader.perObjectUs), estimatedFullLoadMs: Math.round(loader.estimatedFullLoadMs) },
    compile: { buildClusterMs: ms(clusterNs), policyUnitsMs: ms(unitsNs), policyEngineMs: ms(engineNs), engineIncludingUnitsMs: ms(unitsNs + engineNs), totalMs: ms(compileNs) },
    heap: { startMB: mb(heapStart), withResourcesMB: mb(heapResources), withClusterMB: mb(heapCluster), afterCompileMB: mb(heapEngine), clusterMB: mb(heapCluster - heapResources), engineMB: mb(heapEngine - heapCluster) },
    latency: {
      method,
      timerOverheadNs: overhead,
      timerPairP99Ns: timer.p99Ns,
      l3l4: { perDecision: lat(l4Each), batchMeans: lat(l4BatchStats), throughputPerSec: Math.round((flows.l4.length / l4Batch.totalNs) * 1e9), outcomes: l4Mix },
      l7: { perDecision: lat(l7Each), batchMeans: lat(l7BatchStats), throughputPerSec: Math.round((flows.l7.length / l7Batch.totalNs) * 1e9), outcomes: l7Mix },
    },
    reachabilityMatrix: { pods: m.length, pairs: m.length * m.length, port: `TCP ${MATRIX_PORT}`, totalMs: ms(matrixNs), perPairUs: us(matrixNs / (m.length * m.length)), allowedPairs },
    naive: { flows: sample.length, naiveMeanUs: us(naiveStats.meanNs), naiveP50Us: us(naiveStats.p50Ns), naiveP99Us: us(naiveStats.p99Ns), compiledMeanUs: us(compiledSampleMeanNs), speedup: Math.round(speedup), mismatches, explanationMismatches },
    targets,
  };

  const dir = join(dirname(fileURLToPath(import.meta.url)), 'results');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'policy.json'), `${JSON.stringify(result, null, 2)}\n`);
  const row = mdRow;
  const md = [
    '# Policy engine benchmark',
    '',
    `${result.date} — node ${machine.node}, ${machine.cpuModel} × ${machine.cores} cores, ${machine.totalMemoryGB} GB, ${machine.platform}. Scale ${SCALE}${judged ? '' : ' (not judged)'}, seed ${SEED}. Generated by \`npm run bench:policy\` (bench/policy-bench.ts).`,
    '',
    `Cluster: ${podCount.toLocaleString('en')} pods (${gen.counts.deployments} Deployments, ${gen.counts.barePods} bare Pods) in ${gen.counts.namespaces} namespaces on ${gen.counts.nodes} nodes, ${cluster.identities.size.toLocaleString('en')} identities; ${gen.counts.networkPolicies.toLocaleString('en')} NetworkPolicies, ${gen.counts.cnp} CiliumNetworkPolicies and ${gen.counts.ccnp} CiliumClusterwideNetworkPolicies (${gen.counts.l7Policies} with L7 HTTP rules, ${gen.counts.denyPolicies} with deny rules, ${gen.counts.hostPolicies} host policies) → ${est.units.toLocaleString('en')} policy units, ${est.rules.toLocaleString('en')} rules.`,
    '',
    ...targetsTable(targets),
    '',
    '## Details',
    '',
    row(['Measure', 'Value']),
    row(['---', '---']),
    row(['buildCluster', `${ms(clusterNs)} ms`]),
    row(['Policy units (buildPolicyUnits)', `${ms(unitsNs)} ms`]),
    row(['PolicyEngine construction', `${ms(engineNs)} ms`]),
    row(['Heap after GC: resources / + cluster / + engine', `${mb(heapResources)} / ${mb(heapCluster)} / ${mb(heapEngine)} MB`]),
    row(['L3/L4 per decision p50 / p90 / p99 / p99.9', `${us(l4Each.p50Ns)} / ${us(l4Each.p90Ns)} / ${us(l4Each.p99Ns)} / ${us(l4Each.p999Ns)} µs`]),
    row([`L3/L4 batch-of-${BATCH} means p50 / p99`, `${us(l4BatchStats.p50Ns)} / ${us(l4BatchStats.p99Ns)} µs (${result.latency.l3l4.throughputPerSec.toLocaleString('en')} decisions/s)`]),
    row(['L7 per decision p50 / p90 / p99 / p99.9', `${us(l7Each.p50Ns)} / ${us(l7Each.p90Ns)} / ${us(l7Each.p99Ns)} / ${us(l7Each.p999Ns)} µs`]),
    row([`L7 batch-of-${BATCH} means p50 / p99`, `${us(l7BatchStats.p50Ns)} / ${us(l7BatchStats.p99Ns)} µs (${result.latency.l7.throughputPerSec.toLocaleString('en')} decisions/s)`]),
    row([`Reachability matrix ${m.length}×${m.length} (TCP ${MATRIX_PORT})`, `${ms(matrixNs)} ms (${us(matrixNs / (m.length * m.length))} µs/pair, ${allowedPairs.toLocaleString('en')} allowed)`]),
    row([`Naive evaluator, ${sample.length} flows: mean / p99`, `${us(naiveStats.meanNs)} / ${us(naiveStats.p99Ns)} µs`]),
    row(['Compiled, same flows: mean', `${us(compiledSampleMeanNs)} µs`]),
    row(['Loader sample (real YAML → loadManifests)', `${loader.objects} objects in ${ms(loader.loadMs * 1e6)} ms (${Math.round(loader.perObjectUs)} µs/object; full set ≈ ${(loader.estimatedFullLoadMs / 1000).toFixed(1)} s, not part of compile)`]),
    '',
    `Method. ${method} The ${N_FLOWS.toLocaleString('en')} L3/L4 flows are 40% same-namespace pod→pod, 35% any pod→pod, 10% world→pod, 10% pod→world, 5% node↔pod; ports are mostly the destination's container ports. The L7 flows go to pods that L7 rules protect, with one of ${HTTP_REQUESTS.length} HTTP requests. The cluster objects are built in memory; a 20-namespace sample is rendered to YAML and loaded with the real loader, which must yield identical objects.`,
    '',
  ].join('\n');
  writeFileSync(join(dir, 'policy.md'), md);
  log(`\nwrote ${join('bench', 'results', 'policy.json')} and ${join('bench', 'results', 'policy.md')} (sink ${sink})`);
}

main();
