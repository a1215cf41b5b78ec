import type { WritContext } from '../context.js';
import { endDueBreakGlass } from './break-glass-operations.js';
import { alertExpiringExceptions } from './exception-operations.js';

/** Expiry alerts are looked for at most this often; break-glass ends on every tick. */
const ALERT_EVERY_MS = 60_000;

/**
 * One governance sweep: ends the break-glass grants whose time is up (their tokens are revoked with
 * their task) and, at most once a minute, alerts the owners of exceptions entering their alert window.
 * Several nodes may sweep at once: each grant ends once and each alert is sent once (conditional writes).
 */
export async function sweepGovernance(
  ctx: WritContext,
  state: { lastAlertAt: number } = { lastAlertAt: Number.NEGATIVE_INFINITY },
): Promise<{ ended: string[]; alerted: string[] }> {
  const ended = await endDueBreakGlass(ctx);
  let alerted: string[] = [];
  const now = ctx.clock.now();
  if (now - state.lastAlertAt >= ALERT_EVERY_MS) {
    state.lastAlertAt = now;
    alerted = await alertExpiringExceptions(ctx);
  }
  return { ended, alerted };
}

/** Sweeps every `tasks.sweep_interval`, one sweep at a time (as the task sweeper does). */
export function startGovernanceSweeper(ctx: WritContext): NodeJS.Timeout {
  let running = false;
  const state = { lastAlertAt: Number.NEGATIVE_INFINITY };
  return setInterval(() => {
    if (running) return;
    running = true;
    sweepGovernance(ctx, state)
      .catch((e: unknown) => ctx.logger.error({ err: (e as Error).message }, 'governance sweep failed'))
      .finally(() => {
        running = false;
      });
  }, ctx.settings.tasks.sweepInterval * 1000);
}
