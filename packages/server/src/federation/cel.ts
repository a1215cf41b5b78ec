import { type CelEnv, CelScalar, celEnv, isCelError, mapType, parse, plan } from '@bufbuild/cel';
import { strings } from '@bufbuild/cel/ext';

/** Claim rules are CEL over one variable, `claims`: the verified token's claims set. */
const env: CelEnv = celEnv({
  variables: { claims: mapType(CelScalar.STRING, CelScalar.DYN) },
  funcs: strings,
});

const MAX_EXPRESSION = 2048;
const VARIABLES = new Set(['claims']);

/** A claim rule compiled once at load. */
export type ClaimProgram = (claims: Record<string, unknown>) => unknown;

/**
 * Compiles a CEL expression over `claims`; throws an Error naming the problem (syntax, an identifier
 * other than `claims` or a comprehension variable, length). Evaluation never throws: a CEL error
 * (a missing field, a type mismatch) comes back as `undefined`.
 */
export function compileClaimRule(source: string): ClaimProgram {
  if (source.length === 0 || source.length > MAX_EXPRESSION)
    throw new Error(`must be a CEL expression of 1 to ${MAX_EXPRESSION} characters`);
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(source);
  } catch (err) {
    throw new Error(`CEL syntax error: ${(err as Error).message.split('\n')[0]}`);
  }
  const unknown = unknownIdentifier(parsed.expr, new Set());
  if (unknown !== undefined)
    throw new Error(`CEL: unknown identifier "${unknown}" (claim rules read only \`claims\`)`);
  const run = plan(env, parsed);
  return (claims) => {
    try {
      const v = run({ claims } as never);
      return isCelError(v) ? undefined : v;
    } catch {
      return undefined;
    }
  };
}

/** The value of a rule as a claim-derived string: strings as they are, integers and numbers as decimals. */
export function asText(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (typeof v === 'bigint') return v.toString();
  if (typeof v === 'number' && Number.isFinite(v)) return Number.isInteger(v) ? v.toFixed(0) : String(v);
  if (typeof v === 'boolean') return String(v);
  return undefined;
}

interface ExprNode {
  exprKind: { case: string | undefined; value?: unknown };
}

/** The first free identifier that is not a known variable, walking the parsed expression. */
function unknownIdentifier(e: ExprNode | undefined, bound: ReadonlySet<string>): string | undefined {
  if (!e) return undefined;
  const k = e.exprKind;
  const v = k.value as Record<string, unknown> | undefined;
  switch (k.case) {
    case 'identExpr': {
      const name = (v as { name: string }).name;
      return VARIABLES.has(name) || bound.has(name) ? undefined : name;
    }
    case 'selectExpr':
      return unknownIdentifier(v?.['operand'] as ExprNode, bound);
    case 'callExpr': {
      const target = unknownIdentifier(v?.['target'] as ExprNode | undefined, bound);
      if (target !== undefined) return target;
      for (const a of (v?.['args'] as ExprNode[]) ?? []) {
        const u = unknownIdentifier(a, bound);
        if (u !== undefined) return u;
      }
      return undefined;
    }
    case 'listExpr':
      for (const a of (v?.['elements'] as ExprNode[]) ?? []) {
        const u = unknownIdentifier(a, bound);
        if (u !== undefined) return u;
      }
      return undefined;
    case 'structExpr':
      for (const entry of (v?.['entries'] as Array<Record<string, unknown>>) ?? []) {
        const keyKind = entry['keyKind'] as { case: string; value: unknown } | undefined;
        if (keyKind?.case === 'mapKey') {
          const u = unknownIdentifier(keyKind.value as ExprNode, bound);
          if (u !== undefined) return u;
        }
        const u = unknownIdentifier(entry['value'] as ExprNode, bound);
        if (u !== undefined) return u;
      }
      return undefined;
    case 'comprehensionExpr': {
      const c = v as Record<string, unknown>;
      const inner = new Set(bound);
      for (const n of [c['iterVar'], c['iterVar2'], c['accuVar']])
        if (typeof n === 'string' && n) inner.add(n);
      for (const part of ['iterRange', 'accuInit'])
        if (unknownIdentifier(c[part] as ExprNode, bound) !== undefined)
          return unknownIdentifier(c[part] as ExprNode, bound);
      for (const part of ['loopCondition', 'loopStep', 'result']) {
        const u = unknownIdentifier(c[part] as ExprNode, inner);
        if (u !== undefined) return u;
      }
      return undefined;
    }
    default:
      return undefined;
  }
}
