import { EventType } from '@writ/sdk/wire';
import type { AuditEventType } from '../audit/audit-types.js';
import type { WritContext } from '../context.js';
import type { Store } from '../store/store.js';
import { announceBundle } from './bundle.js';
import {
  type CompiledPolicySet,
  compilePolicies,
  DEFAULT_POLICY_SOURCES,
  type PolicySources,
  type ResourceSpec,
} from './compile.js';
import type { PolicyVersion } from './engine.js';
import type { StoredPolicySet, StoredPolicyVersion } from './policy-set.js';

/** Compiles what a config directory holds; `undefined` (no `policies/`) is the built-in set. */
export function compileSources(sources: PolicySources | undefined): CompiledPolicySet {
  return sources ? compilePolicies(sources) : compilePolicies(DEFAULT_POLICY_SOURCES, true);
}

type PolicyContext = Pick<WritContext, 'store' | 'clock' | 'audit' | 'events' | 'policy' | 'logger'>;

function versionOf(set: CompiledPolicySet, counter: number): PolicyVersion {
  return {
    id: `${counter}-${set.hash.slice(0, 12)}`,
    counter,
    hash: set.hash,
    builtIn: set.builtIn,
    policies: set.policies.length,
  };
}

const storedId = (p: { counter: number; hash: string }) => `${p.counter}-${p.hash.slice(0, 12)}`;

/** The version record the store keeps for the console's diffs: the source files' text, the built-in set's own. */
function versionRecord(
  v: PolicyVersion,
  sources: PolicySources | null | undefined,
  actor: string | null,
  created: number,
): StoredPolicyVersion {
  return {
    id: v.id,
    counter: v.counter,
    created,
    actor,
    builtIn: v.builtIn,
    policies: v.policies,
    files: (sources ?? DEFAULT_POLICY_SOURCES).files.map(({ file, text }) => ({ file, text })),
  };
}

function loadedEvent(v: PolicyVersion, set: CompiledPolicySet, previous: string | null, actor: string) {
  return {
    type: 'policy.loaded' as const,
    outcome: 'success' as const,
    actor,
    data: {
      version: v.id,
      counter: v.counter,
      hash: v.hash,
      built_in: v.builtIn,
      policies: v.policies,
      files: [...new Set(set.policies.map((p) => p.file))],
      resources: set.resources.length,
      warnings: set.warnings.slice(0, 20),
      previous,
    },
  };
}

/**
 * What a store written by an earlier build says about policy (it kept none in tables): the version
 * counter of the last `policy.loaded` event and the admin-API attributes replayed from `resource.updated`
 * events, oldest first.
 */
async function policyFromAudit(store: Pick<Store, 'queryAudit'>) {
  const [lastEvent] = await store.queryAudit({
    type: 'policy.loaded' satisfies AuditEventType,
    order: 'desc',
    limit: 1,
  });
  const last =
    lastEvent && typeof lastEvent.data['counter'] === 'number' && typeof lastEvent.data['hash'] === 'string'
      ? { counter: lastEvent.data['counter'], hash: lastEvent.data['hash'] }
      : undefined;
  const resources = new Map<string, ResourceSpec>();
  let after = 0;
  for (;;) {
    const page = await store.queryAudit({
      type: 'resource.updated' satisfies AuditEventType,
      afterSeq: after,
      limit: 1000,
    });
    for (const e of page) {
      const d = e.data as Partial<ResourceSpec> & { id?: string; cleared?: boolean };
      if (typeof d.id !== 'string') continue;
      if (d.cleared) resources.delete(d.id);
      else
        resources.set(d.id, {
          id: d.id,
          sensitivity: String(d.sensitivity ?? 'unrated'),
          environment: String(d.environment ?? ''),
          owner: String(d.owner ?? ''),
        });
    }
    if (page.length < 1000) break;
    after = page[page.length - 1]!.seq;
  }
  return { last, resources: [...resources.values()] };
}

/**
 * Loads the running policy set at start; `head` is the event log's last seq read before any state was
 * loaded. The store's set is the truth, shared by every node (docs/policy.md, "In a cluster"):
 *
 * - a store without one (a new store, or one an earlier build wrote) gets the config directory's set, or
 *   the built-in set, with the counter continued from the audit log and the admin-API attributes replayed
 *   from it;
 * - `configDir` true (a config directory was given): its set is applied when it differs from the set last
 *   applied from a config directory at start, as `writ apply` would (audited `policy.loaded` by `startup`,
 *   announced to every node); an unchanged directory leaves the stored set, which may be newer (applied
 *   through the admin API), alone;
 * - otherwise the stored set is used as it is.
 */
