import { Paths, type WritContext } from '../../context.js';
import type { AssertionRules } from './private-key-jwt.js';

/**
 * Rules for client assertions sent to any of Writ's endpoints. `aud` may be what RFC 7523 §3 allows to
 * identify the authorization server: the issuer identifier or the token endpoint URL, at every endpoint
 * (a client library that always puts the token endpoint works at introspection, revocation and tasks
 * too), or the URL of the endpoint the assertion is sent to. Accepting the token endpoint URL elsewhere
 * opens nothing the issuer identifier did not: either names this server, not one endpoint, and every
 * assertion `jti` is spent once whichever endpoint it reaches.
 */
export function assertionRules(ctx: WritContext, endpoint: string = Paths.token): AssertionRules {
  const s = ctx.settings;
  return {
    audiences: [...new Set([s.issuer, `${s.issuer}${Paths.token}`, `${s.issuer}${endpoint}`])],
    algorithms: s.clientAssertion.algorithms,
    maxLifetime: s.clientAssertion.maxLifetime,
    clockSkew: s.clientAssertion.clockSkew,
    maxBytes: s.limits.tokenBytes,
    nowMs: ctx.clock.now(),
    ...(endpoint === Paths.adminToken ? { party: 'operator' as const } : {}),
  };
}
