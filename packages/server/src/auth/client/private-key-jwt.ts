import type { RefusalReason } from '@writ/sdk/wire';
import { CLIENT_ASSERTION_TYPE_JWT_BEARER } from '@writ/sdk/wire';
import { seconds } from '../../clock.js';
import { invalidClient, invalidRequest, type OAuthError } from '../../errors.js';
import type { VerificationKey, VerifyAlgorithm } from '../../jose/jwk.js';
import { JwsError, parseClaims, verifyCompactJws } from '../../jose/jws.js';
import { unverifiedString } from '../unverified-claim.js';

/** What the caller of `verifyClientAssertion` must supply: where the assertion was sent and the rules. */
export interface AssertionRules {
  /** `aud` must be one of these (the issuer identifier, the token endpoint URL, this endpoint's URL). */
  audiences: readonly string[];
  algorithms: readonly VerifyAlgorithm[];
  maxLifetime: number;
  clockSkew: number;
  maxBytes: number;
  nowMs: number;
  /** Who signs the assertion, for descriptions: a workload (`client`, the default) or an `operator`. */
  party?: 'client' | 'operator';
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
 * The one answer to an assertion no registered key verifies, whether the client does not exist, has no
 * key with that `kid` or algorithm, or the signature is wrong: which of these it was is for the audit
 * log, so the answer cannot tell anyone which client ids exist (docs/errors.md, "What a description
 * tells").
 */
export function unverifiedAssertion(
  reason: RefusalReason,
  party: AssertionRules['party'] = 'client',
  detail: Record<string, unknown> = {},
): OAuthError {
  const names = party === 'operator' ? 'operator (its iss and sub)' : 'client_id';
  return invalidClient(
    `${party} authentication failed: the assertion is not signed by a key registered for this ${names}; check the ${party === 'operator' ? 'operator name' : 'client_id'}, the signing key and its kid`,
    { reason, ...detail },
  );
}

/**
 * RFC 7523 §3 client assertion checks, in the order that reveals the least. First what depends on the
 * request and on public settings alone (`client_assertion_type`, size, form, algorithm, `crit`); then
 * the signature, by a key registered for the client (`keys` undefined: no such client, refused exactly
 * as a wrong key is); then, with the signer proven, the claims: `iss` = `sub` = client, `aud`, `exp`
 * (at most `maxLifetime` ahead), `nbf`, `iat` sanity and `jti` presence. Replay is checked by the
 * caller against the store. Every refusal's description names the check, the value expected and the
 * setting that decides it.
 */
export function verifyClientAssertion(
  assertion: string,
  assertionType: string | undefined,
  clientId: string | undefined,
  keys: readonly VerificationKey[] | undefined,
  rules: AssertionRules,
): VerifiedAssertion {
  if (assertionType !== CLIENT_ASSERTION_TYPE_JWT_BEARER) {
    throw invalidRequest(
      `client_assertion_type must be ${CLIENT_ASSERTION_TYPE_JWT_BEARER} (RFC 7523 §2.2)`,
      { reason: 'assertion_type' },
    );
  }
  const party = rules.party ?? 'client';
  const unknown = party === 'operator' ? 'unknown_operator' : 'unknown_client';
  let verified: ReturnType<typeof verifyCompactJws>;
  try {
    verified = verifyCompactJws(assertion, {
      algorithms: rules.algorithms,
      keys: keys ?? [],
      maxBytes: rules.maxBytes,
    });
  } catch (err) {
    if (!(err instanceof JwsError)) throw err;
    const fail = (description: string) =>
      invalidClient(`client assertion ${description}`, { reason: err.reason, message: err.message });
    switch (err.reason) {
      case 'too_large':
        throw fail(`is longer than ${rules.maxBytes} bytes (limits.token_bytes)`);
      case 'malformed':
        throw fail(`is not a compact JWS: ${err.message}`);
      case 'alg_not_allowed':
        throw fail(`alg is not accepted: client_assertion.algorithms allows ${rules.algorithms.join(', ')}`);
      case 'crit':
        throw fail('has a crit header: no extension is supported');
      default:
        // The checks above hold for everyone; from here on the answer depends on the registry.
        if (clientId === undefined)
          throw invalidClient(
            party === 'operator'
              ? 'operator assertion names no operator: it has no sub; make iss and sub the operator name'
              : 'client assertion names no client: it has no sub and no client_id was sent; make iss and sub the client_id',
            { reason: 'iss_sub' },
          );
        throw unverifiedAssertion(keys === undefined ? unknown : err.reason, party, {
          message: err.message,
          client_id: clientId,
        });
    }
  }
  // Unreachable (no key, no verified signature), but the claims below are only checked against a client.
  if (clientId === undefined || keys === undefined) throw unverifiedAssertion(unknown, party);
  const typ = verified.header.typ;
  if (typeof typ === 'string' && TYP_REFUSED.has(typ.toLowerCase())) {
    throw invalidClient(
      `client assertion typ is ${typ.toLowerCase()}, which is another kind of token: use typ JWT or none`,
      { reason: 'typ' },
    );
  }
  let claims: Record<string, unknown>;
  try {
    claims = parseClaims(verified.payload);
  } catch {
    throw invalidClient('client assertion claims are not a JSON object', { reason: 'malformed' });
  }
  const fail = (reason: RefusalReason, description: string) =>
    invalidClient(`client assertion ${description}`, { reason });
  const now = seconds(rules.nowMs);
  const skew = rules.clockSkew;
  const leeway = `client_assertion.clock_skew allows ${skew}s`;
  const lifetime = `client_assertion.max_lifetime is ${rules.maxLifetime}s`;
  if (claims['iss'] !== clientId || claims['sub'] !== clientId)
    throw fail(
      'iss_sub',
      `iss and sub must both be the ${party === 'operator' ? 'operator name' : 'client_id'} ${clientId}`,
    );
  const aud = claims['aud'];
  const auds = typeof aud === 'string' ? [aud] : Array.isArray(aud) ? aud : [];
  if (auds.length !== 1 || !rules.audiences.includes(auds[0] as string)) {
    const expected = `one of ${rules.audiences.join(', ')} (RFC 7523 §3: the issuer or the token endpoint URL)`;
    throw fail(
      'aud',
      auds.length > 1
        ? `aud must be one value, ${expected}; it has ${auds.length}`
        : `aud must be ${expected}`,
    );
  }
  const exp = claims['exp'];
  if (typeof exp !== 'number' || !Number.isFinite(exp))
    throw fail('exp', 'exp is required: a number of seconds since the epoch');
  if (exp <= now - skew)
    throw fail(
      'expired',
      `expired ${Math.round(now - exp)}s ago (${leeway}); sign a new one for each request`,
    );
  if (exp > now + rules.maxLifetime + skew)
    throw fail(
      'exp_too_far',
      `exp is ${Math.round(exp - now)}s ahead; assertions may live at most ${rules.maxLifetime}s (client_assertion.max_lifetime, plus ${skew}s client_assertion.clock_skew): set exp nearer`,
    );
  const nbf = claims['nbf'];
  if (nbf !== undefined && (typeof nbf !== 'number' || !Number.isFinite(nbf)))
    throw fail('nbf', 'nbf must be a number of seconds since the epoch');
  if (typeof nbf === 'number' && nbf > now + skew)
    throw fail(
      'nbf',
      `is not valid yet: nbf is ${Math.round(nbf - now)}s ahead of the server clock (${leeway})`,
    );
  const iat = claims['iat'];
  if (iat !== undefined) {
    if (typeof iat !== 'number' || !Number.isFinite(iat))
      throw fail('iat', 'iat must be a number of seconds since the epoch');
    if (iat > now + skew)
      throw fail('iat_future', `iat is ${Math.round(iat - now)}s ahead of the server clock (${leeway})`);
    if (iat < now - rules.maxLifetime - skew)
      throw fail(
        'iat_old',
        `iat is ${Math.round(now - iat)}s ago; assertions may be at most ${rules.maxLifetime}s old (${lifetime}, plus ${skew}s client_assertion.clock_skew)`,
      );
  }
  const jti = claims['jti'];
  if (typeof jti !== 'string' || jti.length === 0 || jti.length > 256)
    throw fail('jti', 'jti is required: a unique string of at most 256 characters');
  return { clientId, jti, replayUntil: (exp + skew) * 1000, keyThumbprint: verified.key.thumbprint };
}
