import { compileExpression } from '../cel/expression.js';

/** Claim rules are CEL over one variable, `claims`: the verified token's claims set. */
const VARIABLES = ['claims'] as const;

/** A claim rule compiled once at load. */
export type ClaimProgram = (claims: Record<string, unknown>) => unknown;

/**
 * Compiles a CEL expression over `claims`; throws an Error naming the problem (syntax, an identifier
 * other than `claims` or a comprehension variable, length). Evaluation never throws: a CEL error
 * (a missing field, a type mismatch) comes back as `undefined`.
 */
export function compileClaimRule(source: string): ClaimProgram {
  const e = compileExpression(source, VARIABLES);
  return (claims) => e.run({ claims });
}

/** The value of a rule as a claim-derived string: strings as they are, integers and numbers as decimals. */
export function asText(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (typeof v === 'bigint') return v.toString();
  if (typeof v === 'number' && Number.isFinite(v)) return Number.isInteger(v) ? v.toFixed(0) : String(v);
  if (typeof v === 'boolean') return String(v);
  return undefined;
}
