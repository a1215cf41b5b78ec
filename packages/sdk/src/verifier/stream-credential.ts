import type { WorkloadClient } from '../client/workload-client.js';
import { createDpopProof } from '../dpop/create-proof.js';

/**
 * The verifier's own token for the issuer's event stream (and the policy bundle, same audience): asked
 * for once, kept until two thirds of its life, and asked for again at once after the server refused or
 * ended a stream (the token was revoked or expired).
 */
export class StreamCredential {
  readonly #client: Pick<WorkloadClient, 'requestToken' | 'dpopKey'>;
  readonly #audience: string;
  readonly #now: () => number;
  #token: { value: string; dpop: boolean; renewAt: number } | undefined;

  constructor(client: Pick<WorkloadClient, 'requestToken' | 'dpopKey'>, audience: string, now: () => number) {
    this.#client = client;
    this.#audience = audience;
    this.#now = now;
  }

  /** `Authorization` (and, for a DPoP-bound token, `DPoP`) headers for a GET of `url`. */
  async headers(url: string, fresh: boolean): Promise<Record<string, string>> {
    const token = await this.#current(fresh);
    if (!token.dpop) return { authorization: `Bearer ${token.value}` };
    return {
      authorization: `DPoP ${token.value}`,
      dpop: createDpopProof(this.#client.dpopKey, {
        method: 'GET',
        url,
        accessToken: token.value,
        nowSeconds: Math.floor(this.#now() / 1000),
      }),
    };
  }

  async #current(fresh: boolean): Promise<{ value: string; dpop: boolean }> {
    if (fresh || !this.#token || this.#now() >= this.#token.renewAt) {
      const r = await this.#client.requestToken({ audience: this.#audience });
      this.#token = {
        value: r.access_token,
        dpop: r.token_type.toLowerCase() === 'dpop',
        renewAt: this.#now() + (r.expires_in * 1000 * 2) / 3,
      };
    }
    return this.#token;
  }
}
