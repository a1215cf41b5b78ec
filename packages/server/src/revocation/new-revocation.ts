import type { RevocationKind } from '@writ/sdk/wire';

export interface NewRevocation {
  kind: RevocationKind;
  value: string;
  /**
   * Seconds: tokens issued at or before it are revoked. `'now'`: at or before the revocation's own time
   * (`created_at` as stored; in a cluster the database's clock too, so a node whose clock is behind still
   * catches the tokens another node issued a moment ago). Null: every token with that value.
   */
  issued_before: number | 'now' | null;
  /** Milliseconds, the caller's clock. A store several nodes share may record a later time (see Store). */
  created_at: number;
  reason: string;
  actor: string;
  /**
   * After this time no token the revocation matches can still be valid. A store that records a later
   * `created_at` moves this by as much, keeping the revocation's lifetime.
   */
  expires_at: number;
}
