/** The claims a revocation predicate can match on. */
export const REVOCATION_KINDS = ['jti', 'tid', 'sub', 'client_id', 'cls', 'kid'] as const;
export type RevocationKind = (typeof REVOCATION_KINDS)[number];

/**
 * One revocation as the server stores it and operators see it (admin API): every token whose `kind`
 * claim (or header `kid`) equals `value` and, when `issued_before` is set, whose `iat` is at or before
 * it (seconds since the epoch).
 */
export interface Revocation {
  seq: number;
  kind: RevocationKind;
  value: string;
  issued_before: number | null;
  created_at: number;
  reason: string;
  /**
   * Milliseconds since the epoch after which no token the revocation matches can still be valid, so
   * holders of the set may forget it. Absent from servers that predate it: kept until the next snapshot.
   */
  expires_at?: number;
}

/**
 * One revocation as verifiers receive it on the event stream: the predicate and nothing an operator
 * wrote (no reason, no actor), its value as `value_sha256` so a verifier can match the tokens it is
 * shown without learning the workload, task and token ids of everyone else's. The SDK's
 * `RevocationSet` matches it; `revocationDigest` computes the digest.
 */
export interface VerifierRevocation {
  seq: number;
  kind: RevocationKind;
  /** SHA-256 of the value's UTF-8 bytes, base64url without padding. */
  value_sha256: string;
  issued_before: number | null;
  created_at: number;
  /** As in `Revocation`. */
  expires_at?: number;
}
