import type { RefusalReason } from '@writ/sdk/wire';
import { CLIENT_ASSERTION_TYPE_JWT_BEARER } from '@writ/sdk/wire';
import { seconds } from '../../clock.js';
import { invalidClient, invalidRequest } from '../../errors.js';
import type { VerificationKey, VerifyAlgorithm } from '../../jose/jwk.js';
import { JwsError, parseClaims, verifyCompactJws } from '../../jose/jws.js';
import { unverifiedString } from '../unverified-claim.js';

/** What the caller of `verifyClientAssertion` must supply: where the assertion was sent and the rules. */
export interface AssertionRules {
  /** `aud` must be one of these (the issuer identifier or the endpoint URL). */
  audiences: readonly string[];
  algorithms: readonly VerifyAlgorithm[];
  maxLifetime: number;
  clockSkew: number;
  maxBytes: number;
  nowMs: number;
}

export interface VerifiedAssertion {
  clientId: string;
  jti: string;
  /** Milliseconds: until when the `jti` must be remembered. */
  replayUntil: number;
  keyThumbprint: string;
}

const TYP_REFUSED = new Set(['at+jwt', 'dpop+jwt', 'application/at+jwt', 'application/dpop+jwt']);

/** Reads `sub` without verifying anything, to find which client's keys to try. */
export function peekAssertionIssuer(assertion: string): string | undefined {
  return unverifiedString(assertion, 'sub');
}

/**
 * RFC 7523 §3 client assertion checks, in the order that reveals the least: signature first (by a key
 * registered for the client), then `iss` = `sub` = client, `aud`, `exp` (at most `maxLifetime` ahead),
 * `nbf`, `iat` sanity and `jti` presence. Replay is checked by the caller against the store.
 */
export function verifyClientAssertion(
  assertion: string,
  assertionType: string | undefined,
  clientId: string,
  keys: readonly VerificationKey[],
  rules: AssertionRules,
): VerifiedAssertion {
  if (assertionType !== CLIENT_ASSERTION_TYPE_JWT_BEARER) {
    throw invalidRequest(
      'client_assertion_type must be urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
      { reason: 'assertion_type' },
    );
  }
  let verified: ReturnType<typeof verifyCompactJws>;
  try {
    verified = verifyCompactJws(assertion, { algorithms: rules.algorithms, keys, maxBytes: rules.maxBytes });
  } catch (err) {
    if (err instanceof JwsError)
      throw invalidClient('client assertion is invalid', { reason: err.reason, message: err.message });
    throw err;
  }
  const typ = verified.header.typ;
  if (typeof typ === 'string' && TYP_REFUSED.has(typ.toLowerCase())) {
    throw invalidClient('client assertion is invalid', {
      reason: 'typ',
      message: `typ ${typ} is not a client assertion`,
    });
  }
  let claims: Record<string, unknown>;
  try {
    claims = parseClaims(verified.payload);
  } catch {
    throw invalidClient('client assertion is invalid', {
      reason: 'malformed',
      message: 'claims are not a JSON object',
    });
  }
  const fail = (reason: RefusalReason, message: string) =>
    invalidClient('client assertion is invalid', { reason, message });
  const now = seconds(rules.nowMs);
  const skew = rules.clockSkew;
  if (claims['iss'] !== clientId || claims['sub'] !== clientId)
    throw fail('iss_sub', 'iss and sub must both be the client_id');
  const aud = claims['aud'];
  const auds = typeof aud === 'string' ? [aud] : Array.isArray(aud) ? aud : [];
  if (auds.length !== 1 || !rules.audiences.includes(auds[0] as string)) {
    throw fail('aud', 'aud must be the issuer identifier or the endpoint URL');
  }
  const exp = claims['exp'];
  if (typeof exp !== 'number' || !Number.isFinite(exp)) throw fail('exp', 'exp is required');
  if (exp <= now - skew) throw fail('expired', 'assertion has expired');
  if (exp > now + rules.maxLifetime + skew)
    throw fail('exp_too_far', `exp is more than ${rules.maxLifetime}s ahead`);
  const nbf = claims['nbf'];
  if (nbf !== undefined && (typeof nbf !== 'number' || nbf > now + skew))
    throw fail('nbf', 'assertion is not yet valid');
  const iat = claims['iat'];
  if (iat !== undefined) {
    if (typeof iat !== 'number' || !Number.isFinite(iat)) throw fail('iat', 'iat must be a number');
    if (iat > now + skew) throw fail('iat_future', 'iat is in the future');
    if (iat < now - rules.maxLifetime - skew) throw fail('iat_old', 'assertion is too old');
  }
  const jti = claims['jti'];
  if (typeof jti !== 'string' || jti.length === 0 || jti.length > 256)
    throw fail('jti', 'jti is required (at most 256 characters)');
  return { clientId, jti, replayUntil: (exp + skew) * 1000, keyThumbprint: verified.key.thumbprint };
}
