import type pg from 'pg';
import {
  type AppliedConfigFile,
  appliedConfigFileSpec,
  type ConfigFileSelect,
  type ConfigFileStamp,
  configFileColumns,
  toAppliedConfigFile,
} from '../config-file-rows.js';
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

  async listConfigFiles(select?: ConfigFileSelect): Promise<AppliedConfigFile[]> {
    const columns = configFileColumns(select, `(spec::json -> 'refs')::text`);
    const { rows } = select?.paths
      ? await this.#query(
          `SELECT ${columns} FROM ${this.#s}.config_files WHERE path = ANY($1::text[]) ORDER BY path`,
          [[...new Set(select.paths)]],
        )
      : await this.#query(`SELECT ${columns} FROM ${this.#s}.config_files ORDER BY path`);
    return rows.map(toAppliedConfigFile);
  }
  async putConfigFiles(files: readonly AppliedConfigFile[]): Promise<void> {
    for (let i = 0; i < files.length; i += BATCH) {
      const batch = files.slice(i, i + BATCH);
      await this.#query(
        `INSERT INTO ${this.#s}.config_files (path, digest, spec, stamp)
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])
         ON CONFLICT (path) DO UPDATE SET digest = excluded.digest, spec = excluded.spec, stamp = excluded.stamp`,
        [
          batch.map((f) => f.path),
          batch.map((f) => f.digest),
          batch.map(appliedConfigFileSpec),
          batch.map((f) => f.stamp ?? null),
        ],
      );
    }
  }
  async stampConfigFiles(stamps: readonly ConfigFileStamp[]): Promise<void> {
    for (let i = 0; i < stamps.length; i += BATCH) {
      const batch = stamps.slice(i, i + BATCH);
      await this.#query(
        `UPDATE ${this.#s}.config_files AS f SET stamp = s.stamp
         FROM unnest($1::text[], $2::text[], $3::text[]) AS s (path, digest, stamp)
         WHERE f.path = s.path AND f.digest = s.digest`,
        [batch.map((s) => s.path), batch.map((s) => s.digest), batch.map((s) => s.stamp)],
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
