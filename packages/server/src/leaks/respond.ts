import { EventType } from '@writ/sdk/wire';
import { setWorkloadState } from '../admin/operations.js';
import type { WritContext } from '../context.js';
import type { FindingOutcome } from '../detection/finding.js';
import { revoke } from '../revocation/revoke.js';
import { tokenFingerprint } from '../tokens/access-token.js';
import { classifyLeakedToken, type LeakedTokenState } from './leaked-token.js';

/** The rule id of the findings a leak records (`writ detections list --rule leak`). */
export const LEAK_RULE = 'leak';

/** Who found a leak: GitHub's partner program, `writ scan` (an operator), or a scanner workload. */
export type LeakVia = 'github' | 'scan' | 'report';

/**
 * Where a leaked token was found, as the reporter said (bounded, control characters escaped): a URL
 * (GitHub's link to the file or commit), a source (GitHub's `content`, `commit`, `pull_request`…; a
 * pipeline's stream name), a file path, line and commit, the reporter's name for the token type.
 */
export interface LeakLocation {
  via: LeakVia;
  url?: string;
  source?: string;
  path?: string;
  line?: number;
  commit?: string;
  type?: string;
}

export interface LeakReport {
  /** The token as found. Never stored, logged or answered back: its `jti` and fingerprint are. */
  token: string;
  where: LeakLocation;
}

/**
 * What one reported token was and what the report did: `revoked` a live Writ token (and what
 * `leaks.response` adds, in `outcome`), `recorded` a finding for a token of ours already expired or
 * revoked (nothing changed), `none` for tokens not ours or not signed by us (nothing recorded), or for
 * every token of a dry run.
 */
export interface LeakResult {
  state: LeakedTokenState;
  action: 'revoked' | 'recorded' | 'none';
  jti?: string;
  sub?: string;
  finding?: string;
  outcome?: FindingOutcome;
}

/**
 * The response to leaked tokens, whoever reported them (docs/leaks.md). For each token signed by this
 * issuer: a live one is revoked at once (before anything else, so verifiers hear of it first), then,
 * per `leaks.response`, its task too or its workload quarantined (an operator's token only ever
 * itself); a `leak` finding is recorded with where it was found, raising the workload's risk by
 * `leaks.severity`; a `leak.found` event goes in the same transaction (Shared Signals receivers get a
 * CAEP `credential-change`), and the findings webhook tells the owner. A token already expired or
 * revoked is recorded (finding outcome `inactive`, no risk, no revocation, no `credential-change`).
 * Tokens of other issuers, and tokens naming this issuer whose signature does not verify, are never
 * revoked and leave no finding. `reporter` is the authenticated caller, recorded as the actor.
 * With `dryRun` nothing is done: each token is only classified. One `leak.reported` audit event
 * counts what the report held and did.
 */
export async function respondToLeaks(
  ctx: WritContext,
  reports: readonly LeakReport[],
  o: { reporter: string; via: LeakVia; dryRun?: boolean },
): Promise<LeakResult[]> {
  const results: LeakResult[] = [];
  for (const r of reports) results.push(await respondToLeak(ctx, r, o));
  const count = (p: (x: LeakResult) => boolean) => results.filter(p).length;
  const event = await ctx.audit.append({
    type: 'leak.reported',
    outcome: 'success',
    actor: o.reporter,
    data: {
      via: o.via,
      tokens: results.length,
      ours: count((x) => x.state === 'live' || x.state === 'expired' || x.state === 'revoked'),
      revoked: count((x) => x.action === 'revoked'),
      recorded: count((x) => x.action === 'recorded'),
      unverified: count((x) => x.state === 'unverified'),
      foreign: count((x) => x.state === 'foreign'),
      ...(o.dryRun ? { dry_run: true } : {}),
    },
  });
  ctx.audit.noteCommitted(event);
  return results;
}

