import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { type PolicyContext, PolicyContextError } from '@writ/sdk/wire';
import type { Command } from 'commander';
import { parseAllDocuments } from 'yaml';
import { z } from 'zod';
import { loadConfigDir } from '../../config/config-dir.js';
import { writSchema } from '../../policy/cedar.js';
import { compilePolicies, type PolicySources, type ResourceSpec } from '../../policy/compile.js';
import { type Decision, type Explanation, PolicyEngine } from '../../policy/engine.js';
import { readPolicyDir } from '../../policy/policy-dir.js';
import { buildContext, type DecisionRequest, humanPrincipal, isPolicyAction } from '../../policy/request.js';
import { CliError } from '../client.js';
import type { CommandContext } from '../command-context.js';

/**
 * `writ policy test|explain|validate`: the running set's rules checked offline against a config
 * directory's `policies/`. A case names a request and what the policies should decide:
 *
 * ```yaml
 * name: a dev workload cannot get a prod audience
 * principal: { type: workload, id: spiffe://acme/dev/etl, environment: dev, owner: team-data }
 * action: issue
 * resource: { id: https://warehouse.acme, sensitivity: restricted, environment: prod, owner: team-data }
 * context: { time: 2026-05-06T10:00:00Z, source_ip: 10.1.2.3, purpose: nightly-export, risk: 10 }
 * expect: deny
 * policies: [env-separation]   # optional: the determining policies, exactly
 * ```
 */

/** Cases without a `time` are decided at this instant (a Monday, 12:00 UTC) so results never depend on the clock. */
export const DEFAULT_CASE_TIME = '2026-01-05T12:00:00Z';

const attr = z.union([z.string().max(512), z.number(), z.boolean()]);
const principalSchema = z
  .object({
    type: z.enum(['workload', 'Workload', 'human', 'Human', 'user']).default('workload'),
    id: z.string().min(1).max(2048),
    owner: z.string().max(200).optional(),
    environment: z.string().max(32).optional(),
    state: z.enum(['active', 'disabled', 'quarantined']).optional(),
    classes: z.array(z.string()).max(50).optional(),
    attributes: z.record(z.string(), attr).optional(),
    roles: z.array(z.string().max(64)).max(50).optional(),
    mfa: z.boolean().optional(),
  })
  .strict();
const resourceSchema = z.union([
  z.string().min(1).max(512),
  z
    .object({
      id: z.string().min(1).max(512),
      sensitivity: z.string().max(32).optional(),
      environment: z.string().max(32).optional(),
      owner: z.string().max(200).optional(),
    })
    .strict(),
]);
const contextSchema = z
  .object({
    time: z.union([z.string(), z.date()]).optional(),
    source_ip: z.string().optional(),
    environment: z.string().optional(),
    task_id: z.string().optional(),
    purpose: z.string().optional(),
    attestation: z.string().optional(),
    binding: z.string().optional(),
    risk: z.number().int().optional(),
    scopes: z.array(z.string()).optional(),
    token_class: z.string().optional(),
    grant_type: z.string().optional(),
    client_id: z.string().optional(),
  })
  .strict();
export const caseSchema = z
  .object({
    name: z.string().min(1).max(200),
    principal: principalSchema,
    action: z
      .string()
      .refine(isPolicyAction, 'must be issue, exchange, renew, read, write, export or delete'),
    resource: resourceSchema,
    context: contextSchema.default({}),
    expect: z.enum(['allow', 'deny']).optional(),
    policies: z.array(z.string()).optional(),
  })
  .strict();
export type PolicyCase = z.output<typeof caseSchema> & { file: string };

/** The policies of a config directory (or of a `policies/` directory given directly). */
function sourcesOf(dir: string): PolicySources {
  const root = resolve(dir);
  const sources =
    readPolicyDir(root) ??
    (existsSync(root) && readdirSync(root).some((f) => f.endsWith('.cedar'))
      ? readPolicyDir(join(root, '..'))
      : undefined);
  if (!sources) throw new CliError(`${dir}: no policies/ directory with .cedar files`);
  return sources;
}

function configRoot(dir: string): string {
  const root = resolve(dir);
  return existsSync(join(root, 'policies')) ? root : join(root, '..');
}

