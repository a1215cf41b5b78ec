import { auditRefusal } from '../audit/refusal.js';
import { authenticateClientOrOperator } from '../auth/client.js';
import { Paths, type RequestInfo, type WritContext } from '../context.js';
import { invalidRequest, OAuthError } from '../errors.js';
import { type FormParams, single } from '../request/form.js';
import { revoke } from '../revocation/revoke.js';
import { verifyIssuedToken } from '../tokens/access-token.js';

/**
 * `POST /oauth2/revoke` (RFC 7009). A client revokes a token issued to it; invalid or expired tokens
 * are answered with 200 as the RFC requires. Operators may revoke any token.
 */
export async function handleRevocation(
  ctx: WritContext,
  params: FormParams,
  req: RequestInfo,
): Promise<void> {
  try {
    const caller = await authenticateClientOrOperator(ctx, params, req, Paths.revoke);
    const token = single(params, 'token', ctx.settings.limits.tokenBytes);
    if (token === undefined) throw invalidRequest('token is required', { reason: 'missing_parameter' });
    let claims: ReturnType<typeof verifyIssuedToken>['claims'];
    try {
      ({ claims } = verifyIssuedToken(ctx, token));
    } catch {
      return;
    }
    if (claims.client_id !== caller && !caller.startsWith('operator:')) {
      throw new OAuthError('unauthorized_client', 'the token was not issued to this client', {
        detail: { reason: 'not_holder' },
      });
    }
    await revoke(ctx, {
      kind: 'jti',
      value: claims.jti,
      issuedBefore: null,
      reason: 'RFC 7009 revocation',
      actor: caller,
    });
  } catch (err) {
    throw await auditRefusal(ctx, 'revocation', err, req, { client_id: params.get('client_id')?.[0] });
  }
}
