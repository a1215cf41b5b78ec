import { randomUUID } from 'node:crypto';
import { EventType } from '@writ/sdk/wire';
import type { WritContext } from '../context.js';
import { orphanedWorkloads } from '../people/orphans.js';
import { PERSON_ID } from '../people/person.js';
import type { ScimRecord, ScimResourceType } from '../people/scim-record.js';
import { applyPatch } from './patch.js';
import {
  checkSchemas,
  ENTERPRISE_USER_SCHEMA,
  GROUP_SCHEMA,
  isObject,
  type ResourceSchema,
  readAttributes,
  USER_SCHEMA,
} from './resource-schema.js';
import { scimError, scimPreconditionFailed } from './scim-error.js';

/** The actor of every change an identity provider makes over SCIM (it authenticates with one credential). */
export const SCIM_ACTOR = 'scim';

interface Kind {
  schema: ResourceSchema;
  extensions: ResourceSchema[];
  /** The person or team id the attributes map to. */
  name(attributes: Record<string, unknown>): string;
}

export const KINDS: Record<ScimResourceType, Kind> = {
  User: {
    schema: USER_SCHEMA,
    extensions: [ENTERPRISE_USER_SCHEMA],
    name(a) {
      const id = String(a['userName']).toLowerCase();
      if (!PERSON_ID.test(id))
        throw scimError(
          400,
          'invalidValue',
          'userName becomes the person’s id in Writ: 1-128 letters, digits, ".", "_", "@", "+" or "-", starting with a letter or digit (an e-mail address works)',
        );
      return id;
    },
  },
  Group: {
    schema: GROUP_SCHEMA,
    extensions: [],
    name(a) {
      const id = String(a['displayName'])
        .toLowerCase()
        .replace(/[^a-z0-9._@+-]+/g, '-')
        .replace(/^-+|-+$/g, '');
      if (!PERSON_ID.test(id))
        throw scimError(
          400,
          'invalidValue',
          'displayName must hold a letter or digit: the team’s id in Writ is made from it',
        );
      return id;
    },
  },
};

/** Reads a full resource (POST, PUT) against its schema. */
export function readResource(type: ScimResourceType, body: unknown): Record<string, unknown> {
  const kind = KINDS[type];
  if (!isObject(body)) throw scimError(400, 'invalidSyntax', 'the body must be a JSON object');
  checkSchemas(body, kind.schema, kind.extensions);
  return readAttributes(body, kind.schema, kind.extensions);
}

/** What a change did to a person, for the audit log and the orphan listing. */
type Transition = 'provisioned' | 'deprovisioned' | 'reactivated' | undefined;

const ACTIVE = (r: Pick<ScimRecord, 'type' | 'deleted' | 'attributes'> | undefined) =>
  r !== undefined && !r.deleted && (r.type === 'Group' || r.attributes['active'] !== false);

/**
 * Writes a SCIM resource (a create when `existing` is undefined), audits it and tells every node; a
 * User that stops being active (or is deleted) is audited as `person.deprovisioned`, with the operators
 * whose access ends and the workloads it leaves orphaned. The node reloads its people directory before
 * answering, so the change is in force here when the provider hears it was made.
 */
