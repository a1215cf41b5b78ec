import { hash } from 'node:crypto';
import { canonicalJson } from '../jose/json.js';
import type { AuditDraft, AuditEvent } from './audit-event.js';

/** Checkpoint JWS `typ`. */
export const CHECKPOINT_TYP = 'writ-audit-checkpoint+jwt';

/** The hash the chain starts from. */
export const GENESIS_HASH = '0'.repeat(64);

/**
 * The canonical JSON an event's hash covers, split around its sequence number: `head + seq + tail` is
 * `canonicalJson({ seq, ts, type, outcome, actor, subject, jti, data })` (keys sorted; `seq` falls
 * between `outcome` and `subject`). A store that numbers events itself (PostgreSQL's batched issuance
 * numbers them under its lock, in the database) hashes the same bytes without rebuilding the JSON.
 */
export function chainBody(e: AuditDraft): { head: string; tail: string } {
  const before = canonicalJson({ actor: e.actor, data: e.data, jti: e.jti ?? null, outcome: e.outcome });
  const after = canonicalJson({ subject: e.subject ?? null, ts: e.ts, type: e.type });
  return {
    head: `${before.length > 2 ? `${before.slice(0, -1)},` : '{'}"seq":`,
    tail: after.length > 2 ? `,${after.slice(1)}` : '}',
  };
}

/**
 * The hash of one audit event: SHA-256 over the previous hash, a newline and the canonical JSON of
 * everything the event says, its sequence number included (`chainBody`), so editing, deleting or
 * reordering any row breaks the chain.
 */
export function chainHash(prevHash: string, seq: number, e: AuditDraft): string {
  const { head, tail } = chainBody(e);
  return chainHashOf(prevHash, seq, head, tail);
}

/**
 * `chainHash` from the event's body parts (`chainBody`). The same bytes as hashing the previous hash, the
 * newline and the body one after the other, in one call (`crypto.hash`): no Hash object per event.
 */
export function chainHashOf(prevHash: string, seq: number, head: string, tail: string): string {
  return hash('sha256', `${prevHash}\n${head}${seq}${tail}`, 'hex');
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

/** A point of the chain: an event's sequence number and hash. */
export interface AuditHead {
  seq: number;
  hash: string;
}

/**
 * The chain no longer holds an event this process wrote or verified: its newest events were deleted
 * (the store's head is below it) or it was rewritten. Appending would reuse their sequence numbers and
 * hide the cut, so the log refuses every append from then on.
 */
export class AuditChainBrokenError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AuditChainBrokenError';
  }
}

/**
 * Checks, under the store's write lock, that the event at `held.seq` is still the one this process
 * holds. `atHeld` is the hash the store has at that sequence number (undefined: no such row), `head` the
 * store's head. Other nodes' appends after `held` are fine (a cluster has one chain for all nodes).
 */
export function checkHeldHead(
  held: AuditHead | undefined,
  atHeld: string | undefined,
  head: AuditHead | undefined,
): void {
  if (!held) return;
  if (atHeld === held.hash) return;
  const top = head?.seq ?? 0;
  if (atHeld === undefined && top < held.seq)
    throw new AuditChainBrokenError(
      `audit log truncated: event ${held.seq} was written or verified by this node but the store ends at event ${top} (events ${top + 1}..${held.seq} deleted)`,
    );
  throw new AuditChainBrokenError(
    atHeld === undefined
      ? `audit log rewritten: event ${held.seq}, written or verified by this node, is missing from the store`
      : `audit log rewritten: event ${held.seq} in the store differs from the one this node wrote or verified`,
  );
}
