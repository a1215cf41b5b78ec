/** What a take of several requests from a shared rate bucket gave (`Store.leaseRate`). */
export interface RateLease {
  /** Whole requests taken, 0 up to the number asked for; fewer only when the bucket had no more. */
  granted: number;
  /** The whole seconds until the bucket holds one more request (at least 1); 0 while it does. */
  wait: number;
}

/** A lease from the row a take left: `taken` requests, `tokens` still in the bucket. */
export function leaseAnswer(taken: number, tokens: number, ratePerSecond: number): RateLease {
  return { granted: taken, wait: tokens >= 1 ? 0 : Math.max(1, Math.ceil((1 - tokens) / ratePerSecond)) };
}
