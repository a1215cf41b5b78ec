import { randomBytes } from 'node:crypto';
import { consumeAssertion } from '../auth/client.js';
import type { WritContext } from '../context.js';
import { refuseControlCharacters } from '../control-characters.js';
import { invalidGrant, invalidRequest, OAuthError } from '../errors.js';
import type { ResolvedWorkload } from '../registry/registry.js';
import { revocationExpiry } from '../revocation/expiry.js';
import { revoke, syncRevocations } from '../revocation/revoke.js';
import type { Task } from './task.js';

export interface OpenTaskRequest {
  workload: ResolvedWorkload;
  purpose: string;
  /** Seconds the work is expected to take; capped by the workload's classes. */
  duration?: number | undefined;
  /** Seconds: when set, the task closes unless renewed this often (the owning process is alive). */
  lease?: number | undefined;
  labels: Record<string, string>;
  openedBy: string;
  /** A fixed id (a CI run's task, derived from the run); default random. */
  id?: string | undefined;
  /**
   * The client assertion to spend (its `jti`) in the transaction that opens the task: a spent one is
   * refused (`invalid_client`, reason `replay`) and no task is opened.
   */
  replay?: { clientId: string; jti: string; until: number } | undefined;
  /** More for the `task.opened` event (how the opener authenticated, the federation token's summary). */
  auditData?: Record<string, unknown> | undefined;
}

const LABEL_KEY = /^[A-Za-z][A-Za-z0-9_.-]{0,63}$/;
/** The longest reason a task is closed with (a workload's form field, an operator's JSON). */
const CLOSE_REASON_MAX = 500;

/** Validates task labels sent as a JSON object of strings (CI run id, job name, ticket…). */
export function parseLabels(raw: string | undefined): Record<string, string> {
  if (raw === undefined) return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw invalidRequest('labels must be a JSON object of strings', { reason: 'labels' });
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
    throw invalidRequest('labels must be a JSON object of strings', { reason: 'labels' });
  const entries = Object.entries(parsed);
  if (entries.length > 16) throw invalidRequest('at most 16 labels', { reason: 'labels' });
  for (const [k, v] of entries) {
    if (!LABEL_KEY.test(k) || typeof v !== 'string' || v.length > 256) {
      throw invalidRequest('labels must map short names to strings of at most 256 characters', {
        reason: 'labels',
      });
    }
  }
  return parsed as Record<string, string>;
}

/** The longest a task of this workload may stay open: the largest `renewal.max_lifetime` of its classes. */
export function taskCeiling(ctx: WritContext, w: ResolvedWorkload): number {
  let max = 0;
  for (const c of w.classes) max = Math.max(max, ctx.registry.tokenClass(c)?.renewalMaxLifetime ?? 0);
  return max;
}

/** Opens a task and audits it. Its deadline is `duration` (default: the ceiling), capped by the classes. */
export async function openTask(ctx: WritContext, r: OpenTaskRequest): Promise<Task> {
  const purpose = r.purpose.trim();
  if (purpose.length === 0 || purpose.length > 200)
    throw invalidRequest('purpose is required (at most 200 characters)', { reason: 'purpose' });
  // Purpose and labels are stored, audited and shown to operators as they were sent: refused, not
  // cleaned, when they hold control characters (a platform token's claims are cleaned before this).
  refuseControlCharacters(purpose, 'purpose');
  for (const [k, v] of Object.entries(r.labels)) refuseControlCharacters(v, `labels.${k}`);
  const ceiling = taskCeiling(ctx, r.workload);
  if (ceiling === 0) throw invalidRequest('the workload has no token class', { reason: 'no_token_class' });
  const duration = Math.min(r.duration ?? ceiling, ceiling);
  const now = ctx.clock.now();
  const task: Task = {
    id: r.id ?? `task_${randomBytes(12).toString('base64url')}`,
    workload: r.workload.id,
    purpose,
    labels: r.labels,
    openedBy: r.openedBy,
    openedAt: now,
    deadline: now + duration * 1000,
    leaseUntil: r.lease === undefined ? null : now + r.lease * 1000,
    closedAt: null,
    closeReason: null,
  };
  const event = await ctx.store.transaction(async (tx) => {
    if (r.replay) await consumeAssertion(tx, r.replay.clientId, r.replay, now);
    // Counted in the transaction that opens it (transactions are serialized), so racing opens cannot
    // pass the limit together.
    const open = await tx.countOpenTasks(task.workload);
    const limit = ctx.settings.tasks.maxOpenPerWorkload;
    if (open >= limit) throw openTaskLimit(task.workload, open, limit);
    await tx.createTask(task);
    return ctx.audit.append(
      {
        type: 'task.opened',
        outcome: 'success',
        actor: r.openedBy,
        subject: r.workload.id,
        data: {
          ...r.auditData,
          tid: task.id,
          purpose,
          labels: task.labels,
          deadline: task.deadline,
          lease: r.lease ?? null,
        },
      },
      tx,
    );
  });
  ctx.audit.noteCommitted(event);
  return task;
}

