import type { Clock } from '../clock.js';
import { OAuthError } from '../errors.js';
import type { Store } from '../store/store.js';

/** Per-client request budgets at the token endpoint: token buckets, refilled continuously. */
export interface RateLimiter {
  /** Takes one request from `key`'s bucket; 0 when allowed, else the whole seconds to wait. */
  take(key: string): number | Promise<number>;
}

/** Buckets in this process's memory: the limiter of a single node. Bounded: idle buckets are dropped. */
export class MemoryRateLimiter implements RateLimiter {
  readonly #buckets = new Map<string, { tokens: number; at: number }>();
  readonly #rate: number;
  readonly #burst: number;
  readonly #clock: Clock;

  constructor(ratePerSecond: number, burst: number, clock: Clock) {
    this.#rate = ratePerSecond;
    this.#burst = burst;
    this.#clock = clock;
  }

  take(key: string): number {
    const now = this.#clock.now();
    let b = this.#buckets.get(key);
    if (!b) {
      if (this.#buckets.size >= 100_000) this.#sweep(now);
      b = { tokens: this.#burst, at: now };
      this.#buckets.set(key, b);
    }
    b.tokens = Math.min(this.#burst, b.tokens + ((now - b.at) / 1000) * this.#rate);
    b.at = now;
    if (b.tokens < 1) return Math.max(1, Math.ceil((1 - b.tokens) / this.#rate));
    b.tokens -= 1;
    return 0;
  }

  #sweep(now: number): void {
    for (const [k, b] of this.#buckets)
      if (now - b.at > (this.#burst / this.#rate) * 1000) this.#buckets.delete(k);
  }
}

/**
 * Buckets in the store, shared by every node on it: a client spreading its requests over N nodes gets
 * the budget once, not N times. One statement per request (no write lock); the store's `prune` drops
 * buckets that have refilled. When the store is unreachable the request fails as unavailable.
 */
export class StoreRateLimiter implements RateLimiter {
  readonly #store: Pick<Store, 'rateLimit'>;
  readonly #rate: number;
  readonly #burst: number;
  readonly #clock: Clock;

  constructor(store: Pick<Store, 'rateLimit'>, ratePerSecond: number, burst: number, clock: Clock) {
    this.#store = store;
    this.#rate = ratePerSecond;
    this.#burst = burst;
    this.#clock = clock;
  }

  take(key: string): Promise<number> {
    return this.#store.rateLimit(`client:${key}`, this.#rate, this.#burst, this.#clock.now());
  }
}

/**
 * Takes one request of `workloadId` from its bucket (token requests and task opens share it); refuses
 * with 429 and `Retry-After` past it.
 */
export async function takeTokenRequest(
  limiter: RateLimiter,
  workloadId: string,
  what = 'token requests',
): Promise<void> {
  const wait = await limiter.take(workloadId);
  if (wait > 0) {
    throw new OAuthError('temporarily_unavailable', `too many ${what} for this client`, {
      status: 429,
      headers: { 'retry-after': String(wait) },
      detail: { reason: 'rate_limited', workload: workloadId },
    });
  }
}
