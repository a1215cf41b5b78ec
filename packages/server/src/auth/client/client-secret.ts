import { createHash, timingSafeEqual } from 'node:crypto';

/** Compares a presented secret with the stored SHA-256 in constant time (over equal-length digests). */
export function secretMatches(presented: string, storedSha256Hex: string): boolean {
  const got = createHash('sha256').update(presented, 'utf8').digest();
  const want = Buffer.from(storedSha256Hex, 'hex');
  return want.length === got.length && timingSafeEqual(got, want);
}

/** Decodes `Authorization: Basic` per RFC 6749 §2.3.1 (form-urlencoded id and secret). */
export function parseBasicAuthorization(header: string): { clientId: string; secret: string } | undefined {
  const m = /^Basic ([A-Za-z0-9+/=]{1,2048})$/i.exec(header.trim());
  if (!m) return undefined;
  const decoded = Buffer.from(m[1]!, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return undefined;
  try {
    return {
      clientId: decodeURIComponent(decoded.slice(0, colon).replace(/\+/g, ' ')),
      secret: decodeURIComponent(decoded.slice(colon + 1).replace(/\+/g, ' ')),
    };
  } catch {
    return undefined;
  }
}
