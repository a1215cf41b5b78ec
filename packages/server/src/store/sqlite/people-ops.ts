import type { Person, Team } from '../../people/person.js';
import type { ScimPutResult, ScimRecord, ScimResourceType } from '../../people/scim-record.js';
import { type StoredPerson, scimSpec, toScimRecord, toStoredPerson, toTeam } from '../people-rows.js';
import type { Row } from '../rows.js';
import { PreparedStatements } from './prepared-statements.js';

/**
 * The embedded store's statements for people: config people and teams, and SCIM resources.
 * Synchronous: the store's queue (or its transaction) serializes them; prepared on first use.
 */
export class SqlitePeopleOps extends PreparedStatements {
  listPeople(): StoredPerson[] {
    return this.prepared('SELECT spec, updated_at FROM people ORDER BY id')
      .all()
      .map((r) => toStoredPerson(r as Row));
  }
  putPerson(p: Person, now: number): void {
    this.prepared(
      `INSERT INTO people (id, spec, updated_at) VALUES (?, ?, ?)
       ON CONFLICT (id) DO UPDATE SET spec = excluded.spec, updated_at = excluded.updated_at`,
    ).run(p.id, JSON.stringify(p), now);
  }
  deletePerson(id: string): void {
    this.prepared('DELETE FROM people WHERE id = ?').run(id);
  }
  listTeams(): Team[] {
    return this.prepared('SELECT spec FROM teams ORDER BY id')
      .all()
      .map((r) => toTeam(r as Row));
  }
  putTeam(t: Team): void {
    this.prepared(
      'INSERT INTO teams (id, spec) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET spec = excluded.spec',
    ).run(t.id, JSON.stringify(t));
  }
  deleteTeam(id: string): void {
    this.prepared('DELETE FROM teams WHERE id = ?').run(id);
  }

  listScimResources(type: ScimResourceType): ScimRecord[] {
    return this.prepared('SELECT * FROM scim_resources WHERE type = ? ORDER BY id')
      .all(type)
      .map((r) => toScimRecord(r as Row));
  }
  getScimResource(type: ScimResourceType, id: string): ScimRecord | undefined {
    const r = this.prepared('SELECT * FROM scim_resources WHERE type = ? AND id = ?').get(type, id);
    return r ? toScimRecord(r as Row) : undefined;
  }
  findScimResource(type: ScimResourceType, name: string): ScimRecord | undefined {
    const r = this.prepared('SELECT * FROM scim_resources WHERE type = ? AND name = ? AND deleted = 0').get(
      type,
      name,
    );
    return r ? toScimRecord(r as Row) : undefined;
  }
  putScimResource(r: ScimRecord, expectedVersion: number | undefined): ScimPutResult {
    if (!r.deleted) {
      const twin = this.prepared(
        'SELECT 1 FROM scim_resources WHERE type = ? AND name = ? AND deleted = 0 AND id <> ?',
      ).get(r.type, r.name, r.id);
      if (twin) return 'name_taken';
    }
    const deleted = r.deleted ? 1 : 0;
    if (expectedVersion === undefined) {
      const added = this.prepared(
        `INSERT INTO scim_resources (type, id, name, deleted, version, spec) VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT DO NOTHING`,
      ).run(r.type, r.id, r.name, deleted, r.version, scimSpec(r));
      return added.changes === 1 ? 'ok' : 'name_taken';
    }
    const changed = this.prepared(
      `UPDATE scim_resources SET name = ?, deleted = ?, version = ?, spec = ?
       WHERE type = ? AND id = ? AND version = ?`,
    ).run(r.name, deleted, r.version, scimSpec(r), r.type, r.id, expectedVersion);
    return changed.changes === 1 ? 'ok' : 'stale';
  }
}
