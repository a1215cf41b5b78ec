import { join, relative, resolve } from 'node:path';
import type { ConfigFileStamp } from '../store/config-file-rows.js';
import type { Store } from '../store/store.js';
import { type ConfigBundle, type RawDocument, readConfigDir, validateConfig } from './config-dir.js';
import { type ConfigFilesChange, changedFiles, VALIDATED_WITH_PATH, validatedWith } from './config-files.js';
import type { Settings } from './settings.js';

export interface StartupConfig {
  /** Undefined when the directory is the one applied last (`files` is then `unchanged`). */
  config?: ConfigBundle;
  files: ConfigFilesChange | 'unchanged';
  /** Files parsed; the others were unchanged since applied and not parsed. */
  parsed: number;
  total: number;
  /** Unchanged files read again, with their stamps now: to record, so they are not read next time. */
  stamps: ConfigFileStamp[];
}

/**
 * The config directory `writ serve` applies at start, read against the files the store says were
 * applied last: only changed files are parsed, and a file whose stamp (size, times, inode) is the one
 * recorded is not even read. When none changed (and the build and the settings that validation depends
 * on are the same), nothing is validated or applied, and no stored document is read: the store already
 * holds it. Otherwise the whole directory is validated (references cross files) and the diff applied.
 */
export async function readStartupConfig(
  dir: string,
  settings: Settings,
  store: Pick<Store, 'listConfigFiles'>,
  version: string,
  now?: number,
): Promise<StartupConfig> {
  const applied = new Map((await store.listConfigFiles({ documents: false })).map((f) => [f.path, f]));
  const raw = readConfigDir(dir, applied, now);
  const files = raw.files ?? [];
  const stamps = raw.stamps ?? [];
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
    return { files: 'unchanged', parsed, total: files.length, stamps };
  // Something changed: the whole is validated, the unchanged files with the documents the store holds.
  const changed = new Set(change.put.map((f) => f.path));
  const unchanged = files.filter((f) => !changed.has(f.path)).map((f) => f.path);
  const stored = new Map(
    (unchanged.length > 0 ? await store.listConfigFiles({ paths: unchanged }) : []).map((f) => [f.path, f]),
  );
  // Named as readConfigDir names them (relative to the working directory), in the directory's order.
  const root = resolve(dir);
  const documents: RawDocument[] = [];
  for (const f of files) {
    const docs = changed.has(f.path) ? f.documents : (stored.get(f.path)?.documents ?? []);
    const shown = relative(process.cwd(), join(root, f.path)) || f.path;
    for (const d of docs)
      documents.push({ kind: d.kind as RawDocument['kind'], file: shown, index: d.index, doc: d.doc });
  }
  const config = validateConfig(
    documents,
    settings.tokens.maxLifetime,
    settings.issuer,
    settings.limits.configDocuments,
  );
  return {
    config,
    files: { put: [...change.put, marker], remove: change.remove },
    parsed,
    total: files.length,
    stamps,
  };
}
