import { DpopError } from '@writ/sdk/dpop';
import { CLIENT_ASSERTION_TYPE_JWT_BEARER, GrantType, type TokenResponse } from '@writ/sdk/wire';
import { auditRefusal } from '../audit/refusal.js';
import { ADMIN_CLASS, operatorPersonProblem, operatorSubject } from '../auth/admin.js';
import { admitCaller } from '../auth/budget.js';
import { assertionRules } from '../auth/client/assertion-rules.js';
import {
  peekAssertionIssuer,
  unverifiedAssertion,
  verifyClientAssertion,
} from '../auth/client/private-key-jwt.js';
import { refuseWhileSkewed } from '../cluster/clock-skew.js';
import { adminAudience, Paths, type RequestInfo, type WritContext } from '../context.js';
import { checkTokenEndpointDpop, dpopError } from '../dpop/check.js';
import { invalidClient, invalidRequest, OAuthError, unsupportedGrantType } from '../errors.js';
import { type FormParams, single } from '../request/form.js';
import { signAccessToken } from '../tokens/access-token.js';

/**
 * `POST /admin/v1/token`: an operator trades a short-lived assertion signed with its key pair
 * (RFC 7523 jwt-bearer grant; `iss` = `sub` = operator name) for a short-lived admin token.
 * There is no static admin secret anywhere.
 *
 * The request carries a DPoP proof (RFC 9449 §5) signed by that same operator key, and the token is
 * bound to it (`cnf.jkt`): every admin call then needs a fresh proof by the operator key, so a copied
 * admin token is useless. Requiring the assertion's key (not any key the caller brings) means a copied,
 * still unused assertion cannot be spent to bind a session to someone else's key either.
 */
export async function handleAdminToken(
  ctx: WritContext,
  params: FormParams,
  req: RequestInfo,
): Promise<TokenResponse> {
  let name: string | undefined;
  try {
    refuseWhileSkewed(ctx.clockSkew);
    if (single(params, 'grant_type', 256) !== GrantType.jwtBearer)
      throw unsupportedGrantType('use the jwt-bearer grant with an operator assertion', {
        reason: 'unsupported_grant_type',
      });
    const assertion = single(params, 'assertion', ctx.settings.limits.tokenBytes);
    if (assertion === undefined)
      throw invalidRequest('assertion is required', { reason: 'missing_parameter' });
    name = peekAssertionIssuer(assertion);
    const operator = name === undefined ? undefined : ctx.registry.operator(name);
    // An operator that does not exist is refused as a wrong key is, after the same checks of form.
    const a = verifyClientAssertion(
      assertion,
      CLIENT_ASSERTION_TYPE_JWT_BEARER,
      name,
      operator?.verificationKeys,
      assertionRules(ctx, Paths.adminToken),
    );
    if (!operator) throw unverifiedAssertion('unknown_operator', 'operator');
    // Its key proved who asks: only now may the answer say that its person may not act.
    const inactive = operatorPersonProblem(ctx, operator);
    if (inactive !== undefined)
      throw new OAuthError('access_denied', inactive, { detail: { reason: 'operator_person_inactive' } });
    const dpop = (await checkTokenEndpointDpop(ctx, req, Paths.adminToken, true))!;
    if (dpop.jkt !== a.keyThumbprint)
      throw new OAuthError(
        'invalid_dpop_proof',
        'the DPoP proof must be signed by the operator key that signed the assertion',
        { headers: { 'dpop-nonce': ctx.dpopNonces.current() }, detail: { reason: 'admin_dpop_key' } },
      );
    const now = ctx.clock.now();
    const subject = operatorSubject(operator.name);
    await admitCaller(ctx, req, subject);
    const { token, claims } = signAccessToken(ctx.keys, {
      issuer: ctx.settings.issuer,
      subject,
      clientId: subject,
      audience: adminAudience(ctx.settings.issuer),
      scope: 'admin',
      tokenClass: ADMIN_CLASS,
      ttl: ctx.settings.admin.sessionTtl,
      nowMs: now,
      jkt: dpop.jkt,
    });
    await ctx.store.transaction(async (tx) => {
      if (!(await tx.consume(`operator:${operator.name}`, a.jti, a.replayUntil, now))) {
        throw invalidClient('operator assertion has already been used', { reason: 'replay' });
      }
      if (!(await tx.consume('dpop', dpop.replayKey, dpop.replayUntil, now)))
        throw dpopError(
          ctx,
          new DpopError('replay', 'DPoP proof jti was already used: make a new proof for every request'),
        );
      const event = await ctx.audit.append(
        {
          type: 'admin.session',
          outcome: 'success',
          actor: subject,
          jti: claims.jti,
          data: { exp: claims.exp, ip: req.ip, key: a.keyThumbprint },
        },
        tx,
      );
      return event;
    });
    return {
      access_token: token,
      token_type: 'DPoP',
      expires_in: ctx.settings.admin.sessionTtl,
      scope: 'admin',
    };
  } catch (err) {
    throw await auditRefusal(ctx, 'admin_token', err, req, {
      client_id: name ? operatorSubject(name) : undefined,
    });
  }
}
