import { randomBytes } from 'node:crypto';
import type { Row } from './rows.js';

/** One document of an applied config file, as read from disk (`jwks_file` and the like inlined). */
export interface AppliedConfigDocument {
  kind: string;
  index: number;
  doc: unknown;
}

/**
 * One file of the config directory last applied: what start-up and `writ apply` compare with the
 * directory to read and send only the files that changed since.
 */
export interface AppliedConfigFile {
  /** Relative to the config directory, `/`-separated (`workloads/exporter.yaml`). */
  path: string;
  /** Of the file's bytes and of every file it names (`jwks_file`, `self_signed_certificates_file`). */
  digest: string;
  /** The files it names, relative to the config directory. */
  refs: string[];
  documents: AppliedConfigDocument[];
  /**
   * What the file looked like when its digest was last taken (size, modification and change times,
   * inode: see `fileStamp`): a file with the same stamp is taken as unchanged without being read.
   * Absent when the file was too new to be trusted by its stamp.
   */
  stamp?: string;
}

/** Which applied files to list: only those of `paths`; without their documents (`documents: []`). */
export interface ConfigFileSelect {
  paths?: readonly string[];
  documents?: boolean;
}

/**
 * A version of the applied files: a counter every change of the record of applied files (a file put,
 * stamped or removed) moves on, and a random tag drawn with each step. `writ apply` keeps the listing it
 * saw with its version and asks only for what changed since (`GET /config/files?since=`). The tag
 * tells a store's version 12 from another's (or from the same store's after a restore from backup,
 * which counts to 12 again with other changes): a version the store does not hold, tag included, is
 * never taken as a base.
 */
export interface ConfigFilesVersion {
  n: number;
  tag: string;
}

/** Versions kept to answer `since`: a base older than the last this many changes gets the whole listing. */
export const CONFIG_FILES_VERSIONS_KEPT = 1000;

/** The record of applied files as of `version` (all of it), or what changed in it after `since`. */
export interface ConfigFilesListing {
  version: ConfigFilesVersion;
  /** Listed without documents: every file, or those put or stamped after `since`. */
  files: AppliedConfigFile[];
  /** After `since`: the paths removed and not put again since. */
  removed: string[];
}

/** `<n>.<tag>`: how a version travels (`GET /config/files`). */
export function formatConfigFilesVersion(v: ConfigFilesVersion): string {
  return `${v.n}.${v.tag}`;
}

/** The version after `v`, with a fresh tag. */
export function nextConfigFilesVersion(v: ConfigFilesVersion): ConfigFilesVersion {
  return { n: v.n + 1, tag: randomBytes(18).toString('base64url') };
}

/** A file's stamp, recorded only while the file still has `digest`. */
export interface ConfigFileStamp {
  path: string;
  digest: string;
  stamp: string;
}

/** A row of `config_files`: `spec` is absent when listed without documents (`refs` is then a column). */
export function toAppliedConfigFile(r: Row): AppliedConfigFile {
  const spec =
    r['spec'] === undefined
      ? { refs: r['refs'] ? (JSON.parse(r['refs'] as string) as string[]) : [], documents: [] }
      : (JSON.parse(r['spec'] as string) as Pick<AppliedConfigFile, 'refs' | 'documents'>);
  const f: AppliedConfigFile = {
    path: r['path'] as string,
    digest: r['digest'] as string,
    refs: spec.refs,
    documents: spec.documents,
  };
  if (typeof r['stamp'] === 'string') f.stamp = r['stamp'];
  return f;
}

/**
 * The columns of a listing: without documents, only the named files' paths are read out of `spec`
 * (a listing of 100,000 files would otherwise parse every document).
 */
export function configFileColumns(select: ConfigFileSelect | undefined, refsOf: string): string {
  return select?.documents === false
    ? `path, digest, stamp, CASE WHEN spec LIKE '{"refs":[]%' THEN NULL ELSE ${refsOf} END AS refs`
    : 'path, digest, stamp, spec';
}

export function appliedConfigFileSpec(f: AppliedConfigFile): string {
  return JSON.stringify({ refs: f.refs, documents: f.documents });
}
