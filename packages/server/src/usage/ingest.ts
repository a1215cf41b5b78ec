import { timingSafeEqual } from 'node:crypto';
import { type RefusalReason, VERIFIER_SIGNALS, type VerifierSignal } from '@writ/sdk/wire';
import { z } from 'zod';
import type { WritContext } from '../context.js';
import { invalidRequest } from '../errors.js';
import type { IssuedToken } from '../tokens/issued-token.js';
import { plainUsageRecord } from './plain-record.js';
import type { UsageAggregate } from './usage-aggregate.js';

const SIGNALS = Object.keys(VERIFIER_SIGNALS) as [VerifierSignal, ...VerifierSignal[]];

/**
 * One use as a verifier reports it (the wire shape of `POST /v1/usage`; the SDK's `UsageRecord`).
 * Strict: a field Writ does not read (a `reporter`, a `verifier`) refuses the record, so nobody can
 * believe a record says more than it does.
 */
export const usageRecord = z
  .object({
    /**
     * The token used: one Writ issued, for an API the reporter serves (or, for `wrong_audience`, one the
     * record proves with `token_sha256`). Empty only in a `stale` signal, which is about the reporter.
     */
    jti: z.string().max(256),
    /** Ignored: the subject and the task are read from Writ's own record of the token. */
    sub: z.string().max(2048).optional(),
    tid: z.string().max(256).nullish(),
    /** Free text (a route, an address, a header): bounded and escaped when stored (`plainUsageRecord`). */
    operation: z.string().min(1).max(8192),
    source: z.string().min(1).max(8192),
    user_agent: z.string().max(8192).nullish(),
    decision: z.enum(['allow', 'deny']),
    reason: z
      .string()
      .max(128)
      .regex(/^[A-Za-z0-9_.:-]*$/)
      .optional(),
    /** The security signal of a denial (`VERIFIER_SIGNALS`), which detection rules match on. */
    signal: z.enum(SIGNALS, { error: `must be one of ${SIGNALS.join(', ')}` }).optional(),
    /**
     * Base64url SHA-256 of the serialized token (its fingerprint in Writ's record): proof the reporter saw
     * the token itself. Required with `wrong_audience`; checked whenever sent.
     */
    token_sha256: z
      .string()
      .regex(/^[A-Za-z0-9_-]{43}$/, 'must be the base64url SHA-256 of the token (43 characters)')
      .optional(),
    /** Milliseconds since the epoch. */
    time: z.number().int().nonnegative(),
  })
  .strict();

/** A use as the report gave it, once checked; its text fields bounded and escaped (`plainUsageRecord`). */
export type ReportedUse = z.output<typeof usageRecord>;

export const usageReport = z
  .object({
    /** Each record is checked on its own: a bad one is refused, the others are taken. */
    records: z.array(z.unknown()).min(1),
    /** Records the reporter dropped (buffer full, or refused batches) since its last accepted report. */
    dropped: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER).default(0),
  })
  .strict();

/** Reports may carry times this far ahead of the server clock (a verifier's clock runs fast). */
const FUTURE_SKEW_MS = 5 * 60_000;

/** A record Writ did not take, as the response lists it: its place in the report and why. */
export interface RefusedRecord {
  index: number;
  error: 'invalid_request';
  error_description: string;
}

interface Refusal extends RefusedRecord {
  reason: RefusalReason;
}

export interface UsageReceipt {
  accepted: number;
  aggregates: number;
  refused: RefusedRecord[];
}

/**
 * A record Writ took, with Writ's own record of its token: what detection reads. `token` is undefined
 * for a `stale` signal, which names no token and is about the reporter itself.
 */
export interface TakenUse {
  record: ReportedUse;
  token: IssuedToken | undefined;
}

/** The description of a record naming a token the reporter may not report on, whatever the cause. */
const notReportable = (index: number): string =>
  `records.${index}.jti: no token with this jti was issued for an API this verifier serves; report only uses of Writ tokens for the APIs its workload lists under serves`;

