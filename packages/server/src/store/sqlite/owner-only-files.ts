import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import {
  type ModeTightened,
  OWNER_ONLY_DIR,
  OWNER_ONLY_FILE,
  ownerOnlyFile,
  tightenMode,
} from '../../file-modes.js';

/** The files SQLite keeps beside a database: the write-ahead log, its shared-memory index, a rollback journal. */
const sidecars = (path: string): string[] => [`${path}-wal`, `${path}-shm`, `${path}-journal`];

/**
 * Before SQLite opens the database at `path`: its folder exists (created 0700), the database file exists
 * 0600 (created empty, which SQLite takes as a new database), and any log left beside it is narrowed to
 * 0600. SQLite gives the log and index files it creates later the database file's mode, so they are
 * 0600 from their first byte.
 */
export function ownerOnlyBeforeOpen(path: string): ModeTightened[] {
  mkdirSync(dirname(path), { recursive: true, mode: OWNER_ONLY_DIR });
  return [ownerOnlyFile(path), ...sidecars(path).map((p) => tightenMode(p, OWNER_ONLY_FILE))].filter(
    (t): t is ModeTightened => t !== undefined,
  );
}

/** After opening: narrows the log and index files SQLite created, should any have come out looser. */
export function ownerOnlyAfterOpen(path: string): ModeTightened[] {
  return sidecars(path)
    .map((p) => tightenMode(p, OWNER_ONLY_FILE))
    .filter((t): t is ModeTightened => t !== undefined);
}
