import type { AuditEvent } from '../audit/audit-event.js';
import type { AuditHead } from '../audit/chain.js';
import { IssuanceRefusedError, type IssuanceWrite } from './issuance-write.js';
import type { Store } from './store.js';

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
