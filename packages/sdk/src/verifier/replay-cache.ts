/**
 * A bounded in-memory set of recently seen keys (DPoP proof `jti`s) that forgets entries once they
 * expire. When full, it refuses new entries rather than forgetting live ones (fail closed).
 */
export class ReplayCache {
  readonly #seen = new Map<string, number>();
  readonly #max: number;

  constructor(maxEntries = 100_000) {
    this.#max = maxEntries;
  }

  /** True the first time `key` is seen before `expiresAt` (seconds), false on replay or when full. */
  consume(key: string, expiresAt: number, nowSeconds: number): boolean {
    const until = this.#seen.get(key);
    if (until !== undefined && until > nowSeconds) return false;
    if (this.#seen.size >= this.#max) {
      for (const [k, t] of this.#seen) if (t <= nowSeconds) this.#seen.delete(k);
      if (this.#seen.size >= this.#max) return false;
    }
    this.#seen.set(key, expiresAt);
    return true;
  }
}
