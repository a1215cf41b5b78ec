import { EventType } from '@writ/sdk/wire';
import type { ConfigBundle } from '../config/config-dir.js';
import type { ConfigFilesChange } from '../config/config-files.js';
import { type ConfigChange, diffConfig } from '../config/diff.js';
import type { WritContext } from '../context.js';
import { reloadDetectionConfig } from '../detection/create-detector.js';
import { classRulesRecord, exceptionTermsRecord } from '../governance/class-rules.js';
import { canonicalJson } from '../jose/json.js';
import { announceBundle } from '../policy/bundle.js';
import type { WorkloadState } from '../registry/workload.js';
import { revoke, syncRevocations } from '../revocation/revoke.js';
import type { Store } from '../store/store.js';
import { deriveWorkload, TemplateSet } from '../templates/template-rules.js';
import { covers, sameSource } from '../templates/workload-template.js';

/** The configuration the store holds now, in the same shape `loadConfigDir` produces. */
export async function currentConfig(store: Store): Promise<ConfigBundle> {
  const [workloads, classes, operators, issuers, detection, exceptions, people, teams, templates] =
    await Promise.all([
      store.listWorkloads(),
      store.listClasses(),
      store.listOperators(),
      store.listIssuers(),
      store.getDetectionConfig(),
      store.listExceptions(),
      store.listPeople(),
      store.listTeams(),
      store.listTemplates(),
    ]);
  return {
    classes,
    operators,
    issuers,
    templates,
    // Workloads a template admitted are no file of the config: the templates stand for them.
    workloads: workloads
      .filter((w) => w.template === undefined)
      .map(({ state: _s, updatedAt: _u, ...w }) => w),
    detections: detection?.rules ?? [],
    networks: detection?.networks ?? [],
    people: people.map(({ updatedAt: _u, ...p }) => p),
    teams,
    exceptions: exceptions.map(({ runtime: _r, ...e }) => e),
  };
}

/**
 * Applies a validated config bundle: writes what changed, revokes the tokens of removed workloads and
 * classes, and audits the diff, all in one transaction; then this node reloads what changed (other
 * nodes do on the `config.applied` event). `dryRun` only computes the diff.
 */
export async function applyConfig(
  ctx: WritContext,
  bundle: ConfigBundle,
  actor: string,
  dryRun: boolean,
  files: ConfigFilesChange | 'unknown' = 'unknown',
): Promise<ConfigChange[]> {
  const changes = diffConfig(await currentConfig(ctx.store), bundle);
  if (dryRun) return changes;
  return commitConfig(ctx, bundle, changes, actor, files);
}

/**
 * At most this many workloads changed by an apply that changed nothing else: nodes read those from the
 * store (named in the `config.applied` event) instead of reloading the whole registry.
 */
export const REFRESH_WORKLOADS_MAX = 1000;

/**
 * Writes `changes` (a diff over the stored config; `bundle` holds every entry they add or change),
 * records the files, revokes what removed entries held and audits, in one transaction; then this node
 * reloads what changed. An apply that changed only a few workloads reloads those, not the registry.
 */
