import { TokenError } from '@writ/sdk/verifier';
import { adminAudience, type RequestInfo, type WritContext } from '../context.js';
import type { Operator } from '../registry/operator.js';
import { authenticateBearer, claimedAudience, verifyBearer } from './bearer.js';
import { admitCaller } from './budget.js';
import { tokenRefusal } from './challenge.js';

/**
 * Why an operator may not act now, or undefined when it may: an operator that names a person acts only
 * while that person is known and active (docs/governance.md, "Operators are people"). Checked when it
 * asks for an admin token and again at every admin call, so deprovisioning ends its sessions at once.
 */
export function operatorPersonProblem(
  ctx: Pick<WritContext, 'registry'>,
  operator: Operator,
): string | undefined {
  if (operator.person === undefined) return undefined;
  const person = ctx.registry.people().person(operator.person);
  if (!person)
    return `the person "${operator.person}" this operator belongs to is not known (people/ or SCIM)`;
  if (!person.active)
    return `the person "${operator.person}" this operator belongs to is ${person.deleted ? 'deprovisioned' : 'not active'}: an identity provider or people/ must make them active again`;
  return undefined;
}

/** Operators appear as `operator:<name>` in tokens and audit events. */
export const operatorSubject = (name: string): string => `operator:${name}`;
/** The token class of admin tokens (`POST /admin/v1/token`). */
export const ADMIN_CLASS = 'admin';

/**
 * Authenticates an operator: a Writ token for the admin audience, checked as every Writ token is
 * (`verifyBearer`: with the DPoP scheme and a fresh proof by the key of its `cnf.jkt` over this method,
 * URL and token), of the admin class, held by an operator still registered, and bound to a key that
 * operator still has: an unbound admin token is refused whatever the scheme, and removing or replacing an
 * operator's key ends the sessions it opened at their next call. Refusals are the same 401 challenge as
 * at every other endpoint, the error in the `DPoP` challenge.
 */
export async function authenticateAdmin(
  ctx: WritContext,
  req: RequestInfo,
): Promise<{ operator: string; jti: string }> {
  const { claims } = await verifyBearer(ctx, req, adminAudience(ctx.settings.issuer));
  const name = claims.sub.startsWith('operator:') ? claims.sub.slice('operator:'.length) : undefined;
  const operator = name === undefined ? undefined : ctx.registry.operator(name);
  const refuse = (err: TokenError) => tokenRefusal(ctx, err, 'DPoP', true);
  if (claims.cls !== ADMIN_CLASS || !operator)
    throw refuse(new TokenError('not_admin', 'not an admin token'));
  const jkt = claims.cnf?.jkt;
  if (jkt === undefined)
    throw refuse(
      new TokenError(
        'admin_not_bound',
        'admin tokens must be DPoP-bound to the operator key: get a new one with a DPoP proof',
      ),
    );
  if (!operator.verificationKeys.some((k) => k.thumbprint === jkt))
    throw refuse(
      new TokenError(
        'admin_key_unregistered',
        'the operator key this admin token is bound to is no longer registered: get a new one with a current key',
      ),
    );
  const inactive = operatorPersonProblem(ctx, operator);
  if (inactive !== undefined) throw refuse(new TokenError('operator_person_inactive', inactive));
  await admitCaller(ctx, req, claims.sub);
  return { operator: claims.sub, jti: claims.jti };
}

/** Who called an endpoint that serves operators and workloads alike (Shared Signals, AuthZEN). */
export type OperatorOrWorkload = { kind: 'operator'; id: string } | { kind: 'workload'; id: string };

/**
 * An operator's admin token or a workload's Writ token for `audience`: the audience the token claims
 * picks which check applies, and that check verifies it fully.
 */
export async function authenticateOperatorOrBearer(
  ctx: WritContext,
  req: RequestInfo,
  audience: string,
): Promise<OperatorOrWorkload> {
  if (claimedAudience(req.authorization) === adminAudience(ctx.settings.issuer))
    return { kind: 'operator', id: (await authenticateAdmin(ctx, req)).operator };
  return { kind: 'workload', id: (await authenticateBearer(ctx, req, audience)).clientId };
}
