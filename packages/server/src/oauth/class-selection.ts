import { invalidScope, invalidTarget } from '../errors.js';
import type { Registry } from '../registry/registry.js';
import type { TokenClass } from '../registry/token-class.js';

export interface Grantable {
  tokenClass: TokenClass;
  scopes: string[];
}

/**
 * Picks the first of the workload's classes (in declared order) that allows the audience and every
 * requested scope. With no scope requested, the class's default scopes apply.
 * Audience outside every class: `invalid_target`; scope outside the classes that allow it: `invalid_scope`.
 */
export function selectClass(
  classNames: readonly string[],
  registry: Registry,
  audience: string,
  requested: string[] | undefined,
): Grantable {
  const classes = classNames
    .map((n) => registry.tokenClass(n))
    .filter((c): c is TokenClass => c !== undefined);
  const forAudience = classes.filter((c) => c.audiences.includes(audience));
  if (forAudience.length === 0) {
    throw invalidTarget('the requested audience is not allowed for this client', {
      reason: 'audience_not_allowed',
      audience: audience.slice(0, 256),
    });
  }
  for (const c of forAudience) {
    const scopes = requested ?? c.defaultScopes;
    if (scopes.length > 0 && scopes.every((s) => c.scopes.includes(s))) return { tokenClass: c, scopes };
  }
  if (requested === undefined)
    throw invalidScope('a scope is required (the class has no default scopes)', { reason: 'scope_required' });
  throw invalidScope('the requested scope is not allowed for this client and audience', {
    reason: 'scope_not_allowed',
    scope: requested.join(' ').slice(0, 512),
  });
}

/** Splits a `scope` parameter (RFC 6749 §3.3), dropping duplicates. */
export function parseScope(scope: string | undefined): string[] | undefined {
  if (scope === undefined) return undefined;
  const list = [...new Set(scope.split(' ').filter((s) => s.length > 0))];
  if (list.length === 0) return undefined;
  if (list.length > 50) throw invalidScope('too many scopes', { reason: 'too_many_scopes' });
  return list;
}