export async function startPolicy(
  ctx: PolicyContext,
  sources: PolicySources | undefined,
  configDir: boolean,
  head: number,
): Promise<void> {
  const fromDir = configDir ? compileSources(sources) : undefined;
  const legacy = (await ctx.store.getPolicySet()) ? undefined : await policyFromAudit(ctx.store);
  const now = ctx.clock.now();
  const result = await ctx.store.transaction(async (tx) => {
    const stored = await tx.getPolicySet();
    if (!stored) {
      // Another node may have stored one since the read above: then this branch is not taken.
      const { last, resources } = legacy ?? (await policyFromAudit(tx));
      const set = fromDir ?? compileSources(undefined);
      const counter = last && last.hash === set.hash ? last.counter : (last?.counter ?? 0) + 1;
      const record: StoredPolicySet = {
        sources: fromDir ? (sources ?? null) : null,
        counter,
        hash: set.hash,
        configHash: fromDir ? set.hash : null,
        bundleEpoch: now,
        updatedAt: now,
      };
      await tx.putPolicySet(record);
      await tx.putPolicyVersion(versionRecord(versionOf(set, counter), record.sources, 'startup', now));
      for (const r of resources) await tx.putResourceAttributes(r);
      const change = await ctx.events.append(tx, EventType.policyChanged, { version: storedId(record) });
      const audited =
        last && last.counter === counter && last.hash === set.hash
          ? undefined
          : await ctx.audit.append(
              loadedEvent(versionOf(set, counter), set, last ? storedId(last) : null, 'startup'),
              tx,
            );
      return { record, set, seq: change.seq, audited };
    }
    if (fromDir && fromDir.hash !== stored.configHash) {
      const changed = fromDir.hash !== stored.hash;
      const record: StoredPolicySet = {
        ...stored,
        configHash: fromDir.hash,
        updatedAt: now,
        ...(changed ? { sources: sources ?? null, counter: stored.counter + 1, hash: fromDir.hash } : {}),
      };
      await tx.putPolicySet(record);
      if (!changed) return { record, set: fromDir, seq: undefined, audited: undefined };
      const change = await ctx.events.append(tx, EventType.policyChanged, { version: storedId(record) });
      const version = versionOf(fromDir, record.counter);
      await tx.putPolicyVersion(versionRecord(version, record.sources, 'startup', now));
      await ctx.events.append(tx, EventType.policyBundle, {
        version: stored.bundleEpoch + change.seq,
        policy_version: version.id,
      });
      const audited = await ctx.audit.append(loadedEvent(version, fromDir, storedId(stored), 'startup'), tx);
      return { record, set: fromDir, seq: change.seq, audited };
    }
    return { record: stored, set: undefined, seq: undefined, audited: undefined };
  });
  if (result.audited) ctx.audit.noteCommitted(result.audited);
  if (result.seq !== undefined) ctx.events.notify();
  let set = result.set;
  if (!set) {
    try {
      set = compileSources(result.record.sources ?? undefined);
    } catch (err) {
      throw new Error(
        `the stored policy set ${storedId(result.record)} does not load: ${(err as Error).message}`,
        { cause: err },
      );
    }
  }
  const running = ctx.policy.load(set, result.record.counter);
  // A store that kept no versions before (an earlier build) gets the running one, applier unknown.
  if (!(await ctx.store.getPolicyVersion(running.id)))
    await ctx.store.putPolicyVersion(
      versionRecord(running, result.record.sources, null, result.record.updatedAt),
    );
  ctx.policy.replaceResources(await ctx.store.listResourceAttributes());
  ctx.policy.bundle.setBase(result.record.bundleEpoch, Math.max(head, result.seq ?? 0));
}

/**
 * Makes this node's engine what the store holds: the set (when another node applied a newer one) and the
 * admin-API attributes. The node follower calls it on `policy.changed`.
 */
