import { z } from 'zod';
import { type CompiledExpression, compileExpression } from '../cel/expression.js';
import { parseDuration } from '../config/duration.js';
import { SIGNAL_KINDS, type SignalKind } from './signal.js';

export const SEVERITIES = ['low', 'medium', 'high', 'critical'] as const;
export type Severity = (typeof SEVERITIES)[number];

/**
 * What a rule does when it fires in `enforce` mode, beyond recording a finding: `alert` nothing more;
 * `raise_risk` add its severity's points to the workload's risk; the others raise the risk too and
 * revoke the token (`jti`), revoke the task (`tid`), quarantine the workload (it is refused new tokens
 * and its tokens are revoked), or revoke every token the workload holds so it must attest again.
 */
export const RESPONSES = [
  'alert',
  'raise_risk',
  'revoke_token',
  'revoke_task',
  'quarantine',
  'reattest',
] as const;
export type Response = (typeof RESPONSES)[number];

/** The variables a condition may read. */
export const RULE_VARIABLES = ['event', 'baseline', 'token', 'workload'] as const;

/** A detection rule as written in `config/detections/*.yaml`. */
export const detectionRuleSchema = z
  .object({
    id: z
      .string()
      .regex(
        /^[a-z0-9][a-z0-9_.-]{0,63}$/,
        'must be 1 to 64 of a-z, 0-9, ".", "_" and "-", starting with a letter or digit',
      ),
    description: z.string().max(1024).default(''),
    signal: z.enum(SIGNAL_KINDS as [SignalKind, ...SignalKind[]]),
    condition: z.string().min(1).max(2048),
    severity: z.enum(SEVERITIES),
    response: z.enum(RESPONSES),
    mode: z.enum(['observe', 'enforce']).default('observe'),
    /** After it fires for a workload, the rule stays quiet for that workload this long. */
    cooldown: z.union([z.string(), z.number()]).default('10m'),
    /** `false` turns the rule off (a built-in one too, by its id). */
    enabled: z.boolean().default(true),
  })
  .strict();

export type DetectionRuleInput = z.input<typeof detectionRuleSchema>;
/** A rule document the schema took, its defaults filled in. */
export type RuleDocument = z.output<typeof detectionRuleSchema>;

/** A rule, validated and compiled. */
export interface DetectionRule {
  id: string;
  description: string;
  signal: SignalKind;
  condition: string;
  severity: Severity;
  response: Response;
  mode: 'observe' | 'enforce';
  /** Milliseconds. */
  cooldownMs: number;
  /** Where it came from: `built-in` or the file that defines it. */
  source: string;
  enabled: boolean;
  program: CompiledExpression;
  /** Reads `baseline`: only observes while the workload's baseline is learning. */
  readsBaseline: boolean;
}

/** A rule that does not validate: which field, and why (the caller names the file). */
export class RuleError extends Error {
  readonly field: string;
  constructor(field: string, message: string) {
    super(message);
    this.name = 'RuleError';
    this.field = field;
  }
}

/** Validates and compiles one rule; throws `RuleError` naming the field. */
export function compileRule(input: unknown, source: string): DetectionRule {
  const parsed = detectionRuleSchema.safeParse(input);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new RuleError(issue.path.join('.') || '(document)', issue.message);
  }
  return compileRuleDocument(parsed.data, source);
}

/**
 * Compiles a rule the schema has taken (config-dir.ts parses with the errors of every config file):
 * the checks the schema cannot make, the cooldown's range, the condition, what a claimed client allows.
 */
export function compileRuleDocument(r: RuleDocument, source: string): DetectionRule {
  const seconds = parseDuration(r.cooldown);
  if (seconds === undefined || seconds > 7 * 86_400)
    throw new RuleError('cooldown', 'must be a duration such as 30s, 10m or 1h, at most 7d');
  let program: CompiledExpression;
  try {
    program = compileExpression(r.condition, RULE_VARIABLES, { fast: true });
  } catch (err) {
    throw new RuleError('condition', (err as Error).message);
  }
  if (r.signal === 'token.refused' && r.response !== 'alert')
    throw new RuleError(
      'response',
      'a token.refused signal names a client only as claimed, never authenticated: its rules may only alert',
    );
  return {
    id: r.id,
    description: r.description,
    signal: r.signal,
    condition: r.condition,
    severity: r.severity,
    response: r.response,
    mode: r.mode,
    cooldownMs: seconds * 1000,
    source,
    enabled: r.enabled,
    program,
    readsBaseline: program.reads.has('baseline'),
  };
}
