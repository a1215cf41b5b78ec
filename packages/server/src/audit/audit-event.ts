export interface AuditDraft {
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

export interface AuditQuery {
  afterSeq?: number;
  /** Matches `actor` or `subject`. */
  workload?: string;
  jti?: string;
  type?: string;
  since?: number;
  until?: number;
  limit: number;
  order?: 'asc' | 'desc';
}

export interface AuditCheckpoint {
  seq: number;
  hash: string;
  ts: number;
  kid: string;
  /** Compact JWS over `{ seq, hash, ts }` signed by the server key. */
  jws: string;
}
