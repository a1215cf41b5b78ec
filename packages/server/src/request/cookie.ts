/**
 * The value of one cookie in a `Cookie` header (RFC 6265 §5.4), or undefined when it is absent, sent
 * twice (which one a browser meant cannot be known) or not a plain token of at most 256 characters.
 */
export function cookieValue(header: string | undefined, name: string): string | undefined {
  if (header === undefined || header.length > 8192) return undefined;
  let found: string | undefined;
  for (const pair of header.split(';')) {
    const eq = pair.indexOf('=');
    if (eq < 0 || pair.slice(0, eq).trim() !== name) continue;
    if (found !== undefined) return undefined;
    found = pair.slice(eq + 1).trim();
  }
  return found !== undefined && /^[A-Za-z0-9_-]{1,256}$/.test(found) ? found : undefined;
}
