import { constants, type KeyObject, sign, verify } from 'node:crypto';
import { WritError } from '../wire/errors.js';
import { decodeBase64url, encodeBase64url } from './base64url.js';
import { isPlainObject, parseBoundedJson } from './json.js';
import type { VerificationKey, VerifyAlgorithm } from './jwk.js';

/**
 * Compact JWS (RFC 7515) on node:crypto KeyObjects: the hot path of issuance and verification.
 * Only asymmetric algorithms exist here; `none` and HMAC cannot be expressed (RFC 8725 §3.1, §3.2).
 */

/** Why a compact JWS was refused. */
export type JwsReason = 'malformed' | 'too_large' | 'alg_not_allowed' | 'crit' | 'no_key' | 'bad_signature';

/** A refused JWS: `code` is `invalid_jws`, `reason` the check that failed. */
export class JwsError extends WritError {
  declare readonly code: 'invalid_jws';
  declare readonly reason: JwsReason;
  constructor(reason: JwsReason, message: string) {
    // A refused input, not a fault: no stack trace (it points inside this module, and capturing it was
    // a large share of refusing a garbage JWS, which floods of them make a hot path).
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    try {
      super('invalid_jws', reason, message);
    } finally {
      Error.stackTraceLimit = limit;
    }
    this.name = 'JwsError';
  }
}

export interface JwsHeader {
  alg: string;
  kid?: string;
  typ?: string;
  [member: string]: unknown;
}

export interface DecodedJws {
  header: JwsHeader;
  payload: Buffer;
  signingInput: string;
  signature: Buffer;
}

const SIGNATURE_BYTES: Record<string, number> = { ES256: 64, ES384: 96, EdDSA: 64 };
const MAX_HEADER_CHARS = 2048;

/**
 * Splits and decodes a compact JWS without trusting anything in it. With `known` (a protected header
 * the caller decoded before, and its encoded form), a token whose header is exactly that text gets the
 * decoded one back without decoding it again; the other parts are decoded as always.
 */
export function decodeCompactJws(
  token: string,
  maxBytes: number,
  known?: { encoded: string; header: JwsHeader },
): DecodedJws {
  if (typeof token !== 'string' || token.length === 0) throw new JwsError('malformed', 'empty token');
  if (token.length > maxBytes) throw new JwsError('too_large', `token is longer than ${maxBytes} bytes`);
  const first = token.indexOf('.');
  const second = first < 0 ? -1 : token.indexOf('.', first + 1);
  if (first <= 0 || second < 0 || token.indexOf('.', second + 1) !== -1) {
    throw new JwsError('malformed', 'not a compact JWS (three dot-separated parts expected)');
  }
  const h = token.slice(0, first);
  const p = token.slice(first + 1, second);
  const s = token.slice(second + 1);
  if (h.length > MAX_HEADER_CHARS) throw new JwsError('malformed', 'protected header is too large');
  if (known !== undefined && known.encoded === h) {
    const payload = decodeBase64url(p);
    const signature = decodeBase64url(s);
    if (!payload || !signature) throw new JwsError('malformed', 'a part is not base64url');
    if (signature.length === 0) throw new JwsError('malformed', 'signature is empty');
    return { header: known.header, payload, signingInput: token.slice(0, second), signature };
  }
  const headerBytes = decodeBase64url(h);
  const payload = decodeBase64url(p);
  const signature = decodeBase64url(s);
  if (!headerBytes || !payload || !signature) throw new JwsError('malformed', 'a part is not base64url');
  if (signature.length === 0) throw new JwsError('malformed', 'signature is empty');
  let header: unknown;
  try {
    header = parseBoundedJson(headerBytes.toString('utf8'), 4);
  } catch {
    throw new JwsError('malformed', 'protected header is not JSON');
  }
  if (!isPlainObject(header) || typeof header['alg'] !== 'string') {
    throw new JwsError('malformed', 'protected header has no "alg"');
  }
  return { header: header as JwsHeader, payload, signingInput: token.slice(0, second), signature };
}

