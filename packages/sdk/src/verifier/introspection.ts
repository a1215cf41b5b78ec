import type { AccessTokenClaims } from '../wire/claims.js';
import { RequestRefusal } from './request.js';

export interface IntrospectionOptions {
  issuer: string;
  /** This API's audience: an active token for anything else is refused all the same. */
  audience: string;
  fetch: typeof fetch;
  /** The verifier's own client authentication (form parameters). */
  clientAuth: () => Record<string, string>;
}

/**
 * Asks the issuer about a token (RFC 7662), for a verifier whose revocation state is stale and that
 * was told to introspect rather than refuse. Anything but an active token for this audience is
 * refused, an error answer from the issuer included (fail closed).
 */
export function createIntrospection(o: IntrospectionOptions): (token: string) => Promise<AccessTokenClaims> {
  const url = `${o.issuer}/oauth2/introspect`;
  return async (token) => {
    const res = await o.fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ ...o.clientAuth(), token }).toString(),
    });
    const body = (await res.json().catch(() => ({}))) as Record<string, unknown>;
    if (!res.ok || body['active'] !== true)
      throw new RequestRefusal('invalid_token', 'inactive', 'token is not active');
    if (body['aud'] !== o.audience)
      throw new RequestRefusal('invalid_token', 'aud', 'token is not for this audience');
    return body as unknown as AccessTokenClaims;
  };
}
