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
import { buildTemplates, templateFileSchema } from '../templates/template-config.js';
import type { WorkloadTemplate } from '../templates/workload-template.js';
import { docName, type RawDocument, readConfigDir } from './config-read.js';
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

export {
  DOCUMENT_KINDS,
  GOVERNANCE_FILES,
  type RawConfig,
  type RawDocument,
  type RawDocumentKind,
  readConfigDir,
  readSettingsFile,
} from './config-read.js';

export interface LoadedConfigDir extends ConfigBundle {
  settings: { name: string; values: Record<string, unknown> } | undefined;
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
  const workloadContext: WorkloadContext = { classes, issuers, exceptions, issuer };
  for (const { file, doc, index } of of('workload')) {
    const workload = validateWorkloadDocument(doc, file, index, workloadContext, (w, where) => {
      if (workloadFiles.has(w.id))
        throw new ConfigError(
          where,
          'id',
          `workload "${w.id}" is also defined in ${workloadFiles.get(w.id)}`,
        );
      workloadFiles.set(w.id, where);
    });
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

/** What a workload document is validated against: the config's classes, issuers and exceptions. */
export interface WorkloadContext {
  classes: readonly TokenClass[];
  issuers: readonly TrustedIssuer[];
  exceptions: readonly CredentialException[];
  /** Writ's own issuer: a workload cannot serve its endpoints. */
  issuer?: string | undefined;
}

/**
 * One workload document, validated against the rest of the config (`context`) and compiled: what
 * validateConfig does for each, and what an apply of a few workload files does for those alone.
 * `parsed` sees the document once its schema passed, before anything else is checked (the duplicate
 * check of a whole directory).
 */
export function validateWorkloadDocument(
  doc: unknown,
  file: string,
  index: number,
  context: WorkloadContext,
  parsed?: (w: { id: string }, where: string) => void,
): Workload {
  const { classes, issuers, exceptions, issuer } = context;
  const w = parse(workloadFileSchema, doc, file, index);
  const where = docName(file, index);
  parsed?.(w, where);
  for (const [i, cls] of w.classes.entries()) {
    if (!classes.some((c) => c.name === cls))
      throw new ConfigError(where, `classes.${i}`, `unknown class "${cls}"`);
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
  return workload;
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

function parse<S extends z.ZodType>(schema: S, doc: unknown, file: string, index: number): z.output<S> {
  const r = schema.safeParse(doc);
  if (r.success) return r.data;
  const { field, reason } = describeSchemaIssue(r.error, doc);
  throw new ConfigError(docName(file, index), field, reason);
}
