/**
 * Normalises an HTTP URI for DPoP `htu` comparison (RFC 9449 §4.3 check 9): scheme and host lower-cased,
 * default port dropped, path dot-segments resolved and percent-encoding normalised by WHATWG URL
 * parsing (RFC 3986 §6.2.2–6.2.3); query and fragment ignored. Undefined when it is not an http(s) URI.
 */
export function normalizeHtu(uri: string): string | undefined {
  let u: URL;
  try {
    u = new URL(uri);
  } catch {
    return undefined;
  }
  if (u.protocol !== 'https:' && u.protocol !== 'http:') return undefined;
  if (u.username || u.password) return undefined;
  const path = u.pathname.replace(/%[0-9a-f]{2}/gi, (m) => decodeUnreserved(m));
  return `${u.protocol}//${u.host}${path}`;
}

// RFC 3986 §6.2.2.2: percent-encoded unreserved characters are equivalent to the characters themselves.
function decodeUnreserved(m: string): string {
  const c = String.fromCharCode(Number.parseInt(m.slice(1), 16));
  return /[A-Za-z0-9\-._~]/.test(c) ? c : m.toUpperCase();
}
