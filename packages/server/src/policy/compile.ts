import { createHash } from 'node:crypto';
import { WritError } from '@writ/sdk/wire';
import { cedar, type DetailedError, lineAt, type PolicyJson, writSchema } from './cedar.js';

/** One `.cedar` file as read from a config directory. */
export interface PolicySource {
  /** The file name as shown to the operator, e.g. `policies/prod.cedar`. */
  file: string;
  text: string;
}

/** Attributes of one API (a token audience) as policies see it. */
export interface ResourceSpec {
  id: string;
  sensitivity: string;
  environment: string;
  owner: string;
}

/** What a config directory's `policies/` holds: `.cedar` files and `resources.yaml`. */
export interface PolicySources {
  files: PolicySource[];
  resources: ResourceSpec[];
}

export interface EntityRef {
  type: string;
  id: string;
}

/** A scope constraint of a policy head, reduced to what slicing needs. */
export type HeadConstraint =
  | { op: 'all' }
  | { op: 'eq'; entity: EntityRef }
  | { op: 'is'; type: string; entity?: EntityRef }
  | { op: 'in'; entities: EntityRef[] };

export interface CompiledPolicy {
  id: string;
  file: string;
  line: number;
  effect: 'permit' | 'forbid';
  text: string;
  principal: HeadConstraint;
  action: HeadConstraint;
  resource: HeadConstraint;
  /** The context fields and entity attributes the policy's conditions read. */
  reads: PolicyReads;
}

export interface CompiledPolicySet {
  policies: CompiledPolicy[];
  resources: ResourceSpec[];
  /** SHA-256 (hex) over the file names, texts and resources: equal sets have equal hashes. */
  hash: string;
  /** Validator warnings (impossible policies and the like), as `file:line: message`. */
  warnings: string[];
  /** The built-in set used when the config directory has no `policies/`. */
  builtIn: boolean;
}

/** A policy set that cannot be loaded: names the file, the line and the problem. */
export class PolicyLoadError extends WritError {
  declare readonly code: 'invalid_policy';
  declare readonly reason: 'invalid_policy';
  readonly file: string;
  readonly line: number | undefined;
  /** What is wrong, for the operator who wrote the file (a parse error, a duplicate id...). */
  readonly problem: string;
  constructor(file: string, line: number | undefined, problem: string) {
    super('invalid_policy', 'invalid_policy', `${file}${line !== undefined ? `:${line}` : ''}: ${problem}`);
    this.name = 'PolicyLoadError';
    this.file = file;
    this.line = line;
    this.problem = problem;
  }
}

/** The id of the built-in policy that keeps class-limited issuance when no policies are configured. */
export const DEFAULT_POLICY_ID = 'writ.default.permit-token-lifecycle';

/**
 * Used when a config directory has no `policies/`: permit every token action, so issuance is limited by
 * the token classes alone (Writ's behaviour before policies). Request-time actions have no permit, so
 * the AuthZEN endpoint denies until policies are written.
 */
export const DEFAULT_POLICY_SOURCES: PolicySources = {
  files: [
    {
      file: '(built-in)',
      text: `@id("${DEFAULT_POLICY_ID}")\npermit(principal, action in Action::"token", resource);\n`,
    },
  ],
  resources: [],
};

const MAX_POLICIES = 100_000;
const ID = /^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$/;

/**
 * Parses every file, validates it against Writ's schema (strict mode) and gives each policy its id: the
 * `@id("...")` annotation, else `<file>#<n>`. The first problem throws a `PolicyLoadError`.
 */
