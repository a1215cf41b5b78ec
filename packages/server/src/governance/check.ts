import type { RawDocument } from '../config/config-dir.js';
import { formatDuration } from '../config/duration.js';
import {
  type ClassFile,
  classFileSchema,
  type ExceptionFile,
  exceptionFileSchema,
  type IssuerFile,
  issuerFileSchema,
  type WorkloadFile,
  workloadFileSchema,
} from '../config/schema.js';
import { PeopleDirectory } from '../people/directory.js';
import type { Person, Team } from '../people/person.js';
import type { ResourceSpec } from '../policy/compile.js';
import { type TemplateFile, templateFileSchema } from '../templates/template-config.js';
import type { Governance, GovernanceRule } from './governance-file.js';

/** One rule broken by one object: where (file and field), which rule, and what would pass. */
export interface Violation {
  rule: string;
  check: GovernanceRule['check'];
  severity: 'error' | 'warning';
  /** The file, as `writ apply` names it (relative to the working directory). */
  file: string;
  /** Which document of the file, from 1. */
  document: number;
  /** The line of the field (or of the object that lacks it), when the file was read to find it. */
  line?: number;
  /** Dotted path of the field in the document, as written on disk (`renewal.max_lifetime`). */
  field: string;
  /** What the object is: `class reports-read`, `workload spiffe://…`, `issuer github`. */
  object: string;
  message: string;
}

/** What the rules read besides the documents: the APIs' tiers and the time exceptions are judged at. */
export interface CheckInput {
  /** Documents that passed `validateConfig`. */
  documents: readonly RawDocument[];
  governance: Governance;
  /** `policies/resources.yaml`: an API described nowhere is `unrated`. */
  resources: readonly ResourceSpec[];
  /** `people/`: who may own workloads and exceptions. */
  people: { people: readonly Person[]; teams: readonly Team[] };
  /** Milliseconds. */
  now: number;
}

interface Located<T> {
  value: T;
  where: { file: string; document: number };
}

/** The tier of an API no `resources.yaml` describes. */
export const UNRATED = 'unrated';

/**
 * Evaluates the governance rules over a validated config directory, without a server: every object each
 * rule applies to (by environment and API tier) that breaks it is one violation, in rule order, then
 * file order.
 */
