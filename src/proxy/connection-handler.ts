// The accept path of one connection. Inbound: tell mesh mTLS from plaintext and apply the listener's
// PeerAuthentication mode, terminate mTLS and read the peer's SPIFFE ID, decide the destination's ingress policy,
// detect HTTP inside, then hand over to the HTTP engine or the TCP proxy. Outbound: the local pod is the source;
// HTTP goes to the engine (egress decided per request), TCP to the listener's cluster with the source's egress
// decided for the picked host before connecting. Denials are TCP resets with a DROPPED flow; fail closed throughout.
import type net from 'node:net';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import type { DropReason, FlowVerdict } from '../observe/flow.ts';
import type { Endpoint } from '../policy/endpoint.ts';
import { connectionFlow, dropReasonOf, UNKNOWN_POD } from './connection-flow.ts';
import type { ClusterManager, ConnectionInfo, FlowReporter, HttpEngine, PolicyEnforcer, PolicyVerdict, UpstreamHost } from './contracts.ts';
import { peerSpiffeId, TCP_ALPN, type MeshTls } from './mesh-tls.ts';
import { UnconfiguredPolicy } from './policy-runtime.ts';
import { unconfiguredVerdict } from './policy-verdict.ts';
import { detectProtocol, type Detection } from './protocol-detect.ts';
import type { InboundMtls, ListenerConfig, ListenerProtocol } from './proxy-config.ts';
import { pickTcpCluster, usesSni } from './tcp-routes.ts';
import { proxyTcp, resetSocket, type TcpProxyResult } from './tcp-proxy.ts';

/** Optional callbacks for metrics (Istio's istio_tcp_* series and policy drop counters). */
export interface ListenerHooks {
  /** A TCP-proxied connection is up (istio_tcp_connections_opened_total). */
  tcpOpened?(info: ConnectionInfo, host: UpstreamHost): void;
  /** It closed, with its byte counts (istio_tcp_*_bytes_total, istio_tcp_connections_closed_total). */
  tcpClosed?(info: ConnectionInfo, result: TcpProxyResult): void;
  /** Policy denied a connection (ingress, or egress to a picked host). */
  connectionDenied?(info: ConnectionInfo, verdict: PolicyVerdict): void;
  /** Refused before any policy decision. */
  connectionRejected?(listener: ListenerConfig, reason: RejectReason): void;
}

export type RejectReason = 'max-connections' | 'plaintext-refused' | 'tls-failed' | 'silent' | 'draining' | 'no-cluster';

/** Per-listener counters (the admin server's /stats). */
export interface ListenerCounters {
  accepted: number;
  denied: number;
  rejected: number;
  tlsFailed: number;
  http: number;
  tcp: number;
  bytesSent: number;
  bytesReceived: number;
}

export interface HandlerDeps {
  tls: MeshTls;
  /** A node proxy terminates each inbound listener with the certificate of the pod it serves; default `tls`. */
  tlsFor?: (listener: ListenerConfig) => MeshTls | undefined;
  policy: () => PolicyEnforcer | undefined;
  clusters: ClusterManager;
  http: HttpEngine;
  flows: FlowReporter;
  hooks?: ListenerHooks;
  logger?: Logger;
  nodeName?: string;
  /** Server-first fallback on `auto` listeners and PERMISSIVE plaintext (see protocol-detect.ts). */
  firstByteMs: number;
  /** Overall bound on detection. */
  detectTimeoutMs: number;
}

type Kind = 'http1' | 'http2' | 'tcp';
/** When and between which addresses a connection was accepted. */
interface Accepted {
  at: bigint;
  remote: { ip: string; port: number };
  local: { ip: string; port: number };
}
const UNCONFIGURED = new UnconfiguredPolicy();
const KEEPALIVE_MS = 60_000;
function noop(): void {}

/** What the listener carries, given what the first bytes looked like; undefined: close the connection. */
function kindFor(p: Detection['protocol'], listener: ListenerProtocol): Kind | undefined {
  if (p === 'closed') return undefined;
  if (listener === 'tcp') return 'tcp';
  if (p === 'http1' || p === 'http2') return p;
  if (listener === 'http') return p === 'silent' ? undefined : 'http1'; // not HTTP: the engine answers 400
  return 'tcp';
}

