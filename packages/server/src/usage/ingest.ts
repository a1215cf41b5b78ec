import { z } from 'zod';
import type { WritContext } from '../context.js';
import { invalidRequest } from '../errors.js';
import { plainUsageRecord } from './plain-record.js';
import type { UsageAggregate } from './usage-aggregate.js';

/** One use as a verifier reports it (the wire shape of `POST /v1/usage`; the SDK's `UsageRecord`). */
const record = z
  .object({
    /** Empty only for a denial of a token whose claims could not be trusted. */
    jti: z.string().max(256),
    sub: z.string().max(2048),
    tid: z.string().min(1).max(256).nullish(),
    operation: z.string().min(1).max(512),
    source: z.string().min(1).max(128),
    user_agent: z.string().max(512).nullish(),
    decision: z.enum(['allow', 'deny']),
    reason: z
      .string()
      .max(128)
      .regex(/^[A-Za-z0-9_.:-]*$/)
      .optional(),
    /** Milliseconds since the epoch. */
    time: z.number().int().nonnegative(),
  })
  .strict();

export const usageReport = z
  .object({
    records: z.array(record).min(1),
    /** Records the reporter dropped (buffer full, or refused batches) since its last accepted report. */
    dropped: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER).default(0),
  })
  .strict();

export type UsageReport = z.output<typeof usageReport>;

/** Reports may carry times this far ahead of the server clock (a verifier's clock runs fast). */
const FUTURE_SKEW_MS = 5 * 60_000;

/**
 * Validates a verifier's report, folds its records into aggregates per (jti, operation, source,
 * decision, reason) and stores them with one audit event, in one transaction. Refuses the whole
 * report (`invalid_request`, nothing stored) if any record is malformed or out of time.
 */
export async function ingestUsageReport(
  ctx: WritContext,
  reporter: string,
  body: unknown,
  ip: string,
): Promise<{ accepted: number; aggregates: number }> {
  const parsed = usageReport.safeParse(body ?? {});
  if (!parsed.success) {
    const i = parsed.error.issues[0]!;
    throw invalidRequest(`${i.path.join('.') || 'body'}: ${i.message}`, { reason: 'malformed_report' });
  }
  const report = parsed.data;
  const { usage } = ctx.settings;
  if (report.records.length > usage.batchRecords)
    throw invalidRequest(`a report holds at most ${usage.batchRecords} records`, { reason: 'too_many' });
  const now = ctx.clock.now();
  const oldest = now - usage.retention * 1000;
  const aggregates = new Map<string, UsageAggregate>();
  let denied = 0;
  for (const [i, sent] of report.records.entries()) {
    const r = plainUsageRecord(sent);
    if (r.time > now + FUTURE_SKEW_MS || r.time < oldest)
      throw invalidRequest(`records.${i}.time: outside the accepted window`, { reason: 'time' });
    if (r.decision === 'allow' && (r.jti === '' || r.sub === '' || (r.reason ?? '') !== ''))
      throw invalidRequest(`records.${i}: an allowed use names its token and gives no reason`, {
        reason: 'malformed_report',
      });
    const reason = r.decision === 'deny' ? r.reason || 'denied' : '';
    if (r.decision === 'deny') denied++;
    const key = JSON.stringify([r.jti, r.operation, r.source, r.decision, reason]);
    const seen = aggregates.get(key);
    if (seen) {
      seen.count++;
      seen.firstSeen = Math.min(seen.firstSeen, r.time);
      if (r.time >= seen.lastSeen) {
        seen.lastSeen = r.time;
        seen.userAgent = r.user_agent ?? null;
      }
    } else {
      aggregates.set(key, {
        jti: r.jti,
        sub: r.sub,
        tid: r.tid ?? null,
        operation: r.operation,
        source: r.source,
        decision: r.decision,
        reason,
        reporter,
        userAgent: r.user_agent ?? null,
        count: 1,
        firstSeen: r.time,
        lastSeen: r.time,
      });
    }
  }
  const rows = [...aggregates.values()];
  const event = await ctx.store.transaction(async (tx) => {
    await tx.addUsage(rows);
    return ctx.audit.append(
      {
        type: 'usage.reported',
        outcome: 'success',
        actor: reporter,
        data: {
          records: report.records.length,
          aggregates: rows.length,
          tokens: new Set(rows.map((r) => r.jti)).size,
          denied,
          dropped_by_reporter: report.dropped,
          ip,
        },
      },
      tx,
    );
  });
  ctx.audit.noteCommitted(event);
  if (report.dropped > 0)
    ctx.logger.warn({ reporter, dropped: report.dropped }, 'a verifier dropped usage records');
  return { accepted: report.records.length, aggregates: rows.length };
}
