import { createHash } from 'node:crypto';
import { canonicalJson } from '../jose/json.js';
import type { AuditDraft } from '../store/store.js';

/** The hash the chain starts from. */
export const GENESIS_HASH = '0'.repeat(64);

/**
 * The hash of one audit event: SHA-256 over the previous hash and the canonical JSON of everything the
 * event says, its sequence number included, so editing, deleting or reordering any row breaks the chain.
 */
export function chainHash(prevHash: string, seq: number, e: AuditDraft): string {
  const body = canonicalJson({
    seq,
    ts: e.ts,
    type: e.type,
    outcome: e.outcome,
    actor: e.actor,
    subject: e.subject ?? null,
    jti: e.jti ?? null,
    data: e.data,
  });
  return createHash('sha256').update(prevHash).update('\n').update(body).digest('hex');
}
