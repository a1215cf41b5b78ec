import type { VerificationKey } from '../jose/jwk.js';
import { JwsError, parseClaims, verifyCompactJws } from '../jose/jws.js';
import type { AccessTokenClaims } from '../wire/claims.js';
import { type RefusalReason, WritError } from '../wire/errors.js';

/** A refused access token: `code` is `invalid_token`, `reason` the check that failed. */
export class TokenError extends WritError {
  declare readonly code: 'invalid_token';
  declare readonly reason: RefusalReason;
  /**
   * The token's claims, set only when its signature verified and a later check refused it (`aud`,
   * `expired`, `nbf`): a verifier reports such a use under the token's `jti`. Never set for a token
   * whose signature did not verify: its claims are anyone's words.
   */
  readonly claims: AccessTokenClaims | undefined;
  constructor(reason: RefusalReason, message: string, claims?: AccessTokenClaims) {
    super('invalid_token', reason, message);
    this.name = 'TokenError';
    this.claims = claims;
  }
}

/** `typ` values of an access token (RFC 9068 §4): `at+jwt` with or without `application/`. */
const ACCEPTED_TYP = /^(application\/)?at\+jwt$/i;

export interface AccessTokenCheck {
  keys: readonly VerificationKey[];
  issuer: string;
  /** When set, `aud` must equal it (Writ tokens carry exactly one audience). */
  audience?: string;
  nowSeconds: number;
  /** Leeway on `exp` and `nbf`, seconds; keep it small. */
  leeway: number;
  /** Leeway on `nbf` alone, seconds, when it differs from `leeway` (clocks of the issuer's nodes). */
  notBeforeLeeway?: number;
  maxBytes: number;
}

/**
 * Verifies a Writ access token (RFC 9068, RFC 8725): signature by one of `keys` with ES256 or EdDSA,
 * `typ: at+jwt`, `iss`, optional `aud`, `exp`/`nbf` with bounded leeway and the claim shapes Writ issues.
 * Revocation and holder binding are the caller's next checks.
 */
export function verifyAccessTokenJwt(
  token: string,
  c: AccessTokenCheck,
): { claims: AccessTokenClaims; kid: string; key: VerificationKey } {
  let jws: ReturnType<typeof verifyCompactJws>;
  try {
    jws = verifyCompactJws(token, { algorithms: ['ES256', 'EdDSA'], keys: c.keys, maxBytes: c.maxBytes });
  } catch (err) {
    if (err instanceof JwsError) throw new TokenError(err.reason, 'token is invalid');
    throw err;
  }
  // RFC 9068 §4: "at+jwt" or "application/at+jwt", compared case-insensitively as media types are.
  const typ = jws.header.typ;
  if (typeof typ !== 'string' || !ACCEPTED_TYP.test(typ))
    throw new TokenError('typ', 'token is not an access token (typ)');
  let claims: Record<string, unknown>;
  try {
    claims = parseClaims(jws.payload);
  } catch {
    throw new TokenError('malformed', 'token claims are not a JSON object');
  }
  if (claims['iss'] !== c.issuer) throw new TokenError('iss', 'token issuer is not trusted');
  for (const k of ['sub', 'aud', 'client_id', 'scope', 'jti', 'cls'] as const) {
    if (typeof claims[k] !== 'string')
      throw new TokenError(`claim_${k}`, `token claim ${k} is missing or malformed`);
  }
  for (const k of ['iat', 'nbf', 'exp'] as const) {
    if (typeof claims[k] !== 'number' || !Number.isFinite(claims[k]))
      throw new TokenError(`claim_${k}`, `token claim ${k} is missing or malformed`);
  }
  const cnf = claims['cnf'];
  if (cnf !== undefined && (typeof cnf !== 'object' || cnf === null || Array.isArray(cnf)))
    throw new TokenError('claim_cnf', 'token cnf is malformed');
  // Revocation matches on these: a token whose lineage cannot be read cannot be checked, so it fails.
  const ajti = claims['ajti'];
  if (ajti !== undefined && (!Array.isArray(ajti) || !ajti.every((j) => typeof j === 'string')))
    throw new TokenError('claim_ajti', 'token ajti is malformed');
  // From here on the claims are signed and of the shapes Writ issues: a refusal carries them.
  const verified = claims as unknown as AccessTokenClaims;
  if (c.audience !== undefined && verified.aud !== c.audience)
    throw new TokenError('aud', 'token is not for this audience', verified);
  if (verified.exp <= c.nowSeconds - c.leeway) throw new TokenError('expired', 'token has expired', verified);
  if (verified.nbf > c.nowSeconds + (c.notBeforeLeeway ?? c.leeway))
    throw new TokenError('nbf', 'token is not yet valid', verified);
  return { claims: verified, kid: jws.key.kid ?? '', key: jws.key };
}
