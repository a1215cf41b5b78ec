import { CLIENT_ASSERTION_TYPE_JWT_BEARER, GrantType, type TokenResponse } from '@writ/sdk/wire';
import { auditRefusal } from '../audit/refusal.js';
import { adminAudience, Paths, type RequestInfo, type WritContext } from '../context.js';
import { invalidClient, invalidRequest, OAuthError, unsupportedGrantType } from '../errors.js';
import { assertionRules } from '../oauth/assertion-rules.js';
import { peekAssertionIssuer, verifyClientAssertion } from '../oauth/client-auth/private-key-jwt.js';
import { type FormParams, single } from '../request/form.js';
import { signAccessToken, verifyAccessToken } from '../tokens/access-token.js';

/** Operators appear as `operator:<name>` in tokens and audit events. */
export const operatorSubject = (name: string): string => `operator:${name}`;
const ADMIN_CLASS = 'admin';

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
    if (single(params, 'grant_type', 256) !== GrantType.jwtBearer)
      throw unsupportedGrantType('use the jwt-bearer grant with an operator assertion');
    const assertion = single(params, 'assertion', ctx.settings.limits.tokenBytes);
    if (assertion === undefined) throw invalidRequest('assertion is required');
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

/** Verifies an admin bearer token: Writ's signature, admin audience and class, not revoked, operator still registered. */
export async function authenticateAdmin(
  ctx: WritContext,
  authorization: string | undefined,
): Promise<{ operator: string; jti: string }> {
  const m = /^Bearer ([A-Za-z0-9._~+/-]+=*)$/i.exec(authorization?.trim() ?? '');
  const challenge = (error: string) => ({
    'www-authenticate': `Bearer realm="writ-admin", error="${error}"`,
  });
  if (!m)
    throw new OAuthError('invalid_token', 'an admin bearer token is required', {
      headers: { 'www-authenticate': 'Bearer realm="writ-admin"' },
      detail: { reason: 'missing' },
    });
  let verified: ReturnType<typeof verifyAccessToken>;
  try {
    verified = verifyAccessToken(m[1]!, {
      keys: ctx.keys.verificationKeys(),
      issuer: ctx.settings.issuer,
      nowMs: ctx.clock.now(),
      leeway: 0,
      maxBytes: ctx.settings.limits.tokenBytes,
    });
  } catch (err) {
    const e = err as OAuthError;
    throw new OAuthError('invalid_token', e.message, {
      headers: challenge('invalid_token'),
      ...(e.detail ? { detail: e.detail } : {}),
    });
  }
  const { claims, kid } = verified;
  const name = claims.sub.startsWith('operator:') ? claims.sub.slice('operator:'.length) : undefined;
  if (
    claims.aud !== adminAudience(ctx.settings.issuer) ||
    claims.cls !== ADMIN_CLASS ||
    !name ||
    !ctx.registry.operator(name)
  ) {
    throw new OAuthError('invalid_token', 'not an admin token', {
      headers: challenge('invalid_token'),
      detail: { reason: 'not_admin' },
    });
  }
  if (ctx.revocations.match({ ...claims, kid })) {
    throw new OAuthError('invalid_token', 'token has been revoked', {
      headers: challenge('invalid_token'),
      detail: { reason: 'revoked' },
    });
  }
  return { operator: claims.sub, jti: claims.jti };
}
