import { isIP } from 'node:net';

/**
 * IP addresses as numbers, for deciding where Writ may connect on someone else's behalf. An address is
 * judged by what it is on the wire, whatever its spelling: the WHATWG URL parser already turns
 * `0177.0.0.1`, `2130706433`, `0x7f.1` and `127.1` into `127.0.0.1`; here `::ffff:127.0.0.1`,
 * `::ffff:7f00:1` and the well-known NAT64 `64:ff9b::7f00:1` are judged as the IPv4 address they carry.
 */
export interface IpAddress {
  family: 4 | 6;
  /** The address as a 32-bit (IPv4) or 128-bit (IPv6) number. */
  value: bigint;
}

export interface AddressRange {
  family: 4 | 6;
  value: bigint;
  prefix: number;
}

/** Parses an IPv4 or IPv6 address in its standard text form (an IPv6 zone such as `%eth0` is ignored). */
export function parseIp(text: string): IpAddress | undefined {
  const bare = text.startsWith('[') && text.endsWith(']') ? text.slice(1, -1) : text;
  const address = bare.replace(/%.*$/, '');
  switch (isIP(address)) {
    case 4:
      return { family: 4, value: ipv4Value(address) };
    case 6:
      return { family: 6, value: ipv6Value(address) };
    default:
      return undefined;
  }
}

function ipv4Value(dotted: string): bigint {
  return dotted.split('.').reduce((n, part) => (n << 8n) | BigInt(Number(part)), 0n);
}

/** `isIP` has validated it: at most one `::`, hex groups, perhaps a dotted IPv4 tail. */
function ipv6Value(address: string): bigint {
  const tail = /(\d+\.\d+\.\d+\.\d+)$/.exec(address);
  let text = address;
  if (tail) {
    const v4 = ipv4Value(tail[1]!);
    text = `${address.slice(0, tail.index)}${(v4 >> 16n).toString(16)}:${(v4 & 0xffffn).toString(16)}`;
  }
  const [head = '', rest] = text.split('::');
  const groups = (s: string) => (s === '' ? [] : s.split(':'));
  const left = groups(head);
  const right = rest === undefined ? [] : groups(rest);
  const words = [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right];
  return words.reduce((n, w) => (n << 16n) | BigInt(Number.parseInt(w, 16)), 0n);
}

/** Parses `10.0.0.0/8`, `fd00::/8`, or one address (a range of one). */
export function parseRange(text: string): AddressRange | undefined {
  const slash = text.indexOf('/');
  const ip = parseIp(slash < 0 ? text : text.slice(0, slash));
  if (!ip) return undefined;
  const bits = ip.family === 4 ? 32 : 128;
  const prefix =
    slash < 0 ? bits : /^\d{1,3}$/.test(text.slice(slash + 1)) ? Number(text.slice(slash + 1)) : -1;
  if (prefix < 0 || prefix > bits) return undefined;
  return { ...ip, prefix };
}

export function inRange(ip: IpAddress, r: AddressRange): boolean {
  if (ip.family !== r.family) return false;
  const shift = BigInt((ip.family === 4 ? 32 : 128) - r.prefix);
  return ip.value >> shift === r.value >> shift;
}

const range = (text: string): AddressRange => parseRange(text)!;
const IPV4_MAPPED = range('::ffff:0.0.0.0/96');
const NAT64_WELL_KNOWN = range('64:ff9b::/96');

/**
 * The IPv4 address an IPv6 address stands for when connecting to it reaches that IPv4 address: IPv4-mapped
 * (`::ffff:a.b.c.d`) and the well-known NAT64 prefix (`64:ff9b::a.b.c.d`, RFC 6052). Other addresses are
 * themselves.
 */
export function effectiveAddress(ip: IpAddress): IpAddress {
  if (ip.family === 6 && (inRange(ip, IPV4_MAPPED) || inRange(ip, NAT64_WELL_KNOWN)))
    return { family: 4, value: ip.value & 0xffffffffn };
  return ip;
}

/**
 * Ranges that are not public unicast destinations (IANA special-purpose registries, RFC 6890 and
 * successors), with what each is. IPv6 is allowed only inside global unicast `2000::/3`: everything
 * outside it (loopback, unspecified, link-local, unique local, multicast, IPv4-compatible, NAT64 local-use,
 * discard-only…) is refused as "not global unicast".
 */
const IPV4_SPECIAL: Array<[AddressRange, string]> = [
  ['0.0.0.0/8', 'unspecified ("this network")'],
  ['10.0.0.0/8', 'private (RFC 1918)'],
  ['100.64.0.0/10', 'shared address space (carrier-grade NAT)'],
  ['127.0.0.0/8', 'loopback'],
  ['169.254.0.0/16', 'link-local'],
  ['172.16.0.0/12', 'private (RFC 1918)'],
  ['192.0.0.0/24', 'IETF protocol assignments'],
  ['192.0.2.0/24', 'documentation'],
  ['192.88.99.0/24', '6to4 relay anycast'],
  ['192.168.0.0/16', 'private (RFC 1918)'],
  ['198.18.0.0/15', 'benchmarking'],
  ['198.51.100.0/24', 'documentation'],
  ['203.0.113.0/24', 'documentation'],
  ['224.0.0.0/4', 'multicast'],
  ['255.255.255.255/32', 'broadcast'],
  ['240.0.0.0/4', 'reserved'],
].map(([r, what]) => [range(r!), what!]);

const IPV6_NAMED: Array<[AddressRange, string]> = [
  ['::/128', 'unspecified'],
  ['::1/128', 'loopback'],
  ['::/96', 'IPv4-compatible (deprecated)'],
  ['64:ff9b:1::/48', 'NAT64 local-use'],
  ['fe80::/10', 'link-local'],
  ['fc00::/7', 'unique local (private)'],
  ['ff00::/8', 'multicast'],
  // Inside 2000::/3:
  ['2001:db8::/32', 'documentation'],
  ['2001::/23', 'IETF protocol assignments (Teredo, benchmarking, ORCHID)'],
  ['2002::/16', '6to4'],
  ['3fff::/20', 'documentation'],
].map(([r, what]) => [range(r!), what!]);
const GLOBAL_UNICAST_V6 = range('2000::/3');

/**
 * What makes an address no public destination ("loopback", "private (RFC 1918)", "link-local" …), or
 * undefined for a public unicast address. Judges the address it reaches (`effectiveAddress`).
 *
 * @example specialPurpose(parseIp('::ffff:7f00:1')!) // 'loopback'
 */
export function specialPurpose(ip: IpAddress): string | undefined {
  const a = effectiveAddress(ip);
  if (a.family === 4) return IPV4_SPECIAL.find(([r]) => inRange(a, r))?.[1];
  const named = IPV6_NAMED.find(([r]) => inRange(a, r))?.[1];
  if (named) return named;
  return inRange(a, GLOBAL_UNICAST_V6) ? undefined : 'reserved (not global unicast)';
}
