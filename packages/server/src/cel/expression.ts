import { type CelEnv, CelScalar, celEnv, isCelError, mapType, parse, plan } from '@bufbuild/cel';
import { strings } from '@bufbuild/cel/ext';
import { compileFast, ERROR, type ExprNode, Unsupported } from './fast-eval.js';

/**
 * CEL expressions over a few map-typed variables, compiled once: claim rules of trusted issuers read
 * `claims`; detection rules read `event`, `baseline`, `token` and `workload`.
 */
export interface CompiledExpression {
  /** Evaluates; never throws: a CEL error (a missing field, a type mismatch) comes back as `undefined`. */
  run(variables: Record<string, unknown>): unknown;
  /** The variables the expression reads. */
  reads: ReadonlySet<string>;
}

const envs = new Map<string, CelEnv>();

function envFor(variables: readonly string[]): CelEnv {
  const key = variables.join(',');
  let env = envs.get(key);
  if (!env) {
    env = celEnv({
      variables: Object.fromEntries(variables.map((v) => [v, mapType(CelScalar.STRING, CelScalar.DYN)])),
      funcs: strings,
    });
    envs.set(key, env);
  }
  return env;
}

/**
 * Compiles `source`; throws an Error naming the problem (syntax, an identifier other than `variables`
 * or a comprehension variable, length). With `fast`, on the direct evaluator (fast-eval.ts: numbers as
 * one type), and an expression outside its part is refused, naming what it uses; without, on the
 * general CEL planner.
 */
export function compileExpression(
  source: string,
  variables: readonly string[],
  o: { maxLength?: number; fast?: boolean } = {},
): CompiledExpression {
  const maxLength = o.maxLength ?? 2048;
  if (source.length === 0 || source.length > maxLength)
    throw new Error(`must be a CEL expression of 1 to ${maxLength} characters`);
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(source);
  } catch (err) {
    throw new Error(`CEL syntax error: ${(err as Error).message.split('\n')[0]}`);
  }
  const reads = new Set<string>();
  const unknown = unknownIdentifier(parsed.expr, new Set(), (name) => {
    if (!variables.includes(name)) return false;
    reads.add(name);
    return true;
  });
  if (unknown !== undefined)
    throw new Error(
      `CEL: unknown identifier "${unknown}" (this expression reads only ${variables.map((v) => `\`${v}\``).join(', ')})`,
    );
  if (o.fast) {
    let fast: ReturnType<typeof compileFast>;
    try {
      fast = compileFast(parsed.expr as ExprNode);
    } catch (err) {
      if (err instanceof Unsupported) throw new Error(`CEL: ${err.message}`);
      throw err;
    }
    return {
      reads,
      run(values) {
        const v = fast(values);
        return v === ERROR ? undefined : v;
      },
    };
  }
  const program = plan(envFor(variables), parsed);
  return {
    reads,
    run(values) {
      try {
        const v = program(values as never);
        return isCelError(v) ? undefined : v;
      } catch {
        return undefined;
      }
    },
  };
}

/**
 * Walks the parsed expression: each free identifier (one no comprehension binds) goes to `known`; the
 * first that `known` rejects is returned.
 */
function unknownIdentifier(
  e: ExprNode | undefined,
  bound: ReadonlySet<string>,
  known: (name: string) => boolean,
): string | undefined {
  if (!e) return undefined;
  const k = e.exprKind;
  const v = k.value as Record<string, unknown> | undefined;
  switch (k.case) {
    case 'identExpr': {
      const name = (v as { name: string }).name;
      return bound.has(name) || known(name) ? undefined : name;
    }
    case 'selectExpr':
      return unknownIdentifier(v?.['operand'] as ExprNode, bound, known);
    case 'callExpr': {
      const target = unknownIdentifier(v?.['target'] as ExprNode | undefined, bound, known);
      if (target !== undefined) return target;
      for (const a of (v?.['args'] as ExprNode[]) ?? []) {
        const u = unknownIdentifier(a, bound, known);
        if (u !== undefined) return u;
      }
      return undefined;
    }
    case 'listExpr':
      for (const a of (v?.['elements'] as ExprNode[]) ?? []) {
        const u = unknownIdentifier(a, bound, known);
        if (u !== undefined) return u;
      }
      return undefined;
    case 'structExpr':
      for (const entry of (v?.['entries'] as Array<Record<string, unknown>>) ?? []) {
        const keyKind = entry['keyKind'] as { case: string; value: unknown } | undefined;
        if (keyKind?.case === 'mapKey') {
          const u = unknownIdentifier(keyKind.value as ExprNode, bound, known);
          if (u !== undefined) return u;
        }
        const u = unknownIdentifier(entry['value'] as ExprNode, bound, known);
        if (u !== undefined) return u;
      }
      return undefined;
    case 'comprehensionExpr': {
      const c = v as Record<string, unknown>;
      const inner = new Set(bound);
      for (const n of [c['iterVar'], c['iterVar2'], c['accuVar']])
        if (typeof n === 'string' && n) inner.add(n);
      for (const part of ['iterRange', 'accuInit']) {
        const u = unknownIdentifier(c[part] as ExprNode, bound, known);
        if (u !== undefined) return u;
      }
      for (const part of ['loopCondition', 'loopStep', 'result']) {
        const u = unknownIdentifier(c[part] as ExprNode, inner, known);
        if (u !== undefined) return u;
      }
      return undefined;
    }
    default:
      return undefined;
  }
}
