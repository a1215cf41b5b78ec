import { randomBytes } from 'node:crypto';
import { EventType } from '@writ/sdk/wire';
import type { WritContext } from '../context.js';
import { accessDenied, invalidRequest, notFound, type OAuthError } from '../errors.js';
import { type Grantable, selectClass } from '../oauth/class-selection.js';
import type { Store } from '../store/store.js';
import { closeTask } from '../tasks/tasks.js';
import { type BreakGlass, EMERGENCY_REVIEW_WITHIN_MS } from './break-glass.js';

/** The shortest and longest elevation: a minute to a day. */
export const BREAKGLASS_DURATION = { min: 60, max: 86_400 } as const;

export interface BreakGlassRequest {
  workload: string;
  cls: string;
  reason: string;
  /** Seconds. */
  duration: number;
  emergency: boolean;
}

async function grantOf(ctx: Pick<WritContext, 'store'>, id: string): Promise<BreakGlass> {
  const g = await ctx.store.getBreakGlass(id);
  if (!g) throw notFound('no such break-glass request', { reason: 'not_found' });
  return g;
}

/** A grant whose state changed under the caller (another operator was faster): say what it is now. */
function notPending(g: BreakGlass, action: string): OAuthError {
  return invalidRequest(`break-glass ${g.id} is ${g.state}, not pending: it cannot be ${action}`, {
    reason: 'breakglass_state',
  });
}

/**
 * `writ breakglass request`: asks that workload `r.workload` may get tokens of class `r.cls`, which it
 * may not normally use, for `r.duration` seconds. Pending until a second operator approves; with
 * `emergency`, granted at once and owing a post-incident review within 24 hours.
 */
export async function requestBreakGlass(
  ctx: WritContext,
  r: BreakGlassRequest,
  actor: string,
): Promise<BreakGlass> {
  const workload = ctx.registry.workload(r.workload);
  if (!workload) throw notFound('no such workload', { reason: 'not_found' });
  if (!ctx.registry.tokenClass(r.cls)) throw notFound('no such class', { reason: 'not_found' });
  if (workload.classes.includes(r.cls))
    throw invalidRequest(
      `the workload may already use class ${r.cls}: break-glass is for a class it may not normally use`,
      { reason: 'breakglass_not_needed' },
    );
  if (
    !Number.isInteger(r.duration) ||
    r.duration < BREAKGLASS_DURATION.min ||
    r.duration > BREAKGLASS_DURATION.max
  )
    throw invalidRequest('duration must be from 60 seconds to 24 hours', { reason: 'malformed_body' });
  const now = ctx.clock.now();
  const g: BreakGlass = {
    id: `bg_${randomBytes(9).toString('base64url')}`,
    workload: r.workload,
    cls: r.cls,
    reason: r.reason,
    duration: r.duration,
    emergency: r.emergency,
    requestedBy: actor,
    requestedAt: now,
    state: 'pending',
  };
  const audited = await ctx.store.transaction(async (tx) => {
    await tx.createBreakGlass(g);
    return ctx.audit.append(
      {
        type: 'breakglass.requested',
        outcome: 'success',
        actor,
        subject: g.workload,
        data: {
          breakglass: g.id,
          cls: g.cls,
          reason: g.reason,
          duration: g.duration,
          emergency: g.emergency,
        },
      },
      tx,
    );
  });
  ctx.audit.noteCommitted(audited);
  ctx.logger.warn({ breakglass: g.id, workload: g.workload, cls: g.cls, by: actor }, 'break-glass requested');
  return r.emergency ? activate(ctx, g, actor, undefined) : g;
}

/**
 * `writ breakglass approve ID`: a second operator grants a pending request. The operator who asked
 * cannot approve it (two-person rule).
 */
export async function approveBreakGlass(ctx: WritContext, id: string, approver: string): Promise<BreakGlass> {
  const g = await grantOf(ctx, id);
  if (g.requestedBy === approver)
    throw accessDenied(
      `break-glass ${id} was requested by ${approver}: another operator must approve it (two-person rule)`,
      { reason: 'breakglass_self_approval', breakglass: id },
    );
  // The rule is about people: one person's second operator key is not a second person.
  const person = operatorPerson(ctx, approver);
  if (person !== undefined && person === operatorPerson(ctx, g.requestedBy))
    throw accessDenied(
      `break-glass ${id} was requested by ${g.requestedBy}, an operator key of the person ${person}, as ${approver} is: another person must approve it (two-person rule)`,
      { reason: 'breakglass_self_approval', breakglass: id },
    );
  if (g.state !== 'pending') throw notPending(g, 'approved');
  return activate(ctx, g, approver, approver);
}

