import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { bitAt, cidrContains, cidrWithin, formatIp, hostCidr, isCidrError, maskBytes, nthAddress, parseCidr, parseIp, type Cidr } from './net.ts';

function cidr(text: string): Cidr {
  const c = parseCidr(text);
  if (isCidrError(c)) throw new Error(`${text}: ${c.error}`);
  return c;
}

function ip(text: string): Uint8Array {
  const b = parseIp(text);
  if (!b) throw new Error(`bad IP ${text}`);
  return b;
}

describe('parseIp', () => {
  it('parses IPv4', () => {
    assert.deepEqual(Array.from(ip('10.1.2.3')), [10, 1, 2, 3]);
    assert.deepEqual(Array.from(ip('0.0.0.0')), [0, 0, 0, 0]);
    assert.deepEqual(Array.from(ip('255.255.255.255')), [255, 255, 255, 255]);
  });
  it('rejects malformed IPv4, including leading zeros', () => {
    for (const bad of ['10.1.2', '10.1.2.3.4', '256.0.0.1', '01.2.3.4', '1.2.3.-1', '1.2.3.', 'a.b.c.d', '', ' 1.2.3.4']) {
      assert.equal(parseIp(bad), undefined, bad);
    }
  });
  it('parses IPv6 with and without ::', () => {
    assert.equal(ip('2001:db8::1').length, 16);
    assert.deepEqual(Array.from(ip('::1')), [...new Array<number>(15).fill(0), 1]);
    assert.deepEqual(Array.from(ip('::')), new Array<number>(16).fill(0));
    assert.equal(formatIp(ip('2001:0db8:0000:0000:0000:0000:0000:0001')), '2001:db8::1');
    assert.equal(formatIp(ip('FE80::ABCD')), 'fe80::abcd');
    assert.equal(formatIp(ip('64:ff9b::192.0.2.33')), '64:ff9b::c000:221');
  });
  it('rejects malformed IPv6', () => {
    for (const bad of ['1::2::3', '1:2:3:4:5:6:7:8:9', '1:2:3:4:5:6:7', '12345::', 'g::1', '::1.2.3', 'fe80::1%eth0', '1:2:3:4:5:6:7:8::']) {
      assert.equal(parseIp(bad), undefined, bad);
    }
  });
  it('folds IPv4-mapped IPv6 to IPv4', () => {
    assert.deepEqual(Array.from(ip('::ffff:10.0.0.1')), [10, 0, 0, 1]);
  });
});

describe('formatIp (RFC 5952)', () => {
  const cases: [string, string][] = [
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'], // the first of two equal runs
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'], // a single zero group is not shortened
    ['2001:0:0:1:0:0:0:1', '2001:0:0:1::1'], // the longest run wins
    ['0:0:0:0:0:0:0:0', '::'],
    ['1:0:0:0:0:0:0:0', '1::'],
    ['0:0:0:0:0:0:0:1', '::1'],
    ['2001:DB8::AAAA', '2001:db8::aaaa'],
  ];
  for (const [input, want] of cases) {
    it(`${input} → ${want}`, () => assert.equal(formatIp(ip(input)), want));
  }
  it('formats IPv4 as dotted quad', () => assert.equal(formatIp(ip('192.168.0.1')), '192.168.0.1'));
});

describe('parseCidr', () => {
  it('masks host bits and canonicalises', () => {
    assert.equal(cidr('10.1.2.3/8').text, '10.0.0.0/8');
    assert.equal(cidr('10.1.2.3/32').text, '10.1.2.3/32');
    assert.equal(cidr('0.0.0.0/0').text, '0.0.0.0/0');
    assert.equal(cidr('2001:DB8:0:0::1/32').text, '2001:db8::/32');
    assert.equal(cidr('::/0').text, '::/0');
    assert.equal(cidr('192.168.1.129/25').text, '192.168.1.128/25');
    assert.equal(cidr('10.0.0.0/17').prefix, 17);
  });
  it('explains errors', () => {
    assert.deepEqual(parseCidr('10.0.0.0'), { error: 'must be a CIDR such as 10.0.0.0/16' });
    assert.deepEqual(parseCidr('10.0.0.256/8'), { error: 'must be a CIDR such as 10.0.0.0/16: invalid IP address' });
    assert.deepEqual(parseCidr('10.0.0.0/33'), { error: 'must be a CIDR such as 10.0.0.0/16: prefix length must be 0-32' });
    assert.deepEqual(parseCidr('::/129'), { error: 'must be a CIDR such as 10.0.0.0/16: prefix length must be 0-128' });
    assert.deepEqual(parseCidr('10.0.0.0/08'), { error: 'must be a CIDR such as 10.0.0.0/16: prefix length must be 0-32' });
    assert.deepEqual(parseCidr('10.0.0.0/'), { error: 'must be a CIDR such as 10.0.0.0/16: prefix length must be 0-32' });
  });
  it('strict mode rejects host bits with a suggestion', () => {
    assert.deepEqual(parseCidr('10.0.0.1/24', true), { error: 'must be a network address with no host bits set (did you mean 10.0.0.0/24?)' });
    assert.equal(isCidrError(parseCidr('10.0.0.0/24', true)), false);
  });
});

