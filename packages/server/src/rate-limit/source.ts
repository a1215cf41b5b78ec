import { isIPv6 } from 'node:net';
import { OAuthError } from '../errors.js';

/**
 * The budget key of a source address: an IPv4 address (IPv4-mapped IPv6 included) as it is, an IPv6
 * address by its /64, the smallest block a host is usually given (one host rotating addresses
 * inside its /64 keeps one budget).
 */
export function sourceKey(ip: string): string {
  // An IPv4 address, the common case, as it is (no colon: neither IPv6 nor IPv4-mapped).
  if (!ip.includes(':')) return ip;
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(ip);
  if (mapped) return mapped[1]!;
  if (!isIPv6(ip)) return ip;
  const [head = '', tail = ''] = ip.toLowerCase().split('::');
  const left = head === '' ? [] : head.split(':');
  const right = tail === '' ? [] : tail.split(':');
  const groups = ip.includes('::')
    ? [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right]
    : left;
  return `${groups
    .slice(0, 4)
    .map((g) => g.replace(/^0+(?=.)/, ''))
    .join(':')}::/64`;
}

/** The refusal of a source address over its budget of unauthenticated refusals. */
export function sourceLimited(wait: number): OAuthError {
  return new OAuthError(
    'temporarily_unavailable',
    `too many refused requests from this address; retry in ${wait} s`,
    { status: 429, headers: { 'retry-after': String(wait) }, detail: { reason: 'source_rate_limited' } },
  );
}
