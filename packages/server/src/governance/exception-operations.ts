import { EventType } from '@writ/sdk/wire';
import type { WritContext } from '../context.js';
import { invalidRequest, notFound } from '../errors.js';
import { announceBundle } from '../policy/bundle.js';
import type { Store } from '../store/store.js';
import {
  type ExceptionRecord,
  type ExceptionRuntime,
  effectiveExpiry,
  exceptionStatus,
} from './exception.js';

/** How far ahead a renewal may set the end: a year; the governance rules may ask for less. */
export const MAX_RENEWAL_MS = 366 * 86_400_000;

type Change = 'renewed' | 'retired' | 'expiring';

/**
 * Writes an exception's new runtime state if nobody changed it since it was read, with the event every
 * node reloads its registry on and the audit event, in one transaction; then reloads this node's
 * registry. False when another writer won (the caller reads again or gives up).
 */
async function changeException(
  ctx: WritContext,
  e: ExceptionRecord,
  runtime: ExceptionRuntime,
  change: Change,
  actor: string,
  data: Record<string, unknown>,
): Promise<boolean> {
  const end = effectiveExpiry({ ...e, runtime });
  const result = await ctx.store.transaction(async (tx: Store) => {
    if (!(await tx.setExceptionRuntime(e.id, runtime, e.runtime))) return undefined;
    const event = await ctx.events.append(tx, EventType.exceptionChanged, {
      id: e.id,
      change,
      expires_at: end,
      owner: e.owner,
    });
    await announceBundle(ctx, tx, event.seq);
    const audited = await ctx.audit.append(
      {
        type: `exception.${change}`,
        outcome: 'success',
        actor,
        subject: e.id,
        data: { exception: e.id, kind: e.covers.kind, owner: e.owner, expires_at: end, ...data },
      },
      tx,
    );
    return { audited, seq: event.seq };
  });
  if (!result) return false;
  ctx.audit.noteCommitted(result.audited);
  ctx.events.notify();
  await ctx.registry.reload();
  ctx.policy.bundle.noteChange(result.seq);
  return true;
}

async function existing(ctx: WritContext, id: string): Promise<ExceptionRecord> {
  const e = await ctx.store.getException(id);
  if (!e) throw notFound('no such exception', { reason: 'not_found' });
  return e;
}

/**
 * `writ exceptions renew ID --until T`: moves the end to `until` (ms), at most a year ahead, never into
 * the past. A retired exception stays retired: declare a new one.
 */
export async function renewException(
  ctx: WritContext,
  id: string,
  until: number,
  actor: string,
  note: string,
): Promise<ExceptionRecord> {
  for (;;) {
    const e = await existing(ctx, id);
    const now = ctx.clock.now();
    if (e.runtime.retired)
      throw invalidRequest(
        `exception "${id}" was retired at ${new Date(e.runtime.retired.at).toISOString()}: it cannot be renewed; declare a new exception in exceptions/`,
        { reason: 'exception_retired', exception: id },
      );
    if (until <= now || until > now + MAX_RENEWAL_MS)
      throw invalidRequest(
        `until must be after now and at most 366 days ahead (${new Date(now + MAX_RENEWAL_MS).toISOString()})`,
        { reason: 'malformed_body' },
      );
    const before = effectiveExpiry(e);
    const runtime: ExceptionRuntime = {
      ...e.runtime,
      renewal: { expiresAt: until, declaredExpiresAt: e.expiresAt, by: actor, at: now, note },
    };
    if (await changeException(ctx, e, runtime, 'renewed', actor, { previous_expires_at: before, note }))
      return { ...e, runtime };
  }
}

/** `writ exceptions retire ID`: ends the exception now, for good; what it covered is refused from now on. */
export async function retireException(
  ctx: WritContext,
  id: string,
  actor: string,
  note: string,
): Promise<ExceptionRecord> {
  for (;;) {
    const e = await existing(ctx, id);
    if (e.runtime.retired) return e;
    const runtime: ExceptionRuntime = { ...e.runtime, retired: { by: actor, at: ctx.clock.now(), note } };
    if (await changeException(ctx, e, runtime, 'retired', actor, { note })) return { ...e, runtime };
  }
}

/**
 * Alerts the owners of exceptions that entered their alert window (`alert_before` ahead of the end):
 * once per end, whichever node gets there first (the store's conditional write decides). Each alert is
 * an `exception.changed` event (Shared Signals receivers and nodes hear it), an audit event, and, when
 * the findings webhook is set, a signed message to it. Returns the ids alerted.
 */
export async function alertExpiringExceptions(ctx: WritContext): Promise<string[]> {
  const now = ctx.clock.now();
  const alerted: string[] = [];
  for (const e of await ctx.store.listExceptions()) {
    if (exceptionStatus(e, now) !== 'expiring') continue;
    const end = effectiveExpiry(e);
    if (e.runtime.alerted?.expiresAt === end) continue;
    const runtime: ExceptionRuntime = { ...e.runtime, alerted: { expiresAt: end, at: now } };
    const days = Math.ceil((end - now) / 86_400_000);
    if (!(await changeException(ctx, e, runtime, 'expiring', 'system', { days_left: days }))) continue;
    alerted.push(e.id);
    ctx.detection.webhook?.sendAlert(`exception-${e.id}-${end}`, {
      exception: {
        id: e.id,
        kind: e.covers.kind,
        owner: e.owner,
        status: 'expiring',
        expires_at: Math.floor(end / 1000),
        days_left: days,
      },
    });
    ctx.logger.warn({ exception: e.id, owner: e.owner, expires_at: end }, 'exception expires soon');
  }
  return alerted;
}