describe('containment', () => {
  it('cidrContains checks family and prefix', () => {
    assert.equal(cidrContains(cidr('10.0.0.0/8'), ip('10.255.0.1')), true);
    assert.equal(cidrContains(cidr('10.0.0.0/8'), ip('11.0.0.1')), false);
    assert.equal(cidrContains(cidr('0.0.0.0/0'), ip('1.2.3.4')), true);
    assert.equal(cidrContains(cidr('0.0.0.0/0'), ip('::1')), false);
    assert.equal(cidrContains(cidr('::/0'), ip('10.0.0.1')), false);
    assert.equal(cidrContains(cidr('2001:db8::/32'), ip('2001:db8:ffff::1')), true);
    assert.equal(cidrContains(cidr('10.0.0.0/31'), ip('10.0.0.1')), true);
    assert.equal(cidrContains(cidr('10.0.0.0/31'), ip('10.0.0.2')), false);
  });
  it('cidrWithin counts equal prefixes as within', () => {
    assert.equal(cidrWithin(cidr('10.1.0.0/16'), cidr('10.0.0.0/8')), true);
    assert.equal(cidrWithin(cidr('10.0.0.0/8'), cidr('10.0.0.0/8')), true);
    assert.equal(cidrWithin(cidr('10.0.0.0/8'), cidr('10.1.0.0/16')), false);
    assert.equal(cidrWithin(cidr('11.0.0.0/16'), cidr('10.0.0.0/8')), false);
    assert.equal(cidrWithin(cidr('::/0'), cidr('0.0.0.0/0')), false);
  });
  it('maskBytes and bitAt', () => {
    assert.deepEqual(Array.from(maskBytes(ip('255.255.255.255'), 20)), [255, 255, 240, 0]);
    assert.deepEqual(Array.from(maskBytes(ip('255.255.255.255'), 0)), [0, 0, 0, 0]);
    assert.equal(bitAt(ip('128.0.0.1'), 0), 1);
    assert.equal(bitAt(ip('128.0.0.1'), 1), 0);
    assert.equal(bitAt(ip('128.0.0.1'), 31), 1);
  });
  it('hostCidr', () => {
    assert.equal(hostCidr(ip('10.0.0.7')).text, '10.0.0.7/32');
    assert.equal(hostCidr(ip('2001:db8::7')).text, '2001:db8::7/128');
  });
});

describe('nthAddress', () => {
  it('counts from the network address with carries', () => {
    const c = cidr('10.0.0.0/16');
    assert.equal(formatIp(nthAddress(c, 0) ?? new Uint8Array()), '10.0.0.0');
    assert.equal(formatIp(nthAddress(c, 1) ?? new Uint8Array()), '10.0.0.1');
    assert.equal(formatIp(nthAddress(c, 256) ?? new Uint8Array()), '10.0.1.0');
    assert.equal(formatIp(nthAddress(c, 65535) ?? new Uint8Array()), '10.0.255.255');
    assert.equal(formatIp(nthAddress(cidr('10.0.0.250/24'), 10) ?? new Uint8Array()), '10.0.0.10');
  });
  it('returns undefined past the end of the block', () => {
    assert.equal(nthAddress(cidr('10.0.0.0/16'), 65536), undefined);
    assert.equal(nthAddress(cidr('10.0.0.0/32'), 1), undefined);
    assert.notEqual(nthAddress(cidr('10.0.0.0/32'), 0), undefined);
  });
  it('works for IPv6, including large blocks', () => {
    assert.equal(formatIp(nthAddress(cidr('fd00::/64'), 0x1_0001) ?? new Uint8Array()), 'fd00::1:1');
    assert.equal(formatIp(nthAddress(cidr('fd00::/8'), 2 ** 40) ?? new Uint8Array()), 'fd00::100:0:0');
  });
});