/** The person an operator subject (`operator:<name>`) belongs to, when its operator names one. */
export function operatorPerson(ctx: Pick<WritContext, 'registry'>, subject: string): string | undefined {
  if (!subject.startsWith('operator:')) return undefined;
  return ctx.registry.operator(subject.slice('operator:'.length))?.person;
}

/**
 * Grants `g`: opens the task its tokens are issued in (ending with the grant), marks it active if it is
 * still pending, logs `breakglass.granted` (nodes raise detection for the workload; Shared Signals
 * receivers hear it) and audits it, in one transaction.
 */
async function activate(
  ctx: WritContext,
  g: BreakGlass,
  actor: string,
  approver: string | undefined,
): Promise<BreakGlass> {
  const now = ctx.clock.now();
  const endsAt = now + g.duration * 1000;
  const taskId = `task_${g.id}`;
  const active: BreakGlass = {
    ...g,
    state: 'active',
    grantedAt: now,
    endsAt,
    taskId,
    ...(approver !== undefined ? { approvedBy: approver } : {}),
    ...(g.emergency ? { reviewDue: now + EMERGENCY_REVIEW_WITHIN_MS } : {}),
  };
  const audited = await ctx.store.transaction(async (tx: Store) => {
    if (!(await tx.updateBreakGlass(active, 'pending'))) return undefined;
    await tx.createTask({
      id: taskId,
      workload: g.workload,
      purpose: `break-glass ${g.id}: ${g.reason}`.slice(0, 200),
      labels: { breakglass: g.id, class: g.cls },
      openedBy: actor,
      openedAt: now,
      deadline: endsAt,
      leaseUntil: null,
      closedAt: null,
      closeReason: null,
    });
    await ctx.events.append(tx, EventType.breakglassGranted, {
      id: g.id,
      sub: g.workload,
      cls: g.cls,
      approver: approver ?? '(emergency)',
      reason: g.reason,
      expires_at: endsAt,
    });
    return ctx.audit.appendMany(
      [
        {
          type: 'task.opened',
          outcome: 'success',
          actor,
          subject: g.workload,
          data: {
            tid: taskId,
            purpose: `break-glass ${g.id}`,
            labels: { breakglass: g.id },
            deadline: endsAt,
            lease: null,
          },
        },
        {
          type: 'breakglass.granted',
          outcome: 'success',
          actor,
          subject: g.workload,
          data: {
            breakglass: g.id,
            cls: g.cls,
            requested_by: g.requestedBy,
            approved_by: approver ?? null,
            requested_person: operatorPerson(ctx, g.requestedBy) ?? null,
            approved_person: approver === undefined ? null : (operatorPerson(ctx, approver) ?? null),
            emergency: g.emergency,
            tid: taskId,
            ends_at: endsAt,
            review_due: active.reviewDue ?? null,
          },
        },
      ],
      tx,
    );
  });
  if (!audited) throw notPending((await ctx.store.getBreakGlass(g.id)) ?? g, 'granted');
  for (const e of audited) ctx.audit.noteCommitted(e);
  ctx.events.notify();
  ctx.detection.engine.heighten(g.workload, endsAt);
  ctx.logger.warn(
    {
      breakglass: g.id,
      workload: g.workload,
      cls: g.cls,
      by: actor,
      emergency: g.emergency,
      ends_at: endsAt,
    },
    'BREAK-GLASS GRANTED',
  );
  return active;
}

/**
 * Ends an active grant: closes its task (revoking every token issued under it), marks it ended and
 * logs `breakglass.ended`, audited. False when it was no longer active (another node ended it).
 */
