/** The claims a revocation predicate can match on. */
export const REVOCATION_KINDS = ['jti', 'tid', 'sub', 'client_id', 'cls', 'kid'] as const;
export type RevocationKind = (typeof REVOCATION_KINDS)[number];

/**
 * One revocation: every token whose `kind` claim (or header `kid`) equals `value` and, when
 * `issued_before` is set, whose `iat` is at or before it (seconds since the epoch).
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
