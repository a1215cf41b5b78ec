import { createHash } from 'node:crypto';
import type { RefusalReason } from '@writ/sdk/wire';
import { decodeJwt, decodeProtectedHeader, errors, type JWTPayload, jwtVerify } from 'jose';
import { invalidGrant, OAuthError, temporarilyUnavailable } from '../errors.js';
import { JwksUnavailableError } from './jwks.js';
import type { CompiledIssuer } from './trust.js';
import type { TrustedIssuer } from './trusted-issuer.js';

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
  if (token.length > o.maxBytes)
    throw refuse('too_large', `it is longer than ${o.maxBytes} bytes (limits.token_bytes)`);
  if (!/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/.test(token))
    throw refuse('malformed', 'it is not a compact JWS (three base64url parts)');
  const fingerprint = createHash('sha256').update(token).digest('base64url');
  let header: ReturnType<typeof decodeProtectedHeader>;
  let unverified: JWTPayload;
  try {
    header = decodeProtectedHeader(token);
    unverified = decodeJwt(token);
  } catch {
    throw refuse('malformed', 'its header or claims cannot be read', { fingerprint });
  }
  const embedded = KEY_HEADERS.find((h) => h in header);
  if (embedded)
    throw refuse(
      'embedded_key',
      `its header carries ${embedded}, which is never trusted: the issuer keys come from its JWKS`,
      { fingerprint },
    );
  if (typeof header.typ === 'string' && TYP_REFUSED.has(header.typ.toLowerCase()))
    throw refuse('typ', `its typ is ${header.typ.toLowerCase()}, which is no identity token`, {
      fingerprint,
    });
  const iss = unverified.iss;
  if (typeof iss !== 'string') throw refuse('iss', 'iss is required', { fingerprint });
  const issuer = o.lookup(iss);
  if (!issuer)
    throw refuse(
      'untrusted_issuer',
      'its iss is not the issuer of any trusted issuer configured (issuers/)',
      {
        iss: iss.slice(0, 256),
        fingerprint,
      },
    );
  const spec = issuer.spec;
  const detail = { federation_issuer: spec.name, fingerprint };
  if (typeof header.alg !== 'string' || !spec.algorithms.includes(header.alg))
    throw refuse(
      'algorithm',
      `alg must be one of ${spec.algorithms.join(', ')} (${setting(spec, 'algorithms')})`,
      detail,
    );

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
      throw refuse(
        'iat_future',
        `its iat is ${Math.round(payload.iat - o.nowMs / 1000)}s ahead of the server clock (${setting(spec, 'clock_skew')} ${spec.clockSkew}s)`,
        detail,
      );
    return { issuer, claims: payload, fingerprint };
  } catch (err) {
    throw mapError(err, spec, unverified, o.nowMs / 1000, detail);
  }
}

/** Where a trusted issuer's setting lives, for descriptions: `issuers/<name>: <field>`. */
const setting = (spec: TrustedIssuer, field: string): string => `issuers/${spec.name}: ${field}`;

/** How far `t` (seconds) is from `now`, rounded, for descriptions. */
const apart = (t: unknown, now: number): number =>
  typeof t === 'number' ? Math.round(Math.abs(t - now)) : 0;

function mapError(
  err: unknown,
  spec: TrustedIssuer,
  claims: JWTPayload,
  now: number,
  detail: Record<string, unknown>,
): unknown {
  if (err instanceof OAuthError) return err;
  if (err instanceof JwksUnavailableError) {
    return temporarilyUnavailable(
      `the keys of issuer ${spec.name} cannot be fetched right now (its JWKS); retry later`,
      { reason: 'jwks_unavailable', ...detail },
    );
  }
  const skew = `${setting(spec, 'clock_skew')} ${spec.clockSkew}s`;
  if (err instanceof errors.JWTExpired) {
    return err.claim === 'iat'
      ? refuse(
          'too_old',
          `its iat is ${apart(claims.iat, now)}s ago; issuer ${spec.name} takes tokens at most ${spec.maxTokenAge}s old (${setting(spec, 'max_token_age')}): get a fresh one`,
          detail,
        )
      : refuse('expired', `it expired ${apart(claims.exp, now)}s ago (${skew}): get a fresh one`, detail);
  }
  if (err instanceof errors.JWTClaimValidationFailed) {
    const claim = err.claim;
    const d = { ...detail, claim };
    if (err.reason === 'missing') return refuse(CLAIM_REASON[claim] ?? 'claims', `${claim} is required`, d);
    if (err.reason === 'invalid')
      return refuse(
        CLAIM_REASON[claim] ?? 'claims',
        `${claim} must be a number of seconds since the epoch`,
        d,
      );
    switch (claim) {
      case 'aud':
        return refuse(
          'audience',
          `its aud is none of ${spec.audiences.join(', ')} (${setting(spec, 'audience')}): ask the issuer for a token with that audience`,
          d,
        );
      case 'nbf':
        return refuse(
          'not_yet_valid',
          `it is not valid yet: nbf is ${apart(claims.nbf, now)}s ahead (${skew})`,
          d,
        );
      case 'iat':
        return refuse(
          'iat_future',
          `its iat is ${apart(claims.iat, now)}s ahead of the server clock (${skew})`,
          d,
        );
      case 'iss':
        return refuse('iss', `iss must be ${spec.issuer}`, d);
      default:
        return refuse('claims', `${claim} does not have the value required`, d);
    }
  }
  if (err instanceof errors.JWKSNoMatchingKey)
    return refuse('unknown_key', `no key of issuer ${spec.name} matches its kid and alg`, detail);
  if (err instanceof errors.JWKSMultipleMatchingKeys)
    return refuse(
      'ambiguous_key',
      `several keys of issuer ${spec.name} match: the token needs a kid`,
      detail,
    );
  if (err instanceof errors.JWSSignatureVerificationFailed)
    return refuse('signature', `its signature does not verify with the key of issuer ${spec.name}`, detail);
  if (err instanceof errors.JOSEAlgNotAllowed)
    return refuse(
      'algorithm',
      `alg must be one of ${spec.algorithms.join(', ')} (${setting(spec, 'algorithms')})`,
      detail,
    );
  if (err instanceof errors.JOSEError) return refuse('invalid', err.message.slice(0, 200), detail);
  return err;
}

/** The reason of a claim that is missing or not a number. */
const CLAIM_REASON: Record<string, RefusalReason> = {
  exp: 'exp',
  iat: 'iat',
  nbf: 'not_yet_valid',
  iss: 'iss',
  aud: 'audience',
};
