import type pg from 'pg';
import type { BreakGlass, BreakGlassQuery, BreakGlassState } from '../../governance/break-glass.js';
import type { CredentialException, ExceptionRecord, ExceptionRuntime } from '../../governance/exception.js';
import { breakGlassValues, exceptionSpecJson, toBreakGlass, toExceptionRecord } from '../governance-rows.js';
import type { Row } from '../rows.js';

type Query = (text: string, values?: unknown[]) => Promise<pg.QueryResult<Row>>;

/**
 * The cluster store's statements for governance: the exceptions registry and break-glass grants.
 * `query` runs on the pool, or on the transaction's connection inside one. Conditional updates are one
 * statement each, so two nodes renewing, alerting or approving at once change a row once.
 */
export class PostgresGovernanceOps {
  readonly #s: string;
  readonly #query: Query;

  constructor(schema: string, query: Query) {
    this.#s = schema;
    this.#query = query;
  }

  async listExceptions(): Promise<ExceptionRecord[]> {
    const { rows } = await this.#query(`SELECT * FROM ${this.#s}.credential_exceptions ORDER BY id`);
    return rows.map(toExceptionRecord);
  }
  async getException(id: string): Promise<ExceptionRecord | undefined> {
    const { rows } = await this.#query(`SELECT * FROM ${this.#s}.credential_exceptions WHERE id = $1`, [id]);
    return rows[0] ? toExceptionRecord(rows[0]) : undefined;
  }
  async putException(e: CredentialException): Promise<void> {
    await this.#query(
      `INSERT INTO ${this.#s}.credential_exceptions (id, spec, runtime) VALUES ($1, $2, '{}')
       ON CONFLICT (id) DO UPDATE SET spec = excluded.spec`,
      [e.id, exceptionSpecJson(e)],
    );
  }
  async deleteException(id: string): Promise<void> {
    await this.#query(`DELETE FROM ${this.#s}.credential_exceptions WHERE id = $1`, [id]);
  }
  async setExceptionRuntime(
    id: string,
    runtime: ExceptionRuntime,
    expected: ExceptionRuntime,
  ): Promise<boolean> {
    const r = await this.#query(
      `UPDATE ${this.#s}.credential_exceptions SET runtime = $1 WHERE id = $2 AND runtime = $3`,
      [JSON.stringify(runtime), id, JSON.stringify(expected)],
    );
    return r.rowCount === 1;
  }

  async createBreakGlass(g: BreakGlass): Promise<void> {
    await this.#query(
      `INSERT INTO ${this.#s}.break_glass (id, workload, state, ends_at, open_review, requested_at, doc)
       VALUES ($1, $2, $3, $4, $5, $6, $7)`,
      breakGlassValues(g),
    );
  }
  async getBreakGlass(id: string): Promise<BreakGlass | undefined> {
    const { rows } = await this.#query(`SELECT doc FROM ${this.#s}.break_glass WHERE id = $1`, [id]);
    return rows[0] ? toBreakGlass(rows[0]) : undefined;
  }
  async listBreakGlass(q: BreakGlassQuery): Promise<BreakGlass[]> {
    const where: string[] = [];
    const values: unknown[] = [];
    const add = (clause: (p: string) => string, v: unknown) => {
      values.push(v);
      where.push(clause(`$${values.length}`));
    };
    if (q.workload !== undefined) add((p) => `workload = ${p}`, q.workload);
    if (q.state !== undefined) add((p) => `state = ${p}`, q.state);
    if (q.openReview !== undefined) add((p) => `open_review = ${p}`, q.openReview ? 1 : 0);
    if (q.endsBy !== undefined) add((p) => `ends_at <= ${p}`, q.endsBy);
    values.push(Math.max(0, Math.min(q.limit, 1000)));
    const { rows } = await this.#query(
      `SELECT doc FROM ${this.#s}.break_glass ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
       ORDER BY requested_at, id LIMIT $${values.length}`,
      values,
    );
    return rows.map(toBreakGlass);
  }
  async updateBreakGlass(g: BreakGlass, expected: BreakGlassState): Promise<boolean> {
    const [id, , state, endsAt, openReview, , doc] = breakGlassValues(g);
    const r = await this.#query(
      `UPDATE ${this.#s}.break_glass SET state = $1, ends_at = $2, open_review = $3, doc = $4
       WHERE id = $5 AND state = $6`,
      [state, endsAt, openReview, doc, id, expected],
    );
    return r.rowCount === 1;
  }
}
