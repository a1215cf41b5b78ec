import type { AuditDraft } from '../audit/audit-event.js';
import type { IssuedToken } from '../tokens/issued-token.js';

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
