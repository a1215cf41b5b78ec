import { createHash } from 'node:crypto';
import type { AppliedConfigFile } from '../store/config-file-rows.js';

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

/** How a directory's files differ from the applied ones: files to record, and paths to forget. */
export interface ConfigFilesChange {
  put: AppliedConfigFile[];
  remove: string[];
}

/** The files of `read` that are new or differ from `applied`, and the applied paths `read` lacks. */
export function changedFiles(
  applied: ReadonlyMap<string, AppliedConfigFile>,
  read: readonly AppliedConfigFile[],
): ConfigFilesChange {
  const seen = new Set(read.map((f) => f.path));
  return {
    put: read.filter((f) => applied.get(f.path)?.digest !== f.digest),
    remove: [...applied.keys()].filter((p) => p !== VALIDATED_WITH_PATH && !seen.has(p)),
  };
}
