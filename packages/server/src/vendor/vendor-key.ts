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
  /**
   * SHA-256 of the key, hex: tells versions apart and lets `writ scan` name a leaked copy, without
   * revealing the key (a vendor key is long and random). Views show its first 16 digits.
   */
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
