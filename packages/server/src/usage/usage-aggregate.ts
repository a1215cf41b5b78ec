/**
 * One kind of use of one token as verifiers report it, counted: the key is (jti, operation, source,
 * decision, reason); `count`, `firstSeen` and `lastSeen` aggregate every report of it.
 */
export interface UsageAggregate {
  jti: string;
  sub: string;
  tid: string | null;
  /** Method and route, e.g. `GET /reports/:id`. */
  operation: string;
  /** The caller's address as the verifier saw it. */
  source: string;
  decision: 'allow' | 'deny';
  /** Why the use was denied (`revoked`, `expired`, …); empty when allowed. */
  reason: string;
  /** The verifier workload that reported the latest use. */
  reporter: string;
  userAgent: string | null;
  count: number;
  /** Milliseconds. */
  firstSeen: number;
  lastSeen: number;
}
