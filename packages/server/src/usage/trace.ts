import { revokedBy } from '@writ/sdk/verifier';
import type { AuditEvent, TokenTrace, TokenUse } from '@writ/sdk/wire';
import type { AuditEventType } from '../audit/audit-types.js';
import type { WritContext } from '../context.js';
import { notFound } from '../errors.js';
import type { IssuedToken } from '../tokens/issued-token.js';
import type { UsageAggregate } from './usage-aggregate.js';

const view = (u: UsageAggregate): TokenUse => ({
  operation: u.operation,
  source: u.source,
  decision: u.decision,
  reason: u.reason,
  count: u.count,
  first_seen: u.firstSeen,
  last_seen: u.lastSeen,
  user_agent: u.userAgent,
  reporter: u.reporter,
});

/** Builds the trace of one token from the audit log, the token record, revocations and usage aggregates. */
export async function traceToken(ctx: WritContext, jti: string): Promise<TokenTrace> {
  const [events, record, usage] = await Promise.all([
    ctx.store.queryAudit({ jti, limit: 1000, order: 'asc' }),
    ctx.store.getToken(jti),
    ctx.store.usageForToken(jti, 1000),
  ]);
  const issued =
    events.find((e) => e.type === ('token.issued' satisfies AuditEventType) && e.outcome === 'success') ??
    null;
  if (!record && !issued && usage.length === 0 && events.length === 0)
    throw notFound('nothing is known about this token', { reason: 'not_found' });
  const token = record ? fromRecord(record) : issued ? fromIssuance(jti, issued) : null;
  const ajti = record?.ajti ?? ancestorsOf(issued);
  const revocations = token
    ? (await ctx.store.listRevocations(0, 0)).filter((r) =>
        revokedBy(r, { ...token, tid: token.tid ?? undefined, jti, ajti }),
      )
    : (await ctx.store.listRevocations(0, 0)).filter((r) => r.kind === 'jti' && r.value === jti);

  const timeline: TokenTrace['timeline'] = [];
  if (issued)
    timeline.push({
      at: issued.ts,
      what: 'issued',
      detail: `to ${issued.subject ?? issued.actor} for ${String(issued.data['aud'])} (${String(issued.data['cls'])}), expires ${new Date(Number(issued.data['exp']) * 1000).toISOString()}`,
    });
  for (const u of usage) {
    const decision = u.decision === 'allow' ? 'allowed' : `denied (${u.reason})`;
    timeline.push({
      at: u.firstSeen,
      what: 'used',
      detail: `${u.operation} from ${u.source}: ${decision} ×${u.count}, last ${new Date(u.lastSeen).toISOString()}, reported by ${u.reporter}`,
    });
  }
  for (const r of revocations)
    timeline.push({
      at: r.created_at,
      what: 'revoked',
      detail: `by ${r.kind}=${r.value}${r.issued_before !== null ? ` (issued before ${r.issued_before})` : ''}: ${r.reason}`,
    });
  for (const e of events) {
    if (e === issued || e.type === ('revocation.created' satisfies AuditEventType)) continue;
    timeline.push({ at: e.ts, what: 'event', detail: `${e.type} ${e.outcome} by ${e.actor}` });
  }
  const order = { issued: 0, used: 1, revoked: 2, event: 3 } as const;
  timeline.sort((a, b) => a.at - b.at || order[a.what] - order[b.what]);

  return {
    jti,
    token,
    issued,
    uses: usage.map(view),
    totals: {
      allow: usage.filter((u) => u.decision === 'allow').reduce((n, u) => n + u.count, 0),
      deny: usage.filter((u) => u.decision === 'deny').reduce((n, u) => n + u.count, 0),
    },
    revocations,
    events,
    timeline,
  };
}

function fromRecord(t: IssuedToken): NonNullable<TokenTrace['token']> {
  return {
    sub: t.sub,
    client_id: t.clientId,
    cls: t.cls,
    aud: t.aud,
    scope: t.scope,
    tid: t.tid ?? null,
    iat: t.iat,
    exp: t.exp,
    kid: t.kid,
  };
}

/** The token record is pruned a day after expiry; the issuance event keeps what a trace needs. */
function fromIssuance(_jti: string, e: AuditEvent): NonNullable<TokenTrace['token']> {
  const d = e.data;
  return {
    sub: e.subject ?? e.actor,
    client_id: e.actor,
    cls: String(d['cls'] ?? ''),
    aud: String(d['aud'] ?? ''),
    scope: String(d['scope'] ?? ''),
    tid: typeof d['tid'] === 'string' ? d['tid'] : null,
    iat: Number(d['iat'] ?? 0),
    exp: Number(d['exp'] ?? 0),
    kid: String(d['kid'] ?? ''),
  };
}

/** The tokens an exchanged token descends from, as its issuance recorded them (`ajti`). */
function ancestorsOf(issued: AuditEvent | null): string[] {
  const a = issued?.data['ajti'];
  return Array.isArray(a) ? a.filter((j): j is string => typeof j === 'string') : [];
}
