import { type JwsError, parseClaims, type VerificationKey, verifyCompactJws } from '@writ/sdk/jose';
import { classifyTokenShape, peekToken } from '@writ/sdk/leaks';

/**
 * What a string shaped like a Writ token is, from the signature alone: `confirmed` (signed by one of
 * our keys: a real leak of a token of ours), `candidate` (looks like ours, signed by none of our keys:
 * another issuer's, forged, or signed by a key long gone), `truncated` (cut short: cannot be verified,
 * so never confirmed, whatever its header says).
 */
export type WritTokenClass = 'confirmed' | 'candidate' | 'truncated';

export interface ClassifiedToken {
  class: WritTokenClass;
  /** Read from the verified token (confirmed) or, unverified, from what is left of it. */
  jti?: string;
  sub?: string;
  iss?: string;
  exp?: number;
  kid?: string;
  /** Truncated tokens: whether the `kid` left in the header names one of our keys (a hint, not proof). */
  kidOurs?: boolean;
  /** Candidates: why the signature check failed (`bad_signature`, `no_key`, …). */
  reason?: string;
}

/** Most characters of a token verified (Writ's own `limits.token_bytes` default is far below). */
const MAX_TOKEN = 65_536;

export function classifyWritToken(token: string, keys: readonly VerificationKey[]): ClassifiedToken {
  const shape = classifyTokenShape(token);
  if (shape === 'truncated') {
    const peek = peekToken(token);
    return {
      class: 'truncated',
      ...(peek.kid !== undefined ? { kid: peek.kid, kidOurs: keys.some((k) => k.kid === peek.kid) } : {}),
      ...(peek.jti !== undefined ? { jti: peek.jti } : {}),
    };
  }
  try {
    const jws = verifyCompactJws(token, { algorithms: ['ES256', 'EdDSA'], keys, maxBytes: MAX_TOKEN });
    const claims = parseClaims(jws.payload);
    const str = (v: unknown) => (typeof v === 'string' ? v : undefined);
    const out: ClassifiedToken = { class: 'confirmed' };
    const jti = str(claims['jti']);
    const sub = str(claims['sub']);
    const iss = str(claims['iss']);
    if (jti !== undefined) out.jti = jti;
    if (sub !== undefined) out.sub = sub;
    if (iss !== undefined) out.iss = iss;
    if (typeof claims['exp'] === 'number') out.exp = claims['exp'];
    if (jws.key.kid !== undefined) out.kid = jws.key.kid;
    return out;
  } catch (err) {
    // Read only here: a token that verifies is read from its verified claims.
    const peek = peekToken(token);
    return {
      class: 'candidate',
      reason: (err as JwsError).reason ?? 'malformed',
      ...(peek.kid !== undefined ? { kid: peek.kid } : {}),
      ...(peek.iss !== undefined ? { iss: peek.iss } : {}),
    };
  }
}
