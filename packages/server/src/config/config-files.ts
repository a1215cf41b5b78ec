import { createHash } from 'node:crypto';
import type { Stats } from 'node:fs';
import type { AppliedConfigFile, ConfigFileStamp } from '../store/config-file-rows.js';

/**
 * Files of a config directory by digest: what start-up and `writ apply` compare with the files the
 * store says were applied last, so that a directory of 100,000 workloads is parsed, validated and sent
 * only where it changed.
 */

/**
 * A file's digest: of its bytes and of every file it names (`jwks_file`), so a key file replaced beside
 * an unchanged workload document still changes the workload's digest.
 */
export function configFileDigest(
  bytes: Buffer,
  refs: ReadonlyArray<{ path: string; bytes: Buffer }>,
): string {
  const h = createHash('sha256').update(bytes);
  for (const r of refs) h.update(`\0${r.path}\0`).update(createHash('sha256').update(r.bytes).digest());
  return h.digest('base64url');
}

/**
 * How long after its last change a file's stamp is trusted (milliseconds). A file changed again within
 * the same tick of the file system's clock (a second or two on some) keeps its size and times; a stamp
 * taken this long after the last change cannot be fooled that way.
 */
export const STAMP_SETTLE_MS = 3000;

/**
 * A file's stamp: size, modification and change times and inode, as `stat` gives them. A file whose
 * stamp equals the one recorded with its digest is not read again to be digested: writing the file
 * changes its modification time or size, and even a tool that restores the modification time changes
 * the change time. Undefined (no stamp) when the file changed less than STAMP_SETTLE_MS before `now`.
 */
export function fileStamp(st: Stats, now: number): string | undefined {
  if (now - Math.max(st.mtimeMs, st.ctimeMs) < STAMP_SETTLE_MS) return undefined;
  return `${st.size}:${st.mtimeMs}:${st.ctimeMs}:${st.ino}`;
}

/**
 * The record of what the stored files were validated against (the build, the token lifetime ceiling,
 * the issuer, the document limit): kept beside the files under a path no file of a directory can have.
 * When any of these changed, start-up validates the whole directory again, even if no file changed.
 */
export const VALIDATED_WITH_PATH = '(validated-with)';

export interface ValidationInputs {
  version: string;
  maxTokenLifetime: number;
  issuer: string;
  maxDocuments: number;
}

export function validatedWith(inputs: ValidationInputs): AppliedConfigFile {
  const digest = createHash('sha256')
    .update(JSON.stringify([inputs.version, inputs.maxTokenLifetime, inputs.issuer, inputs.maxDocuments]))
    .digest('base64url');
  return { path: VALIDATED_WITH_PATH, digest, refs: [], documents: [] };
}

/**
 * How a directory's files differ from the applied ones: files to record, and paths to forget; `stamps`
 * of unchanged files read again (their digest the same) to record, so they are not read next time.
 */
export interface ConfigFilesChange {
  put: AppliedConfigFile[];
  remove: string[];
  stamps?: ConfigFileStamp[];
}

/** The files of `read` that are new or differ from `applied`, and the applied paths `read` lacks. */
export function changedFiles(
  applied: ReadonlyMap<string, AppliedConfigFile>,
  read: readonly AppliedConfigFile[],
): ConfigFilesChange {
  const put: AppliedConfigFile[] = [];
  let known = 0;
  for (const f of read) {
    const a = applied.get(f.path);
    if (a) known++;
    if (a?.digest !== f.digest) put.push(f);
  }
  // Every applied path read again (paths are unique): none removed, and no set of 100,000 paths made.
  if (known === applied.size - (applied.has(VALIDATED_WITH_PATH) ? 1 : 0)) return { put, remove: [] };
  const seen = new Set(read.map((f) => f.path));
  return { put, remove: [...applied.keys()].filter((p) => p !== VALIDATED_WITH_PATH && !seen.has(p)) };
}