/**
 * The refusal of one task too many: how many are open and the limit (`tasks.max_open_per_workload`).
 * Room appears when a task closes or ends, so it is a quota answer (429), not a malformed request.
 */
function openTaskLimit(workload: string, open: number, limit: number): OAuthError {
  return new OAuthError(
    'temporarily_unavailable',
    `the workload has ${open} open tasks and tasks.max_open_per_workload is ${limit}: close a task (or let one end) before opening another`,
    { status: 429, detail: { reason: 'open_task_limit', workload, open, limit } },
  );
}

/** Deletes tasks closed longer ago than `tasks.retention` (the audit log keeps their history). */
export function pruneClosedTasks(ctx: Pick<WritContext, 'store' | 'clock' | 'settings'>): Promise<number> {
  return ctx.store.pruneTasks(ctx.clock.now() - ctx.settings.tasks.retention * 1000);
}

/**
 * Closes a task and revokes every token issued for it with one `tid` revocation (kept until the last
 * of them expires; none when no token of it is live), atomically. Returns false when the task was
 * already closed (closing twice is harmless). A `reason` longer than 500 characters or holding
 * control characters is refused.
 */
export async function closeTask(
  ctx: WritContext,
  id: string,
  reason: string,
  actor: string,
): Promise<boolean> {
  if (reason.length > CLOSE_REASON_MAX)
    throw invalidRequest(`reason must be at most ${CLOSE_REASON_MAX} characters`, {
      reason: 'parameter_too_long',
    });
  refuseControlCharacters(reason, 'reason');
  const now = ctx.clock.now();
  const event = await ctx.store.transaction(async (tx) => {
    const task = await tx.getTask(id);
    if (!task || !(await tx.closeTask(id, now, reason))) return undefined;
    // Closed first: from here no token can be issued for it (issuance re-reads the task), so its
    // records are all the tokens there will ever be. None live, nothing to revoke: a task that issued
    // no token adds nothing to the set every verifier holds, however many are opened and closed.
    const expiresAt = await revocationExpiry(ctx, tx, { kind: 'tid', value: id, issuedBefore: null }, now);
    const revocation =
      expiresAt === undefined
        ? undefined
        : await revoke(
            ctx,
            {
              kind: 'tid',
              value: id,
              issuedBefore: null,
              reason: `task closed: ${reason}`,
              actor,
              expiresAt,
            },
            tx,
          );
    return ctx.audit.append(
      {
        type: 'task.closed',
        outcome: 'success',
        actor,
        subject: task.workload,
        data: { tid: id, reason, opened_at: task.openedAt, revocation: revocation?.seq ?? null },
      },
      tx,
    );
  });
  if (!event) return false;
  ctx.audit.noteCommitted(event);
  ctx.events.notify();
  await syncRevocations(ctx);
  return true;
}

/**
 * The task a token request names, checked: it exists, belongs to the workload and is open. Returns
 * the latest `exp` (seconds) a token for it may have under `renewalMaxLifetime`.
 */
export async function taskForIssuance(
  ctx: WritContext,
  taskId: string,
  workloadId: string,
  renewalMaxLifetime: number,
): Promise<{ task: Task; notAfter: number; renewal: boolean }> {
  const task = await ctx.store.getTask(taskId);
  if (!task || task.workload !== workloadId) throw invalidGrant('unknown task', { reason: 'unknown_task' });
  const now = ctx.clock.now();
  if (task.closedAt !== null) throw invalidGrant('the task is closed', { reason: 'task_closed' });
  if (task.deadline <= now || (task.leaseUntil !== null && task.leaseUntil <= now))
    throw invalidGrant('the task has ended', { reason: 'task_ended' });
  const end = Math.min(task.deadline, task.openedAt + renewalMaxLifetime * 1000);
  const notAfter = Math.floor(end / 1000);
  if (notAfter <= Math.floor(now / 1000))
    throw invalidGrant('the task has reached the class maximum lifetime; open a new task', {
      reason: 'task_lifetime',
    });
  const renewal = (await ctx.store.tokensForTask(taskId, 1)).length > 0;
  return { task, notAfter, renewal };
}