export function compilePolicies(sources: PolicySources, builtIn = false): CompiledPolicySet {
  const schema = writSchema();
  const policies: CompiledPolicy[] = [];
  const warnings: string[] = [];
  const ids = new Map<string, string>();
  for (const { file, text } of sources.files) {
    const parts = cedar.policySetTextToParts(text);
    if (parts.type === 'failure') throw fromCedarError(file, text, parts.errors[0]);
    if (parts.policy_templates.length > 0)
      throw new PolicyLoadError(file, undefined, 'policy templates are not supported');
    const validation = cedar.validate({ schema, policies: { staticPolicies: text } });
    if (validation.type === 'failure') throw fromCedarError(file, text, validation.errors[0]);
    const firstError = validation.validationErrors[0];
    if (firstError) throw fromCedarError(file, text, firstError.error);
    for (const w of validation.validationWarnings) {
      const at = w.error.sourceLocations?.[0]?.start;
      warnings.push(`${file}${at !== undefined ? `:${lineAt(text, at)}` : ''}: ${w.error.message}`);
    }
    // Cedar returns the parts sorted by their generated ids as strings (policy0, policy1, policy10, ...,
    // policy2): undo that to get source order, then find each part after the previous one.
    const generated = parts.policies.map((_, i) => `policy${i}`).sort();
    const inSourceOrder: string[] = [];
    for (const [k, p] of parts.policies.entries()) inSourceOrder[Number(generated[k]!.slice(6))] = p;
    let cursor = 0;
    let line = 1;
    for (let n = 0; n < inSourceOrder.length; n++) {
      const p = inSourceOrder[n]!;
      const at = text.indexOf(p, cursor);
      if (at >= 0) {
        for (let c = cursor; c < at; c++) if (text.charCodeAt(c) === 10) line++;
        cursor = at;
      }
      const json = cedar.policyToJson(p);
      if (json.type === 'failure') throw fromCedarError(file, text, json.errors[0]);
      const annotated = json.json.annotations?.['id'];
      const id = annotated ?? `${file}#${n + 1}`;
      if (annotated !== undefined && !ID.test(annotated))
        throw new PolicyLoadError(
          file,
          line,
          `@id("${annotated.slice(0, 64)}") must be 1-128 letters, digits or ._:/-`,
        );
      const previous = ids.get(id);
      if (previous !== undefined)
        throw new PolicyLoadError(file, line, `policy id "${id}" is also used in ${previous}`);
      ids.set(id, `${file}:${line}`);
      policies.push({
        id,
        file,
        line,
        effect: json.json.effect,
        text: p,
        principal: head(json.json.principal),
        action: head(json.json.action),
        resource: head(json.json.resource),
        reads: readsOf(json.json),
      });
      if (policies.length > MAX_POLICIES)
        throw new PolicyLoadError(file, line, `more than ${MAX_POLICIES} policies`);
    }
  }
  const resources = checkResources(sources.resources);
  const hash = createHash('sha256');
  for (const f of sources.files) hash.update(`${f.file}\n${f.text.length}\n${f.text}\n`);
  hash.update(JSON.stringify(resources));
  return { policies, resources, hash: hash.digest('hex'), warnings, builtIn };
}

function fromCedarError(file: string, text: string, e: DetailedError | undefined): PolicyLoadError {
  if (!e) return new PolicyLoadError(file, undefined, 'invalid policy');
  const at = e.sourceLocations?.[0];
  const label = at?.label ? ` (${at.label})` : '';
  const help = e.help ? `; ${e.help}` : '';
  return new PolicyLoadError(
    file,
    at ? lineAt(text, at.start) : undefined,
    `${e.message.replace(/for policy `policy\d+`, /g, '')}${label}${help}`.slice(0, 500),
  );
}

const SENSITIVITY = /^[a-z][a-z0-9_-]{0,31}$/;

