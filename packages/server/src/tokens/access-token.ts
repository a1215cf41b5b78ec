import { hash, randomBytes } from 'node:crypto';
import { TokenError, verifyAccessTokenJwt } from '@writ/sdk/verifier';
import { ACCESS_TOKEN_TYP, type AccessTokenClaims } from '@writ/sdk/wire';
import { seconds } from '../clock.js';
import type { Settings } from '../config/settings.js';
import type { WritContext } from '../context.js';
import { invalidToken } from '../errors.js';
import type { VerificationKey } from '../jose/jwk.js';
import type { KeyManager } from '../keys/key-manager.js';

let entropy = Buffer.alloc(0);
let entropyOffset = 0;

/**
 * A fresh token id, base64url of 16 bytes: the issuance time in milliseconds (6 bytes, so ids sort by
 * time and land on the last pages of the store's indexes) and 80 random bits (drawn from a pooled
 * buffer of the CSPRNG; a collision needs ~2^40 ids in the same millisecond).
 */
export function newTokenId(nowMs: number = Date.now()): string {
  if (entropyOffset + 10 > entropy.length) {
    entropy = randomBytes(4096);
    entropyOffset = 0;
  }
  const id = Buffer.allocUnsafe(16);
  id.writeUIntBE(Math.max(0, Math.floor(nowMs)) % 2 ** 48, 0, 6);
  entropy.copy(id, 6, entropyOffset, entropyOffset + 10);
  entropy.fill(0, entropyOffset, entropyOffset + 10);
  entropyOffset += 10;
  return id.toString('base64url');
}

/**
 * SHA-256 fingerprint of a serialized token: what logs and the audit record instead of the token. One
 * call (`crypto.hash`): no Hash object per token.
 */
export const tokenFingerprint = (token: string): string => hash('sha256', token, 'base64url');

export interface AccessTokenRequest {
  issuer: string;
  subject: string;
  clientId: string;
  audience: string;
  scope: string;
  tokenClass: string;
  ttl: number;
  nowMs: number;
  tid?: string;
  /** RFC 7638 thumbprint of the holder's DPoP key (`cnf.jkt`). */
  jkt?: string;
  /** RFC 8705 §3.1 SHA-256 thumbprint of the holder's client certificate (`cnf.x5t#S256`). */
  x5t?: string;
  /** RFC 8693 §4.1 delegation chain. */
  act?: AccessTokenClaims['act'];
  /** Token exchange: the `jti`s of the tokens this one descends from, the first one first. */
  ajti?: string[];
}

/** Builds and signs an RFC 9068 access token (`typ: at+jwt`). */
export function signAccessToken(
  keys: KeyManager,
  r: AccessTokenRequest,
): { token: string; claims: AccessTokenClaims; kid: string } {
  const iat = seconds(r.nowMs);
  const claims: AccessTokenClaims = {
    iss: r.issuer,
    sub: r.subject,
    aud: r.audience,
    client_id: r.clientId,
    scope: r.scope,
    iat,
    nbf: iat,
    exp: iat + r.ttl,
    jti: newTokenId(r.nowMs),
    cls: r.tokenClass,
  };
  if (r.tid !== undefined) claims.tid = r.tid;
  if (r.jkt !== undefined || r.x5t !== undefined)
    claims.cnf = {
      ...(r.jkt !== undefined ? { jkt: r.jkt } : {}),
      ...(r.x5t !== undefined ? { 'x5t#S256': r.x5t } : {}),
    };
  if (r.act !== undefined) claims.act = r.act;
  if (r.ajti !== undefined && r.ajti.length > 0) claims.ajti = r.ajti;
  const { jws, kid } = keys.signJwt(ACCESS_TOKEN_TYP, claims as unknown as Record<string, unknown>);
  return { token: jws, claims, kid };
}

export interface VerifiedAccessToken {
  claims: AccessTokenClaims;
  kid: string;
}

/**
 * Leeway on `exp`, in seconds, wherever Writ verifies a token it issued: none. Writ checks its own
 * tokens against its own clock, so a token is never accepted past its `exp`, at any endpoint: the
 * resource endpoints, introspection, revocation, token exchange and the admin API agree on which tokens
 * are live.
 */
export const TOKEN_LEEWAY = 0;

/**
 * Leeway on `nbf` (which is the token's `iat`), in seconds, wherever Writ verifies a token it issued: the
 * skew a cluster allows between its nodes' clocks (`cluster.max_clock_skew`), so a token one node issued
 * is live on every other node at once, even one whose clock is behind. Taking a token a moment before
 * its `nbf` gives nothing away: it has been issued already.
 */
export function notBeforeLeeway(settings: Pick<Settings, 'cluster'>): number {
  return settings.cluster.maxClockSkew;
}

/**
 * Verifies a Writ access token (the SDK's check, with `TOKEN_LEEWAY` and `notBeforeLeeway`) and maps refusals to
 * `invalid_token`. Audience and revocation are the caller's to check.
 */
export function verifyAccessToken(
  token: string,
  opts: {
    keys: readonly VerificationKey[];
    issuer: string;
    nowMs: number;
    maxBytes: number;
    notBeforeLeeway: number;
  },
): VerifiedAccessToken {
  try {
    return verifyAccessTokenJwt(token, {
      keys: opts.keys,
      issuer: opts.issuer,
      nowSeconds: seconds(opts.nowMs),
      leeway: TOKEN_LEEWAY,
      notBeforeLeeway: opts.notBeforeLeeway,
      maxBytes: opts.maxBytes,
    });
  } catch (err) {
    if (err instanceof TokenError) {
      throw invalidToken(err.reason === 'expired' ? 'token has expired' : 'token is invalid', {
        reason: err.reason,
      });
    }
    throw err;
  }
}

/**
 * Verifies a token this Writ issued, handed to it as data (introspection, revocation, the subject of a
 * token exchange): `verifyAccessToken` with this node's keys, issuer, clock and token size limit.
 */
export function verifyIssuedToken(
  ctx: Pick<WritContext, 'keys' | 'settings' | 'clock'>,
  token: string,
): VerifiedAccessToken {
  return verifyAccessToken(token, {
    keys: ctx.keys.verificationKeys(),
    issuer: ctx.settings.issuer,
    nowMs: ctx.clock.now(),
    maxBytes: ctx.settings.limits.tokenBytes,
    notBeforeLeeway: notBeforeLeeway(ctx.settings),
  });
}
