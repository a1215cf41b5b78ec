import { join } from 'node:path';

/** Where `writ` keeps things inside its data directory. */
export function dataPaths(dataDir: string) {
  return {
    root: dataDir,
    database: join(dataDir, 'writ.db'),
    kek: join(dataDir, 'kek'),
    operatorKey: join(dataDir, 'operator.jwk'),
    config: join(dataDir, 'config'),
  };
}

export const DEFAULT_DATA_DIR = 'writ-data';