async function respondToLeak(
  ctx: WritContext,
  r: LeakReport,
  o: { reporter: string; via: LeakVia; dryRun?: boolean },
): Promise<LeakResult> {
  const found = classifyLeakedToken(ctx, r.token);
  if (!('claims' in found)) return { state: found.state, action: 'none' };
  const { claims } = found;
  const named = { jti: claims.jti, sub: claims.sub };
  if (o.dryRun) return { state: found.state, action: 'none', ...named };
  const live = found.state === 'live';
  // A workload that serves the token's audience received it as its recipient: its word that it leaked
  // revokes that token, but takes no more (task, quarantine) against the workload that sent it.
  const recipient =
    o.via === 'report' && claims.sub !== o.reporter && ctx.registry.serves(o.reporter, claims.aud);
  const outcome = live ? await revokeLeaked(ctx, claims, o.reporter, r.where.via, recipient) : 'inactive';
  const fingerprint = tokenFingerprint(r.token);
  const owner = ctx.registry.workload(claims.sub)?.owner;
  const finding = await ctx.detection.recordFinding({
    rule: LEAK_RULE,
    severity: ctx.settings.leaks.severity,
    mode: 'enforce',
    workload: claims.sub,
    jti: claims.jti,
    tid: claims.tid ?? null,
    evidence: {
      signals: [],
      read: {
        leak: {
          ...r.where,
          reporter: o.reporter,
          state: found.state,
          fingerprint,
          ...(owner !== undefined ? { owner } : {}),
          ...(recipient ? { reporter_is_audience: true } : {}),
        },
      },
    },
    response: ctx.settings.leaks.response,
    outcome,
    // An operator's token is revoked, but operator access carries no risk (as for detections); nor
    // does a token its own audience reports (risk feeds issuance policy: no lever against callers).
    raisesRisk: live && !recipient && outcome !== 'failed' && !claims.sub.startsWith('operator:'),
    actor: o.reporter,
    auditData: {
      leak_via: r.where.via,
      token_state: found.state,
      fingerprint,
      ...(recipient ? { reporter_is_audience: true } : {}),
    },
    also: async (tx, f) => {
      await ctx.events.append(tx, EventType.leakFound, {
        id: f.id,
        source: r.where.via,
        fingerprint,
        revoked: live,
        jti: claims.jti,
        sub: claims.sub,
      });
    },
  });
  return {
    state: found.state,
    action: live ? 'revoked' : 'recorded',
    ...named,
    finding: finding.id,
    outcome,
  };
}

/**
 * Revokes a live leaked token, then takes what `leaks.response` adds: its task, or its workload into
 * quarantine. Operator tokens are only ever revoked themselves. Returns the finding's outcome: the
 * response taken (`revoke_token` where there was no task to revoke) or `failed` when the addition
 * failed (the token itself is revoked by then; a failure to revoke it throws: the report is refused).
 * `tokenOnly` (the reporter is the token's audience): the token alone, whatever `leaks.response` says.
 */
async function revokeLeaked(
  ctx: WritContext,
  claims: { jti: string; sub: string; tid?: string | undefined },
  actor: string,
  via: LeakVia,
  tokenOnly: boolean,
): Promise<FindingOutcome> {
  const reason = `leaked token reported (${via})`;
  await revoke(ctx, { kind: 'jti', value: claims.jti, issuedBefore: null, reason, actor });
  const wanted = ctx.settings.leaks.response;
  if (tokenOnly || claims.sub.startsWith('operator:') || wanted === 'revoke_token') return 'revoke_token';
  try {
    if (wanted === 'revoke_task') {
      if (claims.tid === undefined) return 'revoke_token';
      await revoke(ctx, { kind: 'tid', value: claims.tid, issuedBefore: null, reason, actor });
      return 'revoke_task';
    }
    return (await setWorkloadState(ctx, claims.sub, 'quarantined', actor, reason)) ? 'quarantine' : 'failed';
  } catch (err) {
    ctx.logger.error({ err: (err as Error).message, jti: claims.jti }, `leak response ${wanted} failed`);
    return 'failed';
  }
}
