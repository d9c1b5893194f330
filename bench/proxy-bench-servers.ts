// The servers of the proxy benchmark, each with its configuration written to a temp directory (no root paths):
// the upstreams (nginx serving a 1 KB static file over HTTP/1.1 and h2c; grpc-js answering 1 KB unary calls in a
// child process) and the baseline proxies (HAProxy in HTTP mode, nginx as a reverse proxy), one worker each.
import { fork } from 'node:child_process';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, LOOPBACK, startProcess, waitForPort, withDescendants, type Started } from './proxy-bench-procs.ts';
import { BODY_BYTES, GRPC_PATH, STATIC_PATH, type BenchProtocol, type BenchUpstream, type RunningProxy } from './proxy-bench-types.ts';

export type Upstreams = Record<BenchProtocol, BenchUpstream>;

/** A directory nginx's workers (which drop to `nobody` when started as root) can read. */
function openDir(dir: string): string {
  mkdirSync(dir, { recursive: true });
  chmodSync(dir, 0o755);
  return dir;
}

function nginxPreamble(dir: string): string {
  const tmp = openDir(join(dir, 'tmp'));
  return `worker_processes 1;
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${tmp}/body;
  proxy_temp_path ${tmp}/proxy;
  fastcgi_temp_path ${tmp}/fastcgi;
  uwsgi_temp_path ${tmp}/uwsgi;
  scgi_temp_path ${tmp}/scgi;
  keepalive_requests 1000000;
  keepalive_timeout 300s;
`;
}

async function startNginx(dir: string, conf: string, ports: number[]): Promise<Started> {
  writeFileSync(join(dir, 'nginx.conf'), conf);
  const p = await startProcess('nginx', ['-p', `${dir}/`, '-c', join(dir, 'nginx.conf'), '-e', join(dir, 'error.log')]);
  for (const port of ports) await waitForPort(port);
  return p;
}

/**
 * nginx serving the 1 KB file on two ports, HTTP/1.1 and h2c. nginx rather than a Node server: it is cheaper and
 * steadier per request, so on two cores the upstream takes less CPU away from the proxy under test and adds less
 * jitter to the latency figures.
 */
export async function startStaticUpstream(root: string): Promise<{ http1: BenchUpstream; h2c: BenchUpstream; stop(): Promise<void> }> {
  const dir = openDir(join(root, 'upstream-nginx'));
  const www = openDir(join(dir, 'www'));
  writeFileSync(join(www, STATIC_PATH.slice(1)), Buffer.alloc(BODY_BYTES, 0x61), { mode: 0o644 });
  const h1 = await freePort();
  const h2 = await freePort();
  const conf = `${nginxPreamble(dir)}  default_type application/octet-stream;
  open_file_cache max=16 inactive=300s;
  open_file_cache_valid 300s;
  server { listen ${LOOPBACK}:${h1}; root ${www}; }
  server { listen ${LOOPBACK}:${h2} http2; http2_max_concurrent_streams 256; root ${www}; }
}
`;
  const p = await startNginx(dir, conf, [h1, h2]);
  return {
    http1: { protocol: 'http1', host: LOOPBACK, port: h1, path: STATIC_PATH },
    h2c: { protocol: 'h2c', host: LOOPBACK, port: h2, path: STATIC_PATH },
    stop: () => p.stop('SIGQUIT'),
  };
}

/** nginx's master and its worker, once the worker has started. */
async function masterAndWorker(pid: number): Promise<number[]> {
  for (let i = 0; i < 100; i++) {
    const pids = withDescendants(pid);
    if (pids.length >= 2) return pids;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`nginx ${pid} started no worker`);
}

/** The grpc-js upstream in its own process (bench/proxy-bench-upstream.ts). */
export async function startGrpcUpstream(): Promise<{ upstream: BenchUpstream; pid: number; stop(): Promise<void> }> {
  const file = fileURLToPath(new URL('./proxy-bench-upstream.ts', import.meta.url));
  const child = fork(file, [], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the gRPC upstream did not start within 20 s')), 20_000);
    child.once('message', (m: { port: number }) => {
      clearTimeout(timer);
      resolve(m.port);
    });
    child.once('exit', (code) => reject(new Error(`the gRPC upstream exited with ${code}`)));
  });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  return {
    upstream: { protocol: 'grpc', host: LOOPBACK, port, path: GRPC_PATH },
    pid: child.pid ?? 0,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        await exited;
      }
    },
  };
}

/** HAProxy 2.6 in HTTP mode, one thread: HTTP/1.1 end to end, or HTTP/2 (h2c) on both sides for h2c and gRPC. */
export async function startHaproxy(root: string, protocol: BenchProtocol, ups: Upstreams): Promise<RunningProxy> {
  const dir = openDir(join(root, `haproxy-${protocol}`));
  const port = await freePort();
  const up = ups[protocol];
  const h2 = protocol === 'http1' ? '' : ' proto h2';
  const conf = `global
  nbthread 1
  maxconn 4000
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  timeout http-keep-alive 60s
frontend fe
  bind ${LOOPBACK}:${port}${h2}
  default_backend be
backend be
  http-reuse always
  server s1 ${up.host}:${up.port}${h2}
`;
  writeFileSync(join(dir, 'haproxy.cfg'), conf);
  const p = await startProcess('haproxy', ['-f', join(dir, 'haproxy.cfg'), '-db']);
  await waitForPort(port);
  return { url: `http://${LOOPBACK}:${port}`, pids: withDescendants(p.pid), stop: () => p.stop('SIGTERM') };
}

/**
 * nginx as a reverse proxy, one worker, keep-alive upstream connections. nginx cannot proxy HTTP/2 to an HTTP
 * upstream, so for h2c it takes HTTP/2 from clients and talks HTTP/1.1 to the static upstream (how it is deployed);
 * for gRPC it uses grpc_pass (HTTP/2 on both sides).
 */
export async function startNginxProxy(root: string, protocol: BenchProtocol, ups: Upstreams): Promise<RunningProxy> {
  const dir = openDir(join(root, `nginx-proxy-${protocol}`));
  const port = await freePort();
  const up = protocol === 'grpc' ? ups.grpc : ups.http1;
  const listen = protocol === 'http1' ? `${LOOPBACK}:${port}` : `${LOOPBACK}:${port} http2`;
  const location = protocol === 'grpc' ? 'grpc_pass grpc://up;' : 'proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection "";';
  const conf = `${nginxPreamble(dir)}  upstream up { server ${up.host}:${up.port}; keepalive 64; keepalive_requests 1000000; }
  server {
    listen ${listen};
    http2_max_concurrent_streams 256;
    location / { ${location} }
  }
}
`;
  const p = await startNginx(dir, conf, [port]);
  return { url: `http://${LOOPBACK}:${port}`, pids: await masterAndWorker(p.pid), stop: () => p.stop('SIGQUIT') };
}
