import type pg from 'pg';
import { type AppliedConfigFile, appliedConfigFileSpec, toAppliedConfigFile } from '../config-file-rows.js';
import type { Row } from '../rows.js';

type Query = (text: string, values?: unknown[]) => Promise<pg.QueryResult<Row>>;

/** Rows per statement: a first apply of 100,000 files is a hundred round trips, not 100,000. */
const BATCH = 1000;

/** The cluster store's statements for the applied config's files (see AppliedConfigFile). */
export class PostgresConfigFileOps {
  readonly #s: string;
  readonly #query: Query;

  constructor(schema: string, query: Query) {
    this.#s = schema;
    this.#query = query;
  }

  async listConfigFiles(): Promise<AppliedConfigFile[]> {
    const { rows } = await this.#query(
      `SELECT path, digest, spec FROM ${this.#s}.config_files ORDER BY path`,
    );
    return rows.map(toAppliedConfigFile);
  }
  async putConfigFiles(files: readonly AppliedConfigFile[]): Promise<void> {
    for (let i = 0; i < files.length; i += BATCH) {
      const batch = files.slice(i, i + BATCH);
      await this.#query(
        `INSERT INTO ${this.#s}.config_files (path, digest, spec)
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[])
         ON CONFLICT (path) DO UPDATE SET digest = excluded.digest, spec = excluded.spec`,
        [batch.map((f) => f.path), batch.map((f) => f.digest), batch.map(appliedConfigFileSpec)],
      );
    }
  }
  async deleteConfigFiles(paths: readonly string[] | 'all'): Promise<void> {
    if (paths === 'all') {
      await this.#query(`DELETE FROM ${this.#s}.config_files`);
      return;
    }
    for (let i = 0; i < paths.length; i += BATCH)
      await this.#query(`DELETE FROM ${this.#s}.config_files WHERE path = ANY($1::text[])`, [
        paths.slice(i, i + BATCH),
      ]);
  }
}
