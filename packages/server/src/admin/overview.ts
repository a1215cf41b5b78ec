import { revokedBy } from '@writ/sdk/verifier';
import {
  type AdminOverview,
  REVOCATION_KINDS,
  type Revocation,
  type RevocationPreview,
} from '@writ/sdk/wire';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { AuditEvent } from '../audit/audit-event.js';
import type { RefusalEndpoint } from '../audit/audit-types.js';
import type { WritContext } from '../context.js';
import type { IssuedToken } from '../tokens/issued-token.js';

/**
 * What the console's overview and revocation preview read: counts drawn from the audit log, the token
 * records, revocations and findings, bounded so a busy server answers as fast as an idle one. Every
 * count says when it was cut (`truncated`): a window holds at most `EVENTS_READ` events of each kind.
 */

/** The overview covers this many minutes, one bucket per minute. */
export const OVERVIEW_MINUTES = 30;
/** At most this many audit events of one kind are read per answer. */
export const EVENTS_READ = 1000;
/** At most this many recent tokens are listed. */
const RECENT_LISTED = 20;
const MINUTE = 60_000;

export const revocationPreviewBody = z
  .object({
    kind: z.enum(REVOCATION_KINDS),
    value: z.string().min(1).max(2048),
    issued_before: z.number().int().nonnegative().optional(),
  })
  .strict();

const revocable = (t: IssuedToken) => ({
  jti: t.jti,
  sub: t.sub,
  client_id: t.clientId,
  cls: t.cls,
  iat: t.iat,
  kid: t.kid,
  tid: t.tid,
  ajti: t.ajti,
});

/**
 * The tokens issued within the longest token lifetime that have not expired: every token that can
 * still be live (newest first, at most `EVENTS_READ`).
 */
async function liveTokens(
  ctx: WritContext,
  now: number,
): Promise<{ tokens: IssuedToken[]; truncated: boolean }> {
  const issued = await ctx.store.queryAudit({
    type: 'token.issued',
    since: now - ctx.settings.tokens.maxLifetime * 1000,
    order: 'desc',
    limit: EVENTS_READ,
  });
  const jtis = issued.filter((e) => e.outcome === 'success' && e.jti !== undefined).map((e) => e.jti!);
  const records = await ctx.store.getTokens(jtis);
  const byJti = new Map(records.map((t) => [t.jti, t]));
  const tokens = jtis
    .map((j) => byJti.get(j))
    .filter((t): t is IssuedToken => t !== undefined && t.exp * 1000 > now);
  return { tokens, truncated: issued.length >= EVENTS_READ };
}

const perMinute = (events: AuditEvent[], from: number): number[] => {
  const buckets = new Array<number>(OVERVIEW_MINUTES).fill(0);
  for (const e of events) {
    const i = Math.floor((e.ts - from) / MINUTE);
    if (i >= 0 && i < OVERVIEW_MINUTES) buckets[i]!++;
  }
  return buckets;
};

