import type { Clock } from '../clock.js';

/** Token buckets per client, refilled continuously. Bounded: idle buckets are dropped. */
export class RateLimiter {
  readonly #buckets = new Map<string, { tokens: number; at: number }>();
  readonly #rate: number;
  readonly #burst: number;
  readonly #clock: Clock;

  constructor(ratePerSecond: number, burst: number, clock: Clock) {
    this.#rate = ratePerSecond;
    this.#burst = burst;
    this.#clock = clock;
  }

  /** Takes one token; returns 0 when allowed, else the seconds to wait. */
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
