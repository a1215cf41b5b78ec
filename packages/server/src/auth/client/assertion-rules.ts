import { Paths, type WritContext } from '../../context.js';
import type { AssertionRules } from './private-key-jwt.js';

/** Rules for client assertions sent to any of Writ's endpoints: `aud` is the issuer or that endpoint. */
export function assertionRules(ctx: WritContext, endpoint: string = Paths.token): AssertionRules {
  const s = ctx.settings;
  return {
    audiences: [s.issuer, `${s.issuer}${endpoint}`],
    algorithms: s.clientAssertion.algorithms,
    maxLifetime: s.clientAssertion.maxLifetime,
    clockSkew: s.clientAssertion.clockSkew,
    maxBytes: s.limits.tokenBytes,
    nowMs: ctx.clock.now(),
  };
}
