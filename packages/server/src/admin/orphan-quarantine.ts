import type { WritContext } from '../context.js';
import { orphanedWorkloads } from '../people/orphans.js';
import { setWorkloadState } from './operations.js';

/** The actor of quarantines the governance setting makes on its own. */
export const GOVERNANCE_ACTOR = 'governance';

/**
 * The opt-in rule `governance.orphan_quarantine_after`: quarantines (and so revokes the tokens of)
 * every active workload whose owner has been deprovisioned for at least that long, by the injected
 * clock. Off at 0. An orphan whose owner's end time is unknown is left listed, not guessed at.
 * Returns the workloads it quarantined; run every minute by the server.
 */
export async function quarantineOrphans(ctx: WritContext): Promise<string[]> {
  const grace = ctx.settings.governance.orphanQuarantineAfter;
  if (grace <= 0) return [];
  const now = ctx.clock.now();
  const done: string[] = [];
  for (const o of orphanedWorkloads(ctx.registry)) {
    if (o.state !== 'active' || o.since === undefined || o.since + grace * 1000 > now) continue;
    const reason = `owner ${o.owner} is ${o.reason.replaceAll('_', ' ')} since ${new Date(o.since).toISOString()} (governance.orphan_quarantine_after)`;
    if (await setWorkloadState(ctx, o.id, 'quarantined', GOVERNANCE_ACTOR, reason)) done.push(o.id);
  }
  return done;
}
