import type { Person, Team } from '../people/person.js';
import type { ScimRecord, ScimResourceType } from '../people/scim-record.js';
import type { Row } from './rows.js';

/** Rows of people, teams and SCIM resources to records, for every SQL adapter. */

/** A config person as stored, with when `writ apply` last changed them (ms). */
export interface StoredPerson extends Person {
  updatedAt: number;
}

export function toStoredPerson(r: Row): StoredPerson {
  return { ...(JSON.parse(r['spec'] as string) as Person), updatedAt: Number(r['updated_at']) };
}

export function toTeam(r: Row): Team {
  return JSON.parse(r['spec'] as string) as Team;
}

/** The `spec` column of a SCIM resource: everything but the columns that are queried. */
export function scimSpec(r: ScimRecord): string {
  return JSON.stringify({
    createdAt: r.createdAt,
    updatedAt: r.updatedAt,
    inactiveSince: r.inactiveSince,
    attributes: r.attributes,
  });
}

export function toScimRecord(r: Row): ScimRecord {
  const spec = JSON.parse(r['spec'] as string) as Pick<
    ScimRecord,
    'createdAt' | 'updatedAt' | 'inactiveSince' | 'attributes'
  >;
  return {
    type: r['type'] as ScimResourceType,
    id: r['id'] as string,
    name: r['name'] as string,
    deleted: r['deleted'] === true || r['deleted'] === 1,
    version: Number(r['version']),
    ...spec,
  };
}
