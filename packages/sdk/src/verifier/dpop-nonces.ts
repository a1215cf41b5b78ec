import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/** A resource server's DPoP nonce policy (RFC 9449 §9): the nonce to hand out, and which ones to take. */
export interface DpopNonceSource {
  current(): string;
  valid(nonce: string | undefined): boolean;
}

/**
 * Stateless DPoP nonces: the time slot and an HMAC of it, so every instance holding the same `key`
 * accepts the others' nonces. A nonce is good during its slot and the next, then refused with
 * `use_dpop_nonce` and replaced.
 *
 * @example createVerifier({ ..., dpopNonces: new DpopNonces({ periodSeconds: 60 }) })
 */
export class DpopNonces implements DpopNonceSource {
  readonly #key: Buffer;
  readonly #periodMs: number;
  readonly #now: () => number;

  constructor(o: { key?: Buffer; periodSeconds?: number; now?: () => number } = {}) {
    this.#key = o.key ?? randomBytes(32);
    this.#periodMs = (o.periodSeconds ?? 60) * 1000;
    this.#now = o.now ?? Date.now;
  }

  current(): string {
    return this.#make(Math.floor(this.#now() / this.#periodMs));
  }

  valid(nonce: string | undefined): boolean {
    if (nonce === undefined || nonce.length > 64) return false;
    const slot = Math.floor(this.#now() / this.#periodMs);
    const got = Buffer.from(nonce);
    return [slot, slot - 1].some((s) => {
      const want = Buffer.from(this.#make(s));
      return want.length === got.length && timingSafeEqual(want, got);
    });
  }

  #make(slot: number): string {
    const s = slot.toString(36);
    return `${s}.${createHmac('sha256', this.#key).update(s).digest('base64url').slice(0, 22)}`;
  }
}
