import {
  checkHolderBinding,
  presentedToken,
  RequestRefusal,
  type RevocableToken,
  TokenError,
  verifyAccessTokenJwt,
} from '@writ/sdk/verifier';
import type { AccessTokenClaims } from '@writ/sdk/wire';
import { seconds } from '../clock.js';
import type { RequestInfo, WritContext } from '../context.js';
import { DPOP_SETTINGS } from '../dpop/check.js';
import { notBeforeLeeway, TOKEN_LEEWAY } from '../tokens/access-token.js';
import { admitCaller } from './budget.js';
import { tokenRefusal } from './challenge.js';
import { unverifiedClaim } from './unverified-claim.js';

/** A caller that proved it holds a Writ access token for one of Writ's own endpoints. */
export interface TokenBearer {
  /** The workload (or operator) holding the token: its `client_id`. */
  clientId: string;
  claims: AccessTokenClaims;
  kid: string;
  /** What revocations are matched against while the caller stays connected (the event stream). */
  token: RevocableToken & { exp: number };
}

/**
 * Authenticates the bearer of a Writ token at a Writ endpoint that is itself a resource server (usage
 * reports, Shared Signals, the event stream, policy bundles, AuthZEN, the admin API). The checks, in
 * order, the same everywhere: `Authorization: DPoP` or `Bearer`; signature by a Writ key, `typ`,
 * `iss`, `aud` = `audience`, `exp` with `TOKEN_LEEWAY` and `nbf`
 * with `notBeforeLeeway`; not revoked; holder binding (RFC 9449
 * §7: a DPoP-bound token only with the DPoP scheme and a fresh proof over this method and URL; an
 * unbound token only as Bearer; RFC 8705 §3: a certificate-bound token only with that client
 * certificate). Throws the one 401 refusal of `tokenRefusal`; the caller audits it. Once it passes,
 * the caller is admitted: one request from its budget (`admitCaller`).
 */
export async function authenticateBearer(
  ctx: WritContext,
  request: RequestInfo,
  audience: string,
): Promise<TokenBearer> {
  const bearer = await verifyBearer(ctx, request, audience);
  await admitCaller(ctx, request, bearer.clientId);
  return bearer;
}

/**
 * The checks of `authenticateBearer` without admitting the caller (`admitCaller`): for a check that
 * goes on to ask more of the token (the admin API).
 */
export async function verifyBearer(
  ctx: WritContext,
  request: RequestInfo,
  audience: string,
): Promise<TokenBearer> {
  let scheme: 'DPoP' | 'Bearer' | undefined;
  try {
    const presented = presentedToken(request.authorization);
    scheme = presented.scheme;
    const now = seconds(ctx.clock.now());
    const { claims, kid } = verifyAccessTokenJwt(presented.token, {
      keys: ctx.keys.verificationKeys(),
      issuer: ctx.settings.issuer,
      audience,
      nowSeconds: now,
      leeway: TOKEN_LEEWAY,
      notBeforeLeeway: notBeforeLeeway(ctx.settings),
      maxBytes: ctx.settings.limits.tokenBytes,
    });
    if (ctx.revocations.match({ ...claims, kid })) throw new TokenError('revoked', 'token has been revoked');
    await checkHolderBinding(
      {
        authorization: request.authorization,
        dpop: request.dpop,
        method: request.method,
        url: `${ctx.settings.issuer}${request.path}`,
        clientCertificate: request.clientCertificate?.leaf,
      },
      presented,
      claims,
      {
        algorithms: ctx.settings.dpop.algorithms,
        nowSeconds: now,
        iatWindow: ctx.settings.dpop.iatWindow,
        settingNames: DPOP_SETTINGS,
        consumeJti: (key, exp) => ctx.store.consume('dpop', key, exp * 1000, ctx.clock.now()),
      },
    );
    return { clientId: claims.client_id, claims, kid, token: { ...claims, kid } };
  } catch (err) {
    if (err instanceof RequestRefusal || err instanceof TokenError)
      throw tokenRefusal(ctx, err, scheme, request.authorization !== undefined);
    throw err;
  }
}

/** The `aud` the token in an `Authorization` header claims, unverified: only to choose which check applies. */
export function claimedAudience(authorization: string | undefined): unknown {
  const token = /^(?:Bearer|DPoP) +(\S+)$/i.exec(authorization?.trim() ?? '')?.[1];
  return token === undefined ? undefined : unverifiedClaim(token, 'aud');
}
