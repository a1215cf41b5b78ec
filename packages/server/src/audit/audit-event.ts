// The event itself is wire (the admin API returns it as stored): declared once in the SDK.
export type { AuditDraft, AuditEvent } from '@writ/sdk/wire';

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
