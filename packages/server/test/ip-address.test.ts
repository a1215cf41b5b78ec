import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { effectiveAddress, inRange, parseIp, parseRange, specialPurpose } from '../src/net/ip-address.js';

/** The host of a URL as Writ receives it: the URL parser's normal form. */
const hostOf = (url: string) => new URL(url).hostname;
const purpose = (address: string) => {
  const ip = parseIp(address);
  assert.ok(ip, `${address} parses`);
  return specialPurpose(ip);
};

describe('IP addresses judged by what they reach', () => {
  it('every spelling of loopback is loopback', () => {
    for (const url of [
      'http://127.0.0.1/',
      'http://0177.0.0.1/',
      'http://2130706433/',
      'http://0x7f.1/',
      'http://0x7f000001/',
      'http://127.1/',
      'http://0177.0.0.01./',
      'http://%31%32%37.0.0.1/',
      'http://[::1]/',
      'http://[0:0:0:0:0:0:0:1]/',
      'http://[::ffff:127.0.0.1]/',
      'http://[::ffff:7f00:1]/',
      'http://[64:ff9b::127.0.0.1]/',
      'http://127.255.255.254/',
    ])
      assert.equal(purpose(hostOf(url)), 'loopback', url);
    // Resolvers write IPv4-mapped addresses with a dotted tail; zones are ignored.
    assert.equal(purpose('::ffff:127.0.0.1'), 'loopback');
    assert.equal(purpose('fe80::1%eth0'), 'link-local');
  });

  it('names private, shared, link-local, multicast, unspecified, broadcast and reserved ranges', () => {
    const cases: Array<[string, string]> = [
      ['10.1.2.3', 'private (RFC 1918)'],
      ['172.16.0.1', 'private (RFC 1918)'],
      ['172.31.255.255', 'private (RFC 1918)'],
      ['192.168.1.1', 'private (RFC 1918)'],
      ['100.64.0.1', 'shared address space (carrier-grade NAT)'],
      ['100.127.255.255', 'shared address space (carrier-grade NAT)'],
      ['169.254.169.254', 'link-local'],
      ['0.0.0.0', 'unspecified ("this network")'],
      ['224.0.0.1', 'multicast'],
      ['239.255.255.250', 'multicast'],
      ['255.255.255.255', 'broadcast'],
      ['240.0.0.1', 'reserved'],
      ['192.0.2.10', 'documentation'],
      ['198.18.0.1', 'benchmarking'],
      ['::', 'unspecified'],
      ['fe80::1', 'link-local'],
      ['febf::1', 'link-local'],
      ['fc00::1', 'unique local (private)'],
      ['fd12:3456::1', 'unique local (private)'],
      ['ff02::1', 'multicast'],
      ['::127.0.0.1', 'IPv4-compatible (deprecated)'],
      ['::ffff:10.0.0.1', 'private (RFC 1918)'],
      ['::ffff:a9fe:a9fe', 'link-local'],
      ['64:ff9b::a9fe:a9fe', 'link-local'],
      ['64:ff9b:1::1', 'NAT64 local-use'],
      ['2001:db8::1', 'documentation'],
      ['2001::1', 'IETF protocol assignments (Teredo, benchmarking, ORCHID)'],
      ['2002:7f00:1::', '6to4'],
      ['100::1', 'reserved (not global unicast)'],
      ['::2', 'IPv4-compatible (deprecated)'],
    ];
    for (const [address, what] of cases) assert.equal(purpose(address), what, address);
  });

  it('public unicast addresses are not special, in any spelling', () => {
    for (const address of [
      '93.184.216.34',
      '8.8.8.8',
      '172.32.0.1',
      '100.128.0.1',
      '::ffff:8.8.8.8',
      '64:ff9b::808:808',
      '2606:4700::1111',
      hostOf('http://1572395042/'),
    ])
      assert.equal(purpose(address), undefined, address);
  });

  it('parses ranges and matches an address in either family spelling', () => {
    const loopback = parseRange('127.0.0.0/8')!;
    assert.ok(inRange(effectiveAddress(parseIp('::ffff:7f00:5')!), loopback));
    assert.ok(!inRange(parseIp('128.0.0.1')!, loopback));
    assert.ok(inRange(parseIp('fd00::42')!, parseRange('fd00::/8')!));
    assert.ok(inRange(parseIp('10.0.0.1')!, parseRange('10.0.0.1')!));
    assert.ok(!inRange(parseIp('10.0.0.2')!, parseRange('10.0.0.1')!));
    for (const bad of ['10.0.0.0/33', '::/129', '10.0.0.0/', '10.0.0.0/x', 'example.com', '010.0.0.1', '']) {
      assert.equal(parseRange(bad), undefined, bad);
    }
  });
});