function plainIp(ip: string | undefined): string {
  if (ip === undefined) return '';
  return ip.startsWith('::ffff:') && ip.includes('.') ? ip.slice(7) : ip;
}

export class ConnectionHandler {
  readonly #d: HandlerDeps;
  #ids = 0;

  constructor(deps: HandlerDeps) {
    this.#d = deps;
  }

  /** Runs the accept path of `raw`; never throws (a failure resets the connection). */
  handle(raw: net.Socket, l: ListenerConfig, c: ListenerCounters): void {
    // Read once: a socket that is reset or destroyed no longer knows its addresses.
    const at: Accepted = {
      at: process.hrtime.bigint(),
      remote: { ip: plainIp(raw.remoteAddress), port: raw.remotePort ?? 0 },
      local: { ip: plainIp(raw.localAddress), port: raw.localPort ?? l.address.port },
    };
    raw.on('error', noop);
    raw.setNoDelay(true);
    raw.setKeepAlive(true, KEEPALIVE_MS);
    const run = l.direction === 'outbound' ? this.#outbound(raw, l, c, at) : this.#inbound(raw, l, c, at);
    run.catch((err: unknown) => {
      this.#d.logger?.warn({ err, listener: l.name }, 'connection failed');
      resetSocket(raw);
    });
  }

  async #inbound(raw: net.Socket, l: ListenerConfig, c: ListenerCounters, at: Accepted): Promise<void> {
    const mode: InboundMtls = l.direction === 'gateway' ? 'DISABLE' : (l.mtls ?? 'STRICT');
    const { firstByteMs, detectTimeoutMs } = this.#d;
    let first: Detection['protocol'] = 'tcp';
    if (mode !== 'DISABLE' || l.protocol !== 'tcp') {
      // Mesh peers speak first (a ClientHello); only a plaintext peer may be server-first.
      const wait = mode === 'STRICT' || l.protocol === 'http' ? detectTimeoutMs : firstByteMs;
      first = (await detectProtocol(raw, { firstByteMs: wait, timeoutMs: detectTimeoutMs })).protocol;
      if (first === 'closed') return void raw.destroy();
    }
    const pol = this.#d.policy() ?? UNCONFIGURED;
    let stream: Duplex = raw;
    let transport: 'mtls' | 'plaintext' = 'plaintext';
    let peer: string | undefined;
    let sni: string | undefined;
    if (first === 'tls' && mode !== 'DISABLE') {
      try {
        const t = await (this.#d.tlsFor?.(l) ?? this.#d.tls).terminate(raw);
        t.on('error', noop); // a reset before the HTTP engine or TCP proxy takes over must not throw
        stream = t;
        transport = 'mtls';
        peer = peerSpiffeId(t);
        if (typeof t.servername === 'string' && t.servername !== '') sni = t.servername;
      } catch (err) {
        c.tlsFailed++;
        return this.#refuse(raw, l, c, at, pol, 'tls-failed', `TLS handshake failed: ${(err as Error).message}`, 'mtls');
      }
    } else if (mode === 'STRICT') {
      return this.#refuse(raw, l, c, at, pol, 'plaintext-refused', first === 'silent' ? 'STRICT mTLS: the peer sent no TLS ClientHello' : 'STRICT mTLS: plaintext refused', 'plaintext');
    }
    const source = pol.endpointForIp(at.remote.ip);
    const destination = l.pod !== undefined ? pol.endpointForPod(l.pod) : pol.endpointForIp(at.local.ip);
    const port = at.local.port;
    const admission =
      destination === undefined
        ? this.#unknownPod(l, 'ingress')
        : pol.decideConnection({ source, destination, port, protocol: 'TCP', direction: 'ingress', peerSpiffeId: peer, transport });
    const info = this.#info(l, at, transport, source, destination ?? pol.endpointForIp(at.local.ip), admission);
    if (peer !== undefined) info.peerSpiffeId = peer;
    if (sni !== undefined) info.sni = sni;
    if (!admission.allowed) return this.#deny(raw, info, c, admission);

    let kind: Kind | undefined;
    if (transport === 'mtls') {
      if ((stream as TLSSocket).alpnProtocol === TCP_ALPN && l.protocol !== 'http') kind = 'tcp';
      else {
        const wait = l.protocol === 'auto' ? firstByteMs : detectTimeoutMs;
        kind = kindFor((await detectProtocol(stream, { firstByteMs: wait, timeoutMs: detectTimeoutMs })).protocol, l.protocol);
      }
    } else kind = kindFor(first, l.protocol);
    if (kind === undefined) return this.#close(raw, l, c);
    this.#dispatch(stream, raw, info, kind, c);
  }

