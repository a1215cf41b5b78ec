import type { Settings } from '../config/settings.js';
import { accessDenied, invalidRequest } from '../errors.js';
import { effectiveAddress, inRange, parseIp, parseRange, specialPurpose } from '../net/ip-address.js';
import type { HostResolver, ResolvedAddress } from '../net/resolver.js';
import type { OwnerKind } from './stream-record.js';

/** What of the server's context reaching a push receiver needs: its allow-list and its resolver. */
export interface PushContext {
  settings: Settings;
  resolveHost: HostResolver;
}

/**
 * Where Writ may POST a stream's SETs (and, by the same address rules, the findings webhook). A push
 * endpoint is a request Writ makes, with a credential the stream's creator chose, to an address the
 * creator named: it must not reach what only Writ's own network position reaches (loopback services,
 * cloud metadata, the private network).
 *
 * - Receiver workloads may name only origins an operator listed (`ssf.push_origins`); operators any.
 * - Every address the host resolves to must be public unicast, unless `ssf.push_allow_addresses` allows
 *   it; plain http only when every address is so allowed.
 * - The same checks run again before every push, and the connection goes to the address just checked.
 */

/** An endpoint judged fit, and the address to connect to (no second resolution). */
export interface PushTarget {
  url: URL;
  address: string;
  family: 4 | 6;
}

/** Syntax alone: an absolute http(s) URL without credentials or fragment. */
export function parsePushEndpoint(raw: string): URL {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw invalidRequest('delivery.endpoint_url must be an absolute URL', { reason: 'endpoint_url' });
  }
  if (u.protocol !== 'https:' && u.protocol !== 'http:')
    throw invalidRequest('delivery.endpoint_url must be an https URL', { reason: 'endpoint_url' });
  if (u.username || u.password || u.hash)
    throw invalidRequest('delivery.endpoint_url must have no credentials or fragment', {
      reason: 'endpoint_url',
    });
  return u;
}

/**
 * Judges `url` for a stream whose owner is of kind `owner`: its origin, every address its host resolves
 * to, its scheme. Throws the refusal (403 `push_origin`, 400 `endpoint_address` or `endpoint_url`),
 * naming what failed and what would pass.
 */
export async function checkPushTarget(ctx: PushContext, url: URL, owner: OwnerKind): Promise<PushTarget> {
  const ssf = ctx.settings.ssf;
  if (owner === 'receiver' && !ssf.pushOrigins.includes(url.origin))
    throw accessDenied(
      ssf.pushOrigins.length === 0
        ? 'receiver workloads may not create push streams here (ssf.push_origins lists no origin): use poll delivery, or ask an operator'
        : `a receiver workload may push only to an origin ssf.push_origins lists, and ${url.origin} is not one`,
      { reason: 'push_origin', origin: url.origin.slice(0, 256) },
    );
  return checkTargetAddresses(ctx, url, PUSH_ENDPOINT);
}

/** How refusals name the URL judged: its field, and what such URLs are. */
export interface TargetNames {
  field: string;
  what: string;
}

const PUSH_ENDPOINT: TargetNames = { field: 'delivery.endpoint_url', what: 'push endpoints' };

/**
 * The checks of every URL Writ sends to on someone's word (a push stream's endpoint, the findings
 * webhook), whatever allowed its origin: every address its host resolves to must be public unicast
 * unless `ssf.push_allow_addresses` allows it, and plain http only when every address is so allowed.
 * Returns the address to connect to; throws 400 `endpoint_address` or `endpoint_url`.
 */
export async function checkTargetAddresses(
  ctx: PushContext,
  url: URL,
  names: TargetNames,
): Promise<PushTarget> {
  const ssf = ctx.settings.ssf;
  const host = url.hostname;
  const addresses = await resolve(ctx, host, names);
  const allowed = ssf.pushAllowAddresses.map((r) => parseRange(r)!);
  let everyAllowed = true;
  for (const a of addresses) {
    const ip = parseIp(a.address);
    if (!ip) throw unresolvable(host, names);
    const reached = effectiveAddress(ip);
    if (allowed.some((r) => inRange(ip, r) || inRange(reached, r))) continue;
    everyAllowed = false;
    const what = specialPurpose(ip);
    if (what !== undefined)
      throw invalidRequest(
        `${names.field} ${parseIp(host) ? 'is' : `resolves to`} ${a.address}, which is ${what}: ${names.what} must be public addresses unless ssf.push_allow_addresses allows them`,
        { reason: 'endpoint_address', host: host.slice(0, 256), address: a.address, kind: what },
      );
  }
  if (url.protocol !== 'https:' && !everyAllowed)
    throw invalidRequest(
      `${names.field} must be https (plain http only to addresses ssf.push_allow_addresses allows)`,
      { reason: 'endpoint_url' },
    );
  const first = addresses[0]!;
  return { url, address: first.address, family: first.family };
}

/** The addresses of `host`: itself for an address literal; otherwise the resolver's, within the push timeout. */
async function resolve(ctx: PushContext, host: string, names: TargetNames) {
  const literal = parseIp(host);
  if (literal)
    return [{ address: host.replace(/^\[(.*)\]$/, '$1'), family: literal.family } satisfies ResolvedAddress];
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error('timeout')), ctx.settings.ssf.pushTimeout * 1000);
  });
  try {
    const found = await Promise.race([ctx.resolveHost(host), timeout]);
    if (found.length === 0) throw new Error('no address');
    return found;
  } catch {
    throw unresolvable(host, names);
  } finally {
    clearTimeout(timer);
  }
}

const unresolvable = (host: string, names: TargetNames) =>
  invalidRequest(`${names.field} host ${host.slice(0, 256)} does not resolve to an address`, {
    reason: 'endpoint_address',
    host: host.slice(0, 256),
  });