export async function commitConfig(
  ctx: WritContext,
  bundle: ConfigBundle,
  changes: ConfigChange[],
  actor: string,
  files: ConfigFilesChange | 'unknown',
): Promise<ConfigChange[]> {
  // The record of applied files goes with what was applied: a config sent without its files (whole
  // documents) leaves none, so the next start reads every file again.
  const record = async (tx: Store) => {
    if (files === 'unknown') await tx.deleteConfigFiles('all');
    else {
      await tx.deleteConfigFiles(files.remove);
      await tx.putConfigFiles(files.put);
      if (files.stamps?.length) await tx.stampConfigFiles(files.stamps);
    }
  };
  if (changes.length === 0) {
    // Nothing to audit; a file that changed without changing what it declares (a comment) is recorded.
    if (files === 'unknown' || files.put.length > 0 || files.remove.length > 0 || files.stamps?.length)
      await ctx.store.transaction(record);
    return changes;
  }
  const now = ctx.clock.now();
  const detection = changes.some((c) => c.kind === 'detection' || c.kind === 'network');
  const refreshed =
    changes.length <= REFRESH_WORKLOADS_MAX && changes.every((c) => c.kind === 'workload')
      ? changes.map((c) => c.name)
      : undefined;
  const event = await ctx.store.transaction(async (tx) => {
    await record(tx);
    // Rules and networks are one document: written whole when any of them changed.
    if (detection) await tx.putDetectionConfig({ rules: bundle.detections, networks: bundle.networks }, now);
    // A workload's keys (or legacy secret) appearing, changing or going: Shared Signals receivers hear it.
    for (const c of changes.filter(isCredentialChange))
      await ctx.events.append(tx, EventType.workloadCredentials, {
        id: c.name,
        change: CREDENTIAL_CHANGE[c.op],
      });
    if (changes.some((c) => c.kind === 'template')) await reconcileTemplated(ctx, tx, bundle, actor, now);
    for (const c of changes) {
      if (c.kind === 'template') {
        if (c.op === 'remove') await tx.deleteTemplate(c.name);
        else await tx.putTemplate(pick(bundle.templates, 'id', c.name));
      } else if (c.kind === 'class') {
        if (c.op === 'remove') {
          await tx.deleteClass(c.name);
          await revoke(
            ctx,
            { kind: 'cls', value: c.name, issuedBefore: null, reason: 'class removed by config', actor },
            tx,
          );
        } else await tx.putClass(pick(bundle.classes, 'name', c.name));
      } else if (c.kind === 'workload') {
        if (c.op === 'remove') {
          await tx.deleteWorkload(c.name);
          await revoke(
            ctx,
            { kind: 'sub', value: c.name, issuedBefore: null, reason: 'workload removed by config', actor },
            tx,
          );
        } else await tx.putWorkload(pick(bundle.workloads, 'id', c.name), now);
      } else if (c.kind === 'issuer') {
        if (c.op === 'remove') await tx.deleteIssuer(c.name);
        else await tx.putIssuer(pick(bundle.issuers, 'name', c.name));
      } else if (c.kind === 'operator') {
        if (c.op === 'remove') await tx.deleteOperator(c.name);
        else await tx.putOperator(pick(bundle.operators, 'name', c.name));
      } else if (c.kind === 'exception') {
        // A removed exception no longer lets anything through: the registry reloads below.
        if (c.op === 'remove') await tx.deleteException(c.name);
        else await tx.putException(pick(bundle.exceptions, 'id', c.name));
      } else if (c.kind === 'person') {
        if (c.op === 'remove') await tx.deletePerson(c.name);
        else await tx.putPerson(pick(bundle.people, 'id', c.name), now);
      } else if (c.kind === 'team') {
        if (c.op === 'remove') await tx.deleteTeam(c.name);
        else await tx.putTeam(pick(bundle.teams, 'id', c.name));
      }
    }
    // Other nodes reload their registry and detection config on this event (only the workloads it names,
    // when it names them); verifiers ignore it.
    const change = await ctx.events.append(
      tx,
      EventType.configApplied,
      refreshed ? { changes: changes.length, workloads: refreshed } : { changes: changes.length },
    );
    await announceBundle(ctx, tx, change.seq);
    return {
      seq: change.seq,
      audited: await ctx.audit.append(
        {
          type: 'config.applied',
          outcome: 'success',
          actor,
          data: {
            changes,
            // The rules every class holds from now on, in the chain: what `writ govern verify` proves by.
            ...(changes.some((c) => c.kind === 'class') ? classRulesRecord(bundle.classes) : {}),
            ...(changes.some((c) => c.kind === 'exception') ? exceptionTermsRecord(bundle.exceptions) : {}),
          },
        },
        tx,
      ),
    };
  });
  ctx.audit.noteCommitted(event.audited);
  ctx.events.notify();
  await syncRevocations(ctx);
  if (refreshed) await ctx.registry.refreshWorkloads(refreshed);
  else await ctx.registry.reload();
  if (detection) await reloadDetectionConfig(ctx);
  ctx.policy.bundle.noteChange(event.seq);
  return changes;
}

/**
 * The entity named `name` of a validated bundle (the diff was computed from it, so it is there). One
 * index per list and bundle, so applying 100,000 added workloads is not 100,000 scans of the list.
 */
