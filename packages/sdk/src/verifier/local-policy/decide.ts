import type { PolicyContext, RequestAction } from '../../wire/policy-context.js';
import type { CedarApi } from '../local-cedar.js';
import type { LoadedBundle } from './slices.js';

/** Why local policy refused without asking the policies. */
export type LocalRefusal =
  | 'stale'
  | 'no_bundle'
  | 'bundle_outdated'
  | 'bundle_expired'
  | 'unknown_action'
  | 'invalid_context'
  | 'unknown_workload'
  | 'workload_disabled'
  | 'workload_quarantined';

export interface LocalDecision {
  decision: 'allow' | 'deny';
  /** The determining policies: satisfied permits on allow, satisfied (or failing) forbids on deny. */
  reasons: string[];
  errors: string[];
  /**
   * Set when the policies were not asked: `no_bundle`, `unknown_workload`, `workload_disabled`,
   * `invalid_context` (a risk out of range, a source address that is none)...
   */
  refusal?: LocalRefusal;
  /** The bundle the decision was made under. */
  version: number | undefined;
  policyVersion: string | undefined;
  cached: boolean;
}

/** A principal with the entity data its policies read. */
export interface LocalPrincipal {
  uid: { type: string; id: string };
  attrs: Record<string, unknown>;
  tags?: Record<string, string>;
}

/**
 * Asks Cedar about `principal` doing `action` on the bundle's API, with only the policies that can
 * apply. Cedar skips a policy that fails to evaluate; a forbid that could not be evaluated denies.
 */
export function evaluate(
  api: CedarApi,
  b: LoadedBundle,
  principal: LocalPrincipal,
  action: RequestAction,
  context: PolicyContext,
): LocalDecision {
  const base = { version: b.claims.version, policyVersion: b.claims.policy_version, cached: false };
  const setId = b.slices.slice(principal.uid, action);
  if (setId === undefined) return { decision: 'deny', reasons: [], errors: [], ...base };
  const r = b.claims.resource;
  const apiUid = { type: 'Api', id: b.claims.aud };
  const answer = api.statefulIsAuthorized({
    principal: principal.uid,
    action: { type: 'Action', id: action },
    resource: apiUid,
    context: { ...context, source_ip: { __extn: { fn: 'ip', arg: context.source_ip } } },
    preparsedPolicySetId: setId,
    entities: [
      {
        uid: principal.uid,
        attrs: principal.attrs,
        parents: [],
        ...(principal.tags ? { tags: principal.tags } : {}),
      },
      {
        uid: apiUid,
        attrs: { sensitivity: r.sensitivity, environment: r.environment, owner: r.owner },
        parents: [],
      },
      { uid: { type: 'Action', id: action }, attrs: {}, parents: [{ type: 'Action', id: 'request' }] },
    ],
  });
  if (answer.type === 'failure')
    return {
      decision: 'deny',
      reasons: [],
      errors: answer.errors.map((e) => e.message.slice(0, 300)),
      ...base,
    };
  const { decision, diagnostics } = answer.response;
  const errors = diagnostics.errors.map((e) => `${e.policyId}: ${e.error.message.slice(0, 300)}`);
  const failedForbids = diagnostics.errors
    .filter((e) => b.effects.get(e.policyId) === 'forbid')
    .map((e) => e.policyId);
  if (decision === 'allow' && failedForbids.length > 0)
    return { decision: 'deny', reasons: failedForbids.sort(), errors, ...base };
  return { decision, reasons: [...diagnostics.reason].sort(), errors, ...base };
}
