import {
  type ConfigBundle,
  GOVERNANCE_FILES,
  validateWorkloadDocument,
  type WorkloadContext,
} from '../config/config-dir.js';
import type { ConfigFilesChange } from '../config/config-files.js';
import { type ConfigChange, diffEntry } from '../config/diff.js';
import type { WritContext } from '../context.js';
import { ConfigError } from '../errors.js';
import type { CredentialException } from '../governance/exception.js';
import type { Workload, WorkloadRecord } from '../registry/workload.js';
import type { ConfigFileStamp } from '../store/config-file-rows.js';
import { covers } from '../templates/workload-template.js';
import { appliedRecord, type ChangedFile, type RemovedFile } from './config-files.js';
import { REFRESH_WORKLOADS_MAX } from './operations.js';

/** A change of workload files, validated against the stored config: what to commit. */
export interface WorkloadFilesPlan {
  /** Only `workloads` is filled: the workloads the change adds or changes. */
  bundle: ConfigBundle;
  changes: ConfigChange[];
  files: ConfigFilesChange;
}

/**
 * `writ apply` of a change that touches only workload files (the common change of a large estate: a
 * workload added, edited or removed), planned without reading the rest of the config: the touched files'
 * documents are validated against the stored classes, issuers, exceptions and templates; their ids are
 * looked up in the store (unique), against the templates (none covers a registered workload) and the
 * exceptions (none names a removed one); the diff is of the touched workloads alone.
 *
 * Undefined when the change is anything else, or when any of this does not simply pass: the caller then
 * merges and validates the whole config as before, which decides, and names the error when there is one.
 * So the answer (accepted, or refused with which error) is the same as validating the whole; only the
 * time differs. Governance rules that apply to workloads are checked over the whole config: a config
 * with any governance rule takes the whole path too.
 */
export async function planWorkloadFiles(
  ctx: Pick<WritContext, 'store' | 'settings' | 'registry'>,
  changed: readonly ChangedFile[],
  removed: readonly RemovedFile[],
  stamps: readonly ConfigFileStamp[],
): Promise<WorkloadFilesPlan | undefined> {
  const { store, settings, registry } = ctx;
  const touched = [...changed.map((f) => f.path), ...removed.map((f) => f.path)];
  if (touched.length === 0 || touched.length > REFRESH_WORKLOADS_MAX) return undefined;
  if (changed.some((f) => f.documents.some((d) => d.kind !== 'workload'))) return undefined;
  const prior = new Map((await store.listConfigFiles({ paths: touched })).map((f) => [f.path, f]));
  // A file changed since the CLI compared it: the whole path refuses it (config_changed).
  if (
    changed.some((f) => (prior.get(f.path)?.digest ?? null) !== f.was) ||
    removed.some((f) => prior.get(f.path)?.digest !== f.was)
  )
    return undefined;
  if ([...prior.values()].some((f) => f.documents.some((d) => d.kind !== 'workload'))) return undefined;
  const governance = await store.listConfigFiles({ paths: GOVERNANCE_FILES });
  if (governance.some((f) => f.documents.some((d) => hasRules(d.doc)))) return undefined;

  const [classes, issuers, exceptions, templates, detection] = await Promise.all([
    store.listClasses(),
    store.listIssuers(),
    store.listExceptions(),
    store.listTemplates(),
    store.getDetectionConfig(),
  ]);
  // limits.config_documents: the whole path counts exactly. Here the documents are counted from above
  // (every workload, admitted ones too, every person, SCIM's too): near the limit, the whole path decides.
  const before = [...prior.values()].reduce((n, f) => n + f.documents.length, 0);
  const after = changed.reduce((n, f) => n + f.documents.length, 0);
  const upper =
    registry.workloadCount +
    classes.length +
    issuers.length +
    exceptions.length +
    templates.length +
    registry.operators().length +
    registry.people().people.length +
    registry.people().teams.length +
    (detection?.rules.length ?? 0) +
    2;
  if (upper + after - before > settings.limits.configDocuments) return undefined;

  const context: WorkloadContext = { classes, issuers, exceptions, issuer: settings.issuer };
  const next = new Map<string, Workload>();
  try {
    for (const f of [...changed].sort((a, b) => (a.path < b.path ? -1 : 1)))
      for (const d of f.documents) {
        const w = validateWorkloadDocument(d.doc, f.path, d.index, context);
        if (next.has(w.id)) return undefined;
        next.set(w.id, w);
      }
  } catch (err) {
    if (err instanceof ConfigError) return undefined;
    throw err;
  }
  const was = new Set<string>();
  for (const f of prior.values())
    for (const d of f.documents) {
      const id = (d.doc as { id?: unknown } | null)?.id;
      if (typeof id === 'string') was.add(id);
    }
  const ids = [...new Set([...next.keys(), ...was])];
  const stored = await Promise.all(ids.map((id) => store.getWorkload(id)));
  const changes: ConfigChange[] = [];
  for (const [i, id] of ids.entries()) {
    const record = stored[i];
    const w = next.get(id);
    // Another file's workload, or one a template admitted: the whole path says which (or replaces it).
    if (record && (record.template !== undefined || !was.has(id))) return undefined;
    if (w && templates.some((t) => t.prefixes.some((p) => covers(p, id)))) return undefined;
    // A removed workload an exception names: refused by the whole path.
    if (!w && exceptions.some((e) => names(e.covers, id))) return undefined;
    const current = record ? withoutState(record) : undefined;
    const change = diffEntry('workload', id, current, w);
    if (change) changes.push(change);
  }
  // Operators are unchanged; the people they belong to may not be (SCIM): the whole path refuses.
  const people = registry.people();
  const operators = registry.operators();
  if (operators.every((o) => o.person !== undefined && people.person(o.person)?.active !== true))
    return undefined;
  // In the whole path's order: additions and changes as the directory lists them, then removals.
  changes.sort((a, b) => Number(a.op === 'remove') - Number(b.op === 'remove'));
  return {
    bundle: { ...EMPTY_BUNDLE, workloads: [...next.values()] },
    changes,
    files: { put: changed.map(appliedRecord), remove: removed.map((f) => f.path), stamps: [...stamps] },
  };
}

const EMPTY_BUNDLE: ConfigBundle = {
  classes: [],
  workloads: [],
  operators: [],
  issuers: [],
  detections: [],
  networks: [],
  people: [],
  teams: [],
  exceptions: [],
  templates: [],
};

function withoutState(r: WorkloadRecord): Workload {
  const { state: _s, updatedAt: _u, ...w } = r;
  return w;
}

/** Whether an exception's cover names workload `id`. */
function names(c: CredentialException['covers'], id: string): boolean {
  return (
    (c.kind === 'long_lived_token' && c.workload === id) ||
    (c.kind === 'legacy_client_secret' && (c.workloads ?? []).includes(id))
  );
}

function hasRules(doc: unknown): boolean {
  const rules = (doc as { rules?: unknown } | null)?.rules;
  return !Array.isArray(rules) || rules.length > 0;
}
