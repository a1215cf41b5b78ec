import { hash } from 'node:crypto';

/**
 * The digest a revocation's value travels as to verifiers (`VerifierRevocation.value_sha256`), and a
 * workload's id in a `risk` event (`sub_sha256`): SHA-256 of its UTF-8 bytes, base64url without
 * padding. Sets hold every value this way, so one that knows values in clear (the server's) and one
 * that only has digests (a verifier's) match alike.
 */
export function revocationDigest(value: string): string {
  return hash('sha256', value, 'base64url');
}

/** Whether `value` has the shape of a SHA-256 digest in base64url without padding (a `revocationDigest`). */
export function isSha256Digest(value: unknown): value is string {
  return typeof value === 'string' && /^[A-Za-z0-9_-]{43}$/.test(value);
}

/** Values whose digest a memo remembers; past it the memo starts over. */
const MEMO_SIZE = 16_384;

/**
 * The `revocationDigest` of the token values a verifier looks up (a `jti`, a `sub`), remembered: a
 * repeat presentation costs a map lookup, not SHA-256.
 */
export class DigestMemo {
  readonly #digests = new Map<string, string>();

  of(value: string): string {
    let d = this.#digests.get(value);
    if (d === undefined) {
      if (this.#digests.size >= MEMO_SIZE) this.#digests.clear();
      d = revocationDigest(value);
      this.#digests.set(value, d);
    }
    return d;
  }
}
