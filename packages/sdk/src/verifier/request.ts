import { DpopError } from '../dpop/errors.js';
import { type DpopVerifyOptions, verifyDpopProof } from '../dpop/verify-proof.js';
import type { VerifyAlgorithm } from '../jose/jwk.js';
import type { AccessTokenClaims } from '../wire/claims.js';
import { type ClientCertificateInput, checkCertificateBinding } from './certificate-binding.js';
import { RequestRefusal } from './request-refusal.js';

export { RequestRefusal, safeDescription } from './request-refusal.js';

/** The parts of an HTTP request a resource server checks. */
export interface PresentedRequest {
  authorization: string | undefined;
  /** Every DPoP header value. */
  dpop: readonly string[];
  method: string;
  url: string;
  /** The client certificate of the TLS connection, for certificate-bound tokens (RFC 8705 §3). */
  clientCertificate?: ClientCertificateInput | undefined;
}

/** Splits `Authorization: DPoP <token>` or `Bearer <token>`; refuses anything else. */
export function presentedToken(authorization: string | undefined): {
  scheme: 'DPoP' | 'Bearer';
  token: string;
} {
  const m = /^(DPoP|Bearer) ([A-Za-z0-9\-._~+/]+=*)$/i.exec(authorization?.trim() ?? '');
  if (!m)
    throw new RequestRefusal(
      'invalid_request',
      'no_token',
      'an access token is required (Authorization: DPoP or Bearer)',
    );
  return { scheme: m[1]!.toLowerCase() === 'dpop' ? 'DPoP' : 'Bearer', token: m[2]! };
}

export interface BindingCheck {
  algorithms: readonly VerifyAlgorithm[];
  nowSeconds: number;
  iatWindow: number;
  /** What the caller calls `algorithms` and `iatWindow` in its configuration, for refusals. */
  settingNames?: DpopVerifyOptions['settingNames'];
  nonce?: (value: string | undefined) => boolean;
  /** The presented token's base64url SHA-256 when already known (see `DpopVerifyOptions`). */
  accessTokenSha256?: string;
  consumeJti: (key: string, expiresAtSeconds: number) => boolean | Promise<boolean>;
}

/**
 * Holder binding at the resource server (RFC 9449 §7): a token with `cnf.jkt` must come with the DPoP
 * scheme and a proof by that key over this request and this token; a DPoP-bound token sent as Bearer is
 * refused, and so is the DPoP scheme with an unbound token. A token with `cnf.x5t#S256` (RFC 8705 §3)
 * must come over a connection whose client certificate has that thumbprint.
 */
export async function checkHolderBinding(
  req: PresentedRequest,
  presented: { scheme: 'DPoP' | 'Bearer'; token: string },
  claims: Pick<AccessTokenClaims, 'cnf'>,
  c: BindingCheck,
): Promise<void> {
  const jkt = claims.cnf?.jkt;
  const x5t = claims.cnf?.['x5t#S256'];
  if (x5t !== undefined) checkCertificateBinding(x5t, req.clientCertificate);
  if (jkt === undefined) {
    if (presented.scheme === 'DPoP')
      throw new RequestRefusal(
        'invalid_token',
        'not_dpop_bound',
        'the token is not DPoP-bound (no cnf.jkt): send it with Authorization: Bearer',
      );
    return;
  }
  if (presented.scheme !== 'DPoP')
    throw new RequestRefusal(
      'invalid_token',
      'dpop_bound_as_bearer',
      'the token is DPoP-bound (cnf.jkt): send it with Authorization: DPoP and a proof by its key',
    );
  try {
    await verifyDpopProof({
      headerValues: req.dpop,
      method: req.method,
      url: req.url,
      algorithms: c.algorithms,
      nowSeconds: c.nowSeconds,
      iatWindow: c.iatWindow,
      ...(c.settingNames ? { settingNames: c.settingNames } : {}),
      accessToken: presented.token,
      ...(c.accessTokenSha256 !== undefined ? { accessTokenSha256: c.accessTokenSha256 } : {}),
      expectedJkt: jkt,
      consumeJti: c.consumeJti,
      ...(c.nonce ? { nonce: c.nonce } : {}),
    });
  } catch (err) {
    if (err instanceof DpopError) throw new RequestRefusal(err.code, `dpop_${err.check}`, err.message);
    throw err;
  }
}