export function reloadPolicy(ctx: Pick<WritContext, 'store' | 'policy' | 'logger'>): Promise<void> {
  return ctx.policy.takeTurn(async () => {
    const [stored, resources] = await Promise.all([
      ctx.store.getPolicySet(),
      ctx.store.listResourceAttributes(),
    ]);
    const running = ctx.policy.version;
    // Counters only grow in the store: a lower one is a read older than what this node already runs.
    if (
      stored &&
      (stored.counter > running.counter ||
        (stored.counter === running.counter && stored.hash !== running.hash))
    ) {
      const v = ctx.policy.load(compileSources(stored.sources ?? undefined), stored.counter);
      ctx.logger.info({ version: v.id, policies: v.policies }, 'policy set loaded from the store');
    }
    ctx.policy.replaceResources(resources);
  });
}

/**
 * Replaces the running policy set (`null`: the built-in set) after compiling and validating it; an
 * invalid set throws `PolicyLoadError` and the running set stays. No audit, no change: the stored set,
 * the `policy.loaded` event and the `policy.changed` event every node follows are written in one
 * transaction, before the set takes effect here. A set equal to the stored one changes nothing.
 */
export async function applyPolicies(
  ctx: PolicyContext,
  sources: PolicySources | null,
  actor: string,
  dryRun: boolean,
): Promise<{ version: PolicyVersion; changed: boolean; warnings: string[] }> {
  const set = compileSources(sources ?? undefined);
  if (dryRun) {
    const next = ctx.policy.preview(set);
    const changed = next.hash !== ctx.policy.version.hash;
    return { version: changed ? next : ctx.policy.version, changed, warnings: set.warnings };
  }
  return ctx.policy.takeTurn(async () => {
    const now = ctx.clock.now();
    const r = await ctx.store.transaction(async (tx) => {
      const stored = await tx.getPolicySet();
      const previous = stored ?? { ...ctx.policy.version, configHash: null, bundleEpoch: now };
      if (set.hash === previous.hash) return { version: versionOf(set, previous.counter), seq: undefined };
      const version = versionOf(set, previous.counter + 1);
      await tx.putPolicySet({
        sources: sources ?? null,
        counter: version.counter,
        hash: set.hash,
        configHash: previous.configHash,
        bundleEpoch: previous.bundleEpoch,
        updatedAt: now,
      });
      await tx.putPolicyVersion(versionRecord(version, sources, actor, now));
      const change = await ctx.events.append(tx, EventType.policyChanged, { version: version.id });
      await announceBundle(ctx, tx, change.seq, version.id);
      const audited = await ctx.audit.append(loadedEvent(version, set, storedId(previous), actor), tx);
      return { version, seq: change.seq, audited };
    });
    if (r.seq === undefined) {
      // The store holds this set already; a node that has not reloaded it yet takes it now.
      if (ctx.policy.version.hash !== set.hash) ctx.policy.load(set, r.version.counter);
      return { version: r.version, changed: false, warnings: set.warnings };
    }
    ctx.audit.noteCommitted(r.audited!);
    ctx.events.notify();
    ctx.policy.load(set, r.version.counter);
    ctx.policy.bundle.noteChange(r.seq);
    ctx.logger.info({ version: r.version.id, policies: r.version.policies }, 'policy set loaded');
    return { version: r.version, changed: true, warnings: set.warnings };
  });
}

/**
 * Sets or clears (`spec` undefined) the attributes of one API through the admin API: stored, audited
 * (`resource.updated`) and logged for every node in one transaction, then in effect here.
 */
export async function updateResource(
  ctx: PolicyContext,
  id: string,
  spec: ResourceSpec | undefined,
  actor: string,
): Promise<ResourceSpec> {
  return ctx.policy.takeTurn(async () => {
    const r = await ctx.store.transaction(async (tx) => {
      if (spec) await tx.putResourceAttributes({ ...spec });
      else await tx.deleteResourceAttributes(id);
      const change = await ctx.events.append(tx, EventType.policyChanged, { resource: id });
      await announceBundle(ctx, tx, change.seq);
      const audited = await ctx.audit.append(
        {
          type: 'resource.updated',
          outcome: 'success',
          actor,
          data: spec ? { ...spec } : { id, cleared: true },
        },
        tx,
      );
      return { seq: change.seq, audited };
    });
    ctx.audit.noteCommitted(r.audited);
    ctx.events.notify();
    ctx.policy.setResource(id, spec);
    ctx.policy.bundle.noteChange(r.seq);
    return ctx.policy.resource(id);
  });
}
