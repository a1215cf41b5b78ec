import type { RequestInfo, WritContext } from '../context.js';
import { OAuthError, StoreUnavailableError, temporarilyUnavailable } from '../errors.js';
import type { RefusalEndpoint } from './audit-types.js';

/** Marks errors already written to the audit log, so the HTTP error handler does not write them twice. */
export const AUDITED = Symbol('writ.audited');

/**
 * Audits a refusal and returns the error to send. Store failures become 503 `temporarily_unavailable`;
 * unexpected errors become 500 `server_error` with nothing of the cause in the response.
 */
export async function auditRefusal(
  ctx: WritContext,
  endpoint: RefusalEndpoint,
  err: unknown,
  req: RequestInfo,
  context: Record<string, unknown>,
): Promise<unknown> {
  let error: OAuthError;
  if (err instanceof OAuthError) error = err;
  else if (err instanceof StoreUnavailableError) {
    ctx.logger.error({ err: err.message, endpoint }, 'store unavailable; refusing');
    error = temporarilyUnavailable('the service cannot record this request right now; retry later', {
      reason: 'store_unavailable',
    });
  } else {
    ctx.logger.error({ err, endpoint }, 'unexpected error');
    error = new OAuthError('server_error', 'internal error', { detail: { reason: 'internal_error' } });
  }
  ctx.metrics.refusals.inc({ endpoint, error: error.code, reason: error.reason });
  ctx.logger.info(
    { endpoint, error: error.code, status: error.status, reason: error.reason, ip: req.ip },
    'refused',
  );
  // The client the request named, or failing that the workload a check refused after authenticating
  // it (the rate limit, say): `detail.workload` is only ever an authenticated identity.
  const named = context['client_id'] ?? error.detail?.['workload'];
  const actor = typeof named === 'string' ? named : 'anonymous';
  // The audit log lives in the store that just failed: trying again would only double the wait for the
  // 503 (a cut link answers nothing until a timeout). The refusal is in the service log above.
  if (err instanceof StoreUnavailableError) {
    Object.defineProperty(error, AUDITED, { value: true });
    return error;
  }
  try {
    await ctx.audit.append({
      type: `${endpoint}.refused`,
      outcome: 'refused',
      actor,
      data: {
        error: error.code,
        description: error.message,
        ...clean(error.detail),
        ...clean(context),
        ip: req.ip,
        status: error.status,
      },
    });
  } catch (auditErr) {
    ctx.logger.error({ err: (auditErr as Error).message }, 'could not audit a refusal');
    if (error.status < 500)
      error = temporarilyUnavailable('the service cannot record this request right now; retry later', {
        reason: 'audit_unavailable',
      });
  }
  Object.defineProperty(error, AUDITED, { value: true });
  return error;
}

function clean(o: Record<string, unknown> | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (!o) return out;
  for (const [k, v] of Object.entries(o)) {
    if (v === undefined) continue;
    out[k] = typeof v === 'string' ? v.slice(0, 256) : v;
  }
  return out;
}
