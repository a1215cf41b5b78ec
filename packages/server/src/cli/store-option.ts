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
