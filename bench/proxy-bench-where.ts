// "Where the time goes" for the proxy benchmark: one more Trellis two-hop run over HTTP/1.1, after the measured ones,
// with both proxies CPU-profiled (node --cpu-prof) under full load and asked for their memory breakdown. The summary
// (self time by area and by function, over the loaded seconds only; heap spaces and RSS) goes into the report.
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { mdRow } from './bench-common.ts';
import { runWrk } from './proxy-bench-load.ts';
import { rssBytes } from './proxy-bench-procs.ts';
import { profileLines, summarizeProfile, type ProfileSummary } from './proxy-bench-profile.ts';
import { proxyNodeFlags, readMemory, startTrellis, type ProxyMemory } from './proxy-bench-trellis.ts';
import type { BenchUpstream } from './proxy-bench-types.ts';

export interface WhereProxy {
  role: 'server' | 'client';
  profile: ProfileSummary;
  memory: ProxyMemory;
  /** VmRSS at the end of the loaded run, bytes. */
  rssBytes: number;
}

export interface WhereResult {
  protocol: 'http1';
  seconds: number;
  rps: number;
  nodeFlags: string[];
  proxies: WhereProxy[];
}

const ROLE: Record<WhereProxy['role'], string> = { client: 'client-side proxy (outbound, originates mTLS)', server: 'server-side proxy (inbound, terminates mTLS, L7 policy)' };

async function profileFile(dir: string, pid: number, timeoutMs = 10_000): Promise<string> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const f = existsSync(dir) ? readdirSync(dir).find((n) => n.includes(`.${pid}.`) && n.endsWith('.cpuprofile')) : undefined;
    if (f) return join(dir, f);
    if (Date.now() > until) throw new Error(`proxy ${pid} wrote no CPU profile`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Runs Trellis two-hop in front of `upstream` (HTTP/1.1) with profiling: `warmup` s, then `seconds` s of wrk, profiled. */
export async function whereTimeGoes(upstream: BenchUpstream, seconds: number, warmup: number): Promise<WhereResult> {
  const dir = mkdtempSync(join(os.tmpdir(), 'trellis-bench-profile-'));
  try {
    const t = await startTrellis('two-hop', upstream, { cpuProfDir: dir, memoryProbeDir: dir });
    let rps = 0;
    let window = { fromUs: 0, toUs: 0 };
    const memory: ProxyMemory[] = [];
    const rss: number[] = [];
    try {
      const url = `${t.url}${upstream.path}`;
      await runWrk(url, warmup);
      const from = process.hrtime.bigint();
      rps = (await runWrk(url, seconds)).rps;
      window = { fromUs: Number(from / 1000n), toUs: Number(process.hrtime.bigint() / 1000n) };
      for (const pid of t.pids) {
        rss.push(rssBytes(pid));
        memory.push(await readMemory(dir, pid));
      }
    } finally {
      await t.stop();
    }
    const proxies: WhereProxy[] = [];
    for (let i = 0; i < t.pids.length; i++) {
      const profile = summarizeProfile(await profileFile(dir, t.pids[i] as number), 20, window);
      proxies.push({ role: t.roles[i] ?? 'server', profile, memory: memory[i] as ProxyMemory, rssBytes: rss[i] ?? 0 });
    }
    // Client first: the order a request takes.
    proxies.sort((a, b) => (a.role === b.role ? 0 : a.role === 'client' ? -1 : 1));
    return { protocol: 'http1', seconds, rps, nodeFlags: proxyNodeFlags(), proxies };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const mb = (b: number | undefined): string => (b === undefined ? '–' : (b / 2 ** 20).toFixed(1));

function memoryRow(p: WhereProxy): string {
  const m = p.memory;
  const sp = (n: string): string => {
    const s = m.spaces[n];
    return s ? `${mb(s.used)} / ${mb(s.size)}` : '–';
  };
  return mdRow([p.role, mb(p.rssBytes), `${mb(m.heapUsed)} / ${mb(m.heapTotal)}`, sp('new_space'), sp('old_space'), sp('code_space'), mb(m.external), m.afterGc ? `${mb(m.afterGc.heapUsed)} / ${mb(m.afterGc.rss)}` : '–']);
}

/** Console lines. */
export function whereLines(w: WhereResult): string[] {
  const out = [`where the time goes: Trellis two-hop HTTP/1.1, ${Math.round(w.rps)} rps for ${w.seconds} s (node ${w.nodeFlags.join(' ') || '(no flags)'})`];
  for (const p of w.proxies) {
    out.push(`-- ${ROLE[p.role]}: RSS ${mb(p.rssBytes)} MB, heap used ${mb(p.memory.heapUsed)} of ${mb(p.memory.heapTotal)} MB (${mb(p.memory.afterGc?.heapUsed)} MB after a full GC)`);
    out.push(...profileLines(p.profile, 12).map((l) => `   ${l}`));
  }
  return out;
}

/** The report's section. */
export function whereMarkdown(w: WhereResult): string[] {
  const out = [
    '## Where the time goes',
    '',
    `A separate Trellis two-hop HTTP/1.1 run after the measured ones: wrk at full load for ${w.seconds} s (${Math.round(w.rps).toLocaleString('en')} rps, slowed by the profiler), both proxies under \`node --cpu-prof\` (proxy node flags: \`${w.nodeFlags.join(' ') || 'none'}\`). Self time over the loaded seconds only, as a share of all samples (idle included). "(native)" is time in C++ below JavaScript: socket writes and reads, TLS, HTTP parsing.`,
    '',
  ];
  for (const p of w.proxies) {
    out.push(`### ${ROLE[p.role]}`, '', `${p.profile.totalMs} ms sampled, busy ${p.profile.busyPct}%.`, '', mdRow(['Area', 'self %', '', 'Function', 'self %']), mdRow(['---', '---:', '', '---', '---:']));
    for (let i = 0; i < 12; i++) {
      const a = p.profile.areas[i];
      const f = p.profile.functions[i];
      if (!a && !f) break;
      out.push(mdRow([a?.name ?? '', a ? String(a.pct) : '', '', f ? `\`${f.name.replace(/\|/g, '\\|')}\`` : '', f ? String(f.pct) : '']));
    }
    out.push('');
  }
  out.push(
    'Memory of each proxy right after the loaded run (MB; used / committed):',
    '',
    mdRow(['Proxy', 'RSS', 'V8 heap', 'new space', 'old space', 'code space', 'external', 'heap / RSS after a full GC']),
    mdRow(['---', '---:', '---:', '---:', '---:', '---:', '---:', '---:']),
    ...w.proxies.map(memoryRow),
    '',
  );
  return out;
}
