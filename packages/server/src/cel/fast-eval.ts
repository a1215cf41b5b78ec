import { RE2JS } from '@bufbuild/re2';

/**
 * A direct evaluator for the part of CEL detection rules use: literals, variables and field selection,
 * `has()`, index, `!`, `-`, `&&`, `||`, `? :`, comparisons, arithmetic, `in` and the string functions
 * `size`, `startsWith`, `endsWith`, `contains`, `matches` (RE2, as CEL's). It walks the parsed expression once into closures, so
 * evaluating reads plain JavaScript objects without converting them to CEL values: about a hundred times
 * faster than the general planner, which detection needs on every usage record.
 *
 * Semantics follow CEL's where they matter for rules: `&&` and `||` absorb an error when the other side
 * decides (false && error is false), any other error makes the whole value an error (the rule does not
 * fire), values of different types are unequal but cannot be ordered (`<` between them is an error), and
 * a missing field is an error (test with `has()`).
 * Where it is more lenient, it is about numbers: CEL's int, uint and double are one number type here, so
 * `3 * baseline.hosts_usual` works as written. An expression outside this part (macros such as
 * `exists`, map literals, other functions) is refused by `compileFast`, naming what it uses: handing it
 * to the general planner would change how its numbers behave (`3 * baseline.hosts_usual` is an error
 * there) and make it a hundred times slower, both without a word.
 */

/** What an evaluation yields: a value, or `ERROR`. */
export const ERROR: unique symbol = Symbol('cel error');
type Value = unknown;
type Evaluator = (vars: Record<string, unknown>) => Value;

/** A node of the parsed expression (`@bufbuild/cel`'s `Expr`), as far as these walks read it. */
export interface ExprNode {
  exprKind: { case: string | undefined; value?: unknown };
}

const PART =
  'fields, has(), !, &&, ||, ?:, comparisons, arithmetic, in, size, startsWith, endsWith, contains, matches';

/** An expression `compileFast` does not run: the message names what it uses, or what is wrong with it. */
export class Unsupported extends Error {
  constructor(what: string, outside = true) {
    super(outside ? `${what} is outside the part of CEL evaluated here (${PART})` : what);
    this.name = 'Unsupported';
  }
}

/** Compiles a parsed expression; throws `Unsupported` when it uses something outside the part above. */
export function compileFast(expr: ExprNode): Evaluator {
  return build(expr);
}

function build(e: ExprNode): Evaluator {
  const k = e.exprKind;
  const v = k.value as Record<string, unknown>;
  switch (k.case) {
    case 'constExpr': {
      const c = (v['constantKind'] as { case: string; value: unknown }) ?? { case: '' };
      let value: unknown;
      switch (c.case) {
        case 'int64Value':
        case 'uint64Value':
          value = Number(c.value as bigint);
          break;
        case 'doubleValue':
        case 'stringValue':
        case 'boolValue':
          value = c.value;
          break;
        case 'nullValue':
          value = null;
          break;
        default:
          throw new Unsupported(c.case === 'bytesValue' ? 'a bytes literal' : 'this literal');
      }
      return () => value;
    }
    case 'identExpr': {
      const name = v['name'] as string;
      return (vars) => (Object.hasOwn(vars, name) ? vars[name] : ERROR);
    }
    case 'selectExpr': {
      const operand = build(v['operand'] as ExprNode);
      const field = v['field'] as string;
      if (v['testOnly'] === true)
        return (vars) => {
          const o = operand(vars);
          return isObject(o) ? Object.hasOwn(o, field) : ERROR;
        };
      return (vars) => {
        const o = operand(vars);
        return isObject(o) && Object.hasOwn(o, field) ? o[field] : ERROR;
      };
    }
    case 'listExpr': {
      const items = ((v['elements'] as ExprNode[]) ?? []).map(build);
      return (vars) => {
        const out: unknown[] = [];
        for (const item of items) {
          const x = item(vars);
          if (x === ERROR) return ERROR;
          out.push(x);
        }
        return out;
      };
    }
    case 'callExpr':
      return call(
        v['function'] as string,
        v['target'] as ExprNode | undefined,
        (v['args'] as ExprNode[]) ?? [],
      );
    case 'structExpr':
      return unsupported('a map literal');
    case 'comprehensionExpr':
      return unsupported('a macro over a list or map (all, exists, exists_one, filter, map)');
    default:
      return unsupported('this expression');
  }
}

