import type { RevocationKind } from '@writ/sdk/wire';
import type { WritContext } from '../context.js';
import type { Store } from '../store/store.js';

export interface RevocationPredicate {
  kind: RevocationKind;
  value: string;
  /** Seconds, `'now'` (the revocation's own time) or null (every token with that value). */
  issuedBefore: number | 'now' | null;
}

/**
 * When a revocation may be forgotten (milliseconds): when the last token it can match expires, so the
 * set every verifier holds is no larger than what is in force. Undefined when no token it matches can
 * be live after `now`. Read inside the transaction that stores the revocation.
 *
 * - `jti`: that token's `exp` (from its record).
 * - `tid`: the latest `exp` of the task's tokens; while the task is still open, its deadline, since it
 *   may issue more (a closed task issues none: issuance re-reads the task in its own transaction).
 * - `sub`, `client_id`, `cls`, `kid` (always "issued before" a time T): T plus the longest `max_ttl` the
 *   matched tokens can have had (that class's for `cls`, any class's otherwise, capped by
 *   `tokens.max_lifetime`), or later if a recorded token says so (one issued before a class was
 *   shortened).
 *
 * Where the store knows nothing to go on (a `jti` it has no record of), the answer is the old, safe one:
 * `tokens.max_lifetime` from now.
 */
export async function revocationExpiry(
  ctx: Pick<WritContext, 'settings' | 'registry'>,
  tx: Pick<Store, 'getToken' | 'getTask' | 'latestTokenExpiry'>,
  p: RevocationPredicate,
  now: number,
): Promise<number | undefined> {
  const nowS = Math.floor(now / 1000);
  const ceiling = ctx.settings.tokens.maxLifetime;
  const live = (ms: number | undefined) => (ms !== undefined && ms > now ? ms : undefined);
  const issuedBefore = typeof p.issuedBefore === 'number' ? p.issuedBefore : null;
  switch (p.kind) {
    case 'jti': {
      const token = await tx.getToken(p.value);
      // Records outlive their token by a day: no record, no token we issued that is still live — but a
      // store restored from an older backup could lack one, so assume the worst.
      if (!token) return now + ceiling * 1000;
      if (issuedBefore !== null && token.iat > issuedBefore) return undefined;
      return live(token.exp * 1000);
    }
    case 'tid': {
      const exp = await tx.latestTokenExpiry({ kind: 'tid', value: p.value, issuedBefore }, nowS);
      const task = await tx.getTask(p.value);
      const mayIssue = task !== undefined && task.closedAt === null && (issuedBefore ?? nowS) >= nowS;
      return live(Math.max(exp === undefined ? 0 : exp * 1000, mayIssue ? task.deadline : 0));
    }
    default: {
      const from = issuedBefore === null ? now : issuedBefore * 1000;
      const longest = p.kind === 'cls' ? ctx.registry.tokenClass(p.value)?.maxTtl : ctx.registry.longestTtl();
      const bound = from + Math.min(longest || ceiling, ceiling) * 1000;
      const exp = await tx.latestTokenExpiry(
        { kind: p.kind, value: p.value, issuedBefore },
        Math.floor(bound / 1000),
      );
      return live(Math.max(bound, exp === undefined ? 0 : exp * 1000));
    }
  }
}
