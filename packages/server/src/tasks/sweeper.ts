import type { AuditEvent } from '../audit/audit-event.js';
import type { WritContext } from '../context.js';
import { syncRevocations } from '../revocation/revoke.js';
import type { Task } from './task.js';
import { closeTaskWithin } from './tasks.js';

/** Due tasks read at once. */
const PAGE = 500;
/**
 * Tasks closed in one transaction: one commit for many closes, while PostgreSQL's write lock (which
 * token issuance waits on) is held for a few milliseconds at a time only.
 */
const BATCH = 50;

/** When a task falls due: the earlier of its deadline and the end of its lease. */
export function taskDueAt(t: Pick<Task, 'deadline' | 'leaseUntil'>): number {
  return t.leaseUntil === null ? t.deadline : Math.min(t.deadline, t.leaseUntil);
}

/**
 * Closes every open task past its deadline or lease at the time the sweep starts, earliest due first,
 * page after page until none is left: a task whose lease lapsed never waits a tick behind others.
 * Returns how many this sweep closed (another node may close some of the same tasks; each closes once).
 */
export async function sweepTasks(ctx: WritContext): Promise<number> {
  const now = ctx.clock.now();
  let closed = 0;
  for (;;) {
    const due = await ctx.store.dueTasks(now, PAGE);
    let closedNow = 0;
    for (let i = 0; i < due.length; i += BATCH)
      closedNow += await closeDue(ctx, due.slice(i, i + BATCH), now);
    closed += closedNow;
    // Every task read was due at `now` and is closed now (by this sweep or another node's): each page
    // shrinks the set, and tasks opened meanwhile fall due later than `now`.
    if (due.length < PAGE || closedNow === 0) return closed;
  }
}

/** Closes the tasks that are still due at `now` (the sweep's start) in one transaction. */
async function closeDue(ctx: WritContext, tasks: Task[], now: number): Promise<number> {
  const events = await ctx.store.transaction(async (tx) => {
    const closedAt = ctx.clock.now();
    const out: Array<{ event: AuditEvent; dueAt: number }> = [];
    for (const t of tasks) {
      let dueAt = taskDueAt(t);
      const event = await closeTaskWithin(
        ctx,
        tx,
        t.id,
        (current) => {
          // Read again in the transaction: a heartbeat may have renewed the lease since the page was read.
          dueAt = taskDueAt(current);
          if (dueAt > now) return undefined;
          return current.deadline <= now ? 'deadline reached' : 'lease expired (owner stopped renewing)';
        },
        'system',
        closedAt,
      );
      if (event) out.push({ event, dueAt });
    }
    return out;
  });
  if (events.length === 0) return 0;
  const committedAt = ctx.clock.now();
  for (const { event, dueAt } of events) {
    ctx.audit.noteCommitted(event);
    ctx.metrics.taskSweepLag.observe(Math.max(0, committedAt - dueAt) / 1000);
  }
  ctx.events.notify();
  await syncRevocations(ctx);
  return events.length;
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
