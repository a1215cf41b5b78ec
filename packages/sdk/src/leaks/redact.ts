import { findWritTokenFragments, peekToken } from './token-pattern.js';

/**
 * Log redaction of Writ access tokens: every token (or token fragment) in a string becomes
 * `[writ-token jti=<jti>]`, or `[writ-token]` when no `jti` can be read (a fragment cut before its
 * payload). The `jti` is enough to find the token in Writ's audit log and revoke it; the token is not.
 */

const MARK = '[writ-token';

/** Replaces every Writ access token in `line` by its `jti`. Strings without one come back as they are. */
export function redactWritTokens(line: string): string {
  const found = findWritTokenFragments(line);
  if (found.length === 0) return line;
  let out = '';
  let at = 0;
  for (const { index, token } of found) {
    const { jti } = peekToken(token);
    out += `${line.slice(at, index)}${jti === undefined ? `${MARK}]` : `${MARK} jti=${jti}]`}`;
    at = index + token.length;
  }
  return out + line.slice(at);
}

/**
 * `redactWritTokens` over every string in a value (objects and arrays walked, at most `maxDepth`
 * levels; deeper values and non-plain objects are left as they are). Returns the same object when
 * nothing changed, a copy otherwise.
 */
export function redactWritTokensDeep<T>(value: T, maxDepth = 8): T {
  return walk(value, maxDepth) as T;
}

function walk(value: unknown, depth: number): unknown {
  if (typeof value === 'string') return redactWritTokens(value);
  if (depth <= 0 || value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) {
    let changed = false;
    const out = value.map((v) => {
      const r = walk(v, depth - 1);
      if (r !== v) changed = true;
      return r;
    });
    return changed ? out : value;
  }
  const proto = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) {
    // An Error's message and stack are where tokens end up most (a failed request quoting its headers).
    if (value instanceof Error) {
      const message = redactWritTokens(value.message);
      const stack = value.stack === undefined ? undefined : redactWritTokens(value.stack);
      if (message === value.message && stack === value.stack) return value;
      const copy = new Error(message);
      copy.name = value.name;
      if (stack !== undefined) copy.stack = stack;
      return copy;
    }
    return value;
  }
  let out: Record<string, unknown> | undefined;
  for (const [k, v] of Object.entries(value)) {
    const r = walk(v, depth - 1);
    if (r !== v) {
      out ??= { ...(value as Record<string, unknown>) };
      out[k] = r;
    }
  }
  return out ?? value;
}

/**
 * Options to spread into `pino({...})` so no Writ token reaches a log: the message and its arguments
 * (`hooks.logMethod`) and every string of the logged object (`formatters.log`) are redacted.
 *
 * ```ts
 * const log = pino({ ...writTokenPinoOptions(), level: 'info' });
 * log.info({ headers: req.headers }, 'call failed'); // authorization: "DPoP [writ-token jti=…]"
 * ```
 */
export function writTokenPinoOptions(): {
  hooks: { logMethod(this: unknown, args: unknown[], method: (...a: unknown[]) => void): void };
  formatters: { log(object: Record<string, unknown>): Record<string, unknown> };
} {
  return {
    hooks: {
      logMethod(args, method) {
        method.apply(
          this,
          args.map((a) => (typeof a === 'string' ? redactWritTokens(a) : a)),
        );
      },
    },
    formatters: { log: (object) => redactWritTokensDeep(object) },
  };
}

/**
 * A pino `redact` censor for known paths (`pino({ redact: { paths: ['req.headers.authorization'],
 * censor: writTokenCensor } })`): the value with its tokens replaced, instead of pino's `[Redacted]`.
 */
export const writTokenCensor = (value: unknown): unknown =>
  typeof value === 'string' ? redactWritTokens(value) : value;
