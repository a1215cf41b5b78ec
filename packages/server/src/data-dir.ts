import { join } from 'node:path';
import { type ModeTightened, OWNER_ONLY_FILE, ownerOnlyDir, tightenMode } from './file-modes.js';

/** Where `writ` keeps things inside its data directory. */
export function dataPaths(dataDir: string) {
  return {
    root: dataDir,
    database: join(dataDir, 'writ.db'),
    kek: join(dataDir, 'kek'),
    operatorKey: join(dataDir, 'operator.jwk'),
    config: join(dataDir, 'config'),
    /** The newest signed audit checkpoint, kept outside the store (see audit/anchor.ts). */
    auditAnchor: join(dataDir, 'audit-anchor.json'),
  };
}

export const DEFAULT_DATA_DIR = 'writ-data';

/**
 * Makes the data directory the running user's alone: the folder 0700 (created so when absent), and the
 * key-encryption key, operator key and audit anchor 0600 where they exist. The store's files are the store's to
 * narrow when it opens them. Returns what it narrowed, for the log.
 */
export function ownerOnlyDataDir(dataDir: string): ModeTightened[] {
  const p = dataPaths(dataDir);
  return [
    ownerOnlyDir(p.root),
    tightenMode(p.kek, OWNER_ONLY_FILE),
    tightenMode(p.operatorKey, OWNER_ONLY_FILE),
    tightenMode(p.auditAnchor, OWNER_ONLY_FILE),
  ].filter((t): t is ModeTightened => t !== undefined);
}
