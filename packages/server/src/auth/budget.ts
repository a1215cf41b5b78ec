import type { RequestInfo, WritContext } from '../context.js';
import { OAuthError } from '../errors.js';
import { sourceKey, sourceLimited } from '../rate-limit/source.js';

/**
 * Admits a caller `auth/` has just authenticated: marks the request as theirs (what the refusal
 * audit reads) and takes one request from their budget (`limits.client_rate`, `limits.client_burst`).
 * One budget per client across every endpoint: token requests of every grant, exchange,
 * introspection, revocation, task opens and heartbeats, usage reports, stream opens, policy bundles,
 * Shared Signals and AuthZEN calls. `budget: false` only for closing a task: a client over its limit
 * can still end its work, and so revoke its tokens. Past the budget: 429 with `Retry-After`.
 */
export async function admitCaller(
  ctx: Pick<WritContext, 'rateLimiter'>,
  req: RequestInfo,
  caller: string,
  o: { budget?: false } = {},
): Promise<void> {
  req.caller = caller;
  if (o.budget === false) return;
  const wait = await ctx.rateLimiter.take(caller);
  if (wait > 0)
    throw new OAuthError('temporarily_unavailable', `too many requests for this client; retry in ${wait} s`, {
      status: 429,
      headers: { 'retry-after': String(wait) },
      detail: { reason: 'rate_limited', workload: caller },
    });
}

/**
 * Before a guessable credential (a legacy client secret) is checked: a source address whose
 * unauthenticated refusals have used its budget (`limits.source_rate`, `limits.source_burst`) is
 * refused with 429 and `Retry-After`, so guessing secrets from one address is as slow as that budget.
 * Unguessable credentials (signatures, certificates, Writ and platform tokens) are always checked: a
 * refusal past the budget is still 429 (`auditRefusal`), but a valid one from a shared address passes.
 */
export function admitSource(ctx: Pick<WritContext, 'sourceLimiter'>, req: RequestInfo): void {
  const wait = ctx.sourceLimiter.wait(sourceKey(req.ip));
  if (wait > 0) throw sourceLimited(wait);
}
