import { scopeMatches } from '@writ/sdk/verifier';
import type { CompiledPolicy, EntityRef, HeadConstraint } from './compile.js';
import { ACTIONS, type PolicyAction } from './request.js';

/** Action groups of Writ's schema: `issue in token`, `read in request`, ... */
const ACTION_GROUPS: Record<PolicyAction, string[]> = {
  issue: ['token'],
  exchange: ['token'],
  renew: ['token'],
  read: ['request'],
  write: ['request'],
  export: ['request'],
  delete: ['request'],
};

export const actionGroups = (a: PolicyAction): readonly string[] => ACTION_GROUPS[a];

const key = (e: EntityRef) => `${e.type}::${e.id}`;

/**
 * Whether a head constraint can hold for `uid`. Writ's principals and APIs have no parents, so `in` is
 * `==`. The same function decides which policies go into a verifier's bundle and which a verifier
 * evaluates, so server and SDK slice alike.
 */
export const headMatches: (c: HeadConstraint, uid: EntityRef) => boolean = scopeMatches;

/** Whether an action head constraint can hold for action `a` (directly or through its group). */
export function actionMatches(c: HeadConstraint, a: PolicyAction): boolean {
  if (c.op === 'all' || c.op === 'is') return true;
  const ids = c.op === 'eq' ? [c.entity.id] : c.entities.map((e) => e.id);
  return ids.some((id) => id === a || ACTION_GROUPS[a].includes(id));
}

/** The entities a head constraint pins the request to, if it pins it at all. */
function pinned(c: HeadConstraint): EntityRef[] | undefined {
  if (c.op === 'eq') return [c.entity];
  if (c.op === 'in') return c.entities;
  if (c.op === 'is' && c.entity) return [c.entity];
  return undefined;
}

interface Bucket {
  byPrincipal: Map<string, number[]>;
  byResource: Map<string, number[]>;
  rest: number[];
}

/**
 * An index of a policy set by scope: per action, policies pinned to one principal, those pinned to one
 * resource, and the rest. `slice` returns, in source order, exactly the policies whose head can match
 * the request; the others cannot affect its decision (a policy whose head does not match is not
 * satisfied, whatever its conditions say).
 */
export class PolicyIndex {
  readonly #policies: readonly CompiledPolicy[];
  readonly #buckets = new Map<PolicyAction, Bucket>();

  constructor(policies: readonly CompiledPolicy[]) {
    this.#policies = policies;
    for (const a of ACTIONS)
      this.#buckets.set(a, { byPrincipal: new Map(), byResource: new Map(), rest: [] });
    const push = (m: Map<string, number[]>, k: string, i: number) => {
      const list = m.get(k);
      if (list) list.push(i);
      else m.set(k, [i]);
    };
    for (const [i, p] of policies.entries()) {
      for (const a of ACTIONS) {
        if (!actionMatches(p.action, a)) continue;
        const b = this.#buckets.get(a)!;
        const byP = pinned(p.principal);
        const byR = pinned(p.resource);
        if (byP) for (const e of byP) push(b.byPrincipal, key(e), i);
        else if (byR) for (const e of byR) push(b.byResource, key(e), i);
        else b.rest.push(i);
      }
    }
  }

  /** Indices (ascending) of the policies that can apply to this principal, action and resource. */
  slice(principal: EntityRef, action: PolicyAction, resource: EntityRef): number[] {
    const b = this.#buckets.get(action);
    if (!b) return [];
    const out = new Set<number>();
    const consider = (list: number[] | undefined) => {
      if (!list) return;
      for (const i of list) {
        const p = this.#policies[i]!;
        if (headMatches(p.principal, principal) && headMatches(p.resource, resource)) out.add(i);
      }
    };
    consider(b.byPrincipal.get(key(principal)));
    consider(b.byResource.get(key(resource)));
    consider(b.rest);
    return [...out].sort((x, y) => x - y);
  }
}
