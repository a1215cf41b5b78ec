import { RequestRefusal, refusal, type TokenError } from '@writ/sdk/verifier';
import type { WritContext } from '../context.js';
import { OAuthError } from '../errors.js';

/** The protection space of every Writ endpoint that takes a Writ token (RFC 7235 §2.2). */
export const REALM = 'writ';

/**
 * The one refusal of a caller presenting a Writ token at a Writ endpoint: 401 `invalid_token` (or
 * `invalid_dpop_proof`), with the `WWW-Authenticate` challenges the verifier SDK builds (RFC 6750 §3,
 * RFC 9449 §7.1): `DPoP` with `algs` and `Bearer`, realm `writ`, the error in the challenge of the
 * scheme the caller should use. Without credentials (no `Authorization` header) the challenges carry no error (RFC 6750 §3.1), but
 * the body still names `invalid_token` so every refusal is an RFC-style error. `detail.reason` is the
 * check that failed, for the audit log.
 */
export function tokenRefusal(
  ctx: Pick<WritContext, 'settings'>,
  err: RequestRefusal | TokenError,
  scheme: 'DPoP' | 'Bearer' | undefined,
  credentials: boolean,
): OAuthError {
  const r =
    err instanceof RequestRefusal
      ? err
      : new RequestRefusal('invalid_token', err.reason, err.message || 'token is invalid');
  const answer = refusal(credentials ? r : undefined, scheme, {
    realm: REALM,
    algs: ctx.settings.dpop.algorithms,
  });
  const challenges = answer.headers['www-authenticate'];
  const code = r.code === 'invalid_request' || r.code === 'insufficient_scope' ? 'invalid_token' : r.code;
  return new OAuthError(code, r.description, {
    status: 401,
    headers: {
      'www-authenticate': Array.isArray(challenges) ? challenges.join(', ') : String(challenges),
    },
    detail: { reason: r.reason },
  });
}
