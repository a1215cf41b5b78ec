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
}

export function toAppliedConfigFile(r: Row): AppliedConfigFile {
  const spec = JSON.parse(r['spec'] as string) as Pick<AppliedConfigFile, 'refs' | 'documents'>;
  return {
    path: r['path'] as string,
    digest: r['digest'] as string,
    refs: spec.refs,
    documents: spec.documents,
  };
}

export function appliedConfigFileSpec(f: AppliedConfigFile): string {
  return JSON.stringify({ refs: f.refs, documents: f.documents });
}
