import { createHash } from 'node:crypto';
import { CompactEncrypt, importJWK, type JWK } from 'jose';
import type { WritContext } from '../context.js';
import { accessDenied, invalidRequest, notFound, OAuthError } from '../errors.js';
import { coveringException, exceptionEnding } from '../governance/exception.js';
import { type VendorKeyRecord, vendorKeyContext } from './vendor-key.js';

/** What any API says of a vendor key: never the key, only which version and who may lease it. */
export interface VendorKeyView {
  name: string;
  version: number;
  /** The first 16 hex digits of `sha256`. */
  fingerprint: string;
  /** SHA-256 of the key (hex), for naming a leaked copy (`writ scan`). */
  sha256: string;
  proxies: string[];
  created_at: number;
  created_by: string;
  /** Older versions still recognised in echoes until then (ms). */
  overlapping: { version: number; fingerprint: string; sha256: string; until: number }[];
}

/** A proxy's lease: the key to send and those to recognise, each encrypted to the proxy's key. */
export interface VendorKeyLease {
  name: string;
  version: number;
  /** JWE (ECDH-ES, A256GCM) of the key to send. */
  current: string;
  /** JWEs of replaced versions still in their overlap: recognised in echoes, never sent. */
  overlapping: string[];
  /** Seconds the proxy may keep it before leasing again (so a rotation reaches it within this). */
  expires_in: number;
}

export const VENDOR_KEY_NAME = /^[a-z0-9][a-z0-9._-]{0,62}$/;
const SECRET = /^[\x21-\x7e]{8,4096}$/;
/** How long a proxy keeps a lease; a rotation's overlap must be at least this. */
export const LEASE_SECONDS = 30;

export const fingerprintOf = (secret: string) => createHash('sha256').update(secret).digest('hex');

function checkSecret(secret: string): void {
  if (!SECRET.test(secret))
    throw invalidRequest(
      'the key must be 8 to 4096 visible ASCII characters, without spaces or control characters',
      { reason: 'vendor_key_secret' },
    );
}

/** Every proxy a key lists must be a registered workload: a typo would otherwise leave the key unleasable. */
function checkProxies(ctx: WritContext, proxies: readonly string[]): void {
  const unknown = proxies.filter((p) => !ctx.registry.workload(p));
  if (unknown.length > 0)
    throw invalidRequest(
      `proxies must be registered workloads; not registered: ${unknown.map((p) => JSON.stringify(p.slice(0, 200))).join(', ')}`,
      { reason: 'malformed_body' },
    );
}

function seal(ctx: WritContext, name: string, version: number, secret: string): Buffer {
  return ctx.secrets.seal(Buffer.from(secret, 'utf8'), vendorKeyContext(name, version));
}

/** The versions of `name` still in force at `now`; replaced ones past their overlap are deleted. */
async function versionsOf(ctx: WritContext, name: string): Promise<VendorKeyRecord[]> {
  const now = ctx.clock.now();
  const all = await ctx.store.listVendorKeys(name);
  const live: VendorKeyRecord[] = [];
  for (const k of all) {
    if (k.overlapUntil !== null && k.overlapUntil <= now) await ctx.store.deleteVendorKeys(name, k.version);
    else live.push(k);
  }
  return live;
}

function view(versions: VendorKeyRecord[]): VendorKeyView {
  const current = versions.at(-1)!;
  return {
    name: current.name,
    version: current.version,
    fingerprint: current.fingerprint.slice(0, 16),
    sha256: current.fingerprint,
    proxies: current.proxies,
    created_at: current.createdAt,
    created_by: current.createdBy,
    overlapping: versions.slice(0, -1).map((k) => ({
      version: k.version,
      fingerprint: k.fingerprint.slice(0, 16),
      sha256: k.fingerprint,
      until: k.overlapUntil ?? 0,
    })),
  };
}

export async function listVendorKeys(ctx: WritContext): Promise<VendorKeyView[]> {
  const names = [...new Set((await ctx.store.listVendorKeys()).map((k) => k.name))];
  const views: VendorKeyView[] = [];
  for (const n of names) {
    const versions = await versionsOf(ctx, n);
    if (versions.length > 0) views.push(view(versions));
  }
  return views;
}