export async function writeResource(
  ctx: WritContext,
  type: ScimResourceType,
  existing: ScimRecord | undefined,
  change: { attributes: Record<string, unknown>; deleted?: boolean },
  how: 'created' | 'replaced' | 'patched' | 'deleted',
): Promise<ScimRecord> {
  const kind = KINDS[type];
  const now = ctx.clock.now();
  const name = kind.name(change.attributes);
  // A deactivated User keeps its userName: renamed, its old name would leave SCIM, and a person config
  // also knows would be active again on config's word alone (identity providers rename departing users).
  if (type === 'User' && existing && !ACTIVE(existing) && existing.name !== name && !change.deleted)
    throw scimError(
      400,
      'mutability',
      `userName of a deactivated User cannot change: "${existing.name}" stays deprovisioned under it; make the User active first, or DELETE it (the name stays deprovisioned) and provision the new name`,
    );
  const directory = ctx.registry.people();
  // People and teams share one namespace of ids, across config and SCIM: an owner names one thing.
  const clash = type === 'User' ? directory.team(name) : directory.person(name);
  if (clash && !change.deleted)
    throw scimError(
      409,
      'uniqueness',
      `"${name}" is already the id of a ${type === 'User' ? 'team' : 'person'} in Writ`,
    );
  const record: ScimRecord = {
    type,
    id: existing?.id ?? randomUUID(),
    name,
    deleted: change.deleted === true,
    version: (existing?.version ?? 0) + 1,
    createdAt: existing?.createdAt ?? now,
    updatedAt: now,
    inactiveSince: null,
    attributes: change.attributes,
  };
  const wasActive = ACTIVE(existing);
  const isActive = ACTIVE(record);
  if (type === 'User' && !isActive)
    record.inactiveSince = wasActive || !existing ? now : (existing.inactiveSince ?? now);
  const transition: Transition =
    type !== 'User'
      ? undefined
      : !existing
        ? isActive
          ? 'provisioned'
          : undefined
        : wasActive && !isActive
          ? 'deprovisioned'
          : !wasActive && isActive
            ? 'reactivated'
            : undefined;
  const audited = await ctx.store.transaction(async (tx) => {
    if (type === 'Group') await checkMembers(tx, change.attributes);
    const put = await tx.putScimResource(record, existing?.version);
    if (put === 'name_taken')
      throw scimError(
        409,
        'uniqueness',
        type === 'User' ? `a User with userName "${name}" exists` : `a Group named "${name}" exists`,
      );
    if (put === 'stale') throw scimPreconditionFailed();
    await ctx.events.append(tx, EventType.peopleChanged, {
      resource: type,
      change: how === 'created' ? 'create' : how === 'deleted' ? 'delete' : 'update',
    });
    return ctx.audit.append(
      {
        type: `scim.${type === 'User' ? 'user' : 'group'}.${how}`,
        outcome: 'success',
        actor: SCIM_ACTOR,
        subject: name,
        data: {
          id: record.id,
          version: record.version,
          ...(type === 'User' ? { active: isActive } : { members: memberCount(change.attributes) }),
          ...(typeof change.attributes['externalId'] === 'string'
            ? { external_id: change.attributes['externalId'] }
            : {}),
        },
      },
      tx,
    );
  });
  ctx.audit.noteCommitted(audited);
  ctx.events.notify();
  await ctx.registry.reloadPeople();
  if (transition === 'deprovisioned' || transition === 'reactivated')
    await auditTransition(ctx, name, transition);
  return record;
}

/** `person.deprovisioned` / `person.reactivated`: which operators it touches and what it leaves orphaned. */
async function auditTransition(
  ctx: WritContext,
  person: string,
  transition: 'deprovisioned' | 'reactivated',
) {
  const operators = ctx.registry
    .operators()
    .filter((o) => o.person === person)
    .map((o) => o.name);
  const orphaned = orphanedWorkloads(ctx.registry).filter(
    (o) => o.owner === person || ctx.registry.people().team(o.owner)?.members.includes(person),
  );
  await ctx.audit.append({
    type: `person.${transition}`,
    outcome: 'success',
    actor: SCIM_ACTOR,
    subject: person,
    data: {
      operators,
      ...(transition === 'deprovisioned'
        ? { orphaned_workloads: orphaned.map((o) => o.id).slice(0, 1000) }
        : {}),
    },
  });
}

async function checkMembers(tx: WritContext['store'], attributes: Record<string, unknown>): Promise<void> {
  const members = (attributes['members'] ?? []) as Array<Record<string, unknown>>;
  if (members.length === 0) return;
  const live = new Set((await tx.listScimResources('User')).filter((u) => !u.deleted).map((u) => u.id));
  for (const [i, m] of members.entries()) {
    if (m['type'] !== undefined && m['type'] !== 'User')
      throw scimError(400, 'invalidValue', `members[${i}].type: only Users can be members`);
    if (typeof m['value'] !== 'string' || !live.has(m['value']))
      throw scimError(400, 'invalidValue', `members[${i}].value names no User provisioned here`);
  }
}

const memberCount = (a: Record<string, unknown>) => (Array.isArray(a['members']) ? a['members'].length : 0);

/** A PATCH: the stored attributes with the operations applied, read again against the schema. */
export function patchedAttributes(
  type: ScimResourceType,
  existing: ScimRecord,
  body: unknown,
): Record<string, unknown> {
  const kind = KINDS[type];
  const next = applyPatch(existing.attributes, body, kind.schema, kind.extensions);
  return readAttributes(next, kind.schema, kind.extensions);
}
