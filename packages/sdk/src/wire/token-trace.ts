import type { AuditEvent } from './audit-event.js';
import type { Revocation } from './revocation.js';

/**
 * `GET /admin/v1/audit/trace/{jti}` (and `writ audit trace --json`): one token's life, issued → used
 * (where, how often, decisions) → revoked.
 */
export interface TokenTrace {
  jti: string;
  /** From the token record, or from the issuance event once the record is pruned; null when neither is left. */
  token: {
    sub: string;
    client_id: string;
    cls: string;
    aud: string;
    scope: string;
    tid: string | null;
    iat: number;
    exp: number;
    kid: string;
  } | null;
  /** The `token.issued` audit event. */
  issued: AuditEvent | null;
  uses: TokenUse[];
  totals: { allow: number; deny: number };
  /** Stored revocations whose predicate covers this token, oldest first. */
  revocations: Revocation[];
  /** Every audit event naming the token, in order (issuance, introspections, revocation by jti, …). */
  events: AuditEvent[];
  /** The above merged by time (milliseconds), for reading top to bottom. */
  timeline: Array<{ at: number; what: 'issued' | 'used' | 'revoked' | 'event'; detail: string }>;
}

/** The token's use from one source for one operation and decision, as verifiers reported it (milliseconds). */
export interface TokenUse {
  operation: string;
  source: string;
  decision: 'allow' | 'deny';
  reason: string;
  count: number;
  first_seen: number;
  last_seen: number;
  user_agent: string | null;
  reporter: string;
}
