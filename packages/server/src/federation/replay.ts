import { invalidGrant } from '../errors.js';
import type { Store } from '../store/store.js';
import type { FederatedIdentity } from './attest.js';

/**
 * Binds a federation token to its first holder for its lifetime, inside the issuance transaction: the
 * first use records the token and the holder's DPoP key (`jkt`, or none for a bearer class). A later use
 * by the same holder is allowed (a renewal from the same process) and reported as `same`; a use by any
 * other holder is refused as a possible theft. Two replay-cache entries make it atomic on every store:
 * the token's own, and the (token, holder) pair.
 */
export async function bindToFirstHolder(
  tx: Pick<Store, 'consume'>,
  f: FederatedIdentity,
  jkt: string | undefined,
  now: number,
): Promise<'first' | 'same'> {
  const holder = `${f.replay.key}\n${jkt === undefined ? 'none' : `jkt:${jkt}`}`;
  const first = await tx.consume('federation', f.replay.key, f.replay.until, now);
  const newHolder = await tx.consume('federation-holder', holder, f.replay.until, now);
  if (first) return 'first';
  if (!newHolder) return 'same';
  throw invalidGrant(
    'this federation token was already used by another holder (another DPoP key, or none): each holder needs its own token from the issuer',
    {
      reason: 'federation_token_replay',
      federation_issuer: f.issuer,
      federation_jti: f.jti,
      federation_fingerprint: f.fingerprint,
      holder: jkt === undefined ? 'bearer' : `jkt:${jkt}`,
    },
  );
}

/**
 * What an audit event records about a platform token that proved a workload (a task event): never the
 * token, only its fingerprint and identifying claims.
 */
export function federationIdentity(f: FederatedIdentity): Record<string, unknown> {
  return {
    issuer: f.issuer,
    token_sub: f.tokenSubject,
    ...(f.jti !== undefined ? { jti: f.jti } : {}),
    fingerprint: f.fingerprint,
    attributes: f.attributes,
  };
}

/** What the audit event of an issuance records about the federation token (never the token itself). */
export function federationAudit(f: FederatedIdentity, use: 'first' | 'same'): Record<string, unknown> {
  return { ...federationIdentity(f), exp: f.exp, reuse: use === 'same' };
}
