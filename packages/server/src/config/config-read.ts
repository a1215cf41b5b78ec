import { type Dirent, existsSync, readdirSync, type Stats, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { ConfigError } from '../errors.js';
import type { AppliedConfigFile, ConfigFileStamp } from '../store/config-file-rows.js';
import { readConfigFile, readListedConfigFile, resolvesInside } from './config-file.js';
import { configFileDigest, fileStamp } from './config-files.js';
import { parsePlainYaml } from './plain-yaml.js';

/**
 * Reading a config directory from disk: files, documents, digests and stamps, with nothing validated
 * (config-dir.ts validates). Kept apart so that `writ apply` of a small change loads only this.
 */

const EXTENSIONS = /\.(ya?ml|json)$/;

export const DOCUMENT_KINDS = [
  'class',
  'workload',
  'operator',
  'issuer',
  'detection',
  'networks',
  'people',
  'exception',
  'governance',
  'template',
] as const;
export type RawDocumentKind = (typeof DOCUMENT_KINDS)[number];

/** One document of a config directory, as read from disk (`jwks_file` already inlined as `jwks`). */
export interface RawDocument {
  kind: RawDocumentKind;
  file: string;
  index: number;
  doc: unknown;
}

/** A config directory as read from disk, before validation: what `writ apply` sends to the server. */
export interface RawConfig {
  settings?: { name: string; values: Record<string, unknown> } | undefined;
  documents: RawDocument[];
  /** The files the documents came from, by path and digest (what the store records once applied). */
  files?: AppliedConfigFile[];
  /** How many of `files` were parsed; the others were the applied ones, unchanged, and reused. */
  parsed?: number;
  /**
   * Unchanged files that were read (their stamp was not the applied one) with the stamp they have now:
   * recorded, they are not read next time.
   */
  stamps?: ConfigFileStamp[];
}

const KIND_DIRS = [
  ['class', 'classes'],
  ['workload', 'workloads'],
  ['operator', 'operators'],
  ['issuer', 'issuers'],
  ['detection', 'detections'],
  ['people', 'people'],
  ['exception', 'exceptions'],
  ['template', 'templates'],
] as const;

/** The file of `networks` documents, at the top of the directory: one of these, not two. */
const NETWORKS_FILES = ['networks.yaml', 'networks.yml', 'networks.json'];
/** The governance file (docs/governance.md), at the top of the directory: one of these, not two. */
export const GOVERNANCE_FILES = ['governance.yaml', 'governance.yml', 'governance.json'];

/** The parsed documents of a file that was not parsed (shared: never written to). */
const NO_DOCS: unknown[] = [];

/** A file as read: its bytes, and either the applied record it still matches or its parsed documents. */
interface ReadFile {
  file: string;
  /** Relative to the config directory, `/`-separated. */
  path: string;
  bytes?: Buffer;
  prior?: AppliedConfigFile;
  docs: unknown[];
  stamp?: string | undefined;
}

/**
 * Reads a config directory: `settings.yaml`, `classes/`, `workloads/`, `operators/`, `issuers/`,
 * `detections/`, `people/`, `exceptions/` and `networks.yaml`. Each file may hold one or several YAML documents (or one JSON
 * object). Key files named by `jwks_file` are inlined.
 *
 * With `applied` (the files the store says were applied last, by path), a file whose bytes and named
 * files still have the applied digest is not parsed: its applied documents are reused (none when
 * `applied` was listed without them). `parsed` says how many were read afresh.
 *
 * With `now` (milliseconds), files are stamped (see fileStamp): a file of a kind's directory whose
 * stamp is the applied one is taken as unchanged without being read.
 */
export function readConfigDir(
  dir: string,
  applied?: ReadonlyMap<string, AppliedConfigFile>,
  now?: number,
): RawConfig {
  const root = resolve(dir);
  if (!existsSync(root) || !statSync(root).isDirectory())
    throw new ConfigError(dir, '', 'is not a directory');
  const show = (file: string) => relative(process.cwd(), file) || file;
  const rel = (file: string) => relative(root, file).split(sep).join('/');
  const settings = readSettingsFile(root);
  const documents: RawDocument[] = [];
  const files: AppliedConfigFile[] = [];
  const stamps: ConfigFileStamp[] = [];
  let parsed = 0;
  const readFile = (
    file: string,
    listed?: { entry: Dirent; dir: { path: string; inside: boolean } },
    path: string = rel(file),
  ): ReadFile => {
    const prior = applied?.get(path);
    // A plain file inside the directory, naming no other file, with the stamp it was applied with.
    if (
      prior?.stamp !== undefined &&
      now !== undefined &&
      prior.refs.length === 0 &&
      listed?.dir.inside &&
      listed.entry.isFile() &&
      !listed.entry.isSymbolicLink()
    ) {
      const st = statSync(file, { throwIfNoEntry: false });
      if (st?.isFile() && fileStamp(st, now) === prior.stamp) return { file, path, prior, docs: NO_DOCS };
    }
    const ref = { where: show(file), field: '' };
    let st: Stats | undefined;
    const seen = (s: Stats) => {
      st = s;
    };
    const bytes = listed
      ? readListedConfigFile(root, listed.entry, listed.dir, ref, 'this file', seen)
      : readConfigFile(root, file, ref, 'this file', seen);
    const stamp = now !== undefined && st !== undefined ? fileStamp(st, now) : undefined;
    if (prior && stillApplied(root, bytes, prior)) {
      if (stamp !== undefined && stamp !== prior.stamp && prior.refs.length === 0)
        stamps.push({ path, digest: prior.digest, stamp });
      return { file, path, bytes, prior, docs: NO_DOCS };
    }
    return { file, path, bytes, stamp, docs: parseDocuments(bytes, file, show(file)) };
  };
  const take = (kind: RawDocumentKind, r: ReadFile, inlines: boolean) => {
    if (r.prior) {
      for (const d of r.prior.documents)
        documents.push({ kind, file: show(r.file), index: d.index, doc: d.doc });
      files.push(r.prior);
      return;
    }
    parsed++;
    const named: Array<{ path: string; bytes: Buffer }> = [];
    const note = (path: string, bytes: Buffer) => named.push({ path: rel(path), bytes });
    const docs = r.docs.map((doc, index) => {
      const where = docName(show(r.file), index);
      return inlines
        ? inlineCertificatesFile(root, inlineJwksFile(root, doc, r.file, where, note), r.file, where, note)
        : doc;
    });
    for (const [index, doc] of docs.entries()) documents.push({ kind, file: show(r.file), index, doc });
    const record: AppliedConfigFile = {
      path: r.path,
      digest: configFileDigest(r.bytes ?? Buffer.alloc(0), named),
      refs: named.map((n) => n.path),
      documents: docs.map((doc, index) => ({ kind, index, doc })),
    };
    // A file naming others is read every time: their stamps are not kept.
    if (r.stamp !== undefined && named.length === 0) record.stamp = r.stamp;
    files.push(record);
  };
  for (const [kind, sub] of KIND_DIRS) {
    const d = join(root, sub);
    if (!existsSync(d)) continue;
    const listed = { path: d, inside: resolvesInside(root, d) };
    const read = readdirSync(d, { withFileTypes: true })
      .filter((e) => EXTENSIONS.test(e.name))
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
      // A listed name has no separator: the file's paths are put together, not resolved again.
      .map((entry) => readFile(`${d}${sep}${entry.name}`, { entry, dir: listed }, `${sub}/${entry.name}`));
    // A key file named by `jwks_file` may sit beside the files that name it: it is data, not config.
    const referenced = new Set<string>();
    for (const { file, docs, prior } of read) {
      if (prior) for (const p of prior.refs) referenced.add(resolve(root, p));
      else
        for (const doc of docs) {
          const ref = (doc as { jwks_file?: unknown } | null)?.jwks_file;
          if (typeof ref === 'string' && ref !== '') referenced.add(resolve(dirname(file), ref));
        }
    }
    // Rules and people name no files: nothing to inline.
    for (const r of read)
      if (referenced.size === 0 || !referenced.has(resolve(r.file)))
        take(kind, r, kind !== 'detection' && kind !== 'people');
  }
  for (const [kind, names, what] of [
    ['networks', NETWORKS_FILES, 'networks are'],
    ['governance', GOVERNANCE_FILES, 'governance rules are'],
  ] as const) {
    const [file, twin] = names.map((f) => join(root, f)).filter((f) => existsSync(f));
    if (file && twin)
      throw new ConfigError(show(twin), '', `${what} also in ${show(file)}: keep one of the two files`);
    if (file) take(kind, readFile(file), false);
  }
  return { settings, documents, files, parsed, stamps };
}

/** Whether a file's bytes, and the files it named when applied, still have the applied digest. */
function stillApplied(root: string, bytes: Buffer, prior: AppliedConfigFile): boolean {
  try {
    const named = prior.refs.map((path) => ({
      path,
      bytes: readConfigFile(root, resolve(root, path), { where: path, field: '' }),
    }));
    return configFileDigest(bytes, named) === prior.digest;
  } catch {
    // A named file gone or moved out: parsed again, which reports it.
    return false;
  }
}

/** Reads only `settings.yaml` (or `.yml`, `.json`) of a config directory; undefined when there is none. */
export function readSettingsFile(dir: string): RawConfig['settings'] {
  const root = resolve(dir);
  const show = (file: string) => relative(process.cwd(), file) || file;
  let settings: RawConfig['settings'];
  for (const candidate of ['settings.yaml', 'settings.yml', 'settings.json']) {
    const file = join(root, candidate);
    if (!existsSync(file)) continue;
    const docs = readDocuments(root, file, show(file));
    if (docs.length > 1) throw new ConfigError(show(file), '', 'must hold a single document');
    const values = docs[0] ?? {};
    if (typeof values !== 'object' || values === null || Array.isArray(values)) {
      throw new ConfigError(show(file), '', 'must be a mapping of settings');
    }
    settings = { name: show(file), values: values as Record<string, unknown> };
  }
  return settings;
}

export function docName(file: string, index: number): string {
  return index === 0 ? file : `${file} (document ${index + 1})`;
}

/**
 * `jwks_file`: a JWK or a JWKS, named relative to the file that names it, inside the config directory
 * (see readConfigFile). Errors never quote the file: it may be something other than a key.
 */
function inlineJwksFile(
  root: string,
  doc: unknown,
  file: string,
  where: string,
  note: (path: string, bytes: Buffer) => void,
): unknown {
  const named = readNamedFile(root, doc, 'jwks_file', file, where, note, (rest) => {
    if ('jwks' in rest) throw new ConfigError(where, 'jwks_file', 'give either jwks or jwks_file, not both');
  });
  if (!named) return doc;
  const { ref, rest, bytes } = named;
  let parsed: unknown;
  try {
    parsed = JSON.parse(bytes.toString('utf8'));
  } catch {
    parsed = undefined;
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
    throw new ConfigError(where, 'jwks_file', `${ref} is not a JSON JWK or JWKS ({"keys": [...]})`);
  const keys = (parsed as { keys?: unknown }).keys;
  return { ...rest, jwks: { keys: Array.isArray(keys) ? keys : [parsed] } };
}

/** `self_signed_certificates_file`: a PEM file (one or more certificates) inside the config directory. */
function inlineCertificatesFile(
  root: string,
  doc: unknown,
  file: string,
  where: string,
  note: (path: string, bytes: Buffer) => void,
): unknown {
  const named = readNamedFile(root, doc, 'self_signed_certificates_file', file, where, note);
  if (!named) return doc;
  const { rest, bytes } = named;
  const pem = bytes.toString('utf8');
  const listed = Array.isArray(rest['self_signed_certificates']) ? rest['self_signed_certificates'] : [];
  return { ...rest, self_signed_certificates: [...listed, pem] };
}

/**
 * The file a document names in `field` (a path relative to the document's file, inside the config
 * directory), read and noted; the document's other fields as `rest`. Undefined when it names none.
 * `check` sees `rest` before the file is read.
 */
function readNamedFile(
  root: string,
  doc: unknown,
  field: string,
  file: string,
  where: string,
  note: (path: string, bytes: Buffer) => void,
  check?: (rest: Record<string, unknown>) => void,
): { ref: string; rest: Record<string, unknown>; bytes: Buffer } | undefined {
  if (typeof doc !== 'object' || doc === null || !(field in doc)) return undefined;
  const { [field]: ref, ...rest } = doc as Record<string, unknown>;
  if (typeof ref !== 'string' || ref === '') throw new ConfigError(where, field, 'must be a path');
  check?.(rest);
  const path = resolve(dirname(file), ref);
  const bytes = readConfigFile(root, path, { where, field }, ref);
  note(path, bytes);
  return { ref, rest, bytes };
}

function readDocuments(root: string, file: string, shown: string): unknown[] {
  return parseDocuments(readConfigFile(root, file, { where: shown, field: '' }, 'this file'), file, shown);
}

function parseDocuments(bytes: Buffer, file: string, shown: string): unknown[] {
  const text = bytes.toString('utf8');
  if (file.endsWith('.json')) {
    try {
      return [JSON.parse(text)];
    } catch (err) {
      // The parser's message quotes the text; only its position is repeated.
      const at = /position (\d+)/.exec((err as Error).message);
      throw new ConfigError(shown, '', `invalid JSON${at ? ` at position ${at[1]}` : ''}`);
    }
  }
  // Most files are plain YAML, read without the general parser (which reads the others).
  const plain = parsePlainYaml(text);
  if (plain) return plain;
  const docs = parseAllDocuments(text);
  const list = Array.isArray(docs) ? docs : [docs];
  const out: unknown[] = [];
  for (const d of list) {
    if (d.errors.length > 0) {
      const e = d.errors[0]!;
      const line = e.linePos?.[0];
      throw new ConfigError(shown, line ? `line ${line.line}` : '', e.message.split('\n')[0]!);
    }
    const value = d.toJS({ maxAliasCount: 50 });
    if (value !== null && value !== undefined) out.push(value);
  }
  return out;
}