export async function showVendorKey(ctx: WritContext, name: string): Promise<VendorKeyView> {
  const versions = await versionsOf(ctx, name);
  if (versions.length === 0) throw notFound(`no vendor key named ${name}`, { reason: 'not_found' });
  return view(versions);
}

/** Stores a new vendor key (version 1), sealed; audited without the key. */
export async function addVendorKey(
  ctx: WritContext,
  o: { name: string; secret: string; proxies: string[]; actor: string },
): Promise<VendorKeyView> {
  checkSecret(o.secret);
  checkProxies(ctx, o.proxies);
  return ctx.store.transaction(async (tx) => {
    if ((await tx.listVendorKeys(o.name)).length > 0)
      throw new OAuthError('invalid_request', `a vendor key named ${o.name} exists: rotate it instead`, {
        status: 409,
        detail: { reason: 'vendor_key_exists' },
      });
    const k: VendorKeyRecord = {
      name: o.name,
      version: 1,
      sealed: seal(ctx, o.name, 1, o.secret),
      fingerprint: fingerprintOf(o.secret),
      proxies: o.proxies,
      createdAt: ctx.clock.now(),
      createdBy: o.actor,
      replacedAt: null,
      overlapUntil: null,
    };
    await tx.putVendorKey(k);
    await ctx.audit.append(
      {
        type: 'vendor_key.added',
        outcome: 'success',
        actor: o.actor,
        data: { name: o.name, version: 1, fingerprint: k.fingerprint.slice(0, 16), proxies: o.proxies },
      },
      tx,
    );
    return view([k]);
  });
}

/**
 * A new version becomes the one sent at once; the versions it replaces are still recognised (never
 * sent) for `overlapSeconds`, at least one lease, while the vendor accepts both.
 */
export async function rotateVendorKey(
  ctx: WritContext,
  o: { name: string; secret: string; overlapSeconds: number; proxies?: string[]; actor: string },
): Promise<VendorKeyView> {
  checkSecret(o.secret);
  if (o.proxies) checkProxies(ctx, o.proxies);
  if (o.overlapSeconds < LEASE_SECONDS)
    throw invalidRequest(`overlap must be at least ${LEASE_SECONDS}s, one lease of every proxy`, {
      reason: 'malformed_body',
    });
  const versions = await versionsOf(ctx, o.name);
  if (versions.length === 0) throw notFound(`no vendor key named ${o.name}`, { reason: 'not_found' });
  return ctx.store.transaction(async (tx) => {
    const now = ctx.clock.now();
    const current = versions.at(-1)!;
    const version = current.version + 1;
    const until = now + o.overlapSeconds * 1000;
    for (const k of versions)
      if (k.overlapUntil === null || k.overlapUntil > until)
        await tx.putVendorKey({ ...k, replacedAt: k.replacedAt ?? now, overlapUntil: until });
    const next: VendorKeyRecord = {
      name: o.name,
      version,
      sealed: seal(ctx, o.name, version, o.secret),
      fingerprint: fingerprintOf(o.secret),
      proxies: o.proxies ?? current.proxies,
      createdAt: now,
      createdBy: o.actor,
      replacedAt: null,
      overlapUntil: null,
    };
    if (next.fingerprint === current.fingerprint)
      throw invalidRequest('the new key is the key in use: rotate to a new one', {
        reason: 'vendor_key_secret',
      });
    await tx.putVendorKey(next);
    await ctx.audit.append(
      {
        type: 'vendor_key.rotated',
        outcome: 'success',
        actor: o.actor,
        data: {
          name: o.name,
          version,
          fingerprint: next.fingerprint,
          replaced: current.version,
          overlap_until: until,
        },
      },
      tx,
    );
    return view([
      ...versions.map((k) => ({ ...k, overlapUntil: Math.min(k.overlapUntil ?? until, until) })),
      next,
    ]);
  });
}

/** Deletes every version: proxies refuse the route once their lease runs out. */
export async function retireVendorKey(ctx: WritContext, name: string, actor: string): Promise<void> {
  await ctx.store.transaction(async (tx) => {
    const n = await tx.deleteVendorKeys(name);
    if (n === 0) throw notFound(`no vendor key named ${name}`, { reason: 'not_found' });
    await ctx.audit.append(
      { type: 'vendor_key.retired', outcome: 'success', actor, data: { name, versions: n } },
      tx,
    );
  });
}

