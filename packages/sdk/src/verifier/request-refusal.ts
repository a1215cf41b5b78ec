import type { AccessTokenClaims } from '../wire/claims.js';
import { type RefusalReason, WritError } from '../wire/errors.js';

/** A refusal at a resource server, as RFC 6750 §3.1 and RFC 9449 §7.1 describe it. */
export class RequestRefusal extends WritError {
  declare readonly code:
    | 'invalid_request'
    | 'invalid_token'
    | 'invalid_dpop_proof'
    | 'use_dpop_nonce'
    | 'insufficient_scope';
  declare readonly reason: RefusalReason;
  /** With `use_dpop_nonce`: the nonce to send in the `DPoP-Nonce` response header (RFC 9449 §9). */
  readonly dpopNonce: string | undefined;
  /**
   * The token's claims when its signature verified and a check of the token itself refused it
   * (audience, expiry): the use is reported under its `jti` (see `TokenError.claims`). Never sent.
   */
  readonly claims: AccessTokenClaims | undefined;
  constructor(
    code: RequestRefusal['code'],
    reason: RefusalReason,
    message: string,
    o: { dpopNonce?: string; claims?: AccessTokenClaims | undefined } = {},
  ) {
    super(code, reason, message);
    this.name = 'RequestRefusal';
    this.dpopNonce = o.dpopNonce;
    this.claims = o.claims;
  }

  /** `error_description` safe for a quoted-string: RFC 6750 §3 characters only, and short. */
  get description(): string {
    return safeDescription(this.message);
  }

  /** The `WWW-Authenticate` challenge to send with a 401. */
  challenge(algs: readonly string[] = ['ES256', 'EdDSA']): string {
    return `DPoP error="${this.code}", error_description="${this.description}", algs="${algs.join(' ')}"`;
  }
}

/**
 * Text for an `error_description` (RFC 6750 §3: %x20-21 / %x23-5B / %x5D-7E, so no quote, backslash
 * or control character can end the quoted-string or the header), at most 200 characters.
 */
export function safeDescription(text: string): string {
  return text
    .replace(/"/g, "'")
    .replace(/[^\x20-\x21\x23-\x5b\x5d-\x7e]/g, '')
    .slice(0, 200);
}
