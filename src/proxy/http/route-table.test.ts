// Unit tests of the compiled route table: virtual host precedence, matchers, weighted picks and rewrites.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Route, RouteConfig } from '../../routing/model.ts';
import { ProxyError } from '../proxy-error.ts';
import { pickCluster, queryParam, rewritePath, routeTableFor, RouteTable } from './route-table.ts';
import { requestHash } from './request-hash.ts';

function r(name: string, match: Partial<Route['match']>, clusters: [string, number][] = [[name, 1]], extra: Partial<Route> = {}): Route {
  return { name, match: { headers: [], ...match }, action: { type: 'route', clusters: clusters.map(([cluster, weight]) => ({ cluster, weight })) }, ...extra };
}

const config: RouteConfig = {
  name: 'rc',
  virtualHosts: [
    { name: 'exact', domains: ['api.shop.svc.cluster.local', 'api.shop.svc.cluster.local:80', 'api'], routes: [r('exact', {})] },
    { name: 'suffix', domains: ['*.shop.example'], routes: [r('suffix', {})] },
    { name: 'longer-suffix', domains: ['*.eu.shop.example'], routes: [r('longer-suffix', {})] },
    { name: 'prefix', domains: ['internal.*'], routes: [r('prefix', {})] },
    {
      name: 'any',
      domains: ['*'],
      routes: [
        r('exact-path', { path: { exact: '/exact' } }),
        r('ci-prefix', { path: { prefix: '/CI/', ignoreCase: true } }),
        r('regex', { path: { regex: '/items/[0-9]+' } }),
        r('hdr', { headers: [{ name: 'x-v', match: { prefix: 'v2' } }] }),
        r('absent', { path: { prefix: '/absent' }, headers: [{ name: 'x-debug', present: false }] }),
        r('inverted', { path: { prefix: '/inv' }, headers: [{ name: ':method', match: { exact: 'GET' }, invert: true }] }),
        r('authority', { headers: [{ name: ':authority', match: { regex: 'h[0-9]\\.other' } }] }),
        r('query', { queryParams: [{ name: 'mode', match: { exact: 'fast' } }] }),
        r('split', { path: { prefix: '/split' } }, [['blue', 80], ['green', 20], ['zero', 0]]),
        r('rewrite', { path: { prefix: '/api/' } }, [['x', 1]], { action: { type: 'route', clusters: [{ cluster: 'x', weight: 1 }], rewrite: { prefix: '/' } } }),
        r('catch-all', {}),
      ],
    },
  ],
};

function m(authority: string, path = '/', headers: Record<string, string> = {}, method = 'GET'): string | undefined {
  return routeTableFor(config).match({ method, path, authority, headers })?.route.name;
}

describe('RouteTable', () => {
  it('finds virtual hosts by exact name, longest suffix wildcard, prefix wildcard, then *', () => {
    assert.equal(m('api.shop.svc.cluster.local'), 'exact');
    assert.equal(m('API.shop.svc.cluster.local:80'), 'exact');
    assert.equal(m('api:8080'), 'exact', 'the port-less form is tried when the full authority misses');
    assert.equal(m('a.shop.example'), 'suffix');
    assert.equal(m('a.b.shop.example'), 'suffix');
    assert.equal(m('x.eu.shop.example'), 'longer-suffix');
    assert.equal(m('internal.anything'), 'prefix');
    assert.equal(m('shop.example'), 'catch-all', '*.shop.example needs at least one character before the suffix');
  });

  it('matches paths exactly, by case-insensitive prefix and by anchored regex, ignoring the query string', () => {
    assert.equal(m('h', '/exact?x=1'), 'exact-path');
    assert.equal(m('h', '/exact/more'), 'catch-all');
    assert.equal(m('h', '/ci/thing'), 'ci-prefix');
    assert.equal(m('h', '/items/42'), 'regex');
    assert.equal(m('h', '/items/42/x'), 'catch-all', 'regexes match the whole path');
  });

  it('matches headers, pseudo-headers, absence, inversion and query parameters', () => {
    assert.equal(m('h', '/', { 'x-v': 'v2-beta' }), 'hdr');
    assert.equal(m('h', '/absent'), 'absent');
    assert.equal(m('h', '/absent', { 'x-debug': '1' }), 'catch-all');
    assert.equal(m('h', '/inv', {}, 'POST'), 'inverted');
    assert.equal(m('h', '/inv', {}, 'GET'), 'catch-all');
    assert.equal(m('h7.other', '/'), 'authority');
    assert.equal(m('h', '/?a=1&mode=fast'), 'query');
    assert.equal(m('h', '/?mode=slow'), 'catch-all');
    assert.equal(queryParam('/p?a=%20b&c', 'a'), ' b');
    assert.equal(queryParam('/p?a=1&c', 'c'), '');
  });

  it('draws weighted clusters by their weights and never a zero-weight one', () => {
    const split = routeTableFor(config).match({ method: 'GET', path: '/split', authority: 'h', headers: {} })!;
    assert.equal(pickCluster(split, 0), 'blue');
    assert.equal(pickCluster(split, 0.79), 'blue');
    assert.equal(pickCluster(split, 0.8), 'green');
    assert.equal(pickCluster(split, 0.999), 'green');
    const counts: Record<string, number> = {};
    for (let i = 0; i < 10_000; i++) {
      const c = pickCluster(split)!;
      counts[c] = (counts[c] ?? 0) + 1;
    }
    assert.ok(counts.blue! > 7600 && counts.blue! < 8400, JSON.stringify(counts));
    assert.equal(counts.zero, undefined);
  });

  it('rewrites the matched prefix and keeps the query', () => {
    const rw = routeTableFor(config).match({ method: 'GET', path: '/api/v1/x?q=1', authority: 'h', headers: {} })!;
    assert.equal(rewritePath(rw, '/api/v1/x?q=1'), '/v1/x?q=1');
  });

  it('compiles once per RouteConfig object and refuses invalid regexes with a bad-config error', () => {
    assert.equal(routeTableFor(config), routeTableFor(config));
    assert.throws(
      () => new RouteTable({ name: 'bad', virtualHosts: [{ name: 'v', domains: ['*'], routes: [r('x', { path: { regex: '(' } })] }] }),
      (e: unknown) => e instanceof ProxyError && e.code === 'bad-config' && /invalid regex/.test(e.message),
    );
  });
});

describe('requestHash', () => {
  it('hashes the first present policy values, stable per key and different across keys', () => {
    const pol = [{ header: 'x-user' }, { sourceIp: true }];
    const a = requestHash(pol, { 'x-user': 'ann' }, '/', '10.0.0.1');
    assert.equal(a, requestHash(pol, { 'x-user': 'ann' }, '/', '10.0.0.1'));
    assert.notEqual(a, requestHash(pol, { 'x-user': 'bob' }, '/', '10.0.0.1'));
    assert.equal(requestHash([{ cookie: { name: 's' } }], { cookie: 'a=1; s=abc' }, '/', ''), requestHash([{ queryParameter: 'k' }], {}, '/x?k=abc', ''));
    assert.equal(requestHash([{ header: 'x-none' }], {}, '/', ''), undefined);
    assert.equal(requestHash(undefined, {}, '/', ''), undefined);
  });
});
