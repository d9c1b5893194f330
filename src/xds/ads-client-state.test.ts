// The xDS client's per-type state: how SotW and delta responses become candidate sets, and what is refused.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { TypeState, type DeltaResponse, type SotwResponse } from './ads-client-state.ts';
import { encodeAny } from './protos.ts';
import { TYPE } from './type-urls.ts';

const cluster = (name: string, tag = 'v1') => encodeAny(TYPE.cluster, { name, alt_stat_name: tag });
const cla = (name: string, tag = 'v1') => encodeAny(TYPE.endpoint, { cluster_name: name, endpoints: [{ locality: { region: tag } }] });
const sotw = (type: string, version: string, resources: SotwResponse['resources']): SotwResponse => ({ type_url: type, version_info: version, nonce: 'n', resources });
const delta = (type: string, resources: DeltaResponse['resources'], removed: string[] = []): DeltaResponse => ({ type_url: type, system_version_info: 's', nonce: 'n', resources, removed_resources: removed });

function wildcardCds(): TypeState {
  const st = new TypeState(TYPE.cluster);
  st.resubscribe('*');
  return st;
}

describe('TypeState (SotW)', () => {
  it('reports every bad resource: wrong type, duplicate name, undecodable bytes, no name', () => {
    const st = wildcardCds();
    const c = st.fromSotw(
      sotw(TYPE.cluster, '1', [cluster('a'), cla('x'), cluster('a'), { type_url: TYPE.cluster, value: Buffer.from([0xff, 0xff, 0xff]) }, encodeAny(TYPE.cluster, { alt_stat_name: 'anon' })]),
      10,
    );
    assert.equal(c.errors.length, 4);
    assert.match(c.errors[0] ?? '', /resource 1: type .*ClusterLoadAssignment/);
    assert.match(c.errors[1] ?? '', /a: sent twice/);
    assert.match(c.errors[2] ?? '', /resource 3: cannot decode/);
    assert.match(c.errors[3] ?? '', /resource 4: no name/);
  });

  it('keeps entries whose bytes did not change, versions them by the response they came in, and drops absent ones', () => {
    const st = wildcardCds();
    const first = st.fromSotw(sotw(TYPE.cluster, '1', [cluster('a'), cluster('b')]), 10);
    st.ack(first.set, '1', 'n1');
    const second = st.fromSotw(sotw(TYPE.cluster, '2', [cluster('a'), cluster('c')]), 10);
    assert.deepEqual(second.errors, []);
    assert.deepEqual([...second.set.keys()], ['a', 'c']);
    assert.equal(second.set.get('a'), first.set.get('a'));
    assert.equal(second.set.get('c')?.version, '2');
    assert.ok(st.differs(second.set));
    assert.equal(st.differs(st.fromSotw(sotw(TYPE.cluster, '3', [cluster('b'), cluster('a')]), 10).set), false, 'order does not matter');
  });

  it('merges named EDS responses, ignores names not asked for, and forgets names unsubscribed', () => {
    const st = new TypeState(TYPE.endpoint);
    st.resubscribe(new Set(['a', 'b']));
    const c1 = st.fromSotw(sotw(TYPE.endpoint, '1', [cla('a'), cla('b'), cla('z')]), 10);
    st.ack(c1.set, '1', 'n1');
    assert.deepEqual([...c1.set.keys()], ['a', 'b']);
    const c2 = st.fromSotw(sotw(TYPE.endpoint, '2', [cla('b', 'v2')]), 10);
    assert.deepEqual([...c2.set.keys()], ['a', 'b'], 'a is kept: SotW EDS only names what it sends');
    const handedOut = st.accepted;
    st.resubscribe(new Set(['b']));
    assert.deepEqual([...st.accepted.keys()], ['b']);
    assert.equal(handedOut.size, 2, 'a set already handed out is not changed');
  });

  it('refuses more resources than the bound', () => {
    const c = wildcardCds().fromSotw(sotw(TYPE.cluster, '1', [cluster('a'), cluster('b')]), 1);
    assert.match(c.errors[0] ?? '', /2 resources exceed the limit of 1/);
  });
});

describe('TypeState (delta)', () => {
  it('applies changes and removals to what the server believes we hold, skipping resends of the same version', () => {
    const st = wildcardCds();
    const c1 = st.fromDelta(delta(TYPE.cluster, [{ name: 'a', version: 'va', resource: cluster('a') }, { name: 'b', version: 'vb', resource: cluster('b') }]), 10);
    st.ack(c1.set, 's1', 'n1');
    const c2 = st.fromDelta(delta(TYPE.cluster, [{ name: 'a', version: 'va', resource: cluster('a') }], ['b']), 10);
    assert.deepEqual([...c2.set.keys()], ['a']);
    assert.equal(c2.set.get('a'), c1.set.get('a'));
    // A NACK keeps the accepted set, but the next change builds on what was sent.
    const c3 = st.fromDelta(delta(TYPE.cluster, [{ name: 'c', version: 'vc', resource: cluster('c') }]), 10);
    st.nack(c3.set, 'no');
    assert.deepEqual([...st.accepted.keys()], ['a', 'b']);
    const c4 = st.fromDelta(delta(TYPE.cluster, [{ name: 'd', version: 'vd', resource: cluster('d') }]), 10);
    assert.deepEqual([...c4.set.keys()].sort(), ['a', 'b', 'c', 'd']);
    // A new stream starts again from what was accepted, and reports its versions.
    st.resetForStream();
    assert.deepEqual(st.initialVersions(), { a: 'va', b: 'vb' });
  });

  it('reports bodies of the wrong type, unknown heartbeats, nameless resources and the bound', () => {
    const st = wildcardCds();
    const c = st.fromDelta(
      delta(TYPE.cluster, [
        { name: 'a', version: '1', resource: cla('a') },
        { name: 'b', version: '1', resource: null },
        { name: '', version: '1', resource: cluster('x') },
        { name: 'c', version: '1', resource: cluster('c') },
        { name: 'd', version: '1', resource: cluster('d') },
      ]),
      5,
    );
    assert.equal(c.errors.length, 3);
    assert.match(c.errors.join('\n'), /a: type .*ClusterLoadAssignment/);
    assert.match(c.errors.join('\n'), /b: no resource body/);
    assert.match(c.errors.join('\n'), /resource 2: no name/);
    assert.match(st.fromDelta(delta(TYPE.cluster, [{ name: 'a', version: '1', resource: cluster('a') }, { name: 'b', version: '1', resource: cluster('b') }]), 1).errors[0] ?? '', /2 resources exceed the limit of 1/);
    // The bound also counts what is already held.
    st.ack(st.fromDelta(delta(TYPE.cluster, [{ name: 'a', version: '1', resource: cluster('a') }]), 1).set, 's', 'n');
    assert.match(st.fromDelta(delta(TYPE.cluster, [{ name: 'b', version: '1', resource: cluster('b') }]), 1).errors[0] ?? '', /2 resources exceed the limit of 1/);
  });
});
