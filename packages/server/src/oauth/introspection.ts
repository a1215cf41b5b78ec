import type { IntrospectionResponse } from '@writ/sdk/wire';
import { authenticateAdmin } from '../admin/admin-auth.js';
import { auditRefusal } from '../audit/refusal.js';
import { Paths, type RequestInfo, type WritContext } from '../context.js';
import { invalidRequest, OAuthError } from '../errors.js';
import { type FormParams, single } from '../request/form.js';
import { tokenFingerprint, verifyAccessToken } from '../tokens/access-token.js';
import { assertionRules } from './assertion-rules.js';
import { authenticateClient } from './client-auth/authenticate.js';
import { certificateInput } from './client-auth/tls-client-auth.js';

/**
 * Authenticates the caller of introspection or revocation: a workload (client authentication, its
 * assertion `jti` consumed at once) or an operator holding an admin token.
 */
export async function authenticateCaller(
  ctx: WritContext,
  params: FormParams,
  req: RequestInfo,
  endpoint: string,
): Promise<string> {
  if (req.authorization?.toLowerCase().startsWith('bearer ')) {
    return (await authenticateAdmin(ctx, req.authorization)).operator;
  }
  const client = authenticateClient(
    params,
    req.authorization,
    ctx.registry,
    assertionRules(ctx, endpoint),
    certificateInput(ctx, req),
  );
  if (client.replay) {
    const fresh = await ctx.store.consume(
      `assertion:${client.workload.id}`,
      client.replay.jti,
      client.replay.until,
      ctx.clock.now(),
    );
    if (!fresh)
      throw new OAuthError('invalid_client', 'client assertion has already been used', {
        detail: { reason: 'replay' },
      });
  }
  return client.workload.id;
}

/** `POST /oauth2/introspect` (RFC 7662). Anything not active is exactly `{ "active": false }`. */
export async function handleIntrospection(
  ctx: WritContext,
  params: FormParams,
  req: RequestInfo,
): Promise<IntrospectionResponse> {
  let caller: string;
  let token: string;
  try {
    caller = await authenticateCaller(ctx, params, req, Paths.introspect);
    const t = single(params, 'token', ctx.settings.limits.tokenBytes);
    if (t === undefined) throw invalidRequest('token is required');
    token = t;
  } catch (err) {
    throw await auditRefusal(ctx, 'introspection', err, req, { client_id: params.get('client_id')?.[0] });
  }
  let response: IntrospectionResponse = { active: false };
  let reason = 'active';
  let jti: string | undefined;
  try {
    const { claims, kid } = verifyAccessToken(token, {
      keys: ctx.keys.verificationKeys(),
      issuer: ctx.settings.issuer,
      nowMs: ctx.clock.now(),
      leeway: 0,
      maxBytes: ctx.settings.limits.tokenBytes,
    });
    jti = claims.jti;
    const revokedBy = ctx.revocations.match({ ...claims, kid });
    if (revokedBy) reason = `revoked_by_${revokedBy}`;
    else response = { ...claims, active: true, token_type: claims.cnf?.jkt ? 'DPoP' : 'Bearer' };
  } catch (err) {
    reason = err instanceof OAuthError ? String(err.detail?.['reason'] ?? err.code) : 'invalid';
  }
  await ctx.audit.append({
    type: 'token.introspected',
    outcome: 'success',
    actor: caller,
    jti,
    data: { active: response.active, reason, fingerprint: tokenFingerprint(token), ip: req.ip },
  });
  return response;
}