/** Reads case files: a YAML/JSON file holds one case per document, or `cases: [...]`. */
export function readCases(path: string): PolicyCase[] {
  const root = resolve(path);
  if (!existsSync(root)) throw new CliError(`${path}: no such file or directory`);
  const files = statSync(root).isDirectory()
    ? readdirSync(root)
        .filter((f) => /\.(ya?ml|json)$/.test(f))
        .sort()
        .map((f) => join(root, f))
    : [root];
  const cases: PolicyCase[] = [];
  for (const file of files) {
    const shown = relative(process.cwd(), file) || file;
    for (const d of parseAllDocuments(readFileSync(file, 'utf8'))) {
      if (d.errors.length > 0) throw new CliError(`${shown}: ${d.errors[0]!.message.split('\n')[0]}`);
      const doc = d.toJS({ maxAliasCount: 50 }) as unknown;
      if (doc === null || doc === undefined) continue;
      const list = (doc as { cases?: unknown }).cases;
      for (const [i, c] of (Array.isArray(list) ? list : [doc]).entries()) {
        const r = caseSchema.safeParse(c);
        if (!r.success) {
          const issue = r.error.issues[0]!;
          const name = (c as { name?: unknown })?.name;
          throw new CliError(
            `${shown}: case ${typeof name === 'string' ? `"${name}"` : i + 1}: ${issue.path.join('.') || '(case)'}: ${issue.message}`,
          );
        }
        cases.push({ ...r.data, file: shown });
      }
    }
  }
  return cases;
}

/** Turns a case into an engine request; workloads named by id alone take their attributes from the config dir. */
function toRequest(
  c: PolicyCase,
  engine: PolicyEngine,
  workloads: Map<string, Record<string, unknown>>,
): DecisionRequest {
  const p = c.principal;
  let principal: DecisionRequest['principal'];
  if (p.type === 'human' || p.type === 'Human' || p.type === 'user') {
    principal = humanPrincipal(p.id, p.roles ?? [], p.mfa ?? false);
  } else {
    const known = workloads.get(p.id) as
      | { owner: string; environment: string; classes: string[]; attributes: Record<string, unknown> }
      | undefined;
    const attributes = p.attributes ?? known?.attributes ?? {};
    const tags: Record<string, string> = {};
    for (const [k, v] of Object.entries(attributes)) tags[k] = String(v);
    principal = {
      type: 'Workload',
      id: p.id,
      attrs: {
        owner: p.owner ?? known?.owner ?? '',
        environment: p.environment ?? known?.environment ?? '',
        state: p.state ?? 'active',
        classes: p.classes ?? known?.classes ?? [],
      },
      tags,
      version: 'case',
    };
  }
  // A case that describes its resource sees those attributes only while it is decided (see `decideCase`).
  let resource: ResourceSpec;
  if (typeof c.resource === 'string') resource = engine.resource(c.resource);
  else {
    const base = engine.resource(c.resource.id);
    resource = {
      id: base.id,
      sensitivity: c.resource.sensitivity ?? base.sensitivity,
      environment: c.resource.environment ?? base.environment,
      owner: c.resource.owner ?? base.owner,
    };
  }
  if (typeof c.resource !== 'string') engine.setResource(resource.id, resource);
  const { time, ...given } = c.context;
  const at = time instanceof Date ? time.getTime() : Date.parse(time ?? DEFAULT_CASE_TIME);
  if (Number.isNaN(at)) throw new CliError(`${c.file}: case "${c.name}": context.time is not a date`);
  let context: PolicyContext;
  try {
    context = buildContext(at, given);
  } catch (err) {
    if (err instanceof PolicyContextError)
      throw new CliError(`${c.file}: case "${c.name}": context: ${err.message}`);
    throw err;
  }
  return { principal, action: c.action as DecisionRequest['action'], resource: resource.id, context };
}

function engineFor(dir: string): { engine: PolicyEngine; workloads: Map<string, Record<string, unknown>> } {
  const set = compilePolicies(sourcesOf(dir));
  const engine = new PolicyEngine({ set, cache: false });
  const root = configRoot(dir);
  const workloads = new Map<string, Record<string, unknown>>();
  if (existsSync(join(root, 'workloads'))) {
    for (const w of loadConfigDir(root).workloads) workloads.set(w.id, { ...w });
  }
  return { engine, workloads };
}

/** Decides (or explains) one case; attributes the case gives its resource do not leak into the next case. */
function decideCase<T>(
  c: PolicyCase,
  engine: PolicyEngine,
  workloads: Map<string, Record<string, unknown>>,
  fn: (r: DecisionRequest) => T,
): T {
  try {
    return fn(toRequest(c, engine, workloads));
  } finally {
    if (typeof c.resource !== 'string') engine.setResource(c.resource.id, undefined);
  }
}

const by = (d: Decision) => (d.reasons.length ? ` by ${d.reasons.join(', ')}` : ' (no policy applies)');

/**
 * `writ policy test DIR [--cases PATH]`: runs every case (default `DIR/policies/tests/`) against the
 * policies of DIR; `ok` is false when any decision or determining set differs from the expectation.
 */