export function registerOverviewRoutes(
  admin: FastifyInstance,
  ctx: WritContext,
  body: <T extends z.ZodType>(schema: T, req: FastifyRequest) => z.output<T>,
): void {
  admin.get('/overview', async (): Promise<AdminOverview> => {
    const now = ctx.clock.now();
    const from = Math.floor(now / MINUTE) * MINUTE - (OVERVIEW_MINUTES - 1) * MINUTE;
    const started = performance.now();
    let store: AdminOverview['health']['store'] = 'ok';
    try {
      await ctx.store.ping();
    } catch {
      store = 'unavailable';
    }
    const storeMs = store === 'ok' ? Math.round((performance.now() - started) * 10) / 10 : null;
    const [issued, refused, live, revocations, findings, subscribed, head] = await Promise.all([
      ctx.store.queryAudit({ type: 'token.issued', since: from, order: 'desc', limit: EVENTS_READ }),
      refusals(ctx, from),
      liveTokens(ctx, now),
      ctx.store.listRevocations(0, 0),
      ctx.store.listFindings({ state: 'open', limit: EVENTS_READ }),
      ctx.store.queryAudit({ type: 'events.subscribed', since: from, order: 'desc', limit: EVENTS_READ }),
      ctx.store.auditHead(),
    ]);
    const active = live.tokens.filter((t) => ctx.revocations.match(revocable(t)) === undefined);
    const reasons = new Map<string, number>();
    for (const e of refused.events) {
      const reason = typeof e.data['reason'] === 'string' ? e.data['reason'] : e.type;
      reasons.set(reason, (reasons.get(reason) ?? 0) + 1);
    }
    const workloads: Record<string, number> = {};
    for (const w of ctx.registry.workloads()) workloads[w.state] = (workloads[w.state] ?? 0) + 1;
    return {
      now,
      window_minutes: OVERVIEW_MINUTES,
      minutes: Array.from({ length: OVERVIEW_MINUTES }, (_, i) => from + i * MINUTE),
      issued: perMinute(issued, from),
      refused: perMinute(refused.events, from),
      refusals_by_reason: [...reasons]
        .map(([reason, count]) => ({ reason, count }))
        .sort((a, b) => b.count - a.count),
      active_tokens: active.length,
      recent_tokens: live.tokens.slice(0, RECENT_LISTED).map((t) => ({
        jti: t.jti,
        sub: t.sub,
        aud: t.aud,
        cls: t.cls,
        iat: t.iat,
        exp: t.exp,
        revoked: ctx.revocations.match(revocable(t)) !== undefined,
      })),
      revocations: {
        total: revocations.length,
        in_window: revocations.filter((r) => r.created_at >= from).length,
      },
      findings_open: findings.length,
      workloads,
      verifiers: { subscribed_in_window: subscribed.length, connected_here: ctx.streams.size },
      health: { store, store_ms: storeMs, audit_head: head?.seq ?? null },
      truncated:
        issued.length >= EVENTS_READ ||
        refused.truncated ||
        live.truncated ||
        findings.length >= EVENTS_READ ||
        subscribed.length >= EVENTS_READ,
    };
  });

  // How many live tokens a revocation would hit, before an operator confirms it (the console asks).
  admin.post('/revocations/preview', async (req): Promise<RevocationPreview> => {
    const b = body(revocationPreviewBody, req);
    const now = ctx.clock.now();
    const predicate: Revocation = {
      seq: 0,
      kind: b.kind,
      value: b.value,
      issued_before: b.issued_before ?? null,
      created_at: now,
      reason: '',
    };
    const live = await liveTokens(ctx, now);
    const hit = live.tokens.filter(
      (t) => ctx.revocations.match(revocable(t)) === undefined && revokedBy(predicate, revocable(t)),
    );
    return {
      live_tokens: hit.length,
      examined: live.tokens.length,
      truncated: live.truncated,
      sample: hit.slice(0, 10).map((t) => t.jti),
    };
  });
}

/** Every endpoint a refusal is audited under (`<endpoint>.refused`); a Record, so a new one must be named. */
const REFUSAL_ENDPOINTS: Record<RefusalEndpoint, true> = {
  token: true,
  introspection: true,
  revocation: true,
  task: true,
  usage: true,
  events: true,
  policy_bundle: true,
  access: true,
  ssf: true,
  leaks: true,
  vendor_keys: true,
  vendor_proxy: true,
  admin: true,
  admin_token: true,
  scim: true,
  console: true,
  http: true,
};

/** Refusal events in the window, read by type (indexed), at most `EVENTS_READ` of each. */
async function refusals(
  ctx: WritContext,
  from: number,
): Promise<{ events: AuditEvent[]; truncated: boolean }> {
  const byType = await Promise.all(
    (Object.keys(REFUSAL_ENDPOINTS) as RefusalEndpoint[]).map((endpoint) =>
      ctx.store.queryAudit({ type: `${endpoint}.refused`, since: from, order: 'desc', limit: EVENTS_READ }),
    ),
  );
  return { events: byType.flat(), truncated: byType.some((b) => b.length >= EVENTS_READ) };
}
