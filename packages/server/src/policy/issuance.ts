import { isIP } from 'node:net';
import { GrantType } from '@writ/sdk/wire';
import type { RequestInfo, WritContext } from '../context.js';
import { OAuthError } from '../errors.js';
import { federationContext } from '../federation/presets.js';
import type { IssueRequest } from '../oauth/issue.js';
import { countDecision } from './operations.js';
import { buildContext, type TokenAction, workloadPrincipal } from './request.js';

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
  r: IssueRequest,
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
          source_ip: sourceIp(req.ip),
          environment: workload.environment,
          task_id: r.tid ?? '',
          purpose,
          attestation: r.authMethod,
          binding: r.dpop ? 'dpop' : r.x5t !== undefined ? 'mtls' : 'bearer',
          scopes: r.scopes,
          token_class: r.tokenClass,
          grant_type: r.grantType,
          client_id: r.clientId ?? r.workloadId,
          federation: federationContext(r.federation),
        }),
      })
    : undefined;
  countDecision(ctx.metrics.registry, 'token', action, d?.decision ?? 'deny');
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

/** The caller's address as Cedar can read it; an unparseable one (never from a socket) is 0.0.0.0. */
function sourceIp(ip: string): string {
  const v = ip.startsWith('::ffff:') ? ip.slice(7) : ip;
  return isIP(v) !== 0 ? v : '0.0.0.0';
}
