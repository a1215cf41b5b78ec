import type { Store } from '../store/store.js';
import { type ConfigBundle, readConfigDir, validateConfig } from './config-dir.js';
import { type ConfigFilesChange, changedFiles, VALIDATED_WITH_PATH, validatedWith } from './config-files.js';
import type { Settings } from './settings.js';

export interface StartupConfig {
  /** Undefined when the directory is the one applied last (`files` is then `unchanged`). */
  config?: ConfigBundle;
  files: ConfigFilesChange | 'unchanged';
  /** Files parsed; the others were unchanged since applied and not parsed. */
  parsed: number;
  total: number;
}

/**
 * The config directory `writ serve` applies at start, read against the files the store says were
 * applied last: only changed files are parsed. When none changed (and the build and the settings that
 * validation depends on are the same), nothing is validated or applied: the store already holds it.
 * Otherwise the whole directory is validated (references cross files) and the diff applied.
 */
export async function readStartupConfig(
  dir: string,
  settings: Settings,
  store: Pick<Store, 'listConfigFiles'>,
  version: string,
): Promise<StartupConfig> {
  const applied = new Map((await store.listConfigFiles()).map((f) => [f.path, f]));
  const raw = readConfigDir(dir, applied);
  const files = raw.files ?? [];
  const marker = validatedWith({
    version,
    maxTokenLifetime: settings.tokens.maxLifetime,
    issuer: settings.issuer,
    maxDocuments: settings.limits.configDocuments,
  });
  const change = changedFiles(applied, files);
  const parsed = raw.parsed ?? files.length;
  if (
    change.put.length === 0 &&
    change.remove.length === 0 &&
    applied.get(VALIDATED_WITH_PATH)?.digest === marker.digest
  )
    return { files: 'unchanged', parsed, total: files.length };
  const config = validateConfig(
    raw.documents,
    settings.tokens.maxLifetime,
    settings.issuer,
    settings.limits.configDocuments,
  );
  return {
    config,
    files: { put: [...change.put, marker], remove: change.remove },
    parsed,
    total: files.length,
  };
}