export function checkGovernance(input: CheckInput): Violation[] {
  const located = <T>(kind: RawDocument['kind'], schema: { parse(v: unknown): T }): Located<T>[] =>
    input.documents
      .filter((d) => d.kind === kind)
      .map((d) => ({ value: schema.parse(d.doc), where: { file: d.file, document: d.index + 1 } }));
  const classes = located<ClassFile>('class', classFileSchema);
  const workloads = located<WorkloadFile>('workload', workloadFileSchema);
  const issuers = located<IssuerFile>('issuer', issuerFileSchema);
  const exceptions = located<ExceptionFile>('exception', exceptionFileSchema);
  // A template stands for the workloads it will admit: they hold its classes, in its environment.
  const templates = located<TemplateFile>('template', templateFileSchema);
  const directory = PeopleDirectory.fromConfig(input.people);
  const tierOf = new Map(input.resources.map((r) => [r.id, r.sensitivity]));

  /** A class is used in the environments of the workloads that list it, and reaches its audiences' tiers. */
  const classScope = (c: ClassFile) => ({
    environments: [...workloads, ...templates]
      .filter((w) => w.value.classes.includes(c.name))
      .map((w) => w.value.environment),
    tiers: c.audiences.map((a) => tierOf.get(a) ?? UNRATED),
  });
  const issuerScope = (i: IssuerFile) => {
    const users = [
      ...workloads.filter((w) => w.value.federation?.includes(i.name)),
      ...templates.filter((t) => t.value.federation === i.name),
    ];
    return {
      environments: users.map((w) => w.value.environment),
      tiers: users.flatMap((w) =>
        classes
          .filter((c) => w.value.classes.includes(c.value.name))
          .flatMap((c) => classScope(c.value).tiers),
      ),
    };
  };

  /** An exception applies where what it covers does: its class's scope, or its workload's. */
  const exceptionScope = (e: ExceptionFile) => {
    const cover = e.covers;
    if (cover.kind === 'vendor_key') return { environments: [], tiers: [] };
    const c = classes.find((x) => x.value.name === cover.class)?.value;
    const scope = c ? classScope(c) : { environments: [], tiers: [] };
    if (cover.kind === 'long_lived_token')
      return {
        environments: workloads.filter((w) => w.value.id === cover.workload).map((w) => w.value.environment),
        tiers: scope.tiers,
      };
    if (cover.kind === 'legacy_client_secret' && cover.workloads !== undefined)
      return {
        environments: workloads
          .filter((w) => cover.workloads!.includes(w.value.id))
          .map((w) => w.value.environment),
        tiers: scope.tiers,
      };
    return scope;
  };

  const out: Violation[] = [];
  for (const rule of input.governance.rules) {
    const applies = (scope: { environments: string[]; tiers: string[] }) =>
      (rule.environments === undefined || scope.environments.some((e) => rule.environments!.includes(e))) &&
      (rule.sensitivity === undefined || scope.tiers.some((t) => rule.sensitivity!.includes(t)));
    const scopeText = describeScope(rule);
    const report = (where: Located<unknown>['where'], object: string, field: string, message: string) =>
      out.push({
        rule: rule.id,
        check: rule.check,
        severity: rule.severity,
        ...where,
        field,
        object,
        message,
      });

    if (rule.check === 'workload.owner') {
      for (const { value: w, where } of workloads) {
        const tiers = classes
          .filter((c) => w.classes.includes(c.value.name))
          .flatMap((c) => classScope(c.value).tiers);
        if (!applies({ environments: [w.environment], tiers })) continue;
        const problem = ownerProblem(directory, w.owner);
        if (problem)
          report(
            where,
            `workload ${w.id}`,
            'owner',
            `${problem}; rule ${rule.id} wants every workload owned${scopeText} by a known, active person or team: set owner to the id of one in people/`,
          );
      }
      // A template answers for every workload it admits: its own owner is checked like a workload's.
      for (const { value: t, where } of templates) {
        const tiers = classes
          .filter((c) => t.classes.includes(c.value.name))
          .flatMap((c) => classScope(c.value).tiers);
        if (!applies({ environments: [t.environment], tiers })) continue;
        const problem = ownerProblem(directory, t.owner);
        if (problem)
          report(
            where,
            `template ${t.id}`,
            'owner',
            `${problem}; rule ${rule.id} wants every workload, and every template that admits them, owned${scopeText} by a known, active person or team: set the template's owner to the id of one in people/`,
          );
      }
      continue;
    }
    if (rule.check === 'exception.fields') {
      for (const { value: e, where } of exceptions) {
        if (!applies(exceptionScope(e))) continue;
        const object = `exception ${e.id}`;
        const say = (field: string, message: string) =>
          report(where, object, field, `${message} (rule ${rule.id}${scopeText})`);
        const problem = ownerProblem(directory, e.owner);
        if (problem) say('owner', `${problem}: set owner to a known, active person or team of people/`);
        const c = e.controls;
        if (c.source_networks === undefined && c.rate === undefined && c.scopes === undefined)
          say(
            'controls',
            'the exception lists no compensating control: give at least one of controls.source_networks, controls.rate or controls.scopes',
          );
        const latest = day(input.now + rule.max_expiry * 1000);
        if (e.expires <= input.now)
          say(
            'expires',
            `the exception expired on ${day(e.expires)}: renew it with an expiry after today and no later than ${latest}, or retire it`,
          );
        // A day-long expiry on the last day allowed still passes: the limit is that day's end.
        else if (e.expires > Date.parse(`${latest}T23:59:59.999Z`))
          say(
            'expires',
            `the exception expires on ${day(e.expires)}, more than ${formatDuration(rule.max_expiry)} out: set an expiry no later than ${latest}`,
          );
      }
      continue;
    }
    if (rule.check === 'issuer.condition') {
      for (const { value: i, where } of issuers) {
        if (!applies(issuerScope(i))) continue;
        const condition = i.condition?.trim();
        if (condition === undefined || condition === '' || condition === 'true')
          report(
            where,
            `issuer ${i.name}`,
            'condition',
            `issuer ${i.name} has no condition of its own${scopeText}: give a CEL condition on the token's claims (which repository, project or namespace may sign in), e.g. condition: claims.repository == "acme/deploy"`,
          );
      }
      continue;
    }
    for (const { value: c, where } of classes) {
      if (!applies(classScope(c))) continue;
      const object = `class ${c.name}`;
      switch (rule.check) {
        case 'class.max_ttl':
          if (c.max_ttl > rule.max)
            report(
              where,
              object,
              'max_ttl',
              `max_ttl is ${formatDuration(c.max_ttl)}; rule ${rule.id} allows at most ${formatDuration(rule.max)}${scopeText}: set max_ttl to ${formatDuration(rule.max)} or less`,
            );
          break;
        case 'class.renewal_lifetime': {
          // The loader's default when the class sets none: max(1h, max_ttl).
          const lifetime = c.renewal?.max_lifetime ?? Math.max(3600, c.max_ttl);
          if (lifetime > rule.max)
            report(
              where,
              object,
              'renewal.max_lifetime',
              `renewal lifetime is ${formatDuration(lifetime)}${c.renewal ? '' : ' (the default, max(1h, max_ttl))'}; rule ${rule.id} allows at most ${formatDuration(rule.max)}${scopeText}: set renewal.max_lifetime to ${formatDuration(rule.max)} or less`,
            );
          break;
        }
        case 'class.binding': {
          // A bearer class is allowed where an exception in force says so (exceptions/, bearer_class).
          const excepted =
            c.binding === 'bearer' &&
            exceptions.some(
              (e) =>
                e.value.covers.kind === 'bearer_class' &&
                e.value.covers.class === c.name &&
                e.value.expires > input.now,
            );
          if (!rule.allow.includes(c.binding) && !excepted)
            report(
              where,
              object,
              'binding',
              `binding is ${c.binding}; rule ${rule.id} allows ${rule.allow.join(' or ')}${scopeText}: set binding to ${rule.allow.join(' or ')}${c.binding === 'bearer' ? ', or declare a bearer_class exception for the class in exceptions/' : ''}`,
            );
          break;
        }
        case 'class.audiences': {
          const n = new Set(c.audiences).size;
          if (n > rule.max)
            report(
              where,
              object,
              'audiences',
              `the class lists ${n} audiences; rule ${rule.id} allows at most ${rule.max}${scopeText}: split it into classes of at most ${rule.max} audience${rule.max > 1 ? 's' : ''}`,
            );
          break;
        }
        case 'class.scopes': {
          const n = new Set(c.scopes).size;
          if (n > rule.max)
            report(
              where,
              object,
              'scopes',
              `the class lists ${n} scopes; rule ${rule.id} allows at most ${rule.max}${scopeText}: keep at most ${rule.max} scopes, or split the class`,
            );
          break;
        }
      }
    }
  }
  return out;
}

/** Why `owner` cannot own anything (unknown, or no longer active), or undefined when it can. */
function ownerProblem(directory: PeopleDirectory, owner: string): string | undefined {
  const r = directory.owner(owner);
  if (r.status === 'active') return undefined;
  if (r.status === 'unknown') return `owner "${owner}" is no person or team of people/`;
  return r.reason === 'team_without_active_member'
    ? `owner "${owner}" is a team with no active member`
    : `owner "${owner}" is a person who is no longer active`;
}

/** A time (ms) as the day it falls on, UTC. */
function day(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}

function describeScope(rule: GovernanceRule): string {
  const parts = [
    rule.environments ? `environment ${rule.environments.join('/')}` : '',
    rule.sensitivity ? `sensitivity ${rule.sensitivity.join('/')}` : '',
  ].filter((p) => p !== '');
  return parts.length === 0 ? '' : ` in ${parts.join(', ')}`;
}
