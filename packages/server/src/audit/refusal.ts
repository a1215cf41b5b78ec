import type { RequestInfo, WritContext } from '../context.js';
import { restrictText } from '../control-characters.js';
import { OAuthError, StoreUnavailableError, temporarilyUnavailable } from '../errors.js';
import { sourceKey, sourceLimited } from '../rate-limit/source.js';
import type { RefusalEndpoint } from './audit-types.js';
import { AuditChainBrokenError } from './chain.js';
import type { TallyKey } from './refusal-tally.js';

/** Marks errors already written to the audit log, so the HTTP error handler does not write them twice. */
export const AUDITED = Symbol('writ.audited');

/**
 * Audits a refusal and returns the error to send. Store failures become 503 `temporarily_unavailable`;
 * unexpected errors become 500 `server_error` with nothing of the cause in the response.
 *
 * The actor of the event is the caller `auth/` authenticated, or `anonymous`: a `client_id` the
 * request only named is recorded as `data.claimed_client_id`, and every string of the event is bounded
 * with its control characters escaped, so no caller can write an event in another's name or forge
 * lines of `writ audit tail`.
 *
 * Floods are bounded: a refusal of a request no caller authenticated (`provenCaller`) takes one
 * from its source address's budget, and past it the answer is 429 with `Retry-After`; such refusals,
 * and every client's rate-limit refusals, are written once per kind (type, source or client, error,
 * reason) per `audit.refusal_window`, the rest of the window as one summary row with the count and
 * first and last times (`writeRefusalSummaries`).
 *
 * A DPoP nonce challenge comes through here too, as every answer that is not a success does, but is
 * recorded as what it is: `<endpoint>.challenged`, outcome `challenged` (`isChallenge`).
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
  } else if (err instanceof AuditChainBrokenError) {
    // No audit, no answer: the log refuses every append until an operator restores the store (/readyz
    // and the service log name the break; the client learns only that it cannot be served now).
    error = temporarilyUnavailable('the service cannot record this request right now; retry later', {
      reason: 'audit_unavailable',
    });
  } else {
    ctx.logger.error({ err, endpoint }, 'unexpected error');
    error = new OAuthError('server_error', 'internal error', { detail: { reason: 'internal_error' } });
  }
  const caller = provenCaller(req, error);
  const unauthenticated = caller === undefined && error.status < 500;
  // A challenge is no failure: it takes nothing from the source's budget of refusals.
  const challenge = isChallenge(error);
  // Every refused client authentication reaches detection (key stuffing), also those the tally folds
  // into one audit row; the client id is only what the request named: its client_id, or else the
  // assertion's sub (RFC 7523 needs no client_id beside an assertion).
  const claimed = context['client_id'] ?? error.detail?.['client_id'];
  if (endpoint === 'token' && error.code === 'invalid_client' && typeof claimed === 'string')
    ctx.detection.observeRefusal(claimed, error.reason ?? error.code, req.ip);
  if (unauthenticated && !challenge) {
    const wait = ctx.sourceLimiter.take(sourceKey(req.ip));
    if (wait > 0 && error.status !== 429) error = sourceLimited(wait);
  }
  if (challenge) ctx.metrics.challenges.inc({ endpoint, challenge: error.code });
  else ctx.metrics.refusals.inc({ endpoint, error: error.code, reason: error.reason });
  const type = `${endpoint}.${challenge ? 'challenged' : 'refused'}` as const;
  const outcome = challenge ? 'challenged' : 'refused';
  const reason = error.reason ?? error.code;
  if (unauthenticated || reason === 'rate_limited') {
    const kind: TallyKey = {
      type,
      who: caller ?? sourceKey(req.ip),
      actor: caller ?? 'anonymous',
      error: error.code,
      reason,
      status: error.status,
    };
    if (!ctx.refusalTally.count(kind, ctx.clock.now())) {
      Object.defineProperty(error, AUDITED, { value: true });
      return error;
    }
  }
  const logged = { endpoint, error: error.code, status: error.status, reason: error.reason, ip: req.ip };
  if (challenge) ctx.logger.debug(logged, 'challenged');
  else ctx.logger.info(logged, 'refused');
  // Only an identity `auth/` proved is an actor; whatever the request named is a claim, kept as data.
  const actor = caller ?? 'anonymous';
  // The audit log lives in the store that just failed (or refuses appends): trying again would only
  // double the wait for the 503 (a cut link answers nothing until a timeout). The refusal is in the
  // service log above.
  if (err instanceof StoreUnavailableError || err instanceof AuditChainBrokenError) {
    Object.defineProperty(error, AUDITED, { value: true });
    return error;
  }
  try {
    await ctx.audit.append({
      type,
      outcome,
      actor,
      data: {
        error: error.code,
        description: error.message,
        ...clean(error.detail, actor),
        ...clean(context, actor),
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

/**
 * Writes one summary row per kind of refusal whose window has ended (every kind with `all`, at
 * shutdown): `count` refusals between `first` and `last` (ms) that were not written one by one.
 */
export async function writeRefusalSummaries(ctx: WritContext, all = false): Promise<void> {
  for (const s of ctx.refusalTally.due(ctx.clock.now(), all)) {
    await ctx.audit.append({
      type: s.type,
      outcome: s.type.endsWith('.challenged') ? 'challenged' : 'refused',
      actor: s.actor,
      data: {
        error: s.error,
        reason: s.reason,
        status: s.status,
        // The source address (an IPv6 one by its /64), for refusals before anyone authenticated.
        ...(s.actor === 'anonymous' ? { ip: s.who } : {}),
        count: s.count,
        first: s.first,
        last: s.last,
        window: ctx.settings.audit.refusalWindow,
      },
    });
  }
}

/**
 * A DPoP nonce challenge (`use_dpop_nonce`, RFC 9449 §8): the server asks the client to retry with the
 * nonce it sends. Every DPoP token request meets it once, so it is audited as `<endpoint>.challenged`,
 * counted by `writ_challenges_total` and logged at debug: a refusal line would say something failed.
 */
function isChallenge(error: OAuthError): boolean {
  return error.code === 'use_dpop_nonce';
}

/**
 * Who a refusal is attributed to: the caller `auth/` authenticated (`req.caller`), unless what was
 * refused is that authentication itself (`invalid_client`: a spent assertion, say, refused after its
 * signature was checked) or the proof of identity came from a second holder (a federation token
 * replayed): whoever sent it proved nothing, so no identity is theirs to use.
 */
function provenCaller(req: RequestInfo, error: OAuthError): string | undefined {
  if (error.code === 'invalid_client' || error.reason === 'federation_token_replay') return undefined;
  return req.caller;
}

/**
 * What a refusal records of its detail and context: strings bounded and their control characters
 * escaped; a `client_id` the request named is `claimed_client_id` (none when it is the actor).
 */
function clean(o: Record<string, unknown> | undefined, actor: string): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (!o) return out;
  for (const [k, v] of Object.entries(o)) {
    if (v === undefined) continue;
    if (k === 'client_id') {
      if (v !== actor) out['claimed_client_id'] = typeof v === 'string' ? restrictText(v, 256) : v;
      continue;
    }
    out[k] = typeof v === 'string' ? restrictText(v, 256) : v;
  }
  return out;
}