function checkResources(list: ResourceSpec[]): ResourceSpec[] {
  const seen = new Set<string>();
  for (const r of list) {
    if (seen.has(r.id))
      throw new PolicyLoadError('policies/resources.yaml', undefined, `resource "${r.id}" is listed twice`);
    seen.add(r.id);
    if (!SENSITIVITY.test(r.sensitivity))
      throw new PolicyLoadError(
        'policies/resources.yaml',
        undefined,
        `resource "${r.id}": sensitivity must be a short lowercase word`,
      );
  }
  return [...list].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

function entityRef(e: unknown): EntityRef {
  const o = e as { __entity?: EntityRef } & EntityRef;
  return o.__entity ?? { type: o.type, id: o.id };
}

function head(c: PolicyJson['principal'] | PolicyJson['action']): HeadConstraint {
  const x = c as Record<string, unknown> & { op: string };
  switch (x.op) {
    case '==':
      return 'slot' in x ? { op: 'all' } : { op: 'eq', entity: entityRef(x['entity']) };
    case 'in':
      if ('entities' in x) {
        const entities: EntityRef[] = [];
        for (const e of x['entities'] as unknown[]) entities.push(entityRef(e));
        return { op: 'in', entities };
      }
      return 'slot' in x ? { op: 'all' } : { op: 'in', entities: [entityRef(x['entity'])] };
    case 'is': {
      const inner = x['in'] as { entity?: unknown } | undefined;
      return {
        op: 'is',
        type: x['entity_type'] as string,
        ...(inner?.entity ? { entity: entityRef(inner.entity) } : {}),
      };
    }
    default:
      return { op: 'all' };
  }
}

/** What a policy reads: context fields, principal and resource attributes (`#tags`: the principal's tags). */
export interface PolicyReads {
  context: ReadonlySet<string> | 'all';
  principal: ReadonlySet<string> | 'all';
  resource: ReadonlySet<string> | 'all';
}

/** Where a bare `principal`/`resource`/`context` may appear without its whole data being needed. */
const NEEDS_NO_DATA = new Set(['==', '!=', 'in', 'is']);
const STRUCTURAL = new Set(['left', 'right', 'arg', 'if', 'then', 'else']);

/**
 * The data a policy's conditions read: `context.x`/`context has x`, `principal.x`, `resource.x`, and
 * `principal.hasTag/getTag`. A variable used any other way (inside a record or set literal, say) counts
 * as reading all of it, so the engine never leaves out data a policy could reach.
 */
function readsOf(policy: PolicyJson): PolicyReads {
  const sets = { context: new Set<string>(), principal: new Set<string>(), resource: new Set<string>() };
  const all = { context: false, principal: false, resource: false };
  type Var = keyof typeof sets;
  const varOf = (n: unknown): Var | undefined => {
    const v = (n as { Var?: string } | null)?.Var;
    return v === 'context' || v === 'principal' || v === 'resource' ? v : undefined;
  };
  const walk = (n: unknown, op: string): void => {
    if (n === null || typeof n !== 'object') return;
    if (Array.isArray(n)) {
      for (const x of n) walk(x, op);
      return;
    }
    const o = n as Record<string, unknown>;
    if ('Value' in o || 'Slot' in o) return;
    const v = varOf(o);
    if (v) {
      if (v === 'context' || !NEEDS_NO_DATA.has(op)) all[v] = true;
      return;
    }
    for (const k in o) {
      const child = o[k] as { left?: unknown; attr?: string | string[] } | undefined;
      if (k === '.' || k === 'has' || k === 'hasTag' || k === 'getTag') {
        const target = varOf(child?.left);
        if (target) {
          if (k === 'hasTag' || k === 'getTag') sets[target].add('#tags');
          else {
            const attr = Array.isArray(child?.attr) ? child.attr[0] : child?.attr;
            if (attr !== undefined) sets[target].add(attr);
          }
          walk((child as { right?: unknown }).right, k);
          continue;
        }
      }
      walk(o[k], STRUCTURAL.has(k) ? op : k);
    }
  };
  walk(policy.conditions, 'when');
  return {
    context: all.context ? 'all' : sets.context,
    principal: all.principal ? 'all' : sets.principal,
    resource: all.resource ? 'all' : sets.resource,
  };
}
