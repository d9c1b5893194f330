// End-to-end tests of `trellis policy` and `trellis validate`: the real command in a child process, and in process.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { main } from '../../src/cli/main.ts';

const EXAMPLE = 'examples/policy-basics';

function trellis(args: string[], input?: string): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/trellis.ts', ...args], { input, encoding: 'utf8' });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

async function run(args: string[], stdin = ''): Promise<{ code: number; out: string[]; err: string[] }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(args, { out: (l) => out.push(l), err: (l) => err.push(l), readStdin: () => stdin });
  return { code, out, err };
}

function tmp(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'trellis-cli-'));
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  return dir;
}

describe('trellis policy check', () => {
  it('answers with the verdict and the deciding rule, as JSON, in a real process', () => {
    const r = trellis(['policy', 'check', '-f', EXAMPLE, '--from', 'shop/frontend', '--to', 'shop/db', '--port', '6379', '-o', 'json']);
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout) as { verdict: string; ingress: { reason: string; rule: { kind: string; namespace: string; name: string; direction: string; index: number; location: string } } };
    assert.equal(j.verdict, 'allowed');
    assert.equal(j.ingress.reason, 'allowed-by-rule');
    assert.deepEqual(
      { kind: j.ingress.rule.kind, ns: j.ingress.rule.namespace, name: j.ingress.rule.name, dir: j.ingress.rule.direction, index: j.ingress.rule.index },
      { kind: 'NetworkPolicy', ns: 'shop', name: 'db', dir: 'ingress', index: 0 },
    );
    assert.match(j.ingress.rule.location, /policies\.yaml:\d+:\d+$/);
  });

  it('explains a default deny in text, and still exits 0', async () => {
    const r = await run(['policy', 'check', '-f', EXAMPLE, '--from', 'shop/api', '--to', 'shop/db', '--port', '6379']);
    assert.equal(r.code, 0);
    const text = r.out.join('\n');
    assert.match(text, /^DENIED: /);
    assert.match(text, /denied by default: NetworkPolicy shop\/db, CiliumNetworkPolicy shop\/allow-scrape select shop\/db for ingress and no rule allows it/);
  });

  it('applies L7 rules to the HTTP request given', async () => {
    const get = await run(['policy', 'check', '-f', EXAMPLE, '--from', 'shop/frontend', '--to', 'shop/api', '--port', '8080', '--http-method', 'GET', '--http-path', '/products/42', '-o', 'json']);
    assert.equal((JSON.parse(get.out.join('\n')) as { verdict: string }).verdict, 'allowed');
    const del = await run(['policy', 'check', '-f', EXAMPLE, '--from', 'shop/frontend', '--to', 'shop/api', '--port', '8080', '--http-method', 'DELETE', '--http-path', '/products/42', '-o', 'json']);
    const j = JSON.parse(del.out.join('\n')) as { verdict: string; ingress: { reason: string } };
    assert.equal(j.verdict, 'denied');
    assert.equal(j.ingress.reason, 'l7-denied');
  });

  it('takes IP addresses for the world', async () => {
    const r = await run(['policy', 'check', '-f', EXAMPLE, '--from', 'shop/frontend', '--to', '203.0.113.9', '--port', '80', '-o', 'json']);
    const j = JSON.parse(r.out.join('\n')) as { verdict: string; egress: { reason: string; rule: { name: string; deny: boolean } } };
    assert.equal(j.verdict, 'denied');
    assert.equal(j.egress.reason, 'denied-by-rule');
    assert.equal(j.egress.rule.name, 'world-egress-https-only');
    assert.equal(j.egress.rule.deny, true);
  });

  it('exits 2 on an unknown pod, naming it', async () => {
    const r = await run(['policy', 'check', '-f', EXAMPLE, '--from', 'shop/nope', '--to', 'shop/db', '--port', '6379']);
    assert.equal(r.code, 2);
    assert.match(r.err.join('\n'), /unknown pod shop\/nope/);
  });

  it('exits 2 on a bad port or protocol', async () => {
    assert.equal((await run(['policy', 'check', '-f', EXAMPLE, '--from', 'shop/db', '--to', 'shop/db', '--port', '70000'])).code, 2);
    assert.equal((await run(['policy', 'check', '-f', EXAMPLE, '--from', 'shop/db', '--to', 'shop/db', '--port', '80', '--protocol', 'ICMP'])).code, 2);
    assert.equal((await run(['policy', 'check', '-f', EXAMPLE, '--from', 'shop/db', '--to', 'shop/db'])).code, 2);
  });

  it('decides a batch of flows from --flows, one JSON line each, in order', async () => {
    const flows = [
      { from: 'shop/frontend', to: 'shop/db', port: 6379 },
      { from: 'shop/api', to: 'shop/db', port: 6379, protocol: 'TCP' },
      { from: { ip: '198.51.100.7' }, to: 'shop/db', port: 6379 },
      { from: 'shop/frontend', to: 'shop/api', port: 8080, http: { method: 'POST', path: '/orders', headers: { 'x-a': 'b' } } },
    ];
    const dir = tmp({ 'flows.jsonl': flows.map((f) => JSON.stringify(f)).join('\n') + '\n' });
    const r = await run(['policy', 'check', '-f', EXAMPLE, '--flows', join(dir, 'flows.jsonl')]);
    assert.equal(r.code, 0, r.err.join('\n'));
    const verdicts = r.out.map((l) => (JSON.parse(l) as { verdict: string }).verdict);
    assert.deepEqual(verdicts, ['allowed', 'denied', 'denied', 'allowed']);
  });

  it('reads --flows from stdin and reports every bad line with its number', async () => {
    const stdin = ['{"from":"shop/frontend","to":"shop/db","port":6379}', 'not json', '{"from":"shop/x","to":"shop/db","port":6379}', '{"from":"shop/db","to":"shop/db","port":0}'].join('\n');
    const r = await run(['policy', 'check', '-f', EXAMPLE, '--flows', '-'], stdin);
    assert.equal(r.code, 2);
    const err = r.err.join('\n');
    assert.match(err, /<stdin>:2: not a JSON object/);
    assert.match(err, /<stdin>:3: from: unknown pod shop\/x/);
    assert.match(err, /<stdin>:4: port must be a port number/);
    assert.equal(r.out.length, 0, 'a batch with bad lines decides nothing');
  });

  it('reads manifests from stdin with -f -', async () => {
    const yaml = 'apiVersion: v1\nkind: Pod\nmetadata: {name: a, labels: {app: a}}\nstatus: {podIP: 10.0.0.1}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: b}\nstatus: {podIP: 10.0.0.2}\n';
    const r = await run(['policy', 'check', '-f', '-', '--from', 'a', '--to', 'b', '--port', '80', '-o', 'json'], yaml);
    assert.equal(r.code, 0, r.err.join('\n'));
    const j = JSON.parse(r.out.join('\n')) as { verdict: string; ingress: { reason: string } };
    assert.equal(j.verdict, 'allowed');
    assert.equal(j.ingress.reason, 'not-selected');
  });
});

