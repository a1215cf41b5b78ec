import { createHash } from 'node:crypto';
import type { RefusalReason } from '@writ/sdk/wire';
import { decodeJwt, decodeProtectedHeader, errors, type JWTPayload, jwtVerify } from 'jose';
import { invalidGrant, type OAuthError, temporarilyUnavailable } from '../errors.js';
import { JwksUnavailableError } from './jwks.js';
import type { CompiledIssuer } from './trust.js';

export interface VerifiedFederationToken {
  issuer: CompiledIssuer;
  claims: JWTPayload;
  /** SHA-256 (base64url) of the serialized token: what audit records instead of the token. */
  fingerprint: string;
}

/** Header parameters that carry or point at a key: never used, and a token carrying one is refused. */
const KEY_HEADERS = ['jwk', 'jku', 'x5u', 'x5c'] as const;
const TYP_REFUSED = new Set(['at+jwt', 'application/at+jwt', 'dpop+jwt', 'application/dpop+jwt']);

const refuse = (reason: RefusalReason, message: string, detail: Record<string, unknown> = {}): OAuthError =>
  invalidGrant(`the federation token is not acceptable: ${message}`, { reason, ...detail });

/**
 * Verifies a token from an outside issuer (RFC 7523 §3, RFC 8725): bounded size; no key in the header;
 * `iss` exactly a trusted issuer (an unknown issuer is refused before any key is fetched); an
 * asymmetric algorithm the issuer allows; signature by a key of that issuer's JWKS; `aud` includes a
 * configured audience; `exp` required and `nbf` honoured with the issuer's leeway; `iat` required and
 * not older than `max_token_age`. Every failure is `invalid_grant` with an audit `reason`, except a
 * JWKS that cannot be fetched (503: nothing can be checked, so nothing is issued).
 */
export async function verifyFederationToken(
  token: string,
  o: {
    lookup: (iss: string) => CompiledIssuer | undefined;
    nowMs: number;
    maxBytes: number;
  },
): Promise<VerifiedFederationToken> {
  if (token.length > o.maxBytes) throw refuse('too_large', `larger than ${o.maxBytes} bytes`);
  if (!/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/.test(token))
    throw refuse('malformed', 'not a compact JWS');
  const fingerprint = createHash('sha256').update(token).digest('base64url');
  let header: ReturnType<typeof decodeProtectedHeader>;
  let unverified: JWTPayload;
  try {
    header = decodeProtectedHeader(token);
    unverified = decodeJwt(token);
  } catch {
    throw refuse('malformed', 'the header or claims cannot be read', { fingerprint });
  }
  const embedded = KEY_HEADERS.find((h) => h in header);
  if (embedded) throw refuse('embedded_key', `a "${embedded}" header is never trusted`, { fingerprint });
  if (typeof header.typ === 'string' && TYP_REFUSED.has(header.typ.toLowerCase()))
    throw refuse('typ', `typ ${header.typ} is not an identity token`, { fingerprint });
  const iss = unverified.iss;
  if (typeof iss !== 'string') throw refuse('iss', 'iss is required', { fingerprint });
  const issuer = o.lookup(iss);
  if (!issuer)
    throw refuse('untrusted_issuer', 'the issuer is not trusted', { iss: iss.slice(0, 256), fingerprint });
  const spec = issuer.spec;
  const detail = { federation_issuer: spec.name, fingerprint };
  if (typeof header.alg !== 'string' || !spec.algorithms.includes(header.alg))
    throw refuse('algorithm', `alg must be one of ${spec.algorithms.join(', ')}`, detail);

  try {
    const { payload } = await jwtVerify(token, (h) => issuer.keys.resolve(h), {
      issuer: spec.issuer,
      audience: spec.audiences,
      algorithms: spec.algorithms,
      currentDate: new Date(o.nowMs),
      clockTolerance: spec.clockSkew,
      maxTokenAge: spec.maxTokenAge,
      requiredClaims: ['exp', 'iat'],
    });
    if (typeof payload.iat === 'number' && payload.iat > o.nowMs / 1000 + spec.clockSkew)
      throw refuse('iat_future', 'iat is in the future', detail);
    return { issuer, claims: payload, fingerprint };
  } catch (err) {
    throw mapError(err, detail);
  }
}

function mapError(err: unknown, detail: Record<string, unknown>): unknown {
  if (err instanceof JwksUnavailableError) {
    return temporarilyUnavailable('the issuer keys cannot be fetched right now; retry later', {
      reason: 'jwks_unavailable',
      ...detail,
    });
  }
  if (err instanceof errors.JWTExpired) {
    return err.claim === 'iat'
      ? refuse('too_old', 'iat is older than the issuer max_token_age', detail)
      : refuse('expired', 'the token has expired', detail);
  }
  if (err instanceof errors.JWTClaimValidationFailed) {
    const reasons: Record<string, RefusalReason> = {
      nbf: 'not_yet_valid',
      aud: 'audience',
      iss: 'iss',
      iat: 'iat',
      exp: 'exp',
    };
    return refuse(reasons[err.claim] ?? 'claims', err.message, { ...detail, claim: err.claim });
  }
  if (err instanceof errors.JWKSNoMatchingKey)
    return refuse('unknown_key', 'no key of the issuer matches', detail);
  if (err instanceof errors.JWKSMultipleMatchingKeys)
    return refuse('ambiguous_key', 'several keys match', detail);
  if (err instanceof errors.JWSSignatureVerificationFailed)
    return refuse('signature', 'bad signature', detail);
  if (err instanceof errors.JOSEAlgNotAllowed) return refuse('algorithm', 'algorithm not allowed', detail);
  if (err instanceof errors.JOSEError) return refuse('invalid', err.message.slice(0, 200), detail);
  return err;
}
