import {
  checkHolderBinding,
  presentedToken,
  RequestRefusal,
  TokenError,
  verifyAccessTokenJwt,
} from '@writ/sdk/verifier';
import type { AccessTokenClaims } from '@writ/sdk/wire';
import type { FastifyRequest } from 'fastify';
import { seconds } from '../clock.js';
import type { WritContext } from '../context.js';
import { OAuthError } from '../errors.js';
import { info } from '../request/info.js';

/** A workload calling one of Writ's own resource endpoints with a Writ access token. */
export interface ResourceCaller {
  /** The workload holding the token (`client_id`). */
  clientId: string;
  claims: AccessTokenClaims;
  kid: string;
}

/**
 * Authenticates a workload at a Writ endpoint that is itself a resource server (usage reports, Shared
 * Signals management): a Writ token for `audience`, not revoked, sent as `DPoP` with a fresh proof for
 * this request when it is DPoP-bound (RFC 9449 §7), as `Bearer` only when its class says so. Refusals
 * are 401 `invalid_token` / `invalid_dpop_proof` with an RFC 6750 challenge; the caller audits them.
 */
export async function authenticateResourceCaller(
  ctx: WritContext,
  req: FastifyRequest,
  audience: string,
): Promise<ResourceCaller> {
  try {
    const presented = presentedToken(req.headers.authorization);
    const now = seconds(ctx.clock.now());
    const { claims, kid } = verifyAccessTokenJwt(presented.token, {
      keys: ctx.keys.verificationKeys(),
      issuer: ctx.settings.issuer,
      audience,
      nowSeconds: now,
      leeway: 5,
      maxBytes: ctx.settings.limits.tokenBytes,
    });
    if (ctx.revocations.match({ ...claims, kid })) throw new TokenError('revoked', 'token has been revoked');
    const path = req.url.split('?')[0] ?? req.url;
    await checkHolderBinding(
      {
        authorization: req.headers.authorization,
        dpop: info(req).dpop,
        method: req.method,
        url: `${ctx.settings.issuer}${path}`,
      },
      presented,
      claims,
      {
        algorithms: ctx.settings.dpop.algorithms,
        nowSeconds: now,
        iatWindow: ctx.settings.dpop.iatWindow,
        consumeJti: (key, exp) => ctx.store.consume('dpop', key, exp * 1000, ctx.clock.now()),
      },
    );
    return { clientId: claims.client_id, claims, kid };
  } catch (err) {
    if (err instanceof RequestRefusal) {
      throw new OAuthError(err.code === 'invalid_request' ? 'invalid_token' : err.code, err.message, {
        status: 401,
        headers: { 'www-authenticate': err.challenge(ctx.settings.dpop.algorithms) },
        detail: { reason: err.reason },
      });
    }
    if (err instanceof TokenError) {
      throw new OAuthError('invalid_token', err.message, {
        status: 401,
        headers: { 'www-authenticate': 'DPoP error="invalid_token"' },
        detail: { reason: err.reason },
      });
    }
    throw err;
  }
}
