import {
  type AppliedConfigFile,
  appliedConfigFileSpec,
  type ConfigFileSelect,
  type ConfigFileStamp,
  configFileColumns,
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
  putConfigFiles(files: readonly AppliedConfigFile[]): void {
    const put = this.prepared(
      `INSERT INTO config_files (path, digest, spec, stamp) VALUES (?, ?, ?, ?)
       ON CONFLICT (path) DO UPDATE SET digest = excluded.digest, spec = excluded.spec, stamp = excluded.stamp`,
    );
    for (const f of files) put.run(f.path, f.digest, appliedConfigFileSpec(f), f.stamp ?? null);
  }
  stampConfigFiles(stamps: readonly ConfigFileStamp[]): void {
    const stamp = this.prepared('UPDATE config_files SET stamp = ? WHERE path = ? AND digest = ?');
    for (const s of stamps) stamp.run(s.stamp, s.path, s.digest);
  }
  deleteConfigFiles(paths: readonly string[] | 'all'): void {
    if (paths === 'all') {
      this.prepared('DELETE FROM config_files').run();
      return;
    }
    const del = this.prepared('DELETE FROM config_files WHERE path = ?');
    for (const p of paths) del.run(p);
  }
}
