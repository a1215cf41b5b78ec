import { type Dirent, existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { parseAllDocuments } from 'yaml';
import type { z } from 'zod';
import { BUILTIN_RULES } from '../detection/builtin-rules.js';
import type { ConfiguredRule } from '../detection/detection-config.js';
import type { NetworkEnvironment } from '../detection/networks.js';
import { compileRuleDocument, detectionRuleSchema, RuleError } from '../detection/rule.js';
import { ConfigError } from '../errors.js';
import { buildIssuer } from '../federation/issuer-config.js';
import type { TrustedIssuer } from '../federation/trusted-issuer.js';
import { type CredentialException, coversLegacySecret } from '../governance/exception.js';
import { type Governance, governanceFileSchema, governanceOf } from '../governance/governance-file.js';
import { importPublicJwk, type JwkError, type PublicJwk } from '../jose/jwk.js';
import { tlsRegistration } from '../mtls/registration.js';
import { parseRange } from '../net/ip-address.js';
import { buildPeople, type PeopleDocument } from '../people/people-config.js';
import { peopleDocumentSchema } from '../people/people-file.js';
import type { Person, Team } from '../people/person.js';
import type { Operator } from '../registry/operator.js';
import type { TokenClass } from '../registry/token-class.js';
import type { Workload } from '../registry/workload.js';
import type { AppliedConfigFile } from '../store/config-file-rows.js';
import { buildTemplates, templateFileSchema } from '../templates/template-config.js';
import type { WorkloadTemplate } from '../templates/workload-template.js';
import { readConfigFile, readListedConfigFile, resolvesInside } from './config-file.js';
import { configFileDigest } from './config-files.js';
import {
  classFileSchema,
  type ExceptionFile,
  exceptionFileSchema,
  issuerFileSchema,
  networksFileSchema,
  operatorFileSchema,
  workloadFileSchema,
} from './schema.js';
import { describeSchemaIssue } from './schema-issue.js';

/** The declarative part of Writ's configuration: what `writ apply` applies. */
export interface ConfigBundle {
  classes: TokenClass[];
  workloads: Workload[];
  operators: Operator[];
  /** Trusted outside issuers (`issuers/`): workload federation. */
  issuers: TrustedIssuer[];
  /** Detection rules (`detections/`), over or beside the built-in ones. */
  detections: ConfiguredRule[];
  /** Address ranges and their environments (`networks.yaml`), for detection. */
  networks: NetworkEnvironment[];
  /** People (`people/`): owners, approvers, operators. */
  people: Person[];
  /** Teams (`people/`, `kind: team`). */
  teams: Team[];
  /** The exceptions registry (`exceptions/`): credentials that do not meet the rules. */
  exceptions: CredentialException[];
  /** The governance rules and stale thresholds (`governance.yaml`); absent when there is none. */
  governance?: Governance | undefined;
  /** Workload templates (`templates/`): families of workloads admitted on first use. */
  templates: WorkloadTemplate[];
}

export interface LoadedConfigDir extends ConfigBundle {
  settings: { name: string; values: Record<string, unknown> } | undefined;
}

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
const GOVERNANCE_FILES = ['governance.yaml', 'governance.yml', 'governance.json'];

/** A file as read: its bytes, and either the applied record it still matches or its parsed documents. */
interface ReadFile {
  file: string;
  bytes: Buffer;
  prior?: AppliedConfigFile;
  docs: unknown[];
}

/**
 * Reads a config directory: `settings.yaml`, `classes/`, `workloads/`, `operators/`, `issuers/`,
 * `detections/`, `people/`, `exceptions/` and `networks.yaml`. Each file may hold one or several YAML documents (or one JSON
 * object). Key files named by `jwks_file` are inlined.
 *
 * With `applied` (the files the store says were applied last, by path), a file whose bytes and named
 * files still have the applied digest is not parsed: its applied documents are reused. `parsed` says
 * how many were read afresh.
 */
export function readConfigDir(dir: string, applied?: ReadonlyMap<string, AppliedConfigFile>): RawConfig {
  const root = resolve(dir);
  if (!existsSync(root) || !statSync(root).isDirectory())
    throw new ConfigError(dir, '', 'is not a directory');
  const show = (file: string) => relative(process.cwd(), file) || file;
  const rel = (file: string) => relative(root, file).split(sep).join('/');
  const settings = readSettingsFile(root);
  const documents: RawDocument[] = [];
  const files: AppliedConfigFile[] = [];
  let parsed = 0;
  const readFile = (file: string, listed?: { entry: Dirent; dir: { path: string; inside: boolean } }) => {
    const ref = { where: show(file), field: '' };
    const bytes = listed
      ? readListedConfigFile(root, listed.entry, listed.dir, ref, 'this file')
      : readConfigFile(root, file, ref, 'this file');
    const prior = applied?.get(rel(file));
    if (prior && stillApplied(root, bytes, prior)) return { file, bytes, prior, docs: [] } as ReadFile;
    return { file, bytes, docs: parseDocuments(bytes, file, show(file)) } as ReadFile;
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
    files.push({
      path: rel(r.file),
      digest: configFileDigest(r.bytes, named),
      refs: named.map((n) => n.path),
      documents: docs.map((doc, index) => ({ kind, index, doc })),
    });
  };
  for (const [kind, sub] of KIND_DIRS) {
    const d = join(root, sub);
    if (!existsSync(d)) continue;
    const listed = { path: d, inside: resolvesInside(root, d) };
    const read = readdirSync(d, { withFileTypes: true })
      .filter((e) => EXTENSIONS.test(e.name))
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
      .map((entry) => readFile(join(d, entry.name), { entry, dir: listed }));
    // A key file named by `jwks_file` may sit beside the files that name it: it is data, not config.
    const referenced = new Set(
      read.flatMap(({ file, docs, prior }) =>
        prior
          ? prior.refs.map((p) => resolve(root, p))
          : docs.flatMap((doc) => {
              const ref = (doc as { jwks_file?: unknown } | null)?.jwks_file;
              return typeof ref === 'string' && ref !== '' ? [resolve(dirname(file), ref)] : [];
            }),
      ),
    );
    // Rules and people name no files: nothing to inline.
    for (const r of read)
      if (!referenced.has(resolve(r.file))) take(kind, r, kind !== 'detection' && kind !== 'people');
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
  return { settings, documents, files, parsed };
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

/** Reads and validates a config directory. */
export function loadConfigDir(
  dir: string,
  maxTokenLifetime?: number,
  issuer?: string,
  maxDocuments?: number,
): LoadedConfigDir {
  const raw = readConfigDir(dir);
  return { settings: raw.settings, ...validateConfig(raw.documents, maxTokenLifetime, issuer, maxDocuments) };
}

/** The default of `limits.config_documents`: a safety limit, well above a real estate's registry. */
export const DEFAULT_MAX_CONFIG_DOCUMENTS = 250_000;

/** Refuses a config of more than `max` documents, naming the setting that allows more. */
export function checkDocumentCount(count: number, max: number): void {
  if (count > max)
    throw new ConfigError(
      '(bundle)',
      '',
      `${count} documents is more than limits.config_documents (${max}): raise limits.config_documents in settings.yaml, or split the estate`,
    );
}

/**
 * Validates config documents as a whole (schemas, then references between them). Errors name the file
 * and the field. The server runs this again on what `writ apply` sends, with its token lifetime
 * ceiling and its issuer (a workload cannot serve Writ's own endpoints).
 */
export function validateConfig(
  documents: readonly RawDocument[],
  maxTokenLifetime?: number,
  issuer?: string,
  maxDocuments: number = DEFAULT_MAX_CONFIG_DOCUMENTS,
): ConfigBundle {
  checkDocumentCount(documents.length, maxDocuments);
  const of = (kind: RawDocument['kind']) => documents.filter((d) => d.kind === kind);

  const classes: TokenClass[] = [];
  const classFiles = new Map<string, string>();
  for (const { file, doc, index } of of('class')) {
    const c = parse(classFileSchema, doc, file, index);
    const where = docName(file, index);
    if (classFiles.has(c.name))
      throw new ConfigError(where, 'name', `class "${c.name}" is also defined in ${classFiles.get(c.name)}`);
    if (c.name === 'admin') throw new ConfigError(where, 'name', '"admin" is reserved for operator sessions');
    classFiles.set(c.name, where);
    const defaultTtl = c.default_ttl ?? Math.min(c.max_ttl, 300);
    if (defaultTtl > c.max_ttl) throw new ConfigError(where, 'default_ttl', 'must not exceed max_ttl');
    if (maxTokenLifetime !== undefined && c.max_ttl > maxTokenLifetime) {
      throw new ConfigError(
        where,
        'max_ttl',
        `exceeds the server ceiling tokens.max_lifetime (${maxTokenLifetime}s)`,
      );
    }
    const defaultScopes = c.default_scopes ?? [];
    const unknown = defaultScopes.find((s) => !c.scopes.includes(s));
    if (unknown) throw new ConfigError(where, 'default_scopes', `"${unknown}" is not in scopes`);
    const renewalMaxLifetime = c.renewal?.max_lifetime ?? Math.max(3600, c.max_ttl);
    if (renewalMaxLifetime < c.max_ttl)
      throw new ConfigError(where, 'renewal.max_lifetime', 'must be at least max_ttl');
    const tc: TokenClass = {
      name: c.name,
      maxTtl: c.max_ttl,
      defaultTtl,
      audiences: [...new Set(c.audiences)],
      scopes: [...new Set(c.scopes)],
      defaultScopes,
      binding: c.binding,
      renewalMaxLifetime,
      delegationActors: [...new Set(c.delegation?.actors ?? [])],
    };
    if (c.description !== undefined) tc.description = c.description;
    if (c.legacy_client_secret) throw movedLegacySecret(where, c.name, c.legacy_client_secret);
    classes.push(tc);
  }

  const declared = registeredExceptions(of('exception'), classes);
  const exceptions = declared.map((d) => d.exception);

  const issuers: TrustedIssuer[] = [];
  for (const { file, doc, index } of of('issuer')) {
    const where = docName(file, index);
    const i = buildIssuer(parse(issuerFileSchema, doc, file, index), where);
    const twin = issuers.find((x) => x.name === i.name || x.issuer === i.issuer);
    if (twin)
      throw new ConfigError(
        where,
        twin.name === i.name ? 'name' : 'issuer',
        `issuer "${twin.name}" is defined twice`,
      );
    issuers.push(i);
  }

  const workloads: Workload[] = [];
  const workloadFiles = new Map<string, string>();
  for (const { file, doc, index } of of('workload')) {
    const w = parse(workloadFileSchema, doc, file, index);
    const where = docName(file, index);
    if (workloadFiles.has(w.id))
      throw new ConfigError(where, 'id', `workload "${w.id}" is also defined in ${workloadFiles.get(w.id)}`);
    workloadFiles.set(w.id, where);
    for (const [i, cls] of w.classes.entries()) {
      if (!classFiles.has(cls)) throw new ConfigError(where, `classes.${i}`, `unknown class "${cls}"`);
    }
    const jwks = checkedKeys(w, where);
    for (const [i, name] of (w.federation ?? []).entries()) {
      if (!issuers.some((x) => x.name === name))
        throw new ConfigError(where, `federation.${i}`, `unknown issuer "${name}"`);
    }
    const serves = servedApis(w.serves ?? [], classes, where, issuer);
    const tls = tlsRegistration(w, where);
    const mtlsClass = w.classes.find((cls) => classes.find((c) => c.name === cls)?.binding === 'mtls');
    if (mtlsClass && !tls.tlsClientAuth && !tls.tlsCertificates) {
      throw new ConfigError(
        where,
        'tls_client_auth',
        `class "${mtlsClass}" binds tokens to a client certificate: register tls_client_auth or self_signed_certificates`,
      );
    }
    if (w.client_secret_sha256) {
      const allows = w.classes.some((cls) => exceptions.some((e) => coversLegacySecret(e, cls, w.id)));
      if (!allows) {
        throw new ConfigError(
          where,
          'client_secret_sha256',
          "a client secret needs an exception in exceptions/ with covers.kind legacy_client_secret for one of the workload's classes (docs/governance.md)",
        );
      }
    }
    if (
      jwks.length === 0 &&
      !w.federation?.length &&
      !w.client_secret_sha256 &&
      !tls.tlsClientAuth &&
      !tls.tlsCertificates
    ) {
      throw new ConfigError(
        where,
        'jwks',
        'a workload needs at least one registered key, client certificate rule (or a legacy client secret)',
      );
    }
    const workload: Workload = {
      id: w.id,
      owner: w.owner,
      environment: w.environment,
      attributes: w.attributes ?? {},
      classes: [...new Set(w.classes)],
      jwks,
    };
    if (w.description !== undefined) workload.description = w.description;
    if (w.client_secret_sha256) workload.secretSha256 = w.client_secret_sha256;
    if (w.federation?.length) workload.federation = [...new Set(w.federation)];
    if (serves.length > 0) workload.serves = serves;
    if (tls.tlsClientAuth) workload.tlsClientAuth = tls.tlsClientAuth;
    if (tls.tlsCertificates) workload.tlsCertificates = tls.tlsCertificates;
    workloads.push(workload);
  }

  for (const { exception: e, where } of declared) {
    const named =
      e.covers.kind === 'long_lived_token'
        ? [['covers.workload', e.covers.workload] as const]
        : e.covers.kind === 'legacy_client_secret'
          ? (e.covers.workloads ?? []).map((id, i) => [`covers.workloads.${i}`, id] as const)
          : [];
    for (const [field, id] of named)
      if (!workloadFiles.has(id)) throw new ConfigError(where, field, `unknown workload "${id}"`);
  }

  const operators: Operator[] = [];
  for (const { file, doc, index } of of('operator')) {
    const o = parse(operatorFileSchema, doc, file, index);
    const where = docName(file, index);
    if (operators.some((x) => x.name === o.name))
      throw new ConfigError(where, 'name', `operator "${o.name}" is defined twice`);
    const jwks = checkedKeys(o, where);
    if (jwks.length === 0) throw new ConfigError(where, 'jwks', 'an operator needs at least one public key');
    operators.push({ name: o.name, jwks, ...(o.person !== undefined ? { person: o.person } : {}) });
  }

  const { people, teams } = buildPeople(
    of('people').map(
      ({ file, doc, index }): PeopleDocument => ({
        where: docName(file, index),
        value: parse(peopleDocumentSchema(doc), doc, file, index),
      }),
    ),
  );

  const templates = buildTemplates(
    of('template').map(({ file, doc, index }) => ({
      value: parse(templateFileSchema, doc, file, index),
      where: docName(file, index),
    })),
    { issuers, classes, workloads, workloadFiles },
  );

  return {
    classes,
    workloads,
    operators,
    issuers,
    templates,
    detections: detectionRules(of('detection')),
    networks: networkRanges(of('networks')),
    people,
    teams,
    exceptions,
    governance: governanceRules(of('governance')),
  };
}

/** `governance.yaml`: one document; rule ids unique (a violation names its rule by id). */
function governanceRules(documents: readonly RawDocument[]): Governance | undefined {
  const [first, second] = documents;
  if (!first) return undefined;
  if (second)
    throw new ConfigError(
      docName(second.file, second.index),
      '',
      `governance is also defined in ${docName(first.file, first.index)}: keep every rule in one document`,
    );
  const g = parse(governanceFileSchema, first.doc, first.file, first.index);
  const seen = new Map<string, number>();
  for (const [i, r] of g.rules.entries()) {
    const twin = seen.get(r.id);
    if (twin !== undefined)
      throw new ConfigError(
        docName(first.file, first.index),
        `rules.${i}.id`,
        `"${r.id}" is already the id of rules.${twin}: give every rule its own id`,
      );
    seen.set(r.id, i);
  }
  return governanceOf(g);
}

/**
 * `exceptions/`: each document one exception (docs/governance.md). Ids are unique; the class an
 * exception names exists, and a `bearer_class` exception names a class that issues bearer tokens.
 * Workloads it names are checked with the workloads (a workload may be declared after its exception).
 */
function registeredExceptions(
  documents: readonly RawDocument[],
  classes: readonly TokenClass[],
): Array<{ exception: CredentialException; where: string }> {
  const exceptions: Array<{ exception: CredentialException; where: string }> = [];
  const files = new Map<string, string>();
  for (const { file, doc, index } of documents) {
    const where = docName(file, index);
    const x = parse(exceptionFileSchema, doc, file, index);
    const twin = files.get(x.id);
    if (twin) throw new ConfigError(where, 'id', `exception "${x.id}" is also defined in ${twin}`);
    files.set(x.id, where);
    const covers = x.covers;
    if ('class' in covers) {
      const cls = classes.find((c) => c.name === covers.class);
      if (!cls) throw new ConfigError(where, 'covers.class', `unknown class "${covers.class}"`);
      if (covers.kind === 'bearer_class' && cls.binding !== 'bearer')
        throw new ConfigError(
          where,
          'covers.class',
          `class "${cls.name}" binds its tokens (${cls.binding}): it needs no bearer exception`,
        );
    }
    for (const [i, cidr] of (x.controls.source_networks ?? []).entries())
      if (!parseRange(cidr))
        throw new ConfigError(
          where,
          `controls.source_networks.${i}`,
          `"${cidr}" is not a CIDR range such as 10.1.0.0/16 or 2001:db8::/32`,
        );
    exceptions.push({ exception: toException(x), where });
  }
  return exceptions;
}

function toException(x: ExceptionFile): CredentialException {
  const c = x.covers;
  const e: CredentialException = {
    id: x.id,
    covers:
      c.kind === 'long_lived_token'
        ? { kind: c.kind, workload: c.workload, class: c.class, maxTtl: c.max_ttl }
        : c.kind === 'legacy_client_secret' && c.workloads
          ? { kind: c.kind, class: c.class, workloads: [...new Set(c.workloads)] }
          : c.kind === 'legacy_client_secret'
            ? { kind: c.kind, class: c.class }
            : c,
    owner: x.owner,
    justification: x.justification,
    controls: {
      ...(x.controls.source_networks ? { sourceNetworks: [...new Set(x.controls.source_networks)] } : {}),
      ...(x.controls.rate ? { rate: x.controls.rate } : {}),
      ...(x.controls.scopes ? { scopes: [...new Set(x.controls.scopes)] } : {}),
    },
    expiresAt: x.expires,
    reviewEvery: x.review_every,
    alertBefore: x.alert_before,
  };
  if (x.description !== undefined) e.description = x.description;
  return e;
}

/**
 * A class's `legacy_client_secret` block, from before the exceptions registry: refused, with the exact
 * exception document that replaces it.
 */
function movedLegacySecret(
  where: string,
  cls: string,
  old: { justification: string; owner: string; expires: string },
): ConfigError {
  const yaml = [
    `id: ${cls}-client-secret`,
    'covers:',
    '  kind: legacy_client_secret',
    `  class: ${cls}`,
    `owner: ${JSON.stringify(old.owner)}`,
    `justification: ${JSON.stringify(old.justification)}`,
    `expires: ${old.expires}`,
  ].join('\n');
  return new ConfigError(
    where,
    'legacy_client_secret',
    `legacy client secrets are exceptions now (docs/governance.md): delete this block and write exceptions/${cls}-client-secret.yaml with:\n${yaml}`,
  );
}

/**
 * `detections/`: each document a rule (docs/detection.md). A rule with a built-in rule's id replaces
 * it, and may give only the fields it changes (`enabled: false` alone turns it off); the others are the
 * built-in's. The condition is compiled here, so a broken one refuses the whole apply.
 */
function detectionRules(documents: readonly RawDocument[]): ConfiguredRule[] {
  const rules: ConfiguredRule[] = [];
  const ruleFiles = new Map<string, string>();
  for (const { file, doc, index } of documents) {
    const where = docName(file, index);
    const id = isMapping(doc) ? doc['id'] : undefined;
    const builtIn = BUILTIN_RULES.find((r) => r.id === id);
    const r = parse(
      detectionRuleSchema,
      builtIn && isMapping(doc) ? { ...builtIn, ...doc } : doc,
      file,
      index,
    );
    const twin = ruleFiles.get(r.id);
    if (twin) throw new ConfigError(where, 'id', `rule "${r.id}" is also defined in ${twin}`);
    ruleFiles.set(r.id, where);
    const source = `detections/${file.split(/[\\/]/).pop()}`;
    try {
      compileRuleDocument(r, source);
    } catch (err) {
      if (err instanceof RuleError) throw new ConfigError(where, err.field, err.message);
      throw err;
    }
    rules.push({ ...r, source });
  }
  return rules;
}

/**
 * `networks.yaml`: one document, `networks: [{cidr, environment}]`. Each range is a CIDR range with no
 * bits set past its prefix (`10.1.2.0/16` is a typo of something), listed once.
 */
function networkRanges(documents: readonly RawDocument[]): NetworkEnvironment[] {
  const [first, second] = documents;
  if (!first) return [];
  if (second)
    throw new ConfigError(
      docName(second.file, second.index),
      '',
      `networks are also defined in ${docName(first.file, first.index)}: list every range in one document`,
    );
  const where = docName(first.file, first.index);
  const { networks } = parse(networksFileSchema, first.doc, first.file, first.index);
  const seen = new Map<string, number>();
  for (const [i, n] of networks.entries()) {
    const range = parseRange(n.cidr);
    if (!range)
      throw new ConfigError(
        where,
        `networks.${i}.cidr`,
        `"${n.cidr}" is not a CIDR range such as 10.1.0.0/16 or 2001:db8::/32`,
      );
    const hostBits = BigInt((range.family === 4 ? 32 : 128) - range.prefix);
    if ((range.value >> hostBits) << hostBits !== range.value)
      throw new ConfigError(
        where,
        `networks.${i}.cidr`,
        `"${n.cidr}" has address bits set past its /${range.prefix} prefix: give the range's first address`,
      );
    const key = `${range.family}/${range.value}/${range.prefix}`;
    const twin = seen.get(key);
    if (twin !== undefined)
      throw new ConfigError(where, `networks.${i}.cidr`, `the range is already listed as networks.${twin}`);
    seen.set(key, i);
  }
  return networks.map((n) => ({ cidr: n.cidr, environment: n.environment }));
}

function isMapping(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * `serves`: the APIs a workload verifies tokens for. Each must be an audience some class issues tokens
 * for (a registered API), and none may be one of Writ's own endpoints, which only Writ serves.
 */
function servedApis(
  serves: readonly string[],
  classes: readonly TokenClass[],
  where: string,
  issuer: string | undefined,
): string[] {
  for (const [i, api] of serves.entries()) {
    if (issuer !== undefined && (api === issuer || api.startsWith(`${issuer}/`)))
      throw new ConfigError(
        where,
        `serves.${i}`,
        `"${api}" is an endpoint of Writ itself, which only Writ serves`,
      );
    if (!classes.some((c) => c.audiences.includes(api)))
      throw new ConfigError(
        where,
        `serves.${i}`,
        `no class issues tokens for "${api}": list it in the audiences of a class, or serve a registered API`,
      );
  }
  return [...new Set(serves)];
}

function docName(file: string, index: number): string {
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
  if (typeof doc !== 'object' || doc === null || !('jwks_file' in doc)) return doc;
  const { jwks_file: ref, ...rest } = doc as Record<string, unknown>;
  if (typeof ref !== 'string' || ref === '') throw new ConfigError(where, 'jwks_file', 'must be a path');
  if ('jwks' in rest) throw new ConfigError(where, 'jwks_file', 'give either jwks or jwks_file, not both');
  const path = resolve(dirname(file), ref);
  const text = readConfigFile(root, path, { where, field: 'jwks_file' }, ref);
  note(path, text);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text.toString('utf8'));
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
  if (typeof doc !== 'object' || doc === null || !('self_signed_certificates_file' in doc)) return doc;
  const { self_signed_certificates_file: ref, ...rest } = doc as Record<string, unknown>;
  const field = 'self_signed_certificates_file';
  if (typeof ref !== 'string' || ref === '') throw new ConfigError(where, field, 'must be a path');
  const path = resolve(dirname(file), ref);
  const bytes = readConfigFile(root, path, { where, field }, ref);
  note(path, bytes);
  const pem = bytes.toString('utf8');
  const listed = Array.isArray(rest['self_signed_certificates']) ? rest['self_signed_certificates'] : [];
  return { ...rest, self_signed_certificates: [...listed, pem] };
}

function checkedKeys(
  spec: { jwks?: { keys: Record<string, unknown>[] } | undefined },
  where: string,
): PublicJwk[] {
  return (spec.jwks?.keys ?? []).map((k, i) => {
    try {
      importPublicJwk(k);
    } catch (err) {
      throw new ConfigError(where, `jwks.keys.${i}`, (err as JwkError).message);
    }
    return k as unknown as PublicJwk;
  });
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

function parse<S extends z.ZodType>(schema: S, doc: unknown, file: string, index: number): z.output<S> {
  const r = schema.safeParse(doc);
  if (r.success) return r.data;
  const { field, reason } = describeSchemaIssue(r.error, doc);
  throw new ConfigError(docName(file, index), field, reason);
}
