// How `trellis observe` prints Observer events: compact (one line per flow, like `hubble observe`), table, json (the
// flow record) and jsonpb (the whole GetFlowsResponse). Every flow line names the policy that allowed or denied it.
import type { Flow, FlowEndpoint, FlowPolicy } from '../observe/flow.ts';
import type { FlowsEvent } from '../observe/observer-client.ts';

export type OutputFormat = 'compact' | 'table' | 'json' | 'jsonpb';
export const OUTPUT_FORMATS: readonly OutputFormat[] = ['compact', 'table', 'json', 'jsonpb'];

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** `Nov 22 08:00:00.123` from an RFC 3339 time (UTC). */
export function shortTime(rfc3339: string): string {
  const m = /^\d{4}-(\d\d)-(\d\d)T(\d\d:\d\d:\d\d)(?:\.(\d{1,3}))?/.exec(rfc3339);
  if (!m) return rfc3339;
  return `${MONTHS[Number(m[1]) - 1] ?? '???'} ${m[2] ?? ''} ${m[3] ?? ''}.${(m[4] ?? '').padEnd(3, '0')}`;
}

function name(ep: FlowEndpoint, ip: string): string {
  if (ep.pod_name) return `${ep.namespace}/${ep.pod_name}`;
  const reserved = ep.labels.find((l) => l.startsWith('reserved:'));
  return reserved ? `${ip} (${reserved.slice('reserved:'.length)})` : ip;
}

function ports(f: Flow): { src?: number; dst?: number; proto: string } {
  const p = f.l4.TCP ?? f.l4.UDP;
  return { ...(p ? { src: p.source_port, dst: p.destination_port } : {}), proto: f.l4.TCP ? 'TCP' : f.l4.UDP ? 'UDP' : '' };
}

function side(f: Flow, which: 'source' | 'destination'): string {
  const p = ports(f);
  const port = which === 'source' ? p.src : p.dst;
  const ep = f[which];
  return `${name(ep, f.IP[which])}${port !== undefined ? `:${port}` : ''} (ID:${ep.identity})`;
}

function policyName(p: FlowPolicy): string {
  return `${p.kind || 'policy'} ${p.namespace ? `${p.namespace}/` : ''}${p.name}`;
}

/** `allowed by NetworkPolicy shop/allow-web`, `denied by CiliumNetworkPolicy shop/deny-x`, or what decided without one. */
export function policyOf(f: Flow): string {
  const denied = [...(f.ingress_denied_by ?? []), ...(f.egress_denied_by ?? [])];
  const allowed = [...(f.ingress_allowed_by ?? []), ...(f.egress_allowed_by ?? [])];
  const rule = f.trellis?.rule ? ` [${f.trellis.rule}]` : '';
  if (denied.length > 0) return `denied by ${denied.map(policyName).join(', ')}${rule}`;
  if (allowed.length > 0) return `${f.verdict === 'AUDIT' ? 'audited by' : 'allowed by'} ${allowed.map(policyName).join(', ')}${rule}`;
  if (f.verdict === 'DROPPED') return `denied: no policy allows it${rule}`;
  return `no policy applies${rule}`;
}

function kind(f: Flow): string {
  if (f.l7?.http) return f.l7.type === 'RESPONSE' ? 'http-response' : 'http-request';
  if (f.l7) return `l7-${f.l7.type.toLowerCase()}`;
  return (ports(f).proto || 'l3-l4').toLowerCase();
}

function detail(f: Flow): string {
  const h = f.l7?.http;
  if (h) return `${h.protocol} ${h.code ? `${h.code} ` : ''}${h.method} ${h.url}${f.l7?.latency_ns ? ` ${(f.l7.latency_ns / 1e6).toFixed(1)}ms` : ''}`;
  return f.drop_reason_desc && f.drop_reason_desc !== 'DROP_REASON_UNKNOWN' ? f.drop_reason_desc : '';
}

export function compactLine(f: Flow, node: string): string {
  const arrow = f.is_reply ? `${side(f, 'destination')} <- ${side(f, 'source')}` : `${side(f, 'source')} -> ${side(f, 'destination')}`;
  const d = detail(f);
  return `${shortTime(f.time)} [${node || f.node_name}]: ${arrow} ${kind(f)} ${f.verdict}${d ? ` (${d})` : ''}; ${policyOf(f)}`;
}

const COLUMNS = [
  ['TIMESTAMP', 19],
  ['SOURCE', 34],
  ['DESTINATION', 34],
  ['TYPE', 14],
  ['VERDICT', 10],
  ['POLICY', 48],
] as const;

export function tableHeader(): string {
  return `${COLUMNS.map(([h, w]) => h.padEnd(w)).join(' ')} SUMMARY`;
}

export function tableRow(f: Flow): string {
  const p = ports(f);
  const cells = [shortTime(f.time), `${name(f.source, f.IP.source)}${p.src !== undefined ? `:${p.src}` : ''}`, `${name(f.destination, f.IP.destination)}${p.dst !== undefined ? `:${p.dst}` : ''}`, kind(f), f.verdict, policyOf(f)];
  return `${cells.map((c, i) => c.padEnd(COLUMNS[i]?.[1] ?? 0)).join(' ')} ${detail(f) || f.Summary}`;
}

/** The line(s) for one event on stdout; node status goes to stderr (returned separately). */
export function formatEvent(e: FlowsEvent, format: OutputFormat): { out?: string; err?: string } {
  if (e.kind === 'node') {
    if (format === 'jsonpb') return { out: JSON.stringify({ node_status: { state_change: e.state, node_names: e.nodeNames, message: e.message } }) };
    if (e.state === 'NODE_CONNECTED') return {};
    return { err: `warning: ${e.nodeNames.join(', ') || 'relay'}: ${e.state}${e.message ? `: ${e.message}` : ''}` };
  }
  if (e.kind === 'lost') {
    if (format === 'json' || format === 'jsonpb') return { out: JSON.stringify({ lost_events: { source: e.source, num_events_lost: e.lost }, node_name: e.nodeName }) };
    return { out: `EVENTS LOST: ${e.source} ${e.lost} flow(s) at ${e.nodeName || 'unknown node'}` };
  }
  switch (format) {
    case 'json':
      return { out: JSON.stringify(e.flow) };
    case 'jsonpb':
      return { out: JSON.stringify({ flow: e.flow, node_name: e.nodeName, time: e.flow.time }) };
    case 'table':
      return { out: tableRow(e.flow) };
    case 'compact':
      return { out: compactLine(e.flow, e.nodeName) };
  }
}