describe('trellis validate', () => {
  it('reports every error with file:line:column, resource and field, and exits 2', () => {
    const dir = tmp({
      'policies.yaml': [
        'apiVersion: networking.k8s.io/v1',
        'kind: NetworkPolicy',
        'metadata:',
        '  name: db',
        'spec:',
        '  podSelector: {}',
        '  ingress:',
        '  - ports:',
        '    - port: 99999',
        '---',
        'apiVersion: networking.k8s.io/v1',
        'kind: NetworkPolicy',
        'metadata: {name: web, namespace: shop}',
        'spec:',
        '  podSelector: {}',
        '  egress:',
        '  - to:',
        '    - ipBlock: {cidr: 10.0.0.0/33}',
      ].join('\n'),
    });
    const r = trellis(['validate', '-f', dir]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /policies\.yaml:9:13: NetworkPolicy default\/db: spec\.ingress\[0\]\.ports\[0\]\.port: must be 1-65535 or an IANA port name/);
    assert.match(r.stderr, /policies\.yaml:18:\d+: NetworkPolicy shop\/web: spec\.egress\[0\]\.to\[0\]\.ipBlock\.cidr: /);
  });

  it('accepts the bundled example', async () => {
    const r = await run(['validate', '-f', EXAMPLE]);
    assert.equal(r.code, 0, r.err.join('\n'));
    assert.match(r.out.join('\n'), /object\(s\) valid/);
  });

  it('exits 2 on a missing file', async () => {
    const r = await run(['validate', '-f', 'no/such/dir']);
    assert.equal(r.code, 2);
    assert.match(r.err.join('\n'), /no\/such\/dir: no such file or directory/);
  });
});

