import type { RefusalReason } from '@writ/sdk/wire';
import { unverifiedString } from '../auth/unverified-claim.js';
import { seconds } from '../clock.js';
import type { WritContext } from '../context.js';
import { OAuthError } from '../errors.js';
import { JwsError, parseClaims, verifyCompactJws } from '../jose/jws.js';
import type { Operator } from '../registry/operator.js';

/** The `typ` of a console sign-in link: no other kind of JWT Writ takes is accepted as one. */
export const SIGN_IN_LINK_TYP = 'writ-console-link+jwt';
/** A link lives at most this long (seconds): it is made to be clicked at once. */
export const SIGN_IN_LINK_LIFETIME = 60;

/** The audience of console sign-in links. */
export const consoleAudience = (issuer: string): string => `${issuer}/console`;

export interface VerifiedLink {
  operator: Operator;
  jti: string;
  /** Milliseconds: until when the `jti` is remembered as used. */
  usedUntil: number;
}

/** Every refusal of a link is 401 `invalid_grant`: the grant is the link, and it did not sign anyone in. */
const refuse = (reason: RefusalReason, description: string, detail: Record<string, unknown> = {}) =>
  new OAuthError('invalid_grant', `sign-in link ${description}`, {
    status: 401,
    detail: { reason, ...detail },
  });

/**
 * Checks a one-time sign-in link as `writ console` makes it (docs/console.md): a JWS of `typ`
 * `writ-console-link+jwt` signed by a key registered for the operator its `sub` (`operator:<name>`)
 * names, `aud` the issuer's `/console`, `exp` at most 60 s ahead (and at most 60 s after `iat`), and a
 * `jti`. Single use is the caller's (the store's replay table); so is whether the operator's person may act.
 * An unknown operator is refused exactly as a wrong key is.
 */
export function verifySignInLink(
  ctx: Pick<WritContext, 'settings' | 'registry' | 'clock'>,
  link: string,
): VerifiedLink {
  const { settings } = ctx;
  const sub = unverifiedString(link, 'sub');
  const name = sub?.startsWith('operator:') ? sub.slice('operator:'.length) : undefined;
  const operator = name === undefined ? undefined : ctx.registry.operator(name);
  let verified: ReturnType<typeof verifyCompactJws>;
  try {
    verified = verifyCompactJws(link, {
      algorithms: settings.clientAssertion.algorithms,
      keys: operator?.verificationKeys ?? [],
      maxBytes: settings.limits.tokenBytes,
    });
  } catch (err) {
    if (!(err instanceof JwsError)) throw err;
    if (err.reason === 'too_large' || err.reason === 'malformed' || err.reason === 'alg_not_allowed')
      throw refuse(err.reason, `is not a JWS this server accepts: ${err.message}`);
    throw refuse(
      operator ? err.reason : 'unknown_operator',
      'is not signed by a key registered for the operator its sub names: run `writ console` with a current operator key',
      { message: err.message, ...(name !== undefined ? { operator: name } : {}) },
    );
  }
  if (!operator) throw refuse('unknown_operator', 'names no operator');
  if (verified.header.typ !== SIGN_IN_LINK_TYP)
    throw refuse('typ', `must have typ ${SIGN_IN_LINK_TYP}: another kind of token is not a sign-in link`);
  let claims: Record<string, unknown>;
  try {
    claims = parseClaims(verified.payload);
  } catch {
    throw refuse('malformed', 'claims are not a JSON object');
  }
  const aud = claims['aud'];
  const audience = consoleAudience(settings.issuer);
  if (!(aud === audience || (Array.isArray(aud) && aud.length === 1 && aud[0] === audience)))
    throw refuse('aud', `aud must be ${audience}`);
  const now = seconds(ctx.clock.now());
  const skew = settings.clientAssertion.clockSkew;
  const exp = claims['exp'];
  if (typeof exp !== 'number' || !Number.isFinite(exp)) throw refuse('exp', 'has no exp');
  if (exp <= now - skew)
    throw refuse('expired', `expired ${Math.round(now - exp)}s ago: run \`writ console\` for a new one`);
  const iat = claims['iat'];
  if (iat !== undefined && (typeof iat !== 'number' || !Number.isFinite(iat)))
    throw refuse('iat', 'iat must be a number of seconds since the epoch');
  if (typeof iat === 'number' && iat > now + skew)
    throw refuse('iat_future', `iat is ${Math.round(iat - now)}s ahead of the server clock`);
  if (
    exp > now + SIGN_IN_LINK_LIFETIME + skew ||
    (typeof iat === 'number' && exp - iat > SIGN_IN_LINK_LIFETIME)
  )
    throw refuse('exp_too_far', `may live at most ${SIGN_IN_LINK_LIFETIME}s: set exp nearer`);
  const jti = claims['jti'];
  if (typeof jti !== 'string' || jti.length < 16 || jti.length > 256)
    throw refuse('jti', 'needs a random jti of 16 to 256 characters');
  return { operator, jti, usedUntil: (exp + skew) * 1000 };
}
