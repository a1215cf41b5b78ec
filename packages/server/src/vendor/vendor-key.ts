/**
 * A vendor's static API key as Writ keeps it: sealed under the key-encryption key, one row per version.
 * The newest version not retired is the one sent; older ones stay (sealed) until their overlap ends, so
 * proxies can still recognise them in what vendors echo while the vendor accepts both.
 */
export interface VendorKeyRecord {
  name: string;
  version: number;
  /** AES-256-GCM under the KEK-derived secrets key, context `vendor-key:<name>:<version>`. */
  sealed: Buffer;
  /** First 16 hex digits of SHA-256 of the key: tells versions apart without revealing them. */
  fingerprint: string;
  /** Workload ids of the proxies that may lease it. */
  proxies: string[];
  createdAt: number;
  createdBy: string;
  /** When a newer version replaced it (ms); null while it is the one sent. */
  replacedAt: number | null;
  /** Until when a replaced version is still recognised (ms); after that it is deleted. */
  overlapUntil: number | null;
}

/** Sealing context: binds the ciphertext to its name and version (a row copied elsewhere does not open). */
export const vendorKeyContext = (name: string, version: number) => `vendor-key:${name}:${version}`;
