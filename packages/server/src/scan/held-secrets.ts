import type { VendorKeyView } from '../vendor/vendor-keys.js';

/**
 * Secrets Writ holds, by SHA-256, so a secret found by a scan can be named: "the legacy client secret of
 * workload X", not only "a client secret". Each kind of secret Writ keeps is one source; the scan asks
 * every source once and looks found secrets up by hash (nothing is sent anywhere).
 *
 * Sources: legacy client secrets (the `client_secret_sha256` of workloads, which Writ stores as hex
 * SHA-256 and never in clear) and vendor keys (the SHA-256 of every version the vendor-key proxy may
 * still inject, from the admin API; the keys themselves are sealed and never leave the server).
 */
export interface HeldSecret {
  /** SHA-256 of the secret, lowercase hex. */
  sha256: string;
  /** What the secret is, as a finding names it, e.g. `legacy client secret of spiffe://…`. */
  name: string;
}

export interface HeldSecretSource {
  /** For messages: what this source lists. */
  readonly description: string;
  load(): Promise<HeldSecret[]>;
}

/** Hash → name over several sources. */
export class HeldSecrets {
  readonly #byHash = new Map<string, string>();
  static async load(sources: readonly HeldSecretSource[]): Promise<HeldSecrets> {
    const held = new HeldSecrets();
    for (const s of sources) for (const h of await s.load()) held.#byHash.set(h.sha256.toLowerCase(), h.name);
    return held;
  }
  get size(): number {
    return this.#byHash.size;
  }
  /** The name of the held secret with this SHA-256 (hex), if Writ holds it. */
  name(sha256Hex: string): string | undefined {
    return this.#byHash.get(sha256Hex);
  }
}

/** Legacy client secrets, from the admin API's workload list (`secretSha256`). */
export function legacyClientSecrets(admin: { get<T>(path: string): Promise<T> }): HeldSecretSource {
  return {
    description: 'legacy client secrets (admin API: /workloads)',
    async load() {
      const r = await admin.get<{ workloads: Array<{ id: string; secretSha256?: string }> }>('/workloads');
      return r.workloads
        .filter((w) => typeof w.secretSha256 === 'string' && /^[0-9a-f]{64}$/i.test(w.secretSha256))
        .map((w) => ({ sha256: w.secretSha256!, name: `legacy client secret of ${w.id}` }));
    },
  };
}

/** Vendor keys the vendor-key proxy injects, every version still in force (admin API: /vendor-keys). */
export function vendorKeys(admin: { get<T>(path: string): Promise<T> }): HeldSecretSource {
  return {
    description: 'vendor keys (admin API: /vendor-keys)',
    async load() {
      const r = await admin.get<{ vendor_keys: VendorKeyView[] }>('/vendor-keys');
      return r.vendor_keys.flatMap((k) => [
        { sha256: k.sha256, name: `vendor key ${k.name} (v${k.version})` },
        ...k.overlapping.map((o) => ({
          sha256: o.sha256,
          name: `vendor key ${k.name} (v${o.version}, being rotated out)`,
        })),
      ]);
    },
  };
}
