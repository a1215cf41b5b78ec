import type { BundlePolicy, BundleWorkload, PolicyBundleClaims } from '../../wire/policy-bundle.js';
import type { RequestAction } from '../../wire/policy-context.js';
import type { CedarApi } from '../local-cedar.js';
import { PolicyBundleError, scopeMatches } from '../policy-bundle.js';

/** Distinct slices kept per bundle; past it they are parsed again (Cedar's ids are reused, not leaked). */
export const MAX_SLICES = 10_000;

/** A verified bundle, ready to decide: Cedar has parsed its policies, its entities are indexed. */
export interface LoadedBundle {
  claims: PolicyBundleClaims;
  effects: Map<string, 'permit' | 'forbid'>;
  workloads: Map<string, BundleWorkload>;
  slices: PolicySlices;
}

/**
 * Indexes a verified bundle and has Cedar parse the whole policy set once, so a bundle Cedar cannot
 * parse is refused now (`PolicyBundleError` `policies`), not at some decision. `prefix` names this
 * verifier's sets in Cedar's registry.
 */
export function loadBundle(api: CedarApi, claims: PolicyBundleClaims, prefix: string): LoadedBundle {
  if (claims.policies.length > 0) preparse(api, `${prefix}.all`, claims.policies);
  return {
    claims,
    effects: new Map(claims.policies.map((p) => [p.id, p.effect])),
    workloads: new Map(claims.workloads.map((w) => [w.id, w])),
    slices: new PolicySlices(api, claims.policies, prefix),
  };
}

/**
 * Per principal and action, Cedar's set of the policies whose scope can match them: a policy whose scope
 * cannot is never satisfied, so leaving it out changes no decision, and Cedar's cost grows with what it
 * is handed. Principals with the same slice share one parsed set.
 */
export class PolicySlices {
  readonly #api: CedarApi;
  readonly #policies: readonly BundlePolicy[];
  readonly #prefix: string;
  readonly #max: number;
  /** (principal, action) → the set's id; undefined: no policy can apply. */
  readonly #slices = new Map<string, string | undefined>();
  /** Policy indices → the set's id. */
  readonly #sets = new Map<string, string>();

  constructor(api: CedarApi, policies: readonly BundlePolicy[], prefix: string, max = MAX_SLICES) {
    this.#api = api;
    this.#policies = policies;
    this.#prefix = prefix;
    this.#max = max;
  }

  /** The id of Cedar's set for `uid` asking `action`, or undefined when no policy can apply (a deny). */
  slice(uid: { type: string; id: string }, action: RequestAction): string | undefined {
    const key = JSON.stringify([uid.type, uid.id, action]);
    if (this.#slices.has(key)) return this.#slices.get(key);
    if (this.#slices.size >= this.#max) {
      this.#slices.clear();
      this.#sets.clear();
    }
    const picked: BundlePolicy[] = [];
    const indices: number[] = [];
    for (const [i, p] of this.#policies.entries()) {
      if (p.actions.includes(action) && scopeMatches(p.principal, uid)) {
        picked.push(p);
        indices.push(i);
      }
    }
    let setId: string | undefined;
    if (picked.length > 0) {
      const idsKey = indices.join(',');
      setId = this.#sets.get(idsKey);
      if (setId === undefined) {
        setId = `${this.#prefix}.s${this.#sets.size}`;
        preparse(this.#api, setId, picked);
        this.#sets.set(idsKey, setId);
      }
    }
    this.#slices.set(key, setId);
    return setId;
  }

  /** Distinct Cedar sets parsed so far. */
  get sets(): number {
    return this.#sets.size;
  }
}

function preparse(api: CedarApi, id: string, policies: readonly BundlePolicy[]): void {
  const r = api.preparsePolicySet(id, {
    staticPolicies: Object.fromEntries(policies.map((p) => [p.id, p.text])),
  });
  if (r.type === 'failure')
    throw new PolicyBundleError(
      'policies',
      `policy bundle: ${r.errors[0]?.message ?? 'policies do not parse'}`,
    );
}