async function endGrant(
  ctx: WritContext,
  g: BreakGlass,
  cause: 'expired' | 'closed',
  actor: string,
): Promise<BreakGlass | undefined> {
  if (g.taskId !== undefined) await closeTask(ctx, g.taskId, `break-glass ${g.id} ${cause}`, actor);
  const now = ctx.clock.now();
  const ended: BreakGlass = { ...g, state: 'ended', endedAt: now, endCause: cause };
  const audited = await ctx.store.transaction(async (tx) => {
    if (!(await tx.updateBreakGlass(ended, 'active'))) return undefined;
    await ctx.events.append(tx, EventType.breakglassEnded, {
      id: g.id,
      sub: g.workload,
      cause: cause === 'expired' ? 'expired' : 'revoked',
    });
    return ctx.audit.append(
      {
        type: 'breakglass.ended',
        outcome: 'success',
        actor,
        subject: g.workload,
        data: {
          breakglass: g.id,
          cls: g.cls,
          cause,
          tid: g.taskId ?? null,
          open_review: g.review === undefined,
        },
      },
      tx,
    );
  });
  if (!audited) return undefined;
  ctx.audit.noteCommitted(audited);
  ctx.events.notify();
  await ctx.detection.calmAfterBreakGlass(g.workload);
  ctx.logger.warn({ breakglass: g.id, workload: g.workload, cause }, 'break-glass ended');
  return ended;
}

/**
 * `writ breakglass close ID --review "..."`: closes a grant with its review note. An active grant ends
 * now (its tokens are revoked); a pending one is cancelled; an ended one gets the review it owed.
 */
export async function closeBreakGlass(
  ctx: WritContext,
  id: string,
  review: string,
  actor: string,
): Promise<BreakGlass> {
  for (;;) {
    let g = await grantOf(ctx, id);
    if (g.review)
      throw invalidRequest(`break-glass ${id} was already closed by ${g.review.by}`, {
        reason: 'breakglass_state',
      });
    const from = g.state;
    if (g.state === 'active') {
      const ended = await endGrant(ctx, g, 'closed', actor);
      if (!ended) continue;
      g = ended;
    }
    const now = ctx.clock.now();
    const closed: BreakGlass = {
      ...g,
      state: 'ended',
      ...(from === 'pending' ? { endedAt: now, endCause: 'cancelled' as const } : {}),
      review: { note: review, by: actor, at: now },
    };
    const audited = await ctx.store.transaction(async (tx) => {
      if (!(await tx.updateBreakGlass(closed, g.state))) return undefined;
      return ctx.audit.append(
        {
          type: 'breakglass.closed',
          outcome: 'success',
          actor,
          subject: g.workload,
          data: {
            breakglass: id,
            cls: g.cls,
            review,
            emergency: g.emergency,
            review_due: g.reviewDue ?? null,
            late: g.reviewDue !== undefined && now > g.reviewDue,
          },
        },
        tx,
      );
    });
    if (!audited) continue;
    ctx.audit.noteCommitted(audited);
    return closed;
  }
}

/** Ends every active grant whose time is up (the governance sweep); returns the ids ended here. */
export async function endDueBreakGlass(ctx: WritContext): Promise<string[]> {
  const ended: string[] = [];
  const due = await ctx.store.listBreakGlass({ state: 'active', endsBy: ctx.clock.now(), limit: 1000 });
  for (const g of due) if (await endGrant(ctx, g, 'expired', 'system')) ended.push(g.id);
  return ended;
}

/**
 * At issuance, when the workload's own classes do not allow the request: an active grant of the
 * workload whose class allows it, with what that class grants. Undefined when none does. Read from the
 * store (the grant may be another node's), only on this path, which is otherwise a refusal.
 */
export async function breakGlassFor(
  ctx: WritContext,
  workload: string,
  audience: string,
  requested: string[] | undefined,
): Promise<{ grant: BreakGlass; selected: Grantable } | undefined> {
  const now = ctx.clock.now();
  for (const grant of await ctx.store.listBreakGlass({ workload, state: 'active', limit: 50 })) {
    if (grant.endsAt === undefined || grant.endsAt <= now) continue;
    try {
      return { grant, selected: selectClass([grant.cls], ctx.registry, audience, requested) };
    } catch {}
  }
  return undefined;
}

/** The grant as operators see it: times as ISO strings beside the milliseconds. */
export function breakGlassView(g: BreakGlass): Record<string, unknown> {
  const iso = (t: number | undefined) => (t === undefined ? undefined : new Date(t).toISOString());
  return {
    ...g,
    open_review: g.review === undefined,
    requested: iso(g.requestedAt),
    ...(g.endsAt !== undefined ? { ends: iso(g.endsAt) } : {}),
    ...(g.reviewDue !== undefined ? { review_due: iso(g.reviewDue) } : {}),
  };
}
