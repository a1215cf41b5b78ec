import type { AuditDraft, AuditEvent } from '../audit/audit-event.js';
import type { AuditHead } from '../audit/chain.js';
import type { IssuedToken } from '../tokens/issued-token.js';
import type { Store } from './store.js';

/**
 * What one token issuance writes (oauth/issue.ts), committed together: the replay-cache entries it
 * spends, the token record, and its audit event. A store commits many of these in one transaction
 * (`Store.recordIssuance`); each either commits whole or not at all, so no token is issued without its
 * audit event and no event names a token that was not recorded.
 */
export interface IssuanceWrite {
  /** Replay-cache entries to spend, in order (an assertion's `jti`, a DPoP proof's). */
  consume: Array<{ scope: string; id: string; expiresAt: number }>;
  /** The caller's clock, for the replay entries' expiry. */
  now: number;
  token: IssuedToken;
  /** The audit event, its strings already bounded and escaped, its time set. */
  audit: AuditDraft;
}

/**
 * An issuance the store refused: `replay` when `consume[index]` was already spent, `task_closed` when
 * the token's task is closed or gone. Nothing of it was written.
 */
export class IssuanceRefusedError extends Error {
  readonly reason: 'replay' | 'task_closed';
  readonly index: number;
  constructor(reason: 'replay' | 'task_closed', index = -1) {
    super(reason === 'replay' ? `replay-cache entry ${index} already spent` : 'the task is closed');
    this.name = 'IssuanceRefusedError';
    this.reason = reason;
    this.index = index;
  }
}

/**
 * One issuance's writes, statement by statement, inside `tx` (a transaction the caller opened): the
 * reference every adapter's batched form must match. Throws `IssuanceRefusedError` on a spent entry or
 * a closed task, which rolls the caller's transaction back.
 */
export async function writeIssuance(tx: Store, w: IssuanceWrite, held?: AuditHead): Promise<AuditEvent> {
  for (const [i, c] of w.consume.entries())
    if (!(await tx.consume(c.scope, c.id, c.expiresAt, w.now))) throw new IssuanceRefusedError('replay', i);
  await tx.recordToken(w.token);
  // The task was open when the request was checked; read again here, under the transaction, so a
  // close that won the race is seen. A closed task's revocation covers only the tokens it recorded.
  if (w.token.tid !== undefined && (await tx.getTask(w.token.tid))?.closedAt !== null)
    throw new IssuanceRefusedError('task_closed');
  return tx.appendAudit(w.audit, held);
}
