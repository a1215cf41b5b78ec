import { type AppliedConfigFile, appliedConfigFileSpec, toAppliedConfigFile } from '../config-file-rows.js';
import type { Row } from '../rows.js';
import { PreparedStatements } from './prepared-statements.js';

/** The embedded store's statements for the applied config's files (see AppliedConfigFile). */
export class SqliteConfigFileOps extends PreparedStatements {
  listConfigFiles(): AppliedConfigFile[] {
    return this.prepared('SELECT path, digest, spec FROM config_files ORDER BY path')
      .all()
      .map((r) => toAppliedConfigFile(r as Row));
  }
  putConfigFiles(files: readonly AppliedConfigFile[]): void {
    const put = this.prepared(
      `INSERT INTO config_files (path, digest, spec) VALUES (?, ?, ?)
       ON CONFLICT (path) DO UPDATE SET digest = excluded.digest, spec = excluded.spec`,
    );
    for (const f of files) put.run(f.path, f.digest, appliedConfigFileSpec(f));
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
