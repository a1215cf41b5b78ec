import { z } from 'zod';
import { DOCUMENT_KINDS, type RawDocument } from '../config/config-dir.js';
import type { ConfigFilesChange } from '../config/config-files.js';
import { invalidRequest } from '../errors.js';
import {
  type AppliedConfigFile,
  CONFIG_FILES_VERSIONS_KEPT,
  type ConfigFileStamp,
  type ConfigFilesVersion,
  formatConfigFilesVersion,
} from '../store/config-file-rows.js';
import type { Store } from '../store/store.js';

/**
 * `writ apply` of a change: the files of the directory that differ from the ones the server applied
 * last, each with the digest the CLI compared it with (`was`, null for a new file), and the paths it no
 * longer has. The server merges them with the applied files and validates the whole.
 */
const digest = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/);
const path = z.string().min(1).max(1024).regex(/^[^(]/, 'a path in the config directory');
/**
 * `fileStamp`: size, times and inode, as the CLI's `stat` saw them: numbers as JavaScript writes them,
 * so a time before 1970 is negative (and a very small or large one has an exponent).
 */
const stamp = z.string().regex(/^[0-9.:eE+-]{1,100}$/);
export const changedFileBody = z
  .object({
    path,
    was: digest.nullable(),
    digest,
    stamp: stamp.optional(),
    refs: z.array(path).max(100),
    documents: z
      .array(
        z.object({ kind: z.enum(DOCUMENT_KINDS), index: z.number().int().min(0), doc: z.unknown() }).strict(),
      )
      .max(10_000),
  })
  .strict();
export const removedFileBody = z.object({ path, was: digest }).strict();
/** An unchanged file the CLI read (its stamp was not the recorded one), with its stamp now. */
export const stampedFileBody = z.object({ path, digest, stamp }).strict();

export type ChangedFile = z.infer<typeof changedFileBody>;
export type RemovedFile = z.infer<typeof removedFileBody>;

/** One applied file as `GET /admin/v1/config/files` lists it (no documents). */
export interface ListedConfigFile {
  path: string;
  digest: string;
  refs?: string[];
  stamp?: string;
}

/** `since`: a version as `GET /admin/v1/config/files` answered it (`<n>.<tag>`). */
export const versionParam = z
  .string()
  .max(100)
  .regex(/^(0|[1-9][0-9]{0,14})\.[A-Za-z0-9_-]{1,64}$/);
export const configFilesQuery = z.object({ since: versionParam.optional() });

/**
 * `GET /admin/v1/config/files`: what the CLI compares a directory with (no documents), and the version
 * of that record. With `since` (a version the caller holds): only the files put or stamped after it,
 * and the paths removed after it; refused (`stale_version`) when the store does not hold that version,
 * so the caller lists the whole record instead.
 */
export async function appliedFileListing(
  store: Pick<Store, 'listConfigFileChanges'>,
  since: string | undefined,
): Promise<{ version: string; files: ListedConfigFile[]; since?: string; removed?: string[] }> {
  let base: ConfigFilesVersion | undefined;
  if (since !== undefined) {
    if (!versionParam.safeParse(since).success)
      throw invalidRequest(
        'since must be a version as GET /admin/v1/config/files answered it (<number>.<tag>)',
        { reason: 'query_parameter' },
      );
    const dot = since.indexOf('.');
    base = { n: Number(since.slice(0, dot)), tag: since.slice(dot + 1) };
  }
  const listing = await store.listConfigFileChanges(base);
  if (!listing)
    throw invalidRequest(
      `since: this server holds no version ${since} of the applied files (another store's, older than its last ${CONFIG_FILES_VERSIONS_KEPT} changes, or from before a whole apply); list without since`,
      { reason: 'stale_version' },
    );
  const files: ListedConfigFile[] = [];
  for (const f of listing.files) {
    if (f.path.startsWith('(')) continue;
    const listed: ListedConfigFile = { path: f.path, digest: f.digest };
    if (f.refs.length > 0) listed.refs = f.refs;
    if (f.stamp !== undefined) listed.stamp = f.stamp;
    files.push(listed);
  }
  return {
    version: formatConfigFilesVersion(listing.version),
    files,
    ...(since !== undefined ? { since, removed: listing.removed.filter((p) => !p.startsWith('(')) } : {}),
  };
}

/** The record a changed file leaves once applied. */
export function appliedRecord(f: ChangedFile): AppliedConfigFile {
  return {
    path: f.path,
    digest: f.digest,
    refs: f.refs,
    documents: f.documents,
    // A file naming others is read every time (see readConfigDir): no stamp kept.
    ...(f.stamp !== undefined && f.refs.length === 0 ? { stamp: f.stamp } : {}),
  };
}

/**
 * The whole config a change makes: the applied files it does not touch, and the changed ones. Refused
 * (`config_changed`) when a file the change names is no longer what the CLI compared it with.
 */
export async function mergeChangedFiles(
  store: Pick<Store, 'listConfigFiles'>,
  changed: readonly ChangedFile[],
  removed: readonly RemovedFile[],
  stamps: readonly ConfigFileStamp[] = [],
): Promise<{ documents: RawDocument[]; files: ConfigFilesChange }> {
  const applied = new Map((await store.listConfigFiles()).map((f) => [f.path, f]));
  const stale = [
    ...changed.filter((f) => (applied.get(f.path)?.digest ?? null) !== f.was),
    ...removed.filter((f) => applied.get(f.path)?.digest !== f.was),
  ];
  const first = stale[0];
  if (first)
    throw invalidRequest(
      `${first.path} changed on the server since writ apply compared it (another apply ran in between): run writ apply again${stale.length > 1 ? ` (${stale.length} files differ)` : ''}`,
      { reason: 'config_changed', file: first.path },
    );
  const next = new Map<string, AppliedConfigFile>(applied);
  for (const f of removed) next.delete(f.path);
  const put = changed.map(appliedRecord);
  for (const f of put) next.set(f.path, f);
  const documents: RawDocument[] = [];
  for (const f of next.values())
    for (const d of f.documents)
      documents.push({ kind: d.kind as RawDocument['kind'], file: f.path, index: d.index, doc: d.doc });
  return { documents, files: { put, remove: removed.map((f) => f.path), stamps: [...stamps] } };
}
