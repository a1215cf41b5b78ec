import type pg from 'pg';
import {
  type AppliedConfigFile,
  appliedConfigFileSpec,
  CONFIG_FILES_VERSIONS_KEPT,
  type ConfigFileSelect,
  type ConfigFileStamp,
  type ConfigFilesListing,
  type ConfigFilesVersion,
  configFileColumns,
  nextConfigFilesVersion,
  toAppliedConfigFile,
} from '../config-file-rows.js';
import type { Row } from '../rows.js';

type Query = (text: string, values?: unknown[]) => Promise<pg.QueryResult<Row>>;

/** Rows per statement: a first apply of 100,000 files is a hundred round trips, not 100,000. */
const BATCH = 1000;

/**
 * The cluster store's statements for the applied config's files (see AppliedConfigFile). The writes run
 * in a transaction holding the store's write lock (the caller's): versions are taken and committed in
 * order, so a reader that sees version n sees every change up to n.
 */
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
  /**
   * One statement, so one snapshot: the version (kind `v`), the tag held for `since` (`s`), and the
   * files (`f`) and removed paths (`r`) after it.
   */
  async listConfigFileChanges(since?: ConfigFilesVersion): Promise<ConfigFilesListing | undefined> {
    const s = this.#s;
    const after = since?.n ?? -1;
    const refs = `CASE WHEN spec LIKE '{"refs":[]%' THEN NULL ELSE (spec::json -> 'refs')::text END`;
    const { rows } = await this.#query(
      `(SELECT 'v' AS kind, n::text AS path, tag AS digest, NULL AS stamp, NULL AS refs
          FROM ${s}.config_file_versions ORDER BY n DESC LIMIT 1)
       UNION ALL SELECT 's', n::text, tag, NULL, NULL FROM ${s}.config_file_versions WHERE n = $1
       UNION ALL SELECT 'f', path, digest, stamp, ${refs} FROM ${s}.config_files WHERE seq > $1
       UNION ALL SELECT 'r', path, NULL, NULL, NULL FROM ${s}.config_file_removals r WHERE seq > $1
         AND $2 AND NOT EXISTS (SELECT 1 FROM ${s}.config_files f WHERE f.path = r.path)`,
      [after, since !== undefined],
    );
    const head = rows.find((r) => r['kind'] === 'v');
    if (since && rows.find((r) => r['kind'] === 's')?.['digest'] !== since.tag) return undefined;
    const byPath = (a: Row, b: Row) => ((a['path'] as string) < (b['path'] as string) ? -1 : 1);
    return {
      version: head ? { n: Number(head['path']), tag: head['digest'] as string } : { n: 0, tag: '' },
      files: rows
        .filter((r) => r['kind'] === 'f')
        .sort(byPath)
        .map(toAppliedConfigFile),
      removed: rows
        .filter((r) => r['kind'] === 'r')
        .sort(byPath)
        .map((r) => r['path'] as string),
    };
  }
  async putConfigFiles(files: readonly AppliedConfigFile[]): Promise<void> {
    if (files.length === 0) return;
    const { n } = await this.#change();
    for (let i = 0; i < files.length; i += BATCH) {
      const batch = files.slice(i, i + BATCH);
      await this.#query(
        `INSERT INTO ${this.#s}.config_files (path, digest, spec, stamp, seq)
         SELECT *, $5::bigint FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])
         ON CONFLICT (path) DO UPDATE SET digest = excluded.digest, spec = excluded.spec,
           stamp = excluded.stamp, seq = excluded.seq`,
        [
          batch.map((f) => f.path),
          batch.map((f) => f.digest),
          batch.map(appliedConfigFileSpec),
          batch.map((f) => f.stamp ?? null),
          n,
        ],
      );
    }
  }
  async stampConfigFiles(stamps: readonly ConfigFileStamp[]): Promise<void> {
    if (stamps.length === 0) return;
    const { n } = await this.#change();
    for (let i = 0; i < stamps.length; i += BATCH) {
      const batch = stamps.slice(i, i + BATCH);
      await this.#query(
        `UPDATE ${this.#s}.config_files AS f SET stamp = s.stamp, seq = $4
         FROM unnest($1::text[], $2::text[], $3::text[]) AS s (path, digest, stamp)
         WHERE f.path = s.path AND f.digest = s.digest`,
        [batch.map((s) => s.path), batch.map((s) => s.digest), batch.map((s) => s.stamp), n],
      );
    }
  }
  async deleteConfigFiles(paths: readonly string[] | 'all'): Promise<void> {
    if (paths !== 'all' && paths.length === 0) return;
    const { n } = await this.#change();
    if (paths === 'all') {
      await this.#query(`DELETE FROM ${this.#s}.config_files`);
      // No version before this one describes what is left: each is forgotten, and asked for, refused.
      await this.#query(`DELETE FROM ${this.#s}.config_file_removals`);
      await this.#query(`DELETE FROM ${this.#s}.config_file_versions WHERE n < $1`, [n]);
      return;
    }
    for (let i = 0; i < paths.length; i += BATCH) {
      const batch = paths.slice(i, i + BATCH);
      await this.#query(`DELETE FROM ${this.#s}.config_files WHERE path = ANY($1::text[])`, [batch]);
      await this.#query(
        `INSERT INTO ${this.#s}.config_file_removals (path, seq) SELECT p, $2::bigint FROM unnest($1::text[]) AS p
         ON CONFLICT (path) DO UPDATE SET seq = excluded.seq`,
        [batch, n],
      );
    }
  }

  /** The next version, recorded (older ones pruned): one per change of the record. */
  async #change(): Promise<ConfigFilesVersion> {
    const { rows } = await this.#query(
      `SELECT n, tag FROM ${this.#s}.config_file_versions ORDER BY n DESC LIMIT 1`,
    );
    const r = rows[0];
    const version = nextConfigFilesVersion(
      r ? { n: Number(r['n']), tag: r['tag'] as string } : { n: 0, tag: '' },
    );
    const floor = version.n - CONFIG_FILES_VERSIONS_KEPT;
    await this.#query(
      `WITH pruned AS (DELETE FROM ${this.#s}.config_file_versions WHERE n <= $3),
         gone AS (DELETE FROM ${this.#s}.config_file_removals WHERE seq <= $3)
       INSERT INTO ${this.#s}.config_file_versions (n, tag) VALUES ($1, $2)`,
      [version.n, version.tag, floor],
    );
    return version;
  }
}
