import type { PeopleSource, Person, Team } from './person.js';

/** A person as some source holds it, with when that source last changed them (ms), if known. */
export interface SourcedPerson extends Person {
  source: PeopleSource;
  /** When the source last changed this person (ms): for an inactive one, when they became inactive. */
  changedAt?: number | undefined;
  /** SCIM `DELETE`: the identity provider removed the person; kept so what they owned is seen orphaned. */
  deleted?: boolean | undefined;
}

export interface SourcedTeam extends Team {
  source: PeopleSource;
}

/** A person as Writ sees them once every source is merged. */
export interface DirectoryPerson extends Person {
  sources: PeopleSource[];
  /** Some source removed them (SCIM `DELETE`). Implies `active: false`. */
  deleted: boolean;
  /** When they stopped being active (ms): the earliest change of a source that says inactive. */
  inactiveSince?: number;
}

/** What an `owner` (of a workload, of an exception) names, and whether it can still own anything. */
export type OwnerResolution =
  | { status: 'active'; kind: 'person' | 'team'; id: string }
  | {
      status: 'inactive';
      kind: 'person' | 'team';
      id: string;
      reason: 'person_inactive' | 'person_deleted' | 'team_without_active_member';
      /** When it stopped being able to own (ms), when known. */
      since?: number;
    }
  | { status: 'unknown'; id: string };

/**
 * The people and teams Writ knows, merged from config (`people/*.yaml`) and SCIM provisioning.
 *
 * Merge rule (docs/governance.md, "People"): a person both sources know is active only while both say
 * so: either source can end access, neither can restore what the other ended. The identity provider's
 * name and e-mail are shown over config's (they are the current ones); team memberships are the union.
 * A team is active while at least one of its members is.
 *
 * @example
 * const people = PeopleDirectory.fromConfig(bundle);
 * people.owner('team-payments'); // { status: 'active', kind: 'team', id: 'team-payments' }
 */
export class PeopleDirectory {
  readonly #people = new Map<string, DirectoryPerson>();
  readonly #teams = new Map<string, Team & { sources: PeopleSource[] }>();

  constructor(people: readonly SourcedPerson[], teams: readonly SourcedTeam[]) {
    // Config first, so the identity provider's name and e-mail overwrite it.
    const ordered = [...people].sort((a, b) => order(a.source) - order(b.source));
    for (const p of ordered) {
      const known = this.#people.get(p.id);
      const active = p.active && !p.deleted;
      const merged: DirectoryPerson = {
        id: p.id,
        name: p.name,
        active: active && (known?.active ?? true),
        teams: [...new Set([...(known?.teams ?? []), ...p.teams])],
        sources: [...(known?.sources ?? []), p.source],
        deleted: (known?.deleted ?? false) || p.deleted === true,
      };
      const email = p.email ?? known?.email;
      if (email !== undefined) merged.email = email;
      const since = [known?.inactiveSince, active ? undefined : p.changedAt].filter(
        (t): t is number => t !== undefined,
      );
      if (!merged.active && since.length > 0) merged.inactiveSince = Math.min(...since);
      this.#people.set(p.id, merged);
    }
    for (const t of teams) {
      const known = this.#teams.get(t.id);
      const team: Team & { sources: PeopleSource[] } = {
        id: t.id,
        name: known?.name ?? t.name,
        members: [...new Set([...(known?.members ?? []), ...t.members])],
        sources: [...(known?.sources ?? []), t.source],
      };
      const description = known?.description ?? t.description;
      if (description !== undefined) team.description = description;
      this.#teams.set(t.id, team);
    }
    // Membership in both directions, as in config: a person lists a team, a team lists its members.
    for (const t of this.#teams.values())
      for (const m of t.members) {
        const p = this.#people.get(m);
        if (p && !p.teams.includes(t.id)) p.teams.push(t.id);
      }
    for (const p of this.#people.values()) {
      for (const id of p.teams) {
        const t = this.#teams.get(id);
        if (t && !t.members.includes(p.id)) t.members.push(p.id);
      }
      p.teams.sort();
    }
    for (const t of this.#teams.values()) t.members.sort();
  }

  /** The directory of a config bundle alone (`writ govern check` reads this, without a server). */
  static fromConfig(config: { people: readonly Person[]; teams: readonly Team[] }): PeopleDirectory {
    return new PeopleDirectory(
      config.people.map((p) => ({ ...p, source: 'config' as const })),
      config.teams.map((t) => ({ ...t, source: 'config' as const })),
    );
  }

  person(id: string): DirectoryPerson | undefined {
    return this.#people.get(id);
  }
  team(id: string): (Team & { sources: PeopleSource[] }) | undefined {
    return this.#teams.get(id);
  }
  people(): DirectoryPerson[] {
    return [...this.#people.values()];
  }
  teams(): Array<Team & { sources: PeopleSource[] }> {
    return [...this.#teams.values()];
  }

  /** Whether `id` is a known person who is active, or a known team with an active member. */
  isActiveOwner(id: string): boolean {
    return this.owner(id).status === 'active';
  }

  /** What an `owner` field names: an active person or team, an inactive one (and why), or nothing known. */
  owner(id: string): OwnerResolution {
    const p = this.#people.get(id);
    if (p) {
      if (p.active) return { status: 'active', kind: 'person', id };
      return {
        status: 'inactive',
        kind: 'person',
        id,
        reason: p.deleted ? 'person_deleted' : 'person_inactive',
        ...(p.inactiveSince !== undefined ? { since: p.inactiveSince } : {}),
      };
    }
    const t = this.#teams.get(id);
    if (!t) return { status: 'unknown', id };
    const members = t.members.map((m) => this.#people.get(m)).filter((m) => m !== undefined);
    if (members.some((m) => m.active)) return { status: 'active', kind: 'team', id };
    const times = members.map((m) => m.inactiveSince);
    // The team lost its last active member when the last of them left, if every time is known.
    const since =
      times.length > 0 && times.every((t) => t !== undefined) ? Math.max(...(times as number[])) : undefined;
    return {
      status: 'inactive',
      kind: 'team',
      id,
      reason: 'team_without_active_member',
      ...(since !== undefined ? { since } : {}),
    };
  }
}

const order = (s: PeopleSource) => (s === 'config' ? 0 : 1);
