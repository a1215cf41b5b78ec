import { TokenError, verifyAccessTokenJwt } from '@writ/sdk/verifier';
import type { AccessTokenClaims } from '@writ/sdk/wire';
import { unverifiedString } from '../auth/unverified-claim.js';
import { seconds } from '../clock.js';
import type { WritContext } from '../context.js';
import { TOKEN_LEEWAY } from '../tokens/access-token.js';

/**
 * What a reported token is to Writ: signed by this issuer and `live`, `expired` or already `revoked`;
 * `unverified` when it names this issuer but no key of this issuer signed it (a forgery, a truncated
 * copy, a key long retired); `foreign` for anything else (another issuer's token, not a JWT at all).
 * Only a `live` one is ever acted on.
 */
export type LeakedTokenState = 'live' | 'expired' | 'revoked' | 'unverified' | 'foreign';

export type LeakedToken =
  | { state: 'live' | 'revoked'; claims: AccessTokenClaims; kid: string }
  | { state: 'expired'; claims: AccessTokenClaims }
  | { state: 'unverified' | 'foreign' };

/**
 * Classifies a reported token with this node's keys, issuer, clock and revocation set. The signature
 * is checked before anything is believed: an unsigned claim of our `iss` is `unverified`, never acted on.
 */
export function classifyLeakedToken(
  ctx: Pick<WritContext, 'keys' | 'settings' | 'clock' | 'revocations'>,
  token: string,
): LeakedToken {
  try {
    const { claims, kid } = verifyAccessTokenJwt(token, {
      keys: ctx.keys.verificationKeys(),
      issuer: ctx.settings.issuer,
      nowSeconds: seconds(ctx.clock.now()),
      leeway: TOKEN_LEEWAY,
      // A token not valid yet is valid soon: live, as far as a leak goes.
      notBeforeLeeway: Number.MAX_SAFE_INTEGER,
      maxBytes: ctx.settings.limits.tokenBytes,
    });
    return { state: ctx.revocations.match({ ...claims, kid }) ? 'revoked' : 'live', claims, kid };
  } catch (err) {
    if (!(err instanceof TokenError)) throw err;
    // Claims ride on a refusal only once the signature verified (`TokenError.claims`).
    if (err.reason === 'expired' && err.claims) return { state: 'expired', claims: err.claims };
    return { state: unverifiedString(token, 'iss') === ctx.settings.issuer ? 'unverified' : 'foreign' };
  }
}
