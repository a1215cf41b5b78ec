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
  /** The nonces of the two slots seen last: every response carries one, every proof is checked against two. */
  #made: Array<{ slot: number; nonce: string }> = [];

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
    const got = Buffer.from(nonce);
    // Both slots are compared, so how long the check takes does not say which one matched.
    let ok = false;
    for (const s of [slot, slot - 1]) {
      const want = Buffer.from(this.#make(s));
      if (want.length === got.length && timingSafeEqual(want, got)) ok = true;
    }
    return ok;
  }

  /** The nonce of `slot`: an HMAC made once per slot, not once per request. */
  #make(slot: number): string {
    const known = this.#made.find((m) => m.slot === slot);
    if (known) return known.nonce;
    const s = slot.toString(36);
    const nonce = `${s}.${createHmac('sha256', this.#key).update(s).digest('base64url').slice(0, 22)}`;
    this.#made = [{ slot, nonce }, ...this.#made].slice(0, 2);
    return nonce;
  }
}
