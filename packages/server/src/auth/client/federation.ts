import { CLIENT_ASSERTION_TYPE_JWT_BEARER } from '@writ/sdk/wire';
import type { WritContext } from '../../context.js';
import { invalidClient, invalidRequest, OAuthError } from '../../errors.js';
import { attestFederatedToken, type FederatedIdentity } from '../../federation/attest.js';
import { type FormParams, single } from '../../request/form.js';
import { unverifiedString } from '../unverified-claim.js';

/**
 * Client authentication with a platform token (workload federation):
 * `client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer` and a
 * `client_assertion` whose `iss` is a trusted issuer (a `private_key_jwt` assertion's `iss` is the
 * workload's SPIFFE ID, so the two never mix up). Verified by `attestFederatedToken` exactly as at the
 * token endpoint, but the first-holder binding is neither consulted nor consumed: these calls carry no
 * DPoP key, and binding a token here would lock the workload out of its own token request. Undefined
 * when the request uses another method.
 */
export async function authenticateFederatedClient(
  ctx: WritContext,
  params: FormParams,
  authorization: string | undefined,
): Promise<FederatedIdentity | undefined> {
  const assertion = single(params, 'client_assertion', ctx.settings.limits.tokenBytes);
  if (assertion === undefined) return undefined;
  const iss = unverifiedString(assertion, 'iss');
  if (iss === undefined) return undefined;
  const trusted = ctx.federation.issuer(ctx.registry.issuers(), iss) !== undefined;
  if (!trusted && iss.startsWith('spiffe://')) return undefined;
  if (params.has('client_secret') || authorization !== undefined)
    throw invalidRequest(
      'use exactly one client authentication method: a federation token as client_assertion, and no client_secret or Authorization header',
      { reason: 'multiple_client_auth' },
    );
  if (single(params, 'client_assertion_type', 256) !== CLIENT_ASSERTION_TYPE_JWT_BEARER)
    throw invalidClient(`client_assertion_type must be ${CLIENT_ASSERTION_TYPE_JWT_BEARER} (RFC 7523 §2.2)`, {
      reason: 'assertion_type',
    });
  let identity: FederatedIdentity;
  try {
    identity = await attestFederatedToken(ctx, assertion);
  } catch (err) {
    // The token is the client's credential here: a refused one is a failed client authentication.
    if (err instanceof OAuthError && err.code === 'invalid_grant')
      throw new OAuthError('invalid_client', err.message, {
        detail: { ...err.detail, auth_method: 'federation' },
      });
    throw err;
  }
  const clientId = single(params, 'client_id', 2048);
  if (clientId !== undefined && clientId !== identity.workload.id)
    throw invalidClient(
      `client_id is not ${identity.workload.id}, the workload the federation token maps to`,
      {
        reason: 'client_id_mismatch',
        federation_issuer: identity.issuer,
        fingerprint: identity.fingerprint,
      },
    );
  return identity;
}
