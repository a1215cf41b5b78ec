import { hash } from 'node:crypto';
import type { AccessTokenClaims } from '../wire/claims.js';
import { RequestRefusal } from './request.js';

/** A token whose signature has been verified, and what verified it. */
export interface VerifiedToken {
  claims: AccessTokenClaims;
  kid: string;
  /** Thumbprint of the key that verified it: a cache hit needs that key still published. */
  thumbprint: string;
}

export interface CachedCheck {
  nowSeconds: number;
  leeway: number;
  /** Whether the key with this thumbprint is still published. */
  publishes: (thumbprint: string) => boolean;
}

/**
 * Verified tokens remembered by their SHA-256, so a repeat presentation skips the signature check.
 * Everything time- or key-dependent is checked again on a hit; only the signature is not. Bounded: past
 * `maxEntries` the oldest entry is forgotten.
 */
export class VerifiedTokenCache {
  readonly #entries = new Map<string, VerifiedToken>();
  readonly #max: number;

  constructor(maxEntries = 10_000) {
    this.#max = maxEntries;
  }

  /**
   * The verification of `token`: from the cache when it holds one whose key is still published,
   * otherwise from `verify` (then remembered). Throws `invalid_token` for a cached token that has
   * expired or is not yet valid. `sha256` is the token's base64url SHA-256, the cache's key: what a DPoP
   * proof's `ath` must be (RFC 9449 §4.2), so the proof check need not hash the token again.
   */
  async verified(
    token: string,
    c: CachedCheck,
    verify: () => VerifiedToken | Promise<VerifiedToken>,
  ): Promise<VerifiedToken & { cached: boolean; sha256: string }> {
    const digest = hash('sha256', token, 'base64url');
    const hit = this.#entries.get(digest);
    if (hit) {
      if (hit.claims.exp <= c.nowSeconds - c.leeway) {
        this.#entries.delete(digest);
        throw new RequestRefusal('invalid_token', 'expired', 'token has expired', { claims: hit.claims });
      }
      if (hit.claims.nbf > c.nowSeconds + c.leeway)
        throw new RequestRefusal('invalid_token', 'nbf', 'token is not yet valid', { claims: hit.claims });
      if (c.publishes(hit.thumbprint))
        return { claims: hit.claims, kid: hit.kid, thumbprint: hit.thumbprint, cached: true, sha256: digest };
      // Its key is no longer published: verify from scratch (and refuse unless the key is back).
      this.#entries.delete(digest);
    }
    const fresh = await verify();
    if (this.#entries.size >= this.#max) this.#entries.delete(this.#entries.keys().next().value as string);
    this.#entries.set(digest, fresh);
    return {
      claims: fresh.claims,
      kid: fresh.kid,
      thumbprint: fresh.thumbprint,
      cached: false,
      sha256: digest,
    };
  }

  get size(): number {
    return this.#entries.size;
  }
}
