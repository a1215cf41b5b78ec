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

/** An aggregate's key, in the order aggregates are paged by: (jti, operation, source, decision, reason). */
export type UsageKey = readonly [
  jti: string,
  operation: string,
  source: string,
  decision: string,
  reason: string,
];

/** The key of an aggregate (`scanUsage` pages continue after the last one read). */
export const usageKey = (u: UsageAggregate): UsageKey => [u.jti, u.operation, u.source, u.decision, u.reason];

/** What `scanUsage` reads: aggregates last seen at or after `lastSeenFrom` (ms), after `after` in key order. */
export interface UsageScan {
  lastSeenFrom: number;
  /** Only aggregates of this decision. */
  decision?: 'allow' | 'deny';
  after?: UsageKey;
  limit: number;
}
