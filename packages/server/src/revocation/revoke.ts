import { EventType, type Revocation, type RevocationKind } from '@writ/sdk/wire';
import type { WritContext } from '../context.js';
import type { Store } from '../store/store.js';
import { revocationExpiry } from './expiry.js';

export interface RevokeRequest {
  kind: RevocationKind;
  value: string;
  /** Seconds since the epoch; tokens issued at or before it are revoked. Null: every token with that value. */
  issuedBefore: number | null;
  reason: string;
  actor: string;
  /** Milliseconds: when it may be forgotten, if the caller already read it (see `revocationExpiry`). */
  expiresAt?: number | undefined;
}

/** Kinds that, left open-ended, would also block tokens issued later; they default to "issued before now". */
const DEFAULTS_TO_NOW: ReadonlySet<RevocationKind> = new Set(['sub', 'client_id', 'cls', 'kid']);

/**
 * Stores a revocation and its audit event in one transaction (inside `tx` when given), then brings the
 * in-memory set up to the store so introspection on this node refuses the tokens at once. Other nodes
 * apply it from the event log.
 */
export async function revoke(ctx: WritContext, r: RevokeRequest, tx?: Store): Promise<Revocation> {
  const now = ctx.clock.now();
  // "Now" is left to the store: in a cluster it is the database's clock too, not this node's alone.
  const issuedBefore = r.issuedBefore ?? (DEFAULTS_TO_NOW.has(r.kind) ? 'now' : null);
  const work = async (t: Store) => {
    // Kept until the last token it can match expires; one that matches nothing live is still stored
    // (and audited) as asked, already expired, so no verifier is sent it.
    const expiresAt =
      r.expiresAt ??
      (await revocationExpiry(ctx, t, { kind: r.kind, value: r.value, issuedBefore }, now)) ??
      now;
    const stored = await t.addRevocation({
      kind: r.kind,
      value: r.value,
      issued_before: issuedBefore,
      created_at: now,
      reason: r.reason,
      actor: r.actor,
      expires_at: expiresAt,
    });
    await ctx.events.append(t, EventType.revocation, { revocation: stored });
    const event = await ctx.audit.append(
      {
        type: 'revocation.created',
        outcome: 'success',
        actor: r.actor,
        subject: r.kind === 'sub' || r.kind === 'client_id' ? r.value : undefined,
        jti: r.kind === 'jti' ? r.value : undefined,
        data: {
          seq: stored.seq,
          kind: r.kind,
          value: r.value,
          issued_before: stored.issued_before,
          reason: r.reason,
        },
      },
      t,
    );
    return { stored, event };
  };
  const { stored, event } = tx ? await work(tx) : await ctx.store.transaction(work);
  if (!tx) {
    ctx.audit.noteCommitted(event);
    ctx.events.notify();
    // Not `apply(stored)`: the set takes revocations in sequence order only, and another node's lower
    // one may not have reached this node yet. Reading from the set's position brings both, in order.
    // Should the read fail, the revocation is stored all the same and the event log brings it.
    await syncRevocations(ctx).catch((err: unknown) =>
      ctx.logger.warn({ err: (err as Error).message }, 'revocation stored; applying it from the log later'),
    );
  }
  ctx.metrics.revocations.inc({ kind: r.kind });
  return stored;
}

/** Loads revocations stored after the set's sequence number (at start, or after a transaction). */
export async function syncRevocations(
  ctx: Pick<WritContext, 'store' | 'clock' | 'revocations'>,
): Promise<number> {
  const fresh = await ctx.store.listRevocations(ctx.revocations.seq, ctx.clock.now());
  for (const r of fresh) ctx.revocations.apply(r);
  return fresh.length;
}
