import { importPublicJwk, type VerificationKey } from '../jose/jwk.js';

export interface PublishedKeysOptions {
  issuer: string;
  /** Where the JWKS is, under the issuer. Default `/.well-known/jwks.json` (the token keys). */
  path?: string;
  fetch: typeof fetch;
  /** Milliseconds. */
  now: () => number;
  /** Minimum time between refetches caused by an unknown `kid` (ms). */
  cooldownMs: number;
}

/**
 * The issuer's signing keys as its JWKS publishes them. Fetched at start, when the stream says the keys
 * rotated or a snapshot names a key not held, and when a token names an unknown key — that last one at
 * most once per cooldown, so tokens with made-up `kid`s cannot make the verifier hammer the issuer.
 */
export class PublishedKeys {
  readonly #url: string;
  readonly #fetch: typeof fetch;
  readonly #now: () => number;
  readonly #cooldownMs: number;
  #keys: VerificationKey[] = [];
  #lastFetch = Number.NEGATIVE_INFINITY;

  constructor(o: PublishedKeysOptions) {
    this.#url = `${o.issuer}${o.path ?? '/.well-known/jwks.json'}`;
    this.#fetch = o.fetch;
    this.#now = o.now;
    this.#cooldownMs = o.cooldownMs;
  }

  /** The keys of the last JWKS fetched; a key that does not import is left out. */
  get keys(): readonly VerificationKey[] {
    return this.#keys;
  }

  has(kid: unknown): boolean {
    return this.#keys.some((k) => k.kid === kid);
  }

  /** A cached verification stands only while the key that made it is still published. */
  publishes(thumbprint: string): boolean {
    return this.#keys.some((k) => k.thumbprint === thumbprint);
  }

  /** Fetches the JWKS now. Throws when it cannot be had; the keys held then stay as they were. */
  async refresh(): Promise<void> {
    // Counted from the attempt, failed or not: a failing issuer is not asked again inside the cooldown.
    this.#lastFetch = this.#now();
    const res = await this.#fetch(this.#url);
    if (!res.ok) throw new Error(`JWKS: HTTP ${res.status}`);
    const jwks = (await res.json()) as { keys?: unknown };
    if (!Array.isArray(jwks?.keys)) throw new Error('JWKS: no keys array');
    this.#keys = jwks.keys.flatMap((k: unknown) => {
      try {
        return [importPublicJwk(k)];
      } catch {
        return [];
      }
    });
  }

  /**
   * A token named a key not held: fetches again unless the last fetch is younger than the cooldown.
   * True when it fetched (whether or not that succeeded), so the token is worth checking once more.
   */
  async refreshForUnknownKey(): Promise<boolean> {
    if (this.#now() - this.#lastFetch < this.#cooldownMs) return false;
    await this.refresh().catch(() => undefined);
    return true;
  }
}
