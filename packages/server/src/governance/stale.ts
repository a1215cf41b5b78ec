import { setWorkloadState } from '../admin/operations.js';
import type { WritContext } from '../context.js';
import { jwkThumbprint } from '../jose/jwk.js';
import type { StaleSettings } from './governance-file.js';

/**
 * Stale identities (docs/governance.md): what nothing has used for longer than the governance threshold,
 * with the evidence Writ holds of its last use. The evidence is the audit chain (`token.issued`, and
 * anything a federation issuer's token proved) and the usage verifiers reported (allowed uses).
 */

/** The last time something was seen, and the record that shows it. */
export interface Evidence {
  /** Milliseconds. */
  at: number;
  /** `issued`: a `token.issued` audit event (its seq and token `jti`); `used`: a reported allowed use. */
  what: 'issued' | 'used' | 'federated';
  seq?: number;
  jti?: string;
}

export interface StaleWorkload {
  id: string;
  environment: string;
  owner: string;
  state: string;
  /** Seconds of no issuance and no use after which it is stale (its environment's, or the default). */
  threshold: number;
  /** When it was last registered or changed (ms): a workload is never staler than its registration. */
  registeredAt: number;
  lastIssued: Evidence | null;
  lastUsed: Evidence | null;
  /** Milliseconds: when it became stale (the latest of the above, plus the threshold). */
  staleSince: number;
}

export interface StaleReport {
  now: number;
  settings: StaleSettings;
  workloads: StaleWorkload[];
  /** Classes no registered workload lists, with the last token issued of each. */
  classes: Array<{ name: string; lastIssued: Evidence | null }>;
  /** Trusted issuers no token proved an identity with for longer than the default threshold. */
  issuers: Array<{ name: string; threshold: number; lastUsed: Evidence | null }>;
  /** Workload keys no client assertion was ever signed with, the workload registered longer than its threshold. */
  keys: Array<{ workload: string; thumbprint: string; kid?: string; registeredAt: number }>;
}

const PAGE = 1000;

/** The threshold (seconds) of a workload in `environment`. */
export function staleThreshold(settings: StaleSettings, environment: string): number {
  return settings.environments[environment] ?? settings.after;
}

/**
 * Finds what is stale at `ctx.clock.now()`: reads the whole audit chain and every usage aggregate once,
 * in pages, keeping only the last sighting of each workload, class, issuer and key.
 */
export async function findStale(ctx: WritContext, settings: StaleSettings): Promise<StaleReport> {
  const now = ctx.clock.now();
  const issued = new Map<string, Evidence>();
  const classIssued = new Map<string, Evidence>();
  const federated = new Map<string, Evidence>();
  const keysUsed = new Set<string>();
  const later = (m: Map<string, Evidence>, key: string, e: Evidence) => {
    const known = m.get(key);
    if (!known || known.at <= e.at) m.set(key, e);
  };
  for (let after = 0; ; ) {
    const page = await ctx.store.scanAudit(after, PAGE);
    for (const e of page) {
      if (e.outcome !== 'success') continue;
      const method = e.data['auth_method'];
      if (typeof method === 'string' && method.startsWith('federation:'))
        later(federated, method.slice('federation:'.length), { at: e.ts, what: 'federated', seq: e.seq });
      if (e.type !== 'token.issued' || e.subject === undefined) continue;
      const evidence: Evidence = { at: e.ts, what: 'issued', seq: e.seq, ...(e.jti ? { jti: e.jti } : {}) };
      later(issued, e.subject, evidence);
      if (typeof e.data['cls'] === 'string') later(classIssued, e.data['cls'], evidence);
      if (typeof e.data['client_key'] === 'string') keysUsed.add(`${e.subject} ${e.data['client_key']}`);
    }
    if (page.length < PAGE) break;
    after = page.at(-1)!.seq;
  }
  const used = new Map<string, Evidence>();
  for (let after: Parameters<typeof ctx.store.scanUsage>[0]['after']; ; ) {
    const page = await ctx.store.scanUsage({
      lastSeenFrom: 0,
      decision: 'allow',
      limit: PAGE,
      ...(after ? { after } : {}),
    });
    for (const u of page) later(used, u.sub, { at: u.lastSeen, what: 'used', jti: u.jti });
    if (page.length < PAGE) break;
    const last = page.at(-1)!;
    after = [last.jti, last.operation, last.source, last.decision, last.reason];
  }

  const registered = await ctx.store.listWorkloads();
  const workloads: StaleWorkload[] = [];
  const keys: StaleReport['keys'] = [];
  for (const w of registered) {
    const threshold = staleThreshold(settings, w.environment);
    const lastIssued = issued.get(w.id) ?? null;
    const lastUsed = used.get(w.id) ?? null;
    const seen = Math.max(w.updatedAt, lastIssued?.at ?? 0, lastUsed?.at ?? 0);
    if (now - seen > threshold * 1000)
      workloads.push({
        id: w.id,
        environment: w.environment,
        owner: w.owner,
        state: w.state,
        threshold,
        registeredAt: w.updatedAt,
        lastIssued,
        lastUsed,
        staleSince: seen + threshold * 1000,
      });
    if (now - w.updatedAt <= threshold * 1000) continue;
    for (const k of w.jwks) {
      const thumbprint = jwkThumbprint(k as unknown as Record<string, unknown>);
      if (keysUsed.has(`${w.id} ${thumbprint}`)) continue;
      keys.push({
        workload: w.id,
        thumbprint,
        ...(typeof k.kid === 'string' ? { kid: k.kid } : {}),
        registeredAt: w.updatedAt,
      });
    }
  }
  const classes = (await ctx.store.listClasses())
    .filter((c) => !registered.some((w) => w.classes.includes(c.name)))
    .map((c) => ({ name: c.name, lastIssued: classIssued.get(c.name) ?? null }));
  const issuers = (await ctx.store.listIssuers())
    .map((i) => ({ name: i.name, threshold: settings.after, lastUsed: federated.get(i.name) ?? null }))
    .filter((i) => i.lastUsed === null || now - i.lastUsed.at > settings.after * 1000);
  return { now, settings, workloads, classes, issuers, keys };
}

/**
 * The opt-in rule (`stale.disable_after`): disables every active workload stale for longer than the
 * grace period past its threshold, audited as `workload.disabled` by the operator who ran it, the rule
 * and the evidence in the reason. `writ workloads enable` reverses it, and starts its threshold afresh.
 */
export async function disableStaleWorkloads(
  ctx: WritContext,
  report: StaleReport,
  actor: string,
): Promise<string[]> {
  const grace = report.settings.disableAfter;
  if (grace === undefined) return [];
  const disabled: string[] = [];
  for (const w of report.workloads) {
    if (w.state !== 'active' || report.now - w.staleSince <= grace * 1000) continue;
    const since = new Date(w.staleSince - w.threshold * 1000).toISOString();
    const reason = `stale: no issuance, no reported use and no change since ${since} (threshold ${w.threshold}s, grace ${grace}s; governance.yaml stale.disable_after)`;
    if (await setWorkloadState(ctx, w.id, 'disabled', actor, reason)) disabled.push(w.id);
  }
  return disabled;
}
