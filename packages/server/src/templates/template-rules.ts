import { compileExpression } from '../cel/expression.js';
import { restrictText } from '../control-characters.js';
import { asText } from '../federation/cel.js';
import { canonicalJson } from '../jose/json.js';
import type { Workload } from '../registry/workload.js';
import { covers, type WorkloadTemplate } from './workload-template.js';

/** Template rules are CEL over the verified token's `claims` and the template's lookup `tables`. */
const VARIABLES = ['claims', 'tables'] as const;

type Rule = (claims: Record<string, unknown>) => unknown;

/** Compiles one rule; throws an Error naming the problem (syntax, an unknown identifier, length). */
export function compileTemplateRule(source: string, tables: Record<string, unknown> = {}): Rule {
  const e = compileExpression(source, VARIABLES);
  return (claims) => e.run({ claims, tables });
}

/** A template ready for admission: its rules compiled once. */
export interface CompiledTemplate {
  spec: WorkloadTemplate;
  condition: Rule;
  owner: Rule;
  environment: Rule;
  classes: Rule | undefined;
  attributes: Array<[string, Rule]>;
}

/** Why a template does not admit an identity: the audit reason and which of its checks failed. */
export interface TemplateRefusal {
  reason: 'condition_false' | 'template_derivation';
  /** The template field that failed: `condition`, `derive.owner`… */
  field: string;
  message: string;
}

const ENVIRONMENT = /^[a-z0-9][a-z0-9-]{0,31}$/;

/**
 * The templates by prefix, rebuilt when the registry's records change; a template whose record is
 * unchanged keeps its compiled rules.
 */
export class TemplateSet {
  #compiled = new Map<string, CompiledTemplate>();
  #list: CompiledTemplate[] = [];

  update(records: readonly WorkloadTemplate[]): void {
    const next = new Map<string, CompiledTemplate>();
    for (const r of records) {
      const key = canonicalJson(r);
      next.set(key, this.#compiled.get(key) ?? compileTemplate(r));
    }
    this.#compiled = next;
    this.#list = [...next.values()];
  }

  /** The template covering `id` (templates never overlap, so at most one). */
  covering(id: string): CompiledTemplate | undefined {
    return this.#list.find((t) => t.spec.prefixes.some((p) => covers(p, id)));
  }

  byId(id: string): CompiledTemplate | undefined {
    return this.#list.find((t) => t.spec.id === id);
  }

  list(): readonly CompiledTemplate[] {
    return this.#list;
  }
}

export function compileTemplate(t: WorkloadTemplate): CompiledTemplate {
  const rule = (source: string) => compileTemplateRule(source, t.tables);
  return {
    spec: t,
    condition: rule(t.condition),
    owner: rule(t.derive.owner),
    environment: rule(t.derive.environment),
    classes: t.derive.classes !== undefined ? rule(t.derive.classes) : undefined,
    attributes: Object.entries(t.derive.attributes).map(([k, e]) => [k, rule(e)]),
  };
}

/**
 * Evaluates a template for identity `id` over verified `claims`: its condition, then every derivation.
 * The workload it derives has a non-empty owner, a valid environment and at least one of the template's
 * classes, or it is a refusal naming the derivation that failed: never a workload with a hole in it.
 */
export function deriveWorkload(
  t: CompiledTemplate,
  id: string,
  claims: Record<string, unknown>,
): { workload: Omit<Workload, 'template'> } | { refusal: TemplateRefusal } {
  const name = t.spec.id;
  const field = (f: string) => `templates/${name}: ${f}`;
  if (t.condition(claims) !== true)
    return {
      refusal: {
        reason: 'condition_false',
        field: 'condition',
        message: `the ${t.spec.bundle !== undefined ? 'client certificate' : 'federation token'} does not satisfy the condition of template ${name} (${field('condition')})`,
      },
    };
  const derivation = (f: string, what: string): { refusal: TemplateRefusal } => ({
    refusal: {
      reason: 'template_derivation',
      field: f,
      message: `template ${name} cannot admit ${id}: ${field(f)} ${what}`,
    },
  });
  const owner = asText(t.owner(claims));
  if (owner === undefined || owner.trim() === '' || owner.length > 200)
    return derivation('derive.owner', 'yields no owner (a non-empty string of at most 200 characters)');
  const environment = asText(t.environment(claims));
  if (environment === undefined || !ENVIRONMENT.test(environment))
    return derivation('derive.environment', 'yields no environment (a short lowercase name such as prod)');
  let classes = t.spec.classes;
  if (t.classes) {
    const v = t.classes(claims);
    // A CEL list is iterable, not an Array.
    const list =
      v !== null && typeof v === 'object' && Symbol.iterator in v ? [...(v as Iterable<unknown>)] : undefined;
    if (!list || list.length === 0 || list.some((c) => typeof c !== 'string' || !t.spec.classes.includes(c)))
      return derivation(
        'derive.classes',
        `yields no list of classes among ${t.spec.classes.join(', ')} (the template's classes)`,
      );
    classes = [...new Set(list as string[])];
  }
  const attributes: Record<string, string> = {};
  for (const [k, rule] of t.attributes) {
    const v = asText(rule(claims));
    if (v === undefined) return derivation(`derive.attributes.${k}`, 'yields no value');
    attributes[k] = restrictText(v, 512);
  }
  return {
    workload: {
      id,
      owner: restrictText(owner, 200),
      environment,
      attributes,
      classes,
      jwks: [],
      ...(t.spec.federation !== undefined
        ? { federation: [t.spec.federation] }
        : { tlsClientAuth: { rule: 'x509_svid' as const, value: id } }),
      description: `admitted by template ${name}`,
    },
  };
}