/**
 * Validates a verifier's report and folds the records it may make into aggregates per (jti,
 * operation, source, decision, reason), stored with one audit event in one transaction. A record is
 * taken only when it is well formed, in time, and names a token Writ issued for an API the reporter
 * serves (its workload's `serves`); `sub` and `tid` come from Writ's record of that token, never from
 * the report. Two kinds of record are not about tokens the reporter serves: a `wrong_audience` signal
 * (someone sent it a token for another API), taken only when its `token_sha256` is the token's
 * fingerprint, since a `jti` alone could be copied from anywhere to frame a workload; and a `stale`
 * signal, which names no token (it is counted, not aggregated). A `token_sha256` that is not the
 * token's refuses the record as if the token did not exist. Each other record is refused on its own,
 * listed with why; a report none of whose records is taken is refused whole (`invalid_request`, nothing
 * stored). Returns the receipt for the reporter and the records taken, with their tokens.
 */
export async function ingestUsageReport(
  ctx: WritContext,
  reporter: string,
  body: unknown,
  ip: string,
): Promise<{ receipt: UsageReceipt; taken: TakenUse[] }> {
  const parsed = usageReport.safeParse(body ?? {});
  if (!parsed.success) {
    const i = parsed.error.issues[0]!;
    throw invalidRequest(`${i.path.join('.') || 'body'}: ${i.message}`, { reason: 'malformed_report' });
  }
  const report = parsed.data;
  const { usage } = ctx.settings;
  if (report.records.length > usage.batchRecords)
    throw invalidRequest(`a report holds at most ${usage.batchRecords} records`, { reason: 'too_many' });

  const refused: Refusal[] = [];
  const refuse = (index: number, reason: RefusalReason, description: string) =>
    refused.push({ index, reason, error: 'invalid_request', error_description: description });
  const wellFormed = checkRecords(report.records, ctx.clock.now(), usage.retention, refuse);
  const jtis = new Set(wellFormed.map(({ r }) => r.jti).filter((jti) => jti !== ''));
  const tokens = new Map((await ctx.store.getTokens([...jtis])).map((t) => [t.jti, t]));
  const serves = (aud: string) => ctx.registry.serves(reporter, aud);
  const aggregates = new Map<string, UsageAggregate>();
  const taken: TakenUse[] = [];
  const signals: Record<string, number> = {};
  let denied = 0;
  for (const { index, r } of wellFormed) {
    // An empty jti passed checkRecords only in a stale signal: about the reporter, no token to check.
    const token = r.jti === '' ? undefined : tokens.get(r.jti);
    const why = r.jti === '' ? undefined : unreportable(r, token, serves);
    if (why) {
      // One answer for every cause: whether a jti exists, or what API it is for, is not the reporter's to learn.
      refuse(index, why, notReportable(index));
      continue;
    }
    const plain = plainUsageRecord(r);
    if (r.decision === 'deny') denied++;
    if (r.signal) signals[r.signal] = (signals[r.signal] ?? 0) + 1;
    if (token) fold(aggregates, plain, token, reporter);
    taken.push({ record: plain, token });
  }
  refused.sort((a, b) => a.index - b.index);
  const refusals = countReasons(refused);
  if (taken.length === 0) {
    const first = refused[0]!;
    const more = refused.length > 1 ? ` (and ${refused.length - 1} more records refused)` : '';
    throw invalidRequest(`no record of the report was taken: ${first.error_description}${more}`, {
      reason: first.reason,
      records: report.records.length,
      refusals,
    });
  }
  const rows = [...aggregates.values()];
  const accepted = report.records.length - refused.length;
  const event = await ctx.store.transaction(async (tx) => {
    if (rows.length > 0) await tx.addUsage(rows);
    return ctx.audit.append(
      {
        type: 'usage.reported',
        outcome: 'success',
        actor: reporter,
        data: {
          records: accepted,
          aggregates: rows.length,
          tokens: new Set(rows.map((r) => r.jti)).size,
          denied,
          refused: refused.length,
          ...(refused.length > 0 ? { refusals } : {}),
          ...(Object.keys(signals).length > 0 ? { signals } : {}),
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
  return {
    receipt: {
      accepted,
      aggregates: rows.length,
      refused: refused.map(({ reason: _r, ...listed }) => listed),
    },
    taken,
  };
}

/**
 * Why the reporter may not report this use of `token` (undefined when it may): the token is unknown,
 * the record's `token_sha256` is not its fingerprint, or the token is for an API the reporter does not
 * serve and the record is not a `wrong_audience` signal (whose fingerprint `checkRecords` required).
 */
function unreportable(
  r: ReportedUse,
  token: IssuedToken | undefined,
  serves: (aud: string) => boolean,
): RefusalReason | undefined {
  if (!token) return 'unknown_token';
  if (r.token_sha256 !== undefined && !sameFingerprint(r.token_sha256, token.fingerprint))
    return 'token_sha256';
  if (r.signal === 'wrong_audience') return undefined;
  return serves(token.aud) ? undefined : 'audience_not_served';
}

/** Constant-time comparison of two base64url SHA-256 digests. */
function sameFingerprint(claimed: string, recorded: string): boolean {
  const a = Buffer.from(claimed, 'base64url');
  const b = Buffer.from(recorded, 'base64url');
  return a.length === b.length && timingSafeEqual(a, b);
}

/** The records that have the documented shape and a time in the window; `refuse` hears of the others. */
function checkRecords(
  records: readonly unknown[],
  now: number,
  retentionSeconds: number,
  refuse: (index: number, reason: RefusalReason, description: string) => void,
): Array<{ index: number; r: ReportedUse }> {
  const oldest = now - retentionSeconds * 1000;
  const out: Array<{ index: number; r: ReportedUse }> = [];
  for (const [index, raw] of records.entries()) {
    const p = usageRecord.safeParse(raw);
    if (!p.success) {
      const issue = p.error.issues[0]!;
      const field = ['records', index, ...issue.path].join('.');
      refuse(index, 'malformed_report', `${field}: ${issue.message}`);
      continue;
    }
    const r = p.data;
    if (r.time > now + FUTURE_SKEW_MS || r.time < oldest)
      refuse(index, 'time', `records.${index}.time: outside the accepted window`);
    else if (r.decision === 'allow' && (r.reason ?? '') !== '')
      refuse(index, 'malformed_report', `records.${index}: an allowed use gives no reason`);
    else if (r.decision === 'allow' && r.signal !== undefined)
      refuse(index, 'malformed_report', `records.${index}.signal: only a denied use carries a signal`);
    else if (r.jti === '' && r.signal !== 'stale')
      refuse(
        index,
        'malformed_report',
        `records.${index}.jti: a record names its token; only a stale signal (about the verifier itself) names none`,
      );
    else if (r.signal === 'wrong_audience' && r.token_sha256 === undefined)
      refuse(
        index,
        'malformed_report',
        `records.${index}.token_sha256: a wrong_audience signal proves the token with its SHA-256`,
      );
    else out.push({ index, r });
  }
  return out;
}

/** The reason a use is stored and detected under: the reporter's for a denial (`denied` if none), else "". */
export function deniedReason(r: Pick<ReportedUse, 'decision' | 'reason'>): string {
  return r.decision === 'deny' ? r.reason || 'denied' : '';
}

/** Adds one use to its aggregate; the subject and task are the token's, as Writ recorded them. */
function fold(
  aggregates: Map<string, UsageAggregate>,
  r: ReportedUse,
  token: IssuedToken,
  reporter: string,
): void {
  const reason = deniedReason(r);
  const { operation, source, user_agent } = r;
  const userAgent = user_agent || null;
  const key = JSON.stringify([r.jti, operation, source, r.decision, reason]);
  const seen = aggregates.get(key);
  if (seen) {
    seen.count++;
    seen.firstSeen = Math.min(seen.firstSeen, r.time);
    if (r.time >= seen.lastSeen) {
      seen.lastSeen = r.time;
      seen.userAgent = userAgent;
    }
    return;
  }
  aggregates.set(key, {
    jti: token.jti,
    sub: token.sub,
    tid: token.tid ?? null,
    operation,
    source,
    decision: r.decision,
    reason,
    reporter,
    userAgent,
    count: 1,
    firstSeen: r.time,
    lastSeen: r.time,
  });
}

function countReasons(refused: readonly Refusal[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const r of refused) counts[r.reason] = (counts[r.reason] ?? 0) + 1;
  return counts;
}
