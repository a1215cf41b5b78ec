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
import { PreparedStatements } from './prepared-statements.js';

/** The embedded store's statements for the applied config's files (see AppliedConfigFile). */
export class SqliteConfigFileOps extends PreparedStatements {
  listConfigFiles(select?: ConfigFileSelect): AppliedConfigFile[] {
    const columns = configFileColumns(select, "json_extract(spec, '$.refs')");
    if (select?.paths) {
      const one = this.prepared(`SELECT ${columns} FROM config_files WHERE path = ?`);
      return [...new Set(select.paths)]
        .sort()
        .flatMap((p) => (one.all(p) as Row[]).map((r) => toAppliedConfigFile(r)));
    }
    return this.prepared(`SELECT ${columns} FROM config_files ORDER BY path`)
      .all()
      .map((r) => toAppliedConfigFile(r as Row));
  }
  /** Synchronous: the listing and its version are one read (nothing else runs on the connection). */
  listConfigFileChanges(since?: ConfigFilesVersion): ConfigFilesListing | undefined {
    const version = this.#version();
    if (!since) return { version, files: this.listConfigFiles({ documents: false }), removed: [] };
    const held = this.prepared('SELECT tag FROM config_file_versions WHERE n = ?').get(since.n) as
      | Row
      | undefined;
    if (held?.['tag'] !== since.tag) return undefined;
    const columns = configFileColumns({ documents: false }, "json_extract(spec, '$.refs')");
    const files = this.prepared(`SELECT ${columns} FROM config_files WHERE seq > ? ORDER BY path`)
      .all(since.n)
      .map((r) => toAppliedConfigFile(r as Row));
    const removed = (
      this.prepared(
        `SELECT path FROM config_file_removals r WHERE seq > ?
         AND NOT EXISTS (SELECT 1 FROM config_files f WHERE f.path = r.path) ORDER BY path`,
      ).all(since.n) as Row[]
    ).map((r) => r['path'] as string);
    return { version, files, removed };
  }
  putConfigFiles(files: readonly AppliedConfigFile[]): void {
    if (files.length === 0) return;
    this.#change(({ n }) => {
      const put = this.prepared(
        `INSERT INTO config_files (path, digest, spec, stamp, seq) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (path) DO UPDATE SET digest = excluded.digest, spec = excluded.spec,
           stamp = excluded.stamp, seq = excluded.seq`,
      );
      for (const f of files) put.run(f.path, f.digest, appliedConfigFileSpec(f), f.stamp ?? null, n);
    });
  }
  stampConfigFiles(stamps: readonly ConfigFileStamp[]): void {
    if (stamps.length === 0) return;
    this.#change(({ n }) => {
      const stamp = this.prepared('UPDATE config_files SET stamp = ?, seq = ? WHERE path = ? AND digest = ?');
      for (const s of stamps) stamp.run(s.stamp, n, s.path, s.digest);
    });
  }
  deleteConfigFiles(paths: readonly string[] | 'all'): void {
    if (paths !== 'all' && paths.length === 0) return;
    this.#change(({ n }) => {
      if (paths === 'all') {
        this.prepared('DELETE FROM config_files').run();
        // No version before this one describes what is left: each is forgotten, and asked for, refused.
        this.prepared('DELETE FROM config_file_removals').run();
        this.prepared('DELETE FROM config_file_versions WHERE n < ?').run(n);
        return;
      }
      const del = this.prepared('DELETE FROM config_files WHERE path = ?');
      const removal = this.prepared(
        'INSERT INTO config_file_removals (path, seq) VALUES (?, ?) ON CONFLICT (path) DO UPDATE SET seq = excluded.seq',
      );
      for (const p of paths) {
        del.run(p);
        removal.run(p, n);
      }
    });
  }

  #version(): ConfigFilesVersion {
    const r = this.prepared('SELECT n, tag FROM config_file_versions ORDER BY n DESC LIMIT 1').get() as
      | Row
      | undefined;
    return r ? { n: Number(r['n']), tag: r['tag'] as string } : { n: 0, tag: '' };
  }

  /** One change of the record, in one transaction with the version it makes (older ones pruned). */
  #change(write: (version: ConfigFilesVersion) => void): void {
    this.db.transaction(() => {
      const version = nextConfigFilesVersion(this.#version());
      this.prepared('INSERT INTO config_file_versions (n, tag) VALUES (?, ?)').run(version.n, version.tag);
      const floor = version.n - CONFIG_FILES_VERSIONS_KEPT;
      this.prepared('DELETE FROM config_file_versions WHERE n <= ?').run(floor);
      this.prepared('DELETE FROM config_file_removals WHERE seq <= ?').run(floor);
      write(version);
    })();
  }
}