function pick<T extends object, K extends keyof T & string>(list: readonly T[], key: K, name: string): T {
  let index = indexes.get(list) as Map<unknown, T> | undefined;
  if (!index) {
    index = new Map(list.map((x) => [x[key], x]));
    indexes.set(list, index);
  }
  const found = index.get(name);
  if (!found) throw new Error(`config apply: ${name} is in the diff but not in the bundle`);
  return found;
}
const indexes = new WeakMap<object, Map<unknown, unknown>>();

/**
 * After a template changed or went: each workload it admitted is judged again over the claims it was
 * admitted on. One its template no longer admits (template removed, prefix narrowed, issuer changed,
 * condition now false, a derivation failing) is removed and its tokens revoked, audited as
 * `workload.removed`; one still admitted takes the owner, environment, classes and attributes the
 * template derives now. A workload file registering the same id replaces it (its tokens revoked).
 */
async function reconcileTemplated(
  ctx: WritContext,
  tx: Store,
  bundle: ConfigBundle,
  actor: string,
  now: number,
): Promise<void> {
  const next = new TemplateSet();
  next.update(bundle.templates);
  const registered = new Set(bundle.workloads.map((w) => w.id));
  for (const w of await tx.listWorkloads()) {
    const admission = w.template;
    if (!admission) continue;
    const t = next.byId(admission.id);
    const covered = t?.spec.prefixes.some((p) => covers(p, w.id)) === true;
    const derived =
      t && covered && sameSource(t.spec, admission) && !registered.has(w.id)
        ? deriveWorkload(t, w.id, admission.claims)
        : undefined;
    if (derived && 'workload' in derived) {
      const { state: _s, updatedAt: _u, ...before } = w;
      const after = { ...derived.workload, template: admission };
      if (canonicalJson(before) !== canonicalJson(after)) await tx.putWorkload(after, now);
      continue;
    }
    const why = !t
      ? `template ${admission.id} removed`
      : registered.has(w.id)
        ? `a workload file now registers ${w.id}`
        : !covered || !sameSource(t.spec, admission)
          ? `template ${admission.id} no longer covers it`
          : `template ${admission.id} no longer admits it (${derived && 'refusal' in derived ? derived.refusal.field : 'match'})`;
    if (!registered.has(w.id)) await tx.deleteWorkload(w.id);
    await revoke(
      ctx,
      { kind: 'sub', value: w.id, issuedBefore: null, reason: `templated workload removed: ${why}`, actor },
      tx,
    );
    await ctx.audit.append(
      {
        type: 'workload.removed',
        outcome: 'success',
        actor,
        subject: w.id,
        data: { template: admission.id, reason: why },
      },
      tx,
    );
  }
}

const CREDENTIAL_CHANGE = { add: 'create', change: 'update', remove: 'delete' } as const;

function isCredentialChange(c: ConfigChange): boolean {
  return (
    c.kind === 'workload' &&
    (c.op !== 'change' ||
      (c.fields ?? []).some(
        (f) => f === 'jwks' || f === 'secretSha256' || f === 'tlsClientAuth' || f === 'tlsCertificates',
      ))
  );
}

/**
 * Disables, enables or quarantines a workload. Leaving `active` also revokes every token it holds.
 */
export async function setWorkloadState(
  ctx: WritContext,
  id: string,
  state: WorkloadState,
  actor: string,
  reason: string,
): Promise<boolean> {
  const now = ctx.clock.now();
  const result = await ctx.store.transaction(async (tx) => {
    const existing = await tx.getWorkload(id);
    if (!existing) return undefined;
    await tx.setWorkloadState(id, state, now);
    if (state !== 'active')
      await revoke(
        ctx,
        { kind: 'sub', value: id, issuedBefore: null, reason: `workload ${state}: ${reason}`, actor },
        tx,
      );
    const change = await ctx.events.append(tx, EventType.workloadState, { id, state });
    await announceBundle(ctx, tx, change.seq);
    const audited = await ctx.audit.append(
      {
        type: `workload.${state === 'active' ? 'enabled' : state}`,
        outcome: 'success',
        actor,
        subject: id,
        data: { from: existing.state, to: state, reason },
      },
      tx,
    );
    return { seq: change.seq, audited };
  });
  if (!result) return false;
  ctx.audit.noteCommitted(result.audited);
  ctx.events.notify();
  await syncRevocations(ctx);
  await ctx.registry.reload();
  ctx.policy.bundle.noteChange(result.seq);
  return true;
}
