import type { Clock } from '../clock.js';
import type { Store } from '../store/store.js';

/** Request budgets (per client, per source address): token buckets, refilled continuously. */
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
    const b = this.#refill(key);
    if (b.tokens < 1) return this.#waitFor(b);
    b.tokens -= 1;
    return 0;
  }

  /** Like `take` but takes nothing: 0 while `key` has a request left, else the whole seconds to wait. */
  wait(key: string): number {
    const b = this.#buckets.get(key);
    return b === undefined ? 0 : this.#waitFor(this.#refill(key));
  }

  #refill(key: string): { tokens: number; at: number } {
    const now = this.#clock.now();
    let b = this.#buckets.get(key);
    if (!b) {
      if (this.#buckets.size >= 100_000) this.#sweep(now);
      b = { tokens: this.#burst, at: now };
      this.#buckets.set(key, b);
    }
    // A clock set back (a test's, or a corrected system clock) refills nothing and charges nothing.
    b.tokens = Math.min(this.#burst, b.tokens + (Math.max(0, now - b.at) / 1000) * this.#rate);
    b.at = Math.max(b.at, now);
    return b;
  }

  #waitFor(b: { tokens: number }): number {
    return b.tokens < 1 ? Math.max(1, Math.ceil((1 - b.tokens) / this.#rate)) : 0;
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
