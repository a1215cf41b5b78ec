import type { WritContext } from '../context.js';
import { revoke, syncRevocations } from '../revocation/revoke.js';
import type { Task } from './task.js';

/**
 * Tasks closed in one transaction: one statement closes them, one reads their tokens, one appends
 * their audit events, so PostgreSQL's write lock (which token issuance waits on) is held briefly. Each
 * batch also holds the event loop while its revocations and chained audit events are built (200 held
 * it 5–8 ms); between batches the loop turns (each commits through the store's queue), so requests
 * wait behind at most one batch of 50.
 */
const BATCH = 50;
/** A sweep stops after this many batches (a million tasks); the next tick carries on. */
const MAX_BATCHES = 20_000;

/** Why the server closed a task, by which of its ends passed. */
export const SWEEP_REASONS = {
  deadline: 'deadline reached',
  lease: 'lease expired (owner stopped renewing)',
} as const;

/** When a task falls due: the earlier of its deadline and the end of its lease. */
export function taskDueAt(t: Pick<Task, 'deadline' | 'leaseUntil'>): number {
  return t.leaseUntil === null ? t.deadline : Math.min(t.deadline, t.leaseUntil);
}

/**
 * Closes every open task past its deadline or lease at the time the sweep starts, earliest due first,
 * batch after batch until none is left: a task whose lease lapsed never waits a tick behind others.
 * Returns how many this sweep closed (another node's sweep closes others; each task closes once).
 */
export async function sweepTasks(ctx: WritContext): Promise<number> {
  const now = ctx.clock.now();
  // Most ticks find nothing due: one read, no transaction (on PostgreSQL a closing transaction takes the
  // cluster's write lock, which every node's issuance batches wait on).
  if ((await ctx.store.dueTasks(now, 1)).length === 0) return 0;
  let closed = 0;
  for (let i = 0; i < MAX_BATCHES; i++) {
    const n = await closeDueBatch(ctx, now);
    closed += n;
    // Tasks opened or renewed meanwhile fall due after `now`: the set only shrinks.
    if (n < BATCH) break;
  }
  return closed;
}

/**
 * Closes one batch of the tasks due at `now` (the sweep's start) in one transaction: each task whose
 * tokens are still live gets a `tid` revocation kept until the last of them expires; one that issued
 * none (or whose tokens all expired) gets none. Every close is audited as `task.closed`.
 */
async function closeDueBatch(ctx: WritContext, now: number): Promise<number> {
  const result = await ctx.store.transaction(async (tx) => {
    const closedAt = ctx.clock.now();
    const tasks = await tx.closeDueTasks(now, closedAt, BATCH, SWEEP_REASONS);
    if (tasks.length === 0) return undefined;
    // Closed, so no token can be issued for them any more (issuance re-reads the task).
    const expiries = await tx.latestTaskTokenExpiries(
      tasks.map((t) => t.id),
      Math.floor(closedAt / 1000),
    );
    const drafts = [];
    for (const t of tasks) {
      const exp = expiries.get(t.id);
      const reason = t.closeReason ?? SWEEP_REASONS.deadline;
      const revocation =
        exp === undefined
          ? undefined
          : await revoke(
              ctx,
              {
                kind: 'tid',
                value: t.id,
                issuedBefore: null,
                reason: `task closed: ${reason}`,
                actor: 'system',
                expiresAt: exp * 1000,
              },
              tx,
            );
      drafts.push({
        type: 'task.closed' as const,
        outcome: 'success' as const,
        actor: 'system',
        subject: t.workload,
        data: { tid: t.id, reason, opened_at: t.openedAt, revocation: revocation?.seq ?? null },
      });
    }
    return { tasks, events: await ctx.audit.appendMany(drafts, tx), revoked: expiries.size > 0 };
  });
  if (!result) return 0;
  const committedAt = ctx.clock.now();
  for (const event of result.events) ctx.audit.noteCommitted(event);
  for (const t of result.tasks)
    ctx.metrics.taskSweepLag.observe(Math.max(0, committedAt - taskDueAt(t)) / 1000);
  ctx.events.notify();
  if (result.revoked) await syncRevocations(ctx);
  return result.tasks.length;
}

/**
 * Sweeps on a timer every `tasks.sweep_interval`, one sweep at a time: a tick that finds the previous
 * sweep still running leaves it to finish (it closes everything due when it started) rather than
 * racing it over the same tasks.
 */
export function startTaskSweeper(ctx: WritContext): NodeJS.Timeout {
  let running = false;
  const timer = setInterval(() => {
    if (running) return;
    running = true;
    sweepTasks(ctx)
      .catch((e: unknown) => ctx.logger.error({ err: (e as Error).message }, 'task sweep failed'))
      .finally(() => {
        running = false;
      });
  }, ctx.settings.tasks.sweepInterval * 1000);
  return timer;
}