export function policyTest(dir: string, casesPath?: string): { ok: boolean; text: string } {
  const { engine, workloads } = engineFor(dir);
  const path = casesPath ?? join(configRoot(dir), 'policies', 'tests');
  const cases = readCases(path);
  if (cases.length === 0) throw new CliError(`${path}: no test cases`);
  const lines: string[] = [];
  let failed = 0;
  for (const c of cases) {
    const d = decideCase(c, engine, workloads, (r) => engine.decide(r));
    const problems: string[] = [];
    if (c.expect === undefined) problems.push('no expect: allow | deny');
    else if (d.decision !== c.expect) problems.push(`expected ${c.expect}, got ${d.decision}${by(d)}`);
    if (c.policies && JSON.stringify([...c.policies].sort()) !== JSON.stringify(d.reasons))
      problems.push(
        `expected determining policies [${c.policies.join(', ')}], got [${d.reasons.join(', ')}]`,
      );
    for (const e of d.errors) problems.push(`policy error: ${e}`);
    if (problems.length === 0) lines.push(`ok    ${c.file}: ${c.name} (${d.decision}${by(d)})`);
    else {
      failed++;
      lines.push(`FAIL  ${c.file}: ${c.name}`);
      for (const p of problems) lines.push(`        ${p}`);
    }
  }
  lines.push(
    '',
    `${cases.length} case(s), ${cases.length - failed} passed, ${failed} failed (policy set ${engine.version.id}, ${engine.version.policies} policies)`,
  );
  return { ok: failed === 0, text: lines.join('\n') };
}

/** `writ policy explain DIR REQUEST`: why each request in REQUEST (a case file) is allowed or denied. */
export function policyExplain(
  dir: string,
  requestPath: string,
  name?: string,
): Array<{ name: string; explanation: Explanation }> {
  const { engine, workloads } = engineFor(dir);
  const cases = readCases(requestPath).filter((c) => name === undefined || c.name === name);
  if (cases.length === 0) throw new CliError(`${requestPath}: no request${name ? ` named "${name}"` : ''}`);
  return cases.map((c) => ({
    name: c.name,
    explanation: decideCase(c, engine, workloads, (r) => engine.explain(r)),
  }));
}

export function formatExplanation(e: Explanation, name: string): string {
  const lines = [
    `${name}: ${e.decision.toUpperCase()} (policy set ${e.policyVersion})`,
    e.determining.length
      ? `  determined by:`
      : e.decision === 'deny'
        ? '  no permit applies (default deny)'
        : '',
    ...e.determining.map(
      (p) => `    ${p.effect} ${p.id} (${p.file}:${p.line})\n${p.text.replace(/^/gm, '      | ')}`,
    ),
    ...(e.errors.length ? ['  errors:', ...e.errors.map((x) => `    ${x}`)] : []),
    `  considered ${e.considered.length} polic${e.considered.length === 1 ? 'y' : 'ies'} whose scope matches: ${e.considered.map((p) => p.id).join(', ') || '(none)'}`,
    `  resource: ${JSON.stringify(e.resource)}`,
    `  context: ${JSON.stringify(e.context)}`,
  ];
  return lines.filter((l) => l !== '').join('\n');
}

/** `writ policy validate DIR`: compiles DIR's policies against the schema and prints version and warnings. */
export function policyValidate(dir: string): string {
  const set = compilePolicies(sourcesOf(dir));
  const engine = new PolicyEngine({ set });
  return [
    `valid: ${set.policies.length} policies in ${new Set(set.policies.map((p) => p.file)).size} file(s), ${set.resources.length} resource(s); version ${engine.version.id}`,
    ...set.warnings.map((w) => `warning: ${w}`),
  ].join('\n');
}

export function registerPolicy(program: Command, cli: CommandContext): void {
  const policy = program
    .command('policy')
    .description('Cedar policies of a config directory, checked offline (docs/policy.md)');
  policy
    .command('test <dir>')
    .description('run policy test cases (default <dir>/policies/tests/); exits 1 on any mismatch')
    .option('--cases <path>', 'a case file or a directory of case files')
    .action((dir: string, o: { cases?: string }) => {
      const r = policyTest(dir, o.cases);
      cli.out(r.text);
      if (!r.ok) process.exitCode = 1;
    });
  policy
    .command('explain <dir> <request>')
    .description('why each request in a case file is allowed or denied: determining policies, errors')
    .option('--name <name>', 'only the case with this name')
    .action((dir: string, request: string, o: { name?: string }) => {
      const explained = policyExplain(dir, request, o.name);
      cli.out(explained.map((e) => formatExplanation(e.explanation, e.name)).join('\n\n'));
    });
  policy
    .command('validate <dir>')
    .description('compile and validate the policies against the schema; print the version and warnings')
    .action((dir: string) => cli.out(policyValidate(dir)));
  policy
    .command('schema')
    .description('print the Cedar schema policies are validated against')
    .action(() => cli.out(writSchema()));
}
