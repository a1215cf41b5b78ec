import type { WorkloadClient } from '@writ/sdk/client';
import { compactDecrypt, exportJWK, generateKeyPair } from 'jose';
import type { VendorKeySource } from './proxy.js';
import { VENDOR_KEYS_PATH, vendorKeysAudience } from './routes.js';
import type { VendorKeyLease } from './vendor-keys.js';

interface Held {
  current: string;
  overlapping: string[];
  /** `current` and `overlapping` in one list, made once per lease: what `inFlight` hands out. */
  all: readonly string[];
  /** When the lease runs out (ms, this process's clock). */
  until: number;
  /** From when a new lease is asked for in the background while this one is still used (ms). */
  renewAt: number;
}

/**
 * Vendor keys leased from the Writ server by the proxy's own workload (`POST /v1/vendor-keys/lease`):
 * each lease is encrypted to an ephemeral key pair this process made and kept in memory only, and is
 * held `expires_in` seconds, so a rotation reaches the proxy within a lease. Past its lease, a key the
 * server will not lease again (revoked proxy, retired key, server down) is not sent: fail closed.
 * The next lease is asked for in the background once four fifths of the current one have passed, so
 * requests do not wait for the server at each renewal; only a request past the end of the lease does.
 */
export class LeasedVendorKeys implements VendorKeySource {
  readonly #client: Pick<WorkloadClient, 'fetch'>;
  readonly #issuer: string;
  readonly #now: () => number;
  readonly #held = new Map<string, Held>();
  readonly #pending = new Map<string, Promise<Held>>();
  #pair: ReturnType<typeof generateKeyPair> | undefined;

  constructor(o: { issuer: string; client: Pick<WorkloadClient, 'fetch'>; now?: () => number }) {
    this.#client = o.client;
    this.#issuer = o.issuer.replace(/\/$/, '');
    this.#now = o.now ?? Date.now;
  }

  async current(name: string): Promise<string> {
    const held = this.#held.get(name);
    const now = this.#now();
    if (held && held.until > now) {
      // A failed renewal is not fatal yet: the lease in hand holds until `until`, then requests wait.
      if (now >= held.renewAt) {
        // Asked again a second later at the soonest, not on every request while the server is down.
        held.renewAt = now + 1000;
        this.#renew(name).catch(() => undefined);
      }
      return held.current;
    }
    return (await this.#renew(name)).current;
  }

  inFlight(name: string): readonly string[] {
    return this.#held.get(name)?.all ?? [];
  }

  /** One lease request per name at a time. */
  #renew(name: string): Promise<Held> {
    let p = this.#pending.get(name);
    if (!p) {
      p = this.#lease(name).finally(() => this.#pending.delete(name));
      this.#pending.set(name, p);
    }
    return p;
  }

  async #lease(name: string): Promise<Held> {
    this.#pair ??= generateKeyPair('ECDH-ES', { crv: 'P-256', extractable: true });
    const { publicKey, privateKey } = await this.#pair;
    const jwk = await exportJWK(publicKey);
    const res = await this.#client.fetch(`${this.#issuer}${VENDOR_KEYS_PATH}/lease`, {
      audience: vendorKeysAudience(this.#issuer),
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name, jwk: { kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y } }),
    });
    if (!res.ok) {
      this.#held.delete(name);
      const body = (await res.json().catch(() => ({}))) as { error_description?: string };
      throw new Error(`lease of vendor key ${name} refused (${res.status}): ${body.error_description ?? ''}`);
    }
    const lease = (await res.json()) as VendorKeyLease;
    const open = async (jwe: string) =>
      new TextDecoder().decode((await compactDecrypt(jwe, privateKey)).plaintext);
    const current = await open(lease.current);
    const overlapping = await Promise.all(lease.overlapping.map(open));
    const ms = Math.max(1, Math.min(lease.expires_in, 300)) * 1000;
    const now = this.#now();
    const held: Held = {
      current,
      overlapping,
      all: [current, ...overlapping],
      until: now + ms,
      renewAt: now + ms * 0.8,
    };
    this.#held.set(name, held);
    return held;
  }
}