/** Verifies one signature with one key for one algorithm; false for any mismatch, never throws. */
export function verifySignature(
  alg: VerifyAlgorithm,
  key: KeyObject,
  data: Buffer | string,
  sig: Buffer,
): boolean {
  const expected = SIGNATURE_BYTES[alg];
  if (expected !== undefined && sig.length !== expected) return false;
  const bytes = typeof data === 'string' ? Buffer.from(data) : data;
  try {
    switch (alg) {
      case 'ES256':
        return (
          key.asymmetricKeyType === 'ec' && verify('sha256', bytes, { key, dsaEncoding: 'ieee-p1363' }, sig)
        );
      case 'ES384':
        return (
          key.asymmetricKeyType === 'ec' && verify('sha384', bytes, { key, dsaEncoding: 'ieee-p1363' }, sig)
        );
      case 'EdDSA':
        return key.asymmetricKeyType === 'ed25519' && verify(null, bytes, key, sig);
      case 'PS256':
        return (
          key.asymmetricKeyType === 'rsa' &&
          verify('sha256', bytes, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }, sig)
        );
      case 'RS256':
        return (
          key.asymmetricKeyType === 'rsa' &&
          verify('sha256', bytes, { key, padding: constants.RSA_PKCS1_PADDING }, sig)
        );
    }
  } catch {
    return false;
  }
}

export interface VerifyJwsOptions {
  /** Algorithms accepted on this path (an allow-list; never taken from the token). */
  algorithms: readonly VerifyAlgorithm[];
  /** Keys the signer may have used. Header-supplied keys (`jwk`, `jku`, `x5u`, `x5c`) are never used. */
  keys: readonly VerificationKey[];
  maxBytes: number;
}

/**
 * Verifies a compact JWS against a fixed set of keys. Picks keys by `kid` when the header has one,
 * refuses `crit` (no extension is understood) and any algorithm outside the allow-list.
 */
export function verifyCompactJws(
  token: string,
  options: VerifyJwsOptions,
): DecodedJws & { key: VerificationKey } {
  const jws = decodeCompactJws(token, options.maxBytes);
  const alg = jws.header.alg;
  if (!(options.algorithms as readonly string[]).includes(alg)) {
    throw new JwsError('alg_not_allowed', `algorithm ${JSON.stringify(alg).slice(0, 20)} is not allowed`);
  }
  if (jws.header['crit'] !== undefined) throw new JwsError('crit', 'no "crit" extension is supported');
  const kid = jws.header.kid;
  if (kid !== undefined && typeof kid !== 'string') throw new JwsError('malformed', '"kid" must be a string');
  const candidates = options.keys.filter(
    (k) =>
      k.algorithms.includes(alg as VerifyAlgorithm) &&
      (kid === undefined || k.kid === undefined || k.kid === kid),
  );
  if (candidates.length === 0) throw new JwsError('no_key', 'no registered key matches the token');
  for (const candidate of candidates) {
    if (verifySignature(alg as VerifyAlgorithm, candidate.key, jws.signingInput, jws.signature)) {
      return { ...jws, key: candidate };
    }
  }
  throw new JwsError('bad_signature', 'signature verification failed');
}

/** Signs a compact JWS. `encodedHeader` is precomputed by the caller (it is the same for every token of a key). */
export function signCompactJws(
  alg: 'ES256' | 'EdDSA',
  key: KeyObject,
  encodedHeader: string,
  payload: string,
): string {
  const input = `${encodedHeader}.${encodeBase64url(payload)}`;
  const sig =
    alg === 'ES256'
      ? sign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' })
      : sign(null, Buffer.from(input), key);
  return `${input}.${sig.toString('base64url')}`;
}

/** Parses a verified JWS payload as a JWT claims set (a JSON object, bounded depth). */
export function parseClaims(payload: Buffer, maxDepth = 8): Record<string, unknown> {
  let claims: unknown;
  try {
    claims = parseBoundedJson(payload.toString('utf8'), maxDepth);
  } catch {
    throw new JwsError('malformed', 'payload is not a JSON object');
  }
  if (!isPlainObject(claims)) throw new JwsError('malformed', 'payload is not a JSON object');
  return claims;
}
