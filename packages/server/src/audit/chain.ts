import { createHash } from 'node:crypto';
import { canonicalJson } from '../jose/json.js';
import type { AuditDraft, AuditEvent } from './audit-event.js';

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

/**
 * The event that follows `head` (undefined for an empty log): the next sequence number, linked to the
 * head's hash. Every store adapter calls this while holding its write lock, so the chain cannot fork.
 */
export function linkAuditEvent(head: { seq: number; hash: string } | undefined, e: AuditDraft): AuditEvent {
  const seq = (head?.seq ?? 0) + 1;
  const prevHash = head?.hash ?? GENESIS_HASH;
  return { ...e, seq, prevHash, hash: chainHash(prevHash, seq, e) };
}
