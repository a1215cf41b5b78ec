import type pg from 'pg';
import type { ConsoleSession } from '../../console/console-session.js';
import { CONSOLE_SESSION_COLUMNS, consoleSessionValues, toConsoleSession } from '../console-rows.js';
import type { Row } from '../rows.js';

type Query = (text: string, values?: unknown[]) => Promise<pg.QueryResult<Row>>;

/** The cluster store's statements for console sessions: any node serves any session. */
export class PostgresConsoleOps {
  readonly #s: string;
  readonly #query: Query;

  constructor(schema: string, query: Query) {
    this.#s = schema;
    this.#query = query;
  }

  async putConsoleSession(s: ConsoleSession): Promise<void> {
    await this.#query(
      `INSERT INTO ${this.#s}.console_sessions (${CONSOLE_SESSION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
      consoleSessionValues(s),
    );
  }
  async getConsoleSession(idHash: string): Promise<ConsoleSession | undefined> {
    const { rows } = await this.#query(`SELECT * FROM ${this.#s}.console_sessions WHERE id_hash = $1`, [
      idHash,
    ]);
    return rows[0] ? toConsoleSession(rows[0]) : undefined;
  }
  async touchConsoleSession(idHash: string, at: number): Promise<boolean> {
    const r = await this.#query(
      `UPDATE ${this.#s}.console_sessions SET last_seen_at = GREATEST(last_seen_at, $1) WHERE id_hash = $2`,
      [at, idHash],
    );
    return r.rowCount === 1;
  }
  async deleteConsoleSession(idHash: string): Promise<boolean> {
    const r = await this.#query(`DELETE FROM ${this.#s}.console_sessions WHERE id_hash = $1`, [idHash]);
    return r.rowCount === 1;
  }
  async pruneConsoleSessions(now: number): Promise<number> {
    const r = await this.#query(`DELETE FROM ${this.#s}.console_sessions WHERE expires_at <= $1`, [now]);
    return r.rowCount ?? 0;
  }
}
