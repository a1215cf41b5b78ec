import type { RevocationKind } from '@writ/sdk/wire';

export interface NewRevocation {
  kind: RevocationKind;
  value: string;
  issued_before: number | null;
  created_at: number;
  reason: string;
  actor: string;
  /** After this time no token the revocation matches can still be valid. */
  expires_at: number;
}
