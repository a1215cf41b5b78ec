import { type IntrospectionResponse, type RefusalReason, WritError } from '@writ/sdk/wire';
import { auditRefusal } from '../audit/refusal.js';
import { authenticateClientOrOperator } from '../auth/client.js';
import { Paths, type RequestInfo, type WritContext } from '../context.js';
import { invalidRequest } from '../errors.js';
import { type FormParams, single } from '../request/form.js';
import { tokenFingerprint, verifyIssuedToken } from '../tokens/access-token.js';

/**
 * `POST /oauth2/introspect` (RFC 7662). Anything not active is exactly `{ "active": false }`. A token
 * is described only to those it concerns: its own client, a verifier that serves its audience (config
 * `serves`), or an operator; anyone else hears `{ "active": false }` (RFC 7662 §2.2 allows an answer
 * that depends on the caller), so a workload identity is no oracle for other workloads' tokens.
 */
export async function handleIntrospection(
  ctx: WritContext,
  params: FormParams,
  req: RequestInfo,
): Promise<IntrospectionResponse> {
  let caller: string;
  let token: string;
  try {
    caller = await authenticateClientOrOperator(ctx, params, req, Paths.introspect);
    const t = single(params, 'token', ctx.settings.limits.tokenBytes);
    if (t === undefined) throw invalidRequest('token is required', { reason: 'missing_parameter' });
    token = t;
  } catch (err) {
    throw await auditRefusal(ctx, 'introspection', err, req, { client_id: params.get('client_id')?.[0] });
  }
  let response: IntrospectionResponse = { active: false };
  // Audited with the answer: why a token is inactive, from the same set as refusals.
  let reason: RefusalReason | 'active' = 'active';
  let jti: string | undefined;
  try {
    const { claims, kid } = verifyIssuedToken(ctx, token);
    jti = claims.jti;
    const revokedBy = ctx.revocations.match({ ...claims, kid });
    if (!concerns(ctx, caller, claims)) reason = 'audience_not_served';
    else if (revokedBy) reason = `revoked_by_${revokedBy}`;
    else response = { ...claims, active: true, token_type: claims.cnf?.jkt ? 'DPoP' : 'Bearer' };
  } catch (err) {
    reason = (err instanceof WritError ? err.reason : undefined) ?? 'invalid';
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

/** Whether `caller` may hear about a token with these claims: its client, a verifier of its API, an operator. */
function concerns(ctx: WritContext, caller: string, claims: { client_id: string; aud: string }): boolean {
  return (
    caller.startsWith('operator:') || caller === claims.client_id || ctx.registry.serves(caller, claims.aud)
  );
}
