import { existsSync } from 'node:fs';
import { readSettingsFile } from '../config/config-dir.js';
import { resolveSettings } from '../config/settings.js';
import { dataPaths } from '../data-dir.js';
import { type StoreLocation, storeLocation } from '../store/open-store.js';

/**
 * The store a command that reads it directly works on, chosen as `writ serve` chooses it: `--store`,
 * then WRIT_STORE, then `settings.yaml` in the config directory, then the embedded file.
 */
export function storeFromOptions(o: {
  dataDir: string;
  store?: string | undefined;
  config?: string;
}): StoreLocation {
  const configDir = o.config ?? dataPaths(o.dataDir).config;
  const file = existsSync(configDir) ? readSettingsFile(configDir) : undefined;
  const settings = resolveSettings(file, process.env, o.store !== undefined ? { store: o.store } : {});
  return storeLocation(settings.store, o.dataDir);
}

/** The help of `--store` wherever a command opens the store. */
export const STORE_OPTION_HELP =
  '`sqlite` (<data-dir>/writ.db) or a postgres:// URL (default: WRIT_STORE, settings.yaml, sqlite)';

/** The help of `--config` where the config directory only serves to find the store. */
export const STORE_CONFIG_OPTION_HELP =
  'config directory whose settings.yaml may name the store (default: <data-dir>/config)';