  async #outbound(raw: net.Socket, l: ListenerConfig, c: ListenerCounters, at: Accepted): Promise<void> {
    const configured = this.#d.policy();
    const pol = configured ?? UNCONFIGURED;
    const source = l.pod !== undefined ? pol.endpointForPod(l.pod) : pol.endpointForIp(at.remote.ip);
    const destination = pol.endpointForIp(at.local.ip);
    const admission: PolicyVerdict =
      configured === undefined
        ? unconfiguredVerdict('egress')
        : source === undefined
          ? this.#unknownPod(l, 'egress')
          : { allowed: true, audit: false, direction: 'egress', message: 'egress is decided per request or per upstream host' };
    const info = this.#info(l, at, 'plaintext', source ?? pol.endpointForIp(at.remote.ip), destination, admission);
    if (!admission.allowed) return this.#deny(raw, info, c, admission);
    const sni = usesSni(l);
    let kind: Kind | undefined = 'tcp';
    if (l.protocol !== 'tcp' || sni) {
      const wait = l.protocol === 'http' ? this.#d.detectTimeoutMs : this.#d.firstByteMs;
      const d = await detectProtocol(raw, { firstByteMs: wait, timeoutMs: this.#d.detectTimeoutMs, sni });
      if (d.sni !== undefined) info.sni = d.sni;
      kind = kindFor(d.protocol, l.protocol);
    }
    if (kind === undefined) return this.#close(raw, l, c);
    this.#dispatch(raw, raw, info, kind, c);
  }

  #dispatch(stream: Duplex, raw: net.Socket, info: ConnectionInfo, kind: Kind, c: ListenerCounters): void {
    const l = info.listener;
    if (kind !== 'tcp') {
      c.http++;
      this.#flow(info, 'FORWARDED', `${kind === 'http2' ? 'HTTP/2' : 'HTTP/1'} over ${info.transport}: ${info.admission.message}`);
      this.#d.http.handleConnection(stream, info, kind);
      return;
    }
    c.tcp++;
    const pol = this.#d.policy() ?? UNCONFIGURED;
    if (l.direction !== 'outbound' && pol.decideTcp !== undefined) {
      const v = pol.decideTcp(info);
      if (!v.allowed) return this.#deny(raw, info, c, v);
      info.admission = v;
    }
    const cluster = pickTcpCluster(l, info, this.#d.clusters);
    if (cluster === undefined) {
      c.rejected++;
      this.#d.hooks?.connectionRejected?.(l, 'no-cluster');
      this.#flow(info, 'ERROR', `no TCP route on listener ${l.name}`);
      return resetSocket(raw);
    }
    const outbound = l.direction === 'outbound';
    if (!outbound) this.#flow(info, 'FORWARDED', `TCP over ${info.transport}: ${info.admission.message}`);
    let connected = false;
    void proxyTcp({
      downstream: stream,
      resetDownstream: () => resetSocket(raw),
      cluster,
      clusters: this.#d.clusters,
      sourceAddress: l.sourceAddress,
      idleTimeoutMs: l.limits.idleTimeoutMs,
      admit: outbound ? (h) => this.#admitEgress(info, h) : undefined,
      onConnected: (h) => {
        connected = true;
        if (outbound) this.#flow(info, 'FORWARDED', `TCP to ${h.address}:${h.port}: ${info.admission.message}`, undefined, { destinationPort: h.port });
        this.#d.hooks?.tcpOpened?.(info, h);
      },
    }).then((r) => this.#tcpDone(info, r, c, connected));
  }

  /** The source's egress to a picked upstream host (outbound TCP). */
  #admitEgress(info: ConnectionInfo, h: UpstreamHost): PolicyVerdict {
    const pol = this.#d.policy() ?? UNCONFIGURED;
    const dest = (h.pod !== undefined ? pol.endpointForPod(h.pod) : undefined) ?? pol.endpointForIp(h.address);
    info.destination = dest;
    const v = pol.decideConnection({ source: info.source, destination: dest, port: h.port, protocol: 'TCP', direction: 'egress', transport: info.transport });
    info.admission = v;
    return v;
  }

  #tcpDone(info: ConnectionInfo, r: TcpProxyResult, c: ListenerCounters, connected: boolean): void {
    c.bytesSent += r.bytesSent;
    c.bytesReceived += r.bytesReceived;
    const port = r.host?.port;
    if (r.outcome === 'denied' && r.verdict !== undefined) {
      c.denied++;
      this.#flow(info, 'DROPPED', r.verdict.message, r.verdict, { dropReason: dropReasonOf(r.verdict), destinationPort: port });
      this.#d.hooks?.connectionDenied?.(info, r.verdict);
      return;
    }
    if (!connected) {
      if (r.outcome !== 'aborted') this.#flow(info, 'ERROR', `TCP upstream ${r.outcome}${r.error ? `: ${r.error}` : ''}`, undefined, { destinationPort: port });
    } else {
      const upstream = r.host ? `${r.host.address}:${r.host.port}` : undefined;
      this.#flow(info, 'FORWARDED', `TCP closed (${r.outcome}): ${r.bytesSent} bytes sent, ${r.bytesReceived} received`, undefined, {
        destinationPort: port,
        upstream,
        bytesSent: r.bytesSent,
        bytesReceived: r.bytesReceived,
      });
    }
    this.#d.hooks?.tcpClosed?.(info, r);
  }

  #info(l: ListenerConfig, at: Accepted, transport: 'mtls' | 'plaintext', source: Endpoint, destination: Endpoint, admission: PolicyVerdict): ConnectionInfo {
    return {
      id: ++this.#ids,
      listener: l,
      remote: at.remote,
      local: at.local,
      transport,
      source,
      destination,
      admission,
      acceptedAt: at.at,
    };
  }

  #unknownPod(l: ListenerConfig, direction: 'ingress' | 'egress'): PolicyVerdict {
    return { allowed: false, audit: true, policyName: UNKNOWN_POD, direction, httpStatus: 403, message: `denied: pod ${l.pod ?? ''} is not in the policy configuration` };
  }

  #deny(raw: net.Socket, info: ConnectionInfo, c: ListenerCounters, v: PolicyVerdict): void {
    c.denied++;
    resetSocket(raw);
    this.#flow(info, 'DROPPED', v.message, v, { dropReason: dropReasonOf(v) });
    this.#d.hooks?.connectionDenied?.(info, v);
  }

  /** Refused before a policy decision (PeerAuthentication STRICT, failed handshake): reset, DROPPED AUTH_REQUIRED. */
  #refuse(raw: net.Socket, l: ListenerConfig, c: ListenerCounters, at: Accepted, pol: PolicyEnforcer, reason: RejectReason, message: string, transport: 'mtls' | 'plaintext'): void {
    c.rejected++;
    resetSocket(raw);
    const v: PolicyVerdict = { allowed: false, audit: true, policyName: 'PeerAuthentication STRICT', direction: 'ingress', message };
    const dest = (l.pod !== undefined ? pol.endpointForPod(l.pod) : undefined) ?? pol.endpointForIp(at.local.ip);
    const info = this.#info(l, at, transport, pol.endpointForIp(at.remote.ip), dest, v);
    this.#flow(info, 'DROPPED', message, v, { dropReason: 'AUTH_REQUIRED' });
    this.#d.hooks?.connectionRejected?.(l, reason);
  }

  #close(raw: net.Socket, l: ListenerConfig, c: ListenerCounters): void {
    c.rejected++;
    this.#d.hooks?.connectionRejected?.(l, 'silent');
    raw.destroy();
  }

  #flow(info: ConnectionInfo, verdict: FlowVerdict, summary: string, decision?: PolicyVerdict, x?: FlowExtras): void {
    this.#d.flows.report(
      connectionFlow({
        info,
        verdict,
        summary,
        decision,
        nodeName: this.#d.nodeName,
        dropReason: x?.dropReason,
        destinationPort: x?.destinationPort,
        upstream: x?.upstream,
        bytesSent: x?.bytesSent,
        bytesReceived: x?.bytesReceived,
      }),
    );
  }
}

interface FlowExtras {
  dropReason?: DropReason;
  destinationPort?: number | undefined;
  upstream?: string | undefined;
  bytesSent?: number;
  bytesReceived?: number;
}
