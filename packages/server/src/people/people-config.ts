import { ConfigError } from '../errors.js';
import type { PersonFile, TeamFile } from './people-file.js';
import type { Person, Team } from './person.js';

/** One parsed `people/` document and where it was read (`file (document N)`). */
export interface PeopleDocument {
  where: string;
  value: PersonFile | TeamFile;
}

/**
 * Checks `people/` documents as a whole and builds people and teams: ids are unique across people and
 * teams (an `owner` names either, so it must name one thing); a person's `teams` and a team's `members`
 * name what is defined, and membership is the union of both directions, so either file may list it.
 */
export function buildPeople(documents: readonly PeopleDocument[]): { people: Person[]; teams: Team[] } {
  const seen = new Map<string, string>();
  const people: Person[] = [];
  const teams: Team[] = [];
  const personFiles = new Map<string, string>();
  const teamFiles = new Map<string, string>();
  for (const { where, value } of documents) {
    const twin = seen.get(value.id);
    if (twin !== undefined)
      throw new ConfigError(
        where,
        'id',
        `"${value.id}" is also defined in ${twin}: a person and a team share one namespace of ids`,
      );
    seen.set(value.id, where);
    if (value.kind === 'team') {
      const t: Team = {
        id: value.id,
        name: value.name ?? value.id,
        members: [...new Set(value.members ?? [])],
      };
      if (value.description !== undefined) t.description = value.description;
      teams.push(t);
      teamFiles.set(t.id, where);
    } else {
      const p: Person = {
        id: value.id,
        name: value.name,
        active: value.active,
        teams: [...new Set(value.teams ?? [])],
      };
      if (value.email !== undefined) p.email = value.email;
      people.push(p);
      personFiles.set(p.id, where);
    }
  }
  const teamById = new Map(teams.map((t) => [t.id, t]));
  const personById = new Map(people.map((p) => [p.id, p]));
  for (const p of people) {
    for (const [i, t] of p.teams.entries()) {
      const team = teamById.get(t);
      if (!team)
        throw new ConfigError(
          personFiles.get(p.id)!,
          `teams.${i}`,
          personById.has(t)
            ? `"${t}" is a person, not a team`
            : `unknown team "${t}": define it with kind: team`,
        );
      if (!team.members.includes(p.id)) team.members.push(p.id);
    }
  }
  for (const t of teams) {
    for (const [i, m] of t.members.entries()) {
      const person = personById.get(m);
      if (!person)
        throw new ConfigError(
          teamFiles.get(t.id)!,
          `members.${i}`,
          teamById.has(m) ? `"${m}" is a team: teams hold people, not teams` : `unknown person "${m}"`,
        );
      if (!person.teams.includes(t.id)) person.teams.push(t.id);
    }
  }
  for (const p of people) p.teams.sort();
  for (const t of teams) t.members.sort();
  return { people, teams };
}
