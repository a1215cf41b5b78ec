import type { Store } from '../store/store.js';
import { PeopleDirectory, type SourcedPerson, type SourcedTeam } from './directory.js';
import type { Person, Team } from './person.js';
import type { ScimRecord } from './scim-record.js';

/** The people directory of what the store holds: config people and teams, and SCIM users and groups. */
export async function directoryFromStore(
  store: Pick<Store, 'listPeople' | 'listTeams' | 'listScimResources'>,
): Promise<PeopleDirectory> {
  const [people, teams, users, groups] = await Promise.all([
    store.listPeople(),
    store.listTeams(),
    store.listScimResources('User'),
    store.listScimResources('Group'),
  ]);
  const personOf = new Map(users.filter((u) => !u.deleted).map((u) => [u.id, u.name]));
  const live = new Set(personOf.values());
  // A deleted User is kept (what the person owned shows orphaned) until the name is provisioned again.
  const current = users.filter((u) => !u.deleted || !live.has(u.name));
  return new PeopleDirectory(
    [
      ...people.map(
        ({ updatedAt, ...p }): SourcedPerson => ({ ...p, source: 'config', changedAt: updatedAt }),
      ),
      ...current.map(scimPerson),
    ],
    [
      ...teams.map((t): SourcedTeam => ({ ...t, source: 'config' })),
      ...groups.filter((g) => !g.deleted).map((g) => scimTeam(g, personOf)),
    ],
  );
}

/**
 * The people directory a config bundle would make: its people and teams with what identity providers
 * provisioned (the store's SCIM resources), before the bundle is applied.
 */
export async function directoryWithConfig(
  store: Pick<Store, 'listScimResources'>,
  config: { people: readonly Person[]; teams: readonly Team[] },
): Promise<PeopleDirectory> {
  return directoryFromStore({
    listPeople: async () => config.people.map((p) => ({ ...p, updatedAt: 0 })),
    listTeams: async () => [...config.teams],
    listScimResources: (type) => store.listScimResources(type),
  });
}

/** A SCIM User as a person: `userName` (lowercased) is the id; a deleted one stays, inactive. */
export function scimPerson(u: ScimRecord): SourcedPerson {
  const a = u.attributes;
  const p: SourcedPerson = {
    id: u.name,
    name: typeof a['displayName'] === 'string' ? a['displayName'] : u.name,
    active: a['active'] !== false && !u.deleted,
    teams: [],
    source: 'scim',
    deleted: u.deleted,
    changedAt: u.inactiveSince ?? u.updatedAt,
  };
  const email = primaryEmail(a['emails']);
  if (email !== undefined) p.email = email;
  return p;
}

function scimTeam(g: ScimRecord, personOf: ReadonlyMap<string, string>): SourcedTeam {
  const members = Array.isArray(g.attributes['members'])
    ? (g.attributes['members'] as { value?: unknown }[])
    : [];
  return {
    id: g.name,
    name: typeof g.attributes['displayName'] === 'string' ? g.attributes['displayName'] : g.name,
    members: members.flatMap((m) => {
      const person = typeof m.value === 'string' ? personOf.get(m.value) : undefined;
      return person === undefined ? [] : [person];
    }),
    source: 'scim',
  };
}

function primaryEmail(emails: unknown): string | undefined {
  if (!Array.isArray(emails)) return undefined;
  const list = emails.filter(
    (e): e is { value: string; primary?: boolean } =>
      typeof e === 'object' && e !== null && typeof e.value === 'string',
  );
  return (list.find((e) => e.primary === true) ?? list[0])?.value;
}
