import type pg from 'pg';
import type { Person, Team } from '../../people/person.js';
import type { ScimPutResult, ScimRecord, ScimResourceType } from '../../people/scim-record.js';
import { type StoredPerson, scimSpec, toScimRecord, toStoredPerson, toTeam } from '../people-rows.js';
import type { Row } from '../rows.js';

type Query = (text: string, values?: unknown[]) => Promise<pg.QueryResult<Row>>;

/**
 * The cluster store's statements for people: config people and teams, and SCIM resources.
 * `query` runs on the pool, or on the transaction's connection inside one.
 */
export class PostgresPeopleOps {
  readonly #s: string;
  readonly #query: Query;

  constructor(schema: string, query: Query) {
    this.#s = schema;
    this.#query = query;
  }

  async listPeople(): Promise<StoredPerson[]> {
    const { rows } = await this.#query(`SELECT spec, updated_at FROM ${this.#s}.people ORDER BY id`);
    return rows.map(toStoredPerson);
  }
  async putPerson(p: Person, now: number): Promise<void> {
    await this.#query(
      `INSERT INTO ${this.#s}.people (id, spec, updated_at) VALUES ($1, $2, $3)
       ON CONFLICT (id) DO UPDATE SET spec = excluded.spec, updated_at = excluded.updated_at`,
      [p.id, JSON.stringify(p), now],
    );
  }
  async deletePerson(id: string): Promise<void> {
    await this.#query(`DELETE FROM ${this.#s}.people WHERE id = $1`, [id]);
  }
  async listTeams(): Promise<Team[]> {
    const { rows } = await this.#query(`SELECT spec FROM ${this.#s}.teams ORDER BY id`);
    return rows.map(toTeam);
  }
  async putTeam(t: Team): Promise<void> {
    await this.#query(
      `INSERT INTO ${this.#s}.teams (id, spec) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET spec = excluded.spec`,
      [t.id, JSON.stringify(t)],
    );
  }
  async deleteTeam(id: string): Promise<void> {
    await this.#query(`DELETE FROM ${this.#s}.teams WHERE id = $1`, [id]);
  }

  async listScimResources(type: ScimResourceType): Promise<ScimRecord[]> {
    const { rows } = await this.#query(
      `SELECT * FROM ${this.#s}.scim_resources WHERE type = $1 ORDER BY id COLLATE "C"`,
      [type],
    );
    return rows.map(toScimRecord);
  }
  async getScimResource(type: ScimResourceType, id: string): Promise<ScimRecord | undefined> {
    const { rows } = await this.#query(
      `SELECT * FROM ${this.#s}.scim_resources WHERE type = $1 AND id = $2`,
      [type, id],
    );
    return rows[0] ? toScimRecord(rows[0]) : undefined;
  }
  async findScimResource(type: ScimResourceType, name: string): Promise<ScimRecord | undefined> {
    const { rows } = await this.#query(
      `SELECT * FROM ${this.#s}.scim_resources WHERE type = $1 AND name = $2 AND NOT deleted`,
      [type, name],
    );
    return rows[0] ? toScimRecord(rows[0]) : undefined;
  }
  /**
   * No statement here may fail on a unique index inside a caller's transaction (PostgreSQL would abort
   * it): a live twin is looked for first, and the insert does nothing on a conflict.
   */
  async putScimResource(r: ScimRecord, expectedVersion: number | undefined): Promise<ScimPutResult> {
    if (!r.deleted) {
      const twin = await this.#query(
        `SELECT 1 FROM ${this.#s}.scim_resources WHERE type = $1 AND name = $2 AND NOT deleted AND id <> $3`,
        [r.type, r.name, r.id],
      );
      if ((twin.rowCount ?? 0) > 0) return 'name_taken';
    }
    if (expectedVersion === undefined) {
      const added = await this.#query(
        `INSERT INTO ${this.#s}.scim_resources (type, id, name, deleted, version, spec)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING`,
        [r.type, r.id, r.name, r.deleted, r.version, scimSpec(r)],
      );
      return added.rowCount === 1 ? 'ok' : 'name_taken';
    }
    const changed = await this.#query(
      `UPDATE ${this.#s}.scim_resources SET name = $1, deleted = $2, version = $3, spec = $4
       WHERE type = $5 AND id = $6 AND version = $7`,
      [r.name, r.deleted, r.version, scimSpec(r), r.type, r.id, expectedVersion],
    );
    return changed.rowCount === 1 ? 'ok' : 'stale';
  }
}
