/**
 * One entry of the audit log as the server stores it and the admin API returns it (`GET /admin/v1/audit`,
 * the token trace): what was decided, by whom, about whom, and the hash chain it sits in.
 */
export interface AuditDraft {
  /** Milliseconds since the epoch. */
  ts: number;
  type: string;
  /** `challenged`: answered with what to retry with (a DPoP nonce); nothing failed. */
  outcome: 'success' | 'refused' | 'challenged' | 'failure';
  actor: string;
  subject?: string | undefined;
  jti?: string | undefined;
  data: Record<string, unknown>;
}

export interface AuditEvent extends AuditDraft {
  seq: number;
  prevHash: string;
  hash: string;
}
