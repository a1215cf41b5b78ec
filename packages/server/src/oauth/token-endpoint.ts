import type { TokenResponse } from '@writ/sdk/wire';
import { auditRefusal } from '../audit/refusal.js';
import { refuseWhileSkewed } from '../cluster/clock-skew.js';
import type { RequestInfo, WritContext } from '../context.js';
import { invalidRequest, unsupportedGrantType } from '../errors.js';
import { type FormParams, single } from '../request/form.js';
import { clientCredentials } from './grants/client-credentials.js';
import type { Grant } from './grants/grant.js';
import { jwtBearer } from './grants/jwt-bearer.js';
import { tokenExchange } from './grants/token-exchange.js';

/** Grants the token endpoint serves. Adding a grant is adding a module to this list. */
export const GRANTS: ReadonlyMap<string, Grant> = new Map(
  [clientCredentials, tokenExchange, jwtBearer].map((g) => [g.grantType, g]),
);

/** `POST /oauth2/token` (RFC 6749 §3.2). Every refusal is audited before it is returned. */
export async function handleTokenRequest(
  ctx: WritContext,
  params: FormParams,
  req: RequestInfo,
): Promise<TokenResponse> {
  let grantType: string | undefined;
  try {
    refuseWhileSkewed(ctx.clockSkew);
    grantType = single(params, 'grant_type', 256);
    if (grantType === undefined)
      throw invalidRequest('grant_type is required', { reason: 'missing_parameter' });
    const grant = GRANTS.get(grantType);
    if (!grant)
      throw unsupportedGrantType('this grant type is not supported', { reason: 'unsupported_grant_type' });
    return await grant.handle(ctx, params, req);
  } catch (err) {
    throw await auditRefusal(ctx, 'token', err, req, {
      grant_type: grantType?.slice(0, 128),
      client_id: claimedClient(params),
    });
  }
}

function claimedClient(params: FormParams): string | undefined {
  return params.get('client_id')?.[0]?.slice(0, 256);
}
