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
    audiences: audiencesAt(s.issuer, endpoint),
    algorithms: s.clientAssertion.algorithms,
    maxLifetime: s.clientAssertion.maxLifetime,
    clockSkew: s.clientAssertion.clockSkew,
    maxBytes: s.limits.tokenBytes,
    nowMs: ctx.clock.now(),
    ...(endpoint === Paths.adminToken ? { party: 'operator' as const } : {}),
  };
}

/** The accepted `aud` values per issuer and endpoint, made once rather than on every request. */
const AUDIENCES = new Map<string, readonly string[]>();

function audiencesAt(issuer: string, endpoint: string): readonly string[] {
  const key = `${issuer} ${endpoint}`;
  let audiences = AUDIENCES.get(key);
  if (!audiences) {
    audiences = Object.freeze([...new Set([issuer, `${issuer}${Paths.token}`, `${issuer}${endpoint}`])]);
    // Endpoints are a fixed set; issuers are one per server (a test process starts many): stay bounded.
    if (AUDIENCES.size >= 256) AUDIENCES.clear();
    AUDIENCES.set(key, audiences);
  }
  return audiences;
}