function unsupported(what: string): never {
  throw new Unsupported(what);
}

function call(fn: string, targetNode: ExprNode | undefined, argNodes: ExprNode[]): Evaluator {
  const args = argNodes.map(build);
  const target = targetNode ? build(targetNode) : undefined;
  const [a, b, c] = args;
  switch (fn) {
    case '_&&_':
      return (vars) => {
        const x = a!(vars);
        if (x === false) return false;
        const y = b!(vars);
        if (y === false) return false;
        if (x === true && y === true) return true;
        return ERROR;
      };
    case '_||_':
      return (vars) => {
        const x = a!(vars);
        if (x === true) return true;
        const y = b!(vars);
        if (y === true) return true;
        if (x === false && y === false) return false;
        return ERROR;
      };
    case '!_':
      return (vars) => {
        const x = a!(vars);
        return typeof x === 'boolean' ? !x : ERROR;
      };
    case '-_':
      return (vars) => {
        const x = a!(vars);
        return typeof x === 'number' ? -x : ERROR;
      };
    case '_?_:_':
      return (vars) => {
        const x = a!(vars);
        if (x === true) return b!(vars);
        if (x === false) return c!(vars);
        return ERROR;
      };
    case '_==_':
      return (vars) => equal(a!(vars), b!(vars));
    case '_!=_':
      return (vars) => {
        const r = equal(a!(vars), b!(vars));
        return r === ERROR ? ERROR : !r;
      };
    case '_<_':
      return compare(a!, b!, (d) => d < 0);
    case '_<=_':
      return compare(a!, b!, (d) => d <= 0);
    case '_>_':
      return compare(a!, b!, (d) => d > 0);
    case '_>=_':
      return compare(a!, b!, (d) => d >= 0);
    case '_+_':
      return (vars) => {
        const x = a!(vars);
        const y = b!(vars);
        if (typeof x === 'number' && typeof y === 'number') return x + y;
        if (typeof x === 'string' && typeof y === 'string') return x + y;
        if (Array.isArray(x) && Array.isArray(y)) return [...x, ...y];
        return ERROR;
      };
    case '_-_':
      return arithmetic(a!, b!, (x, y) => x - y);
    case '_*_':
      return arithmetic(a!, b!, (x, y) => x * y);
    case '_/_':
      return arithmetic(a!, b!, (x, y) => (y === 0 ? ERROR : x / y));
    case '_%_':
      return arithmetic(a!, b!, (x, y) => (y === 0 ? ERROR : x % y));
    case '@in':
      return (vars) => {
        const x = a!(vars);
        const list = b!(vars);
        if (x === ERROR) return ERROR;
        if (Array.isArray(list)) {
          for (const item of list) if (equal(x, item) === true) return true;
          return false;
        }
        // A map's keys are strings here: a key of another type is not in it (CEL: false, no error).
        if (isObject(list)) return typeof x === 'string' && Object.hasOwn(list, x);
        return ERROR;
      };
    case '_[_]':
      return (vars) => {
        const o = a!(vars);
        const key = b!(vars);
        if (Array.isArray(o))
          return typeof key === 'number' && Number.isInteger(key) && key >= 0 && key < o.length
            ? o[key]
            : ERROR;
        if (isObject(o) && typeof key === 'string' && Object.hasOwn(o, key)) return o[key];
        return ERROR;
      };
    case 'size': {
      // `size(x)` or `x.size()`; any other arity is no overload (the planner's error at evaluation).
      const of = target ? (args.length === 0 ? target : undefined) : args.length === 1 ? a : undefined;
      if (!of) throw new Unsupported('size() takes one value, as size(x) or x.size()', false);
      return (vars) => {
        const x = of(vars);
        if (typeof x === 'string') return [...x].length;
        if (Array.isArray(x)) return x.length;
        if (isObject(x)) return Object.keys(x).length;
        return ERROR;
      };
    }
    case 'startsWith':
    case 'endsWith':
    case 'contains': {
      if (!target || args.length !== 1)
        throw new Unsupported(`${fn}() takes one string, as s.${fn}(t)`, false);
      return (vars) => {
        const s = target(vars);
        const t = a!(vars);
        if (typeof s !== 'string' || typeof t !== 'string') return ERROR;
        return fn === 'startsWith' ? s.startsWith(t) : fn === 'endsWith' ? s.endsWith(t) : s.includes(t);
      };
    }
    case 'matches':
      return matches(target, args, literalString(argNodes[0]));
    default:
      return unsupported(`the function ${fn}()`);
  }
}

