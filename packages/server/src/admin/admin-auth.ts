import { CLIENT_ASSERTION_TYPE_JWT_BEARER, GrantType, type TokenResponse } from '@writ/sdk/wire';
import { auditRefusal } from '../audit/refusal.js';
import { ADMIN_CLASS, operatorSubject } from '../auth/admin.js';
import { admitCaller } from '../auth/budget.js';
import { assertionRules } from '../auth/client/assertion-rules.js';
import { peekAssertionIssuer, verifyClientAssertion } from '../auth/client/private-key-jwt.js';
import { refuseWhileSkewed } from '../cluster/clock-skew.js';
import { adminAudience, Paths, type RequestInfo, type WritContext } from '../context.js';
import { invalidClient, invalidRequest, unsupportedGrantType } from '../errors.js';
import { type FormParams, single } from '../request/form.js';
import { signAccessToken } from '../tokens/access-token.js';

/**
 * `POST /admin/v1/token`: an operator trades a short-lived assertion signed with its key pair
 * (RFC 7523 jwt-bearer grant; `iss` = `sub` = operator name) for a short-lived admin token.
 * There is no static admin secret anywhere.
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
    if (!operator) throw invalidClient('operator authentication failed', { reason: 'unknown_operator' });
    const a = verifyClientAssertion(
      assertion,
      CLIENT_ASSERTION_TYPE_JWT_BEARER,
      operator.name,
      operator.verificationKeys,
      assertionRules(ctx, Paths.adminToken),
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
    });
    await ctx.store.transaction(async (tx) => {
      if (!(await tx.consume(`operator:${operator.name}`, a.jti, a.replayUntil, now))) {
        throw invalidClient('operator assertion has already been used', { reason: 'replay' });
      }
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
      token_type: 'Bearer',
      expires_in: ctx.settings.admin.sessionTtl,
      scope: 'admin',
    };
  } catch (err) {
    throw await auditRefusal(ctx, 'admin_token', err, req, {
      client_id: name ? operatorSubject(name) : undefined,
    });
  }
}