/**
 * A vendor's static key is an exception to the rules (docs/governance.md): it is leased only while an
 * exception of kind `vendor_key` for it holds, so its owner, justification and end are on record and an
 * ended one stops the key being sent.
 */
function requireException(ctx: WritContext, name: string): void {
  const { holding, covering } = coveringException(
    ctx.registry.exceptions(),
    (c) => c.kind === 'vendor_key' && c.key === name,
    ctx.clock.now(),
  );
  if (holding) return;
  const e = covering[0];
  if (!e)
    throw accessDenied(
      `vendor key ${name} is not leased: no exception in exceptions/ covers it (covers: { kind: vendor_key, key: ${name} }, with owner, justification and expires)`,
      { reason: 'vendor_key_exception_missing' },
    );
  const which = `exception "${e.id}" (vendor key ${name}, owner ${e.owner})`;
  const ended = exceptionEnding(e);
  throw accessDenied(
    ended.retired
      ? `vendor key ${name} is not leased: ${which} was retired at ${ended.at}`
      : `vendor key ${name} is not leased: ${which} expired at ${ended.at}; an operator renews it (writ exceptions renew ${e.id} --until DATE)`,
    ended.detail,
  );
}

/**
 * The versions of `name` in force (the one to send last) that proxy `caller` may have: only when the
 * key lists it as a proxy and an exception covering the key holds. Throws `access_denied` otherwise.
 */
export async function leasableVersions(
  ctx: WritContext,
  name: string,
  caller: string,
): Promise<VendorKeyRecord[]> {
  const versions = await versionsOf(ctx, name);
  const current = versions.at(-1);
  // The same answer for a key that does not exist and one this caller may not have: no name probing.
  if (!current?.proxies.includes(caller))
    throw accessDenied(`this workload may not lease vendor key ${name}`, {
      reason: 'vendor_key_not_granted',
    });
  requireException(ctx, name);
  return versions;
}

/** The key a sealed version holds: for the proxy inside `writ serve`, which never sends it anywhere else. */
export function openVendorKey(ctx: WritContext, k: VendorKeyRecord): string {
  return ctx.secrets.open(k.sealed, vendorKeyContext(k.name, k.version)).toString('utf8');
}

/**
 * A proxy workload leases the key: only one the key lists, and the key travels encrypted to the
 * ephemeral public key the proxy sent (ECDH-ES, A256GCM), so no log of this body can hold it.
 */
export async function leaseVendorKey(
  ctx: WritContext,
  o: { name: string; caller: string; jwk: unknown },
): Promise<VendorKeyLease> {
  const versions = await leasableVersions(ctx, o.name, o.caller);
  const current = versions.at(-1)!;
  const jwk = o.jwk as JWK | undefined;
  if (
    !jwk ||
    typeof jwk !== 'object' ||
    jwk.kty !== 'EC' ||
    jwk.crv !== 'P-256' ||
    'd' in jwk ||
    typeof jwk.x !== 'string' ||
    typeof jwk.y !== 'string'
  )
    throw invalidRequest('jwk must be a public EC P-256 key', { reason: 'vendor_key_lease_key' });
  let key: Awaited<ReturnType<typeof importJWK>>;
  try {
    key = await importJWK({ kty: 'EC', crv: 'P-256', x: jwk.x, y: jwk.y }, 'ECDH-ES');
  } catch {
    throw invalidRequest('jwk must be a public EC P-256 key', { reason: 'vendor_key_lease_key' });
  }
  const encrypt = async (k: VendorKeyRecord) =>
    new CompactEncrypt(ctx.secrets.open(k.sealed, vendorKeyContext(k.name, k.version)))
      .setProtectedHeader({ alg: 'ECDH-ES', enc: 'A256GCM', kid: `${k.name}:${k.version}` })
      .encrypt(key);
  const lease: VendorKeyLease = {
    name: o.name,
    version: current.version,
    current: await encrypt(current),
    overlapping: await Promise.all(versions.slice(0, -1).map(encrypt)),
    expires_in: LEASE_SECONDS,
  };
  await ctx.audit.append({
    type: 'vendor_key.leased',
    outcome: 'success',
    actor: o.caller,
    data: { name: o.name, version: current.version, fingerprint: current.fingerprint.slice(0, 16) },
  });
  return lease;
}
