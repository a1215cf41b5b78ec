/** Where a verifier records DPoP proof `jti`s; share one (a store's atomic consume) across instances. */
export interface ReplayStore {
  /** True the first time `key` is seen before `expiresAt` (seconds), false on replay. */
  consume(key: string, expiresAt: number, nowSeconds: number): boolean | Promise<boolean>;
}

/**
 * A bounded in-memory set of recently seen keys (DPoP proof `jti`s) that forgets entries once they
 * expire. When full of live entries, it refuses new ones rather than forgetting live ones (fail closed).
 * Keys arrive roughly in expiry order, so expired ones are dropped from the front as new ones come in
 * (amortised O(1)); a full sweep runs at most once per second, and only when full.
 */
export class ReplayCache implements ReplayStore {
  readonly #seen = new Map<string, number>();
  readonly #max: number;
  #sweptAt = Number.NaN;

  constructor(maxEntries = 100_000) {
    this.#max = maxEntries;
  }

  /** True the first time `key` is seen before `expiresAt` (seconds), false on replay or when full. */
  consume(key: string, expiresAt: number, nowSeconds: number): boolean {
    for (const [k, until] of this.#seen) {
      if (until > nowSeconds) break;
      this.#seen.delete(k);
    }
    const until = this.#seen.get(key);
    if (until !== undefined) {
      if (until > nowSeconds) return false;
      this.#seen.delete(key);
    }
    if (this.#seen.size >= this.#max && this.#sweptAt !== nowSeconds) {
      this.#sweptAt = nowSeconds;
      for (const [k, t] of this.#seen) if (t <= nowSeconds) this.#seen.delete(k);
    }
    if (this.#seen.size >= this.#max) return false;
    this.#seen.set(key, expiresAt);
    return true;
  }

  /** Keys currently remembered. */
  get size(): number {
    return this.#seen.size;
  }
}
