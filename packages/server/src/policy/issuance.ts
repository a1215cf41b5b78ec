import { GrantType, normaliseAddress } from '@writ/sdk/wire';
import type { RequestInfo, WritContext } from '../context.js';
import { OAuthError } from '../errors.js';
import type { FederatedIdentity } from '../federation/attest.js';
import { federationContext } from '../federation/presets.js';
import { buildContext, type TokenAction, workloadPrincipal } from './request.js';

/**
 * What policy asks about an issuance, exchange or renewal: who, for which resource and class, how the
 * caller proved itself and how the token is bound. The token endpoint's issue request carries all of it.
 */
export interface IssuanceQuestion {
  grantType: string;
  /** The workload the token is for (its `sub`). */
  workloadId: string;
  /** The caller when another workload holds the token (token exchange); default `workloadId`. */
  clientId?: string | undefined;
  tokenClass: string;
  audience: string;
  scopes: string[];
  /** How the workload proved itself; `federation:<issuer>` for a token from a trusted issuer. */
  authMethod: string;
  tid?: string | undefined;
  /** Whether the token is bound to a DPoP key (its proof was checked before this question). */
  dpop?: object | undefined;
  /** `x5t#S256` of the client certificate the token is bound to. */
  x5t?: string | undefined;
  /** A later token in the same task. */
  renewal?: boolean | undefined;
  /** The task's purpose, when the grant already has the task; else it is read from the task. */
  purpose?: string | undefined;
  /** The federation token that proved the identity, whose claims policy may read. */
  federation?: FederatedIdentity | undefined;
}

/** What the audit event of an issuance records about its policy decision. */
export interface IssuanceDecision {
  decision: 'allow';
  version: string;
  /** The determining (permitting) policies. */
  policies: string[];
}

/**
 * The policy decision for one issuance, exchange or renewal, in addition to the class limits. A deny is
 * `access_denied` (HTTP 400, as RFC 6749 §5.2 sends token endpoint errors) whose description names no
 * policy; the audit event of the refusal records the version and the determining policies.
 */
export async function decideIssuance(
  ctx: WritContext,
  r: IssuanceQuestion,
  req: RequestInfo,
): Promise<IssuanceDecision> {
  const action: TokenAction =
    r.grantType === GrantType.tokenExchange ? 'exchange' : r.renewal ? 'renew' : 'issue';
  const workload = ctx.registry.workload(r.workloadId);
  const purpose = r.purpose ?? (r.tid !== undefined ? ((await ctx.store.getTask(r.tid))?.purpose ?? '') : '');
  const d = workload
    ? ctx.policy.decide({
        principal: workloadPrincipal(workload, ctx.registry.generation),
        action,
        resource: r.audience,
        context: buildContext(ctx.clock.now(), {
          // An unparseable address (never one from a socket) is 0.0.0.0.
          source_ip: normaliseAddress(req.ip) ?? '0.0.0.0',
          environment: workload.environment,
          task_id: r.tid ?? '',
          purpose,
          attestation: r.authMethod,
          binding: r.dpop ? 'dpop' : r.x5t !== undefined ? 'mtls' : 'bearer',
          scopes: r.scopes,
          token_class: r.tokenClass,
          grant_type: r.grantType,
          client_id: r.clientId ?? r.workloadId,
          // What detection made of the workload's recent behaviour (0 when nothing fired).
          risk: ctx.detection.riskOf(r.workloadId),
          federation: federationContext(r.federation),
        }),
      })
    : undefined;
  ctx.metrics.policyDecisions.inc({ endpoint: 'token', action, decision: d?.decision ?? 'deny' });
  if (d?.decision !== 'allow') {
    throw new OAuthError('access_denied', 'the request is not allowed by policy', {
      status: 400,
      detail: {
        reason: 'policy_denied',
        policy_action: action,
        policy_version: ctx.policy.version.id,
        policies: d?.reasons ?? [],
        ...(d && d.errors.length > 0 ? { policy_errors: d.errors.slice(0, 5) } : {}),
      },
    });
  }
  return { decision: 'allow', version: d.policyVersion, policies: d.reasons };
}