/**
 * `s.matches(re)`: RE2, unanchored, as CEL (and the planner) have it; linear in the input, so a pattern
 * cannot make a long field slow. A literal pattern is compiled once, here, and refused if it is invalid.
 */
function matches(target: Evaluator | undefined, args: Evaluator[], literal: string | undefined): Evaluator {
  const [p] = args;
  if (!target || !p || args.length !== 1)
    throw new Unsupported('matches() takes one pattern, as s.matches(re)', false);
  if (literal !== undefined) {
    let re: RE2JS;
    try {
      re = RE2JS.compile(literal);
    } catch (err) {
      throw new Unsupported(`matches(): ${(err as Error).message}`, false);
    }
    return (vars) => {
      const s = target(vars);
      return typeof s === 'string' ? re.test(s) : ERROR;
    };
  }
  return (vars) => {
    const s = target(vars);
    const pattern = p(vars);
    if (typeof s !== 'string' || typeof pattern !== 'string') return ERROR;
    try {
      return RE2JS.compile(pattern).test(s);
    } catch {
      return ERROR;
    }
  };
}

function literalString(e: ExprNode | undefined): string | undefined {
  if (e?.exprKind.case !== 'constExpr') return undefined;
  const c = (e.exprKind.value as { constantKind?: { case: string; value: unknown } }).constantKind;
  return c?.case === 'stringValue' ? (c.value as string) : undefined;
}

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

function equal(x: Value, y: Value): boolean | typeof ERROR {
  if (x === ERROR || y === ERROR) return ERROR;
  // CEL: values of different types are not equal (no error); ordering them is an error.
  if (x === null || y === null) return x === y;
  if (typeof x !== typeof y) return false;
  if (Array.isArray(x) || Array.isArray(y)) {
    if (!Array.isArray(x) || !Array.isArray(y)) return false;
    if (x.length !== y.length) return false;
    for (let i = 0; i < x.length; i++) {
      const r = equal(x[i], y[i]);
      if (r !== true) return r;
    }
    return true;
  }
  if (typeof x === 'object') {
    // Two maps: the same keys, and equal values under each.
    const mx = x as Record<string, unknown>;
    const my = y as Record<string, unknown>;
    const keys = Object.keys(mx);
    if (keys.length !== Object.keys(my).length) return false;
    for (const k of keys) {
      if (!Object.hasOwn(my, k)) return false;
      const r = equal(mx[k], my[k]);
      if (r !== true) return r;
    }
    return true;
  }
  return x === y;
}

function compare(a: Evaluator, b: Evaluator, test: (d: number) => boolean): Evaluator {
  return (vars) => {
    const x = a(vars);
    const y = b(vars);
    // NaN is unordered: every comparison with it is false. Not `x - y`: Infinity - Infinity is NaN.
    if (typeof x === 'number' && typeof y === 'number')
      return Number.isNaN(x) || Number.isNaN(y) ? false : test(x < y ? -1 : x > y ? 1 : 0);
    if (typeof x === 'string' && typeof y === 'string') return test(x < y ? -1 : x > y ? 1 : 0);
    if (typeof x === 'boolean' && typeof y === 'boolean') return test(Number(x) - Number(y));
    return ERROR;
  };
}

function arithmetic(
  a: Evaluator,
  b: Evaluator,
  op: (x: number, y: number) => number | typeof ERROR,
): Evaluator {
  return (vars) => {
    const x = a(vars);
    const y = b(vars);
    if (typeof x !== 'number' || typeof y !== 'number') return ERROR;
    const r = op(x, y);
    return r === ERROR || !Number.isFinite(r) ? ERROR : r;
  };
}
