import { createHmac, timingSafeEqual } from 'node:crypto';
import type { Clock } from '../clock.js';

/**
 * Server DPoP nonces (RFC 9449 §8) without state: a nonce is the time slot and an HMAC of it, so any
 * node holding the same key accepts it. Valid during its slot and the next, then refused with
 * `use_dpop_nonce` and replaced.
 */
export class DpopNonces {
  readonly #key: Buffer;
  readonly #periodMs: number;
  readonly #clock: Clock;

  constructor(key: Buffer, periodSeconds: number, clock: Clock) {
    this.#key = key;
    this.#periodMs = periodSeconds * 1000;
    this.#clock = clock;
  }

  current(): string {
    return this.#make(Math.floor(this.#clock.now() / this.#periodMs));
  }

  valid(nonce: string | undefined): boolean {
    if (nonce === undefined || nonce.length > 64) return false;
    const slot = Math.floor(this.#clock.now() / this.#periodMs);
    return [slot, slot - 1].some((s) => {
      const want = Buffer.from(this.#make(s));
      const got = Buffer.from(nonce);
      return want.length === got.length && timingSafeEqual(want, got);
    });
  }

  #make(slot: number): string {
    const s = slot.toString(36);
    return `${s}.${createHmac('sha256', this.#key).update(s).digest('base64url').slice(0, 22)}`;
  }
}