describe('trellis policy matrix', () => {
  it('prints the truth table with . and X', async () => {
    const r = await run(['policy', 'matrix', '-f', EXAMPLE, '--port', '6379', '-n', 'shop']);
    assert.equal(r.code, 0, r.err.join('\n'));
    const lines = r.out.join('\n').split('\n');
    assert.equal(lines[0], 'TCP/6379');
    const header = (lines[1] ?? '').split('\t');
    const dbCol = header.indexOf('shop/db');
    assert.ok(dbCol > 0);
    const row = (prefix: string) => (lines.find((l) => l.startsWith(prefix)) ?? '').split('\t');
    assert.equal(row('shop/frontend')[dbCol], '.');
    assert.equal(row('shop/api')[dbCol], 'X');
  });

  it('gives the deciding rules in JSON', async () => {
    const r = await run(['policy', 'matrix', '-f', EXAMPLE, '--port', '6379', '-o', 'json']);
    const j = JSON.parse(r.out.join('\n')) as { entries: { from: string; to: string; verdict: string; ingress: { rule?: { name: string } } }[] };
    const e = j.entries.find((x) => x.from.startsWith('shop/frontend') && x.to === 'shop/db');
    assert.equal(e?.verdict, 'allowed');
    assert.equal(e?.ingress.rule?.name, 'db');
  });
});

describe('trellis policy lint', () => {
  it('warns with file and line about policies that are valid but wrong', async () => {
    const dir = tmp({
      'lint.yaml': [
        'apiVersion: v1',
        'kind: Pod',
        'metadata: {name: db, namespace: app, labels: {role: db}}',
        'spec: {containers: [{name: redis, ports: [{name: redis, containerPort: 6379}]}]}',
        'status: {podIP: 10.1.0.5}',
        '---',
        'apiVersion: networking.k8s.io/v1',
        'kind: NetworkPolicy',
        'metadata: {name: nobody, namespace: app}',
        'spec:',
        '  podSelector: {matchLabels: {role: ghost}}',
        '---',
        'apiVersion: networking.k8s.io/v1',
        'kind: NetworkPolicy',
        'metadata: {name: db, namespace: app}',
        'spec:',
        '  podSelector: {matchLabels: {role: db}}',
        '  ingress:',
        '  - from: [{podSelector: {matchLabels: {role: frontend}}}]',
        '    ports: [{port: postgres}]',
        '  - ports: [{port: 6379}]',
        '  - from: [{podSelector: {matchLabels: {role: db}}}]',
        '    ports: [{port: 6379}]',
        '---',
        'apiVersion: cilium.io/v2',
        'kind: CiliumNetworkPolicy',
        'metadata: {name: l7, namespace: app}',
        'spec:',
        '  endpointSelector: {matchLabels: {role: db}}',
        '  egress:',
        '  - toCIDR: [10.1.0.0/16]',
        '  ingress:',
        '  - toPorts:',
        '    - ports: [{port: "6379", protocol: TCP}]',
        '      rules: {http: [{method: GET}]}',
      ].join('\n'),
    });
    const r = await run(['policy', 'lint', '-f', dir, '--strict']);
    assert.equal(r.code, 1);
    const out = r.out.join('\n');
    assert.match(out, /lint\.yaml:11:\d+: warning: NetworkPolicy app\/nobody: spec\.podSelector: selects no pod/);
    assert.match(out, /lint\.yaml:19:\d+: warning: NetworkPolicy app\/db: spec\.ingress\[0\]: peer 0 matches no pod/);
    assert.match(out, /NetworkPolicy app\/db: spec\.ingress\[0\]: named port "postgres" is defined by none/);
    assert.match(out, /NetworkPolicy app\/db: spec\.ingress\[2\]: is shadowed by the broader NetworkPolicy app\/db spec\.ingress\[1\]/);
    assert.match(out, /CiliumNetworkPolicy app\/l7: spec\.egress\[0\]: toCIDR 10\.1\.0\.0\/16 covers 1 pod IP/);
    assert.match(out, /CiliumNetworkPolicy app\/l7: spec\.ingress\[0\]: HTTP rules on port 6379, but no pod they apply to serves HTTP there \(db calls it "redis"\)/);
  });
});
